/** The dashboard shell: sign-in (admin key once per browser session), left panel, the selected database. */
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { ADMIN_KEY_STORAGE, createDashboardClient } from './api.ts';
import type { ApiClient } from './api.ts';
import { ApiContext, ChangedContext } from './hooks.ts';
import { useRoute } from './route.ts';
import { DatabaseView } from './screens/DatabaseView.tsx';
import { Sidebar } from './screens/Sidebar.tsx';
import { SignIn } from './screens/SignIn.tsx';

function readKey(): string | null {
  try {
    return window.sessionStorage.getItem(ADMIN_KEY_STORAGE);
  } catch {
    return null;
  }
}

export function App({ clientFactory = createDashboardClient }: { clientFactory?: (token: string) => ApiClient }) {
  const [key, setKey] = useState<string | null>(readKey);
  const api = useMemo(() => (key === null ? null : clientFactory(key)), [key, clientFactory]);
  useEffect(() => () => void api?.dispose(), [api]);

  const signIn = useCallback((k: string) => {
    window.sessionStorage.setItem(ADMIN_KEY_STORAGE, k);
    setKey(k);
  }, []);
  const signOut = useCallback(() => {
    window.sessionStorage.removeItem(ADMIN_KEY_STORAGE);
    setKey(null);
  }, []);

  if (api === null) return <SignIn onSignIn={signIn} clientFactory={clientFactory} />;
  return (
    <ApiContext.Provider value={api}>
      <Shell onSignOut={signOut} />
    </ApiContext.Provider>
  );
}

function Shell({ onSignOut }: { onSignOut: () => void }) {
  const [route, navigate] = useRoute();
  // Bumped whenever a database's status changes, so the left panel reloads.
  const [revision, setRevision] = useState(0);
  const [menuOpen, setMenuOpen] = useState(false);
  const changed = useCallback(() => setRevision((r) => r + 1), []);
  // Live traffic (device events) refreshes the left panel's usage at most every 5 s.
  const lastTraffic = useRef(0);
  const trafficChanged = useCallback(() => {
    const now = Date.now();
    if (now - lastTraffic.current < 5000) return;
    lastTraffic.current = now;
    setTimeout(changed, 500); // the usage counters are recorded right after the device event
  }, [changed]);
  const selected = route.page === 'database' ? route.databaseId : null;
  return (
    <ChangedContext.Provider value={trafficChanged}>
    <div className="layout">
      <a className="skip-link" href="#main">Skip to content</a>
      <header className="topbar">
        <button type="button" className="btn btn-ghost menu-toggle" aria-expanded={menuOpen} aria-controls="sidebar" onClick={() => setMenuOpen((o) => !o)}>
          Menu
        </button>
        <span className="brand">OffSync</span>
        <nav className="topbar-links" aria-label="Tools">
          <a href="/graphql">GraphiQL</a>
          <button type="button" className="btn btn-ghost" onClick={onSignOut}>Sign out</button>
        </nav>
      </header>
      <Sidebar
        id="sidebar"
        open={menuOpen}
        selected={selected}
        revision={revision}
        onSelect={(databaseId) => {
          setMenuOpen(false);
          navigate({ page: 'database', databaseId, tab: 'setup' });
        }}
      />
      <main id="main" className="content" tabIndex={-1}>
        {route.page === 'database' ? (
          <DatabaseView key={route.databaseId} databaseId={route.databaseId} tab={route.tab} onTab={(tab) => navigate({ ...route, tab })} onChanged={changed} onDeleted={() => { changed(); navigate({ page: 'home' }); }} />
        ) : (
          <div className="empty-state">
            <h1>Welcome to OffSync</h1>
            <p>Pick a database in the left panel, or create a project and a database there. Each database gets its own setup, client integration, devices and metrics.</p>
          </div>
        )}
      </main>
    </div>
    </ChangedContext.Provider>
  );
}

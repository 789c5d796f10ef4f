/** One database: the not-enabled state (Enable OffSync), or the tabs; Disable OffSync top right. */
import { useRef, useState } from 'react';
import type { KeyboardEvent } from 'react';
import type { DatabaseQuery } from '@offsync/client';
import { useApi, useAsync } from '../hooks.ts';
import { TABS } from '../route.ts';
import type { TabId } from '../route.ts';
import { Button, ConfirmDialog, ErrorBox, Spinner } from '../ui/components.tsx';
import { DevicesTab } from './DevicesTab.tsx';
import { IntegrationTab } from './IntegrationTab.tsx';
import { MetricsTab } from './MetricsTab.tsx';
import { RejectionsTab } from './RejectionsTab.tsx';
import { SetupTab } from './SetupTab.tsx';

export type DatabaseDetails = DatabaseQuery['database'];

export function DatabaseView({ databaseId, tab, onTab, onChanged, onDeleted }: { databaseId: string; tab: TabId; onTab: (tab: TabId) => void; onChanged: () => void; onDeleted: () => void }) {
  const api = useApi();
  const state = useAsync(() => api.database({ id: databaseId }).then((r) => r.database), [api, databaseId]);
  const [confirm, setConfirm] = useState<'enable' | 'disable' | 'delete' | null>(null);
  const [uninstall, setUninstall] = useState(false);
  const db = state.data;

  if (db === undefined) {
    return state.error ? <ErrorBox error={state.error} onRetry={() => void state.reload()} /> : <Spinner label="Loading database…" />;
  }
  const enabled = db.offSync.enabled;
  return (
    <div className="database-view">
      <header className="page-head">
        <div>
          <p className="breadcrumb">{db.project.name} · {db.kind === 'SQLITE' ? 'SQLite' : 'PostgreSQL'}</p>
          <h1>{db.name}</h1>
        </div>
        <div className="page-actions">
          {enabled ? (
            <Button variant="danger" onClick={() => setConfirm('disable')}>Disable OffSync</Button>
          ) : (
            <Button variant="ghost" onClick={() => setConfirm('delete')}>Delete database</Button>
          )}
        </div>
      </header>
      <ErrorBox error={state.error} onRetry={() => void state.reload()} />
      {enabled ? (
        <>
          <Tabs current={tab} onTab={onTab} />
          <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`} className="tabpanel" tabIndex={0}>
            {tab === 'setup' && <SetupTab database={db} onDatabase={(next) => state.setData(next)} reloadDatabase={state.reload} />}
            {tab === 'integration' && <IntegrationTab database={db} reloadDatabase={state.reload} />}
            {tab === 'devices' && <DevicesTab databaseId={db.id} />}
            {tab === 'metrics' && <MetricsTab databaseId={db.id} />}
            {tab === 'rejections' && <RejectionsTab databaseId={db.id} />}
          </div>
        </>
      ) : (
        <section className="card not-enabled" aria-labelledby="not-enabled-title">
          <h2 id="not-enabled-title">OffSync is not enabled for this database</h2>
          <p>
            With OffSync enabled, devices running SQLite Sync keep a local copy of the tables you choose, work offline and merge their
            changes with everyone else&apos;s (CRDT, no conflicts to resolve). You then pick the tables to sync, get the client snippet
            and credentials, and watch devices and traffic live.
          </p>
          {db.kind === 'POSTGRES' && (
            <p className="muted">For a PostgreSQL database, check the connection and deploy at least one table below first: OffSync refuses to enable a database it cannot serve.</p>
          )}
          <Button variant="primary" onClick={() => setConfirm('enable')}>Enable OffSync</Button>
        </section>
      )}
      {!enabled && db.kind === 'POSTGRES' && (
        <section aria-label="Database Setup" className="pre-enable-setup">
          <SetupTab database={db} onDatabase={(next) => state.setData(next)} reloadDatabase={state.reload} />
        </section>
      )}
      {confirm === 'enable' && (
        <ConfirmDialog title="Enable OffSync?" confirmLabel="Enable OffSync" busyLabel="Enabling…" onCancel={() => setConfirm(null)} onConfirm={async () => {
          const r = await api.enableOffSync({ databaseId: db.id });
          state.setData({ ...db, ...r.enableOffSync });
          setConfirm(null);
          onChanged();
          onTab('setup');
        }}>
          <p>Devices will be able to sync <strong>{db.name}</strong> with the credentials you create. {db.kind === 'POSTGRES' ? 'It syncs the tables you deployed; you can change them in Database Setup.' : 'You choose the synced tables next.'}</p>
        </ConfirmDialog>
      )}
      {confirm === 'disable' && (
        <ConfirmDialog title="Disable OffSync?" confirmLabel="Disable OffSync" busyLabel="Disabling…" danger onCancel={() => setConfirm(null)} onConfirm={async () => {
          const r = await api.disableOffSync({ databaseId: db.id });
          state.setData({ ...db, ...r.disableOffSync });
          setConfirm(null);
          onChanged();
        }}>
          <p>Devices stop syncing <strong>{db.name}</strong> at once: uploads and downloads are refused and live connections end. Tables, credentials and data stay; enable again to resume.</p>
        </ConfirmDialog>
      )}
      {confirm === 'delete' && (
        <ConfirmDialog title="Delete database?" confirmLabel="Delete database" busyLabel="Deleting…" danger onCancel={() => setConfirm(null)} onConfirm={async () => {
          await api.deleteDatabase({ id: db.id, ...(db.kind === 'POSTGRES' ? { uninstall } : {}) });
          setConfirm(null);
          onDeleted();
        }}>
          <p>This removes <strong>{db.name}</strong> from OffSync with its credentials, devices and metrics. This cannot be undone.</p>
          {db.kind === 'POSTGRES' && (
            <>
              <p className="muted">Your PostgreSQL tables and rows stay. OffSync’s triggers and its <code>offsync</code> schema stay too unless you remove them:</p>
              <label className="checkbox">
                <input type="checkbox" checked={uninstall} onChange={(e) => setUninstall(e.target.checked)} /> Also remove OffSync’s triggers, trigger functions and the <code>offsync</code> schema from the PostgreSQL database
              </label>
            </>
          )}
        </ConfirmDialog>
      )}
    </div>
  );
}

/** ARIA tabs: arrow keys, Home and End move between tabs. */
function Tabs({ current, onTab }: { current: TabId; onTab: (tab: TabId) => void }) {
  const refs = useRef(new Map<TabId, HTMLButtonElement>());
  const onKey = (e: KeyboardEvent) => {
    const i = TABS.findIndex((t) => t.id === current);
    const next = e.key === 'ArrowRight' ? (i + 1) % TABS.length : e.key === 'ArrowLeft' ? (i - 1 + TABS.length) % TABS.length : e.key === 'Home' ? 0 : e.key === 'End' ? TABS.length - 1 : -1;
    const target = TABS[next];
    if (target === undefined) return;
    e.preventDefault();
    onTab(target.id);
    refs.current.get(target.id)?.focus();
  };
  return (
    <div role="tablist" aria-label="Database sections" className="tabs" onKeyDown={onKey}>
      {TABS.map((t) => (
        <button
          key={t.id}
          ref={(el) => {
            if (el) refs.current.set(t.id, el);
          }}
          type="button"
          role="tab"
          id={`tab-${t.id}`}
          aria-selected={t.id === current}
          aria-controls={`panel-${t.id}`}
          tabIndex={t.id === current ? 0 : -1}
          className={`tab${t.id === current ? ' active' : ''}`}
          onClick={() => onTab(t.id)}
        >
          {t.label}
        </button>
      ))}
    </div>
  );
}

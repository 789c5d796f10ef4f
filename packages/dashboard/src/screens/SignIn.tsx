/** Admin key entry: checked against the API (a `projects` query) before it is kept in sessionStorage. */
import { useState } from 'react';
import type { FormEvent } from 'react';
import type { ApiClient } from '../api.ts';
import { ErrorBox, Button } from '../ui/components.tsx';

export function SignIn({ onSignIn, clientFactory }: { onSignIn: (key: string) => void; clientFactory: (token: string) => ApiClient }) {
  const [key, setKey] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const value = key.trim();
    if (value === '') return;
    setBusy(true);
    setError(null);
    const probe = clientFactory(value);
    try {
      await probe.projects();
      onSignIn(value);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
      void probe.dispose();
    }
  };
  return (
    <main className="signin">
      <form className="card signin-card" onSubmit={(e) => void submit(e)} aria-labelledby="signin-title">
        <h1 id="signin-title">OffSync dashboard</h1>
        <p>Enter the admin key printed by the server at its first start (or set with <code>OFFSYNC_ADMIN_KEY</code>). It is kept for this browser session only.</p>
        <label htmlFor="admin-key">Admin key</label>
        <input id="admin-key" name="admin-key" type="password" autoComplete="off" spellCheck={false} value={key} onChange={(e) => setKey(e.target.value)} placeholder="osa_…" required />
        <ErrorBox error={error} />
        <Button type="submit" variant="primary" busy={busy} busyLabel="Checking…" disabled={key.trim() === ''}>
          Sign in
        </Button>
      </form>
    </main>
  );
}

/**
 * Client Integration: Database ID, the snippet (updated as the choices change), RLS mode, the
 * credentials the workspace type and mode call for (logic/integration.ts), RLS policies (OffSync's
 * editor on SQLite, PostgreSQL's own policies read-only on POSTGRES), push notifications.
 */
import { useState } from 'react';
import type { AccessTokenFieldsFragment, ApiKeyFieldsFragment, DatabaseKind, JwtMethod, RlsMode, RlsOperation } from '@offsync/client';
import { formatDateTime, formatRelative } from '../format.ts';
import { useApi, useAsync } from '../hooks.ts';
import { integrationLayout, postgresCredential, summarizePostgresRls } from '../logic/integration.ts';
import type { PostgresRls } from '../logic/integration.ts';
import { Button, Card, ConfirmDialog, CopyButton, ErrorBox, Modal, SecretReveal, Spinner, StatusDot, useAction } from '../ui/components.tsx';
import type { DatabaseDetails } from './DatabaseView.tsx';

export function IntegrationTab({ database, reloadDatabase }: { database: DatabaseDetails; reloadDatabase: () => Promise<void> }) {
  const ci = database.clientIntegration;
  const layout = integrationLayout(database.kind, database.rlsMode);
  return (
    <div className="stack">
      <Card title="Database ID">
        <div className="id-row">
          <code data-testid="database-id">{database.id}</code>
          <CopyButton text={database.id} what="Database ID" />
        </div>
        <p className="muted">Devices pass it to <code>cloudsync_network_init</code>. Server: <code>{ci.serverUrl}</code></p>
      </Card>
      <RlsModeCard database={database} onChanged={reloadDatabase} />
      <Card title="Client snippet" actions={<CopyButton text={ci.snippet} what="snippet" />}>
        <pre className="snippet" data-testid="snippet" aria-label="SQL to run on a device">{ci.snippet}</pre>
      </Card>
      <AuthSection databaseId={database.id} kind={database.kind} rlsMode={database.rlsMode} postgresUser={ci.postgresUser} onChanged={reloadDatabase} />
      {layout.policies === 'OFFSYNC' && <RlsPoliciesCard databaseId={database.id} />}
      {layout.policies === 'POSTGRES' && <PostgresRlsCard databaseId={database.id} rlsMode={database.rlsMode} />}
      <PushCard databaseId={database.id} />
    </div>
  );
}

function RlsModeCard({ database, onChanged }: { database: DatabaseDetails; onChanged: () => Promise<void> }) {
  const api = useApi();
  const action = useAction(async (mode: RlsMode) => {
    await api.setRlsMode({ databaseId: database.id, mode });
    await onChanged();
  });
  const postgres = database.kind === 'POSTGRES';
  return (
    <Card title="Row-level security">
      <fieldset className="radio-group" disabled={action.busy} aria-busy={action.busy || undefined}>
        <legend>Should devices only see the rows their user may see?</legend>
        <label className="radio">
          <input type="radio" name="rls-mode" checked={database.rlsMode === 'BYPASS'} onChange={() => void action.run('BYPASS')} /> No, bypass RLS
          <span className="muted">{postgres
            ? ' — devices use the PostgreSQL username & password or an API key and see every row.'
            : ' — devices use an API key and see every row.'}</span>
        </label>
        <label className="radio">
          <input type="radio" name="rls-mode" checked={database.rlsMode === 'ENFORCE'} onChange={() => void action.run('ENFORCE')} /> Yes, enforce RLS
          <span className="muted">{postgres
            ? ' — devices sign in as a user (JWT or access token); the database’s own PostgreSQL policies decide which rows each user reads and writes.'
            : ' — devices sign in as a user (access token or JWT); policies decide which rows sync.'}</span>
        </label>
      </fieldset>
      {action.busy && <Spinner label="Saving…" />}
      <ErrorBox error={action.error} />
    </Card>
  );
}

function AuthSection({ databaseId, kind, rlsMode, postgresUser, onChanged }: { databaseId: string; kind: DatabaseKind; rlsMode: RlsMode; postgresUser: string | null; onChanged: () => Promise<void> }) {
  const api = useApi();
  const state = useAsync(() => api.databaseAuth({ databaseId }).then((r) => r.database.auth), [api, databaseId]);
  const layout = integrationLayout(kind, rlsMode);
  const pgCard = layout.credentials.includes('POSTGRES_USER') ? <PostgresUserCard user={postgresUser} /> : null;
  if (state.data === undefined) {
    return <>{pgCard}{state.error ? <ErrorBox error={state.error} onRetry={() => void state.reload()} /> : <Spinner label="Loading credentials…" />}</>;
  }
  const reload = async () => {
    await state.reload();
    await onChanged();
  };
  return (
    <>
      {pgCard}
      {layout.credentials.includes('API_KEYS') && <ApiKeysCard databaseId={databaseId} keys={state.data.apiKeys} onChanged={reload} />}
      {layout.credentials.includes('JWT_PROVIDER') && <JwtProviderCard databaseId={databaseId} provider={state.data.jwtProvider} onChanged={reload} />}
      {layout.credentials.includes('ACCESS_TOKENS') && <AccessTokensCard databaseId={databaseId} tokens={state.data.accessTokens} onChanged={reload} />}
    </>
  );
}

/** POSTGRES + BYPASS: devices present `<db-user>:<password>` as their API key. The password is never shown. */
export function PostgresUserCard({ user }: { user: string | null }) {
  const credential = postgresCredential(user);
  return (
    <Card title="PostgreSQL username & password">
      <dl className="facts">
        <div><dt>Database user</dt><dd><code data-testid="postgres-user">{user ?? '—'}</code></dd></div>
        <div><dt>Password</dt><dd className="muted">Not shown — the password of this PostgreSQL user</dd></div>
      </dl>
      <p>
        A device may present <code>{credential}</code> as its API key (<code>cloudsync_network_set_apikey</code>). OffSync checks it by
        logging in to PostgreSQL as that user, so the database decides whether the password is right.
      </p>
      <p className="muted">Row-level security is bypassed with this credential: the device syncs every row of the synced tables. The user and password are the ones of the connection (Database Setup → Edit); any other PostgreSQL user with a password works the same way.</p>
    </Card>
  );
}

/** POSTGRES: RLS of each synced table as PostgreSQL has it (pg_policies). Read only. */
function PostgresRlsCard({ databaseId, rlsMode }: { databaseId: string; rlsMode: RlsMode }) {
  const api = useApi();
  const state = useAsync(() => api.tables({ databaseId, filter: { selected: true } }).then((r) => r.database.tables.nodes), [api, databaseId]);
  return (
    <Card title="PostgreSQL row-level security" actions={<Button className="btn-small" onClick={() => void state.reload()}>Refresh</Button>}>
      <p className="muted">
        Policies are managed in PostgreSQL (<code>ALTER TABLE … ENABLE ROW LEVEL SECURITY</code>, <code>CREATE POLICY</code>); this view is read only.
        {rlsMode === 'ENFORCE'
          ? ' In enforce mode each user’s requests run under SET LOCAL ROLE <role claim> with request.jwt.claims set, so these policies decide what every device reads and writes.'
          : ' They are not applied in bypass mode; switch to “Yes, enforce RLS” to apply them.'}
      </p>
      {state.data === undefined ? (state.error ? <ErrorBox error={state.error} onRetry={() => void state.reload()} /> : <Spinner label="Loading policies…" />)
        : state.data.length === 0 ? <p className="muted">Deploy tables first (Database Setup).</p>
          : state.data.map((t) => <PostgresTableRls key={t.name} table={t.name} rls={t.postgresRls} rlsMode={rlsMode} />)}
    </Card>
  );
}

export function PostgresTableRls({ table, rls, rlsMode }: { table: string; rls: PostgresRls | null; rlsMode: RlsMode }) {
  const summary = summarizePostgresRls(rls, rlsMode);
  return (
    <section className="policy-table" aria-label={`Row-level security of ${table}`}>
      <h3>{table} <StatusDot tone={summary.tone}>{summary.label}</StatusDot></h3>
      <p className="muted">{summary.detail}</p>
      {rls !== null && rls.policies.length > 0 && (
        <div className="table-scroll">
          <table className="data-table">
            <caption className="visually-hidden">Policies of {table}</caption>
            <thead><tr><th scope="col">Policy</th><th scope="col">Command</th><th scope="col">Roles</th><th scope="col">USING</th><th scope="col">WITH CHECK</th></tr></thead>
            <tbody>
              {rls.policies.map((p) => (
                <tr key={p.name}>
                  <td>{p.name}{p.permissive === 'RESTRICTIVE' ? <span className="muted"> (restrictive)</span> : null}</td>
                  <td>{p.command}</td>
                  <td>{p.roles.join(', ')}</td>
                  <td>{p.using === null ? <span className="muted">—</span> : <code className="break">{p.using}</code>}</td>
                  <td>{p.withCheck === null ? <span className="muted">—</span> : <code className="break">{p.withCheck}</code>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function ApiKeysCard({ databaseId, keys, onChanged }: { databaseId: string; keys: readonly ApiKeyFieldsFragment[]; onChanged: () => Promise<void> }) {
  const api = useApi();
  const [name, setName] = useState('');
  const [secret, setSecret] = useState<string | null>(null);
  const [revoking, setRevoking] = useState<ApiKeyFieldsFragment | null>(null);
  const create = useAction(async () => {
    const r = await api.createApiKey({ databaseId, name: name.trim() });
    setSecret(r.createApiKey.secret);
    setName('');
    await onChanged();
  });
  return (
    <Card title="API keys">
      <p className="muted">An API key lets a device sync every row (RLS bypassed). Keep it in your app’s secure storage.</p>
      {secret !== null && <SecretReveal label="New API key" secret={secret} onDone={() => setSecret(null)} />}
      <form className="inline-form" onSubmit={(e) => { e.preventDefault(); void create.run(); }}>
        <label htmlFor="api-key-name">Key name</label>
        <input id="api-key-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. mobile app" required />
        <Button type="submit" variant="primary" busy={create.busy} busyLabel="Creating…" disabled={name.trim() === ''}>Create API key</Button>
      </form>
      <ErrorBox error={create.error} />
      {keys.length === 0 ? <p className="muted">No API keys yet.</p> : (
        <div className="table-scroll">
          <table className="data-table">
            <caption className="visually-hidden">API keys</caption>
            <thead><tr><th scope="col">Name</th><th scope="col">Key</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col"><span className="visually-hidden">Actions</span></th></tr></thead>
            <tbody>
              {keys.map((k) => (
                <tr key={k.id}>
                  <td>{k.name}</td>
                  <td><code>{k.prefix}</code></td>
                  <td>{formatDateTime(k.createdAt)}</td>
                  <td>{formatRelative(k.lastUsedAt)}</td>
                  <td><Button variant="ghost" className="btn-small" onClick={() => setRevoking(k)} aria-label={`Revoke ${k.name}`}>Revoke</Button></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {revoking && (
        <ConfirmDialog title="Revoke API key?" confirmLabel="Revoke" busyLabel="Revoking…" danger onCancel={() => setRevoking(null)} onConfirm={async () => {
          await api.revokeApiKey({ id: revoking.id });
          setRevoking(null);
          await onChanged();
        }}>
          <p>Devices using <strong>{revoking.name}</strong> (<code>{revoking.prefix}</code>) are refused from now on; their live connections end.</p>
        </ConfirmDialog>
      )}
    </Card>
  );
}

function AccessTokensCard({ databaseId, tokens, onChanged }: { databaseId: string; tokens: readonly AccessTokenFieldsFragment[]; onChanged: () => Promise<void> }) {
  const api = useApi();
  const [draft, setDraft] = useState({ name: '', userId: '', attributes: '', expiresAt: '' });
  const [secret, setSecret] = useState<string | null>(null);
  const [revoking, setRevoking] = useState<AccessTokenFieldsFragment | null>(null);
  const [attributesError, setAttributesError] = useState<string | null>(null);
  const create = useAction(async () => {
    let attributes: unknown;
    if (draft.attributes.trim() !== '') {
      try {
        attributes = JSON.parse(draft.attributes);
      } catch {
        setAttributesError('Attributes must be a JSON object, e.g. {"team": "blue"}');
        return;
      }
    }
    setAttributesError(null);
    const r = await api.createAccessToken({
      databaseId,
      name: draft.name.trim(),
      userId: draft.userId.trim(),
      ...(attributes === undefined ? {} : { attributes }),
      ...(draft.expiresAt === '' ? {} : { expiresAt: new Date(draft.expiresAt).toISOString() }),
    });
    setSecret(r.createAccessToken.token);
    setDraft({ name: '', userId: '', attributes: '', expiresAt: '' });
    await onChanged();
  });
  return (
    <Card title="Access tokens">
      <p className="muted">A per-user token: policies see its user id as <code>auth_userid()</code> and its attributes through <code>auth_json()</code>.</p>
      {secret !== null && <SecretReveal label="New access token" secret={secret} onDone={() => setSecret(null)} />}
      <form className="form grid-2" onSubmit={(e) => { e.preventDefault(); void create.run(); }}>
        <div className="field"><label htmlFor="tok-name">Token name</label><input id="tok-name" value={draft.name} onChange={(e) => setDraft({ ...draft, name: e.target.value })} required /></div>
        <div className="field"><label htmlFor="tok-user">User id</label><input id="tok-user" value={draft.userId} onChange={(e) => setDraft({ ...draft, userId: e.target.value })} required /></div>
        <div className="field"><label htmlFor="tok-attrs">Attributes (JSON, optional)</label><input id="tok-attrs" value={draft.attributes} onChange={(e) => setDraft({ ...draft, attributes: e.target.value })} aria-invalid={attributesError !== null || undefined} aria-describedby={attributesError ? 'tok-attrs-error' : undefined} /></div>
        <div className="field"><label htmlFor="tok-exp">Expires (optional)</label><input id="tok-exp" type="datetime-local" value={draft.expiresAt} onChange={(e) => setDraft({ ...draft, expiresAt: e.target.value })} /></div>
        {attributesError && <p id="tok-attrs-error" className="field-error">{attributesError}</p>}
        <div><Button type="submit" variant="primary" busy={create.busy} busyLabel="Minting…" disabled={draft.name.trim() === '' || draft.userId.trim() === ''}>Mint access token</Button></div>
      </form>
      <ErrorBox error={create.error} />
      {tokens.length === 0 ? <p className="muted">No access tokens yet.</p> : (
        <div className="table-scroll">
          <table className="data-table">
            <caption className="visually-hidden">Access tokens</caption>
            <thead><tr><th scope="col">Name</th><th scope="col">User</th><th scope="col">Token</th><th scope="col">Expires</th><th scope="col"><span className="visually-hidden">Actions</span></th></tr></thead>
            <tbody>
              {tokens.map((t) => (
                <tr key={t.id}>
                  <td>{t.name}</td><td>{t.userId}</td><td><code>{t.prefix}</code></td><td>{t.expiresAt ? formatDateTime(t.expiresAt) : 'never'}</td>
                  <td><Button variant="ghost" className="btn-small" onClick={() => setRevoking(t)} aria-label={`Revoke ${t.name}`}>Revoke</Button></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {revoking && (
        <ConfirmDialog title="Revoke access token?" confirmLabel="Revoke" busyLabel="Revoking…" danger onCancel={() => setRevoking(null)} onConfirm={async () => {
          await api.revokeAccessToken({ id: revoking.id });
          setRevoking(null);
          await onChanged();
        }}>
          <p>Devices signed in with <strong>{revoking.name}</strong> (user {revoking.userId}) are refused from now on.</p>
        </ConfirmDialog>
      )}
    </Card>
  );
}

type Provider = { configured: boolean; method?: JwtMethod | null; issuer?: string | null; audience?: string | null; jwksUri?: string | null; updatedAt?: string | null };

function JwtProviderCard({ databaseId, provider, onChanged }: { databaseId: string; provider: Provider; onChanged: () => Promise<void> }) {
  const api = useApi();
  const [editing, setEditing] = useState(false);
  const [removing, setRemoving] = useState(false);
  return (
    <Card title="JWT provider" actions={<>
      <Button className="btn-small" onClick={() => setEditing(true)}>{provider.configured ? 'Edit' : 'Configure'}</Button>
      {provider.configured && <Button variant="ghost" className="btn-small" onClick={() => setRemoving(true)}>Remove</Button>}
    </>}>
      {provider.configured ? (
        <dl className="facts">
          <div><dt>Status</dt><dd><StatusDot tone="ok">Configured</StatusDot></dd></div>
          <div><dt>Method</dt><dd>{provider.method}</dd></div>
          {provider.issuer && <div><dt>Issuer</dt><dd className="break">{provider.issuer}</dd></div>}
          {provider.audience && <div><dt>Audience</dt><dd>{provider.audience}</dd></div>}
          {provider.jwksUri && <div><dt>JWKS URL</dt><dd className="break">{provider.jwksUri}</dd></div>}
          <div><dt>Updated</dt><dd>{formatDateTime(provider.updatedAt)}</dd></div>
        </dl>
      ) : (
        <p><StatusDot tone="off">Not configured</StatusDot> <span className="muted">Let devices sign in with JWTs from your identity provider (HS256 shared secret or JWKS).</span></p>
      )}
      {editing && <JwtDialog databaseId={databaseId} provider={provider} onClose={() => setEditing(false)} onSaved={async () => { setEditing(false); await onChanged(); }} />}
      {removing && (
        <ConfirmDialog title="Remove JWT provider?" confirmLabel="Remove" busyLabel="Removing…" danger onCancel={() => setRemoving(false)} onConfirm={async () => {
          await api.removeJwtProvider({ databaseId });
          setRemoving(false);
          await onChanged();
        }}>
          <p>Devices signed in with JWTs are refused from now on; access tokens keep working.</p>
        </ConfirmDialog>
      )}
    </Card>
  );
}

function JwtDialog({ databaseId, provider, onClose, onSaved }: { databaseId: string; provider: Provider; onClose: () => void; onSaved: () => Promise<void> }) {
  const api = useApi();
  const [method, setMethod] = useState<JwtMethod>(provider.method ?? 'HS256');
  const [secret, setSecret] = useState('');
  const [issuer, setIssuer] = useState(provider.issuer ?? '');
  const [audience, setAudience] = useState(provider.audience ?? '');
  const [jwksUri, setJwksUri] = useState(provider.jwksUri ?? '');
  const opt = (k: string, v: string) => (v.trim() === '' ? {} : { [k]: v.trim() });
  const action = useAction(async () => {
    await api.configureJwtProvider({ databaseId, method, ...(method === 'HS256' ? opt('secret', secret) : opt('jwksUri', jwksUri)), ...opt('issuer', issuer), ...opt('audience', audience) });
    await onSaved();
  });
  return (
    <Modal title="JWT provider" onClose={onClose} wide>
      <form className="form" onSubmit={(e) => { e.preventDefault(); void action.run(); }}>
        <fieldset>
          <legend>Verification</legend>
          <label className="radio"><input type="radio" name="jwt-method" checked={method === 'HS256'} onChange={() => setMethod('HS256')} /> HS256 (shared secret)</label>
          <label className="radio"><input type="radio" name="jwt-method" checked={method === 'JWKS'} onChange={() => setMethod('JWKS')} /> JWKS (public keys at a URL)</label>
        </fieldset>
        {method === 'HS256' ? (
          <div className="field"><label htmlFor="jwt-secret">Shared secret</label><input id="jwt-secret" type="password" value={secret} onChange={(e) => setSecret(e.target.value)} autoComplete="off" required={!provider.configured} /></div>
        ) : (
          <div className="field"><label htmlFor="jwt-jwks">JWKS URL</label><input id="jwt-jwks" type="url" value={jwksUri} onChange={(e) => setJwksUri(e.target.value)} required /></div>
        )}
        <div className="grid-2">
          <div className="field"><label htmlFor="jwt-issuer">Issuer{method === 'JWKS' ? '' : ' (optional)'}</label><input id="jwt-issuer" value={issuer} onChange={(e) => setIssuer(e.target.value)} required={method === 'JWKS'} /></div>
          <div className="field"><label htmlFor="jwt-audience">Audience (optional)</label><input id="jwt-audience" value={audience} onChange={(e) => setAudience(e.target.value)} /></div>
        </div>
        <ErrorBox error={action.error} />
        <div className="dialog-actions">
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" busy={action.busy} busyLabel="Saving…">Save</Button>
        </div>
      </form>
    </Modal>
  );
}

const OPERATIONS: readonly RlsOperation[] = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'];

function RlsPoliciesCard({ databaseId }: { databaseId: string }) {
  const api = useApi();
  const state = useAsync(async () => {
    const [policies, tables] = await Promise.all([api.rlsPolicies({ databaseId }), api.tables({ databaseId, filter: { selected: true } })]);
    return { policies: policies.database.rlsPolicies, tables: tables.database.tables.nodes.map((t) => t.name) };
  }, [api, databaseId]);
  if (state.data === undefined) return state.error ? <ErrorBox error={state.error} onRetry={() => void state.reload()} /> : <Spinner label="Loading policies…" />;
  const { policies, tables } = state.data;
  return (
    <Card title="RLS policies">
      <p className="muted">A SQLite boolean expression per table and operation; it may use <code>auth_userid()</code>, <code>auth_json()</code>, <code>NEW.col</code> and <code>OLD.col</code>. No policy: the operation is refused for users.</p>
      {tables.length === 0 ? <p className="muted">Deploy tables first (Database Setup).</p> : tables.map((table) => (
        <fieldset key={table} className="policy-table">
          <legend>{table}</legend>
          {OPERATIONS.map((op) => (
            <PolicyRow key={op} databaseId={databaseId} table={table} operation={op} current={policies.find((p) => p.table === table && p.operation === op)?.expression ?? null} onChanged={state.reload} />
          ))}
        </fieldset>
      ))}
    </Card>
  );
}

function PolicyRow({ databaseId, table, operation, current, onChanged }: { databaseId: string; table: string; operation: RlsOperation; current: string | null; onChanged: () => Promise<void> }) {
  const api = useApi();
  const [value, setValue] = useState(current ?? '');
  const id = `policy-${table}-${operation}`;
  const save = useAction(async () => {
    if (value.trim() === '') await api.removeRlsPolicy({ databaseId, table, operation });
    else await api.setRlsPolicy({ databaseId, table, operation, expression: value });
    await onChanged();
  });
  return (
    <div className="policy-row">
      <label htmlFor={id}>{operation}</label>
      <input id={id} value={value} onChange={(e) => setValue(e.target.value)} placeholder="no policy (refused)" spellCheck={false} />
      <Button className="btn-small" busy={save.busy} busyLabel="Saving…" disabled={value === (current ?? '')} onClick={() => void save.run()}>{value.trim() === '' && current !== null ? 'Remove' : 'Save'}</Button>
      <ErrorBox error={save.error} />
    </div>
  );
}

function PushCard({ databaseId }: { databaseId: string }) {
  const api = useApi();
  const state = useAsync(() => api.pushNotifications({ databaseId }).then((r) => r.database.pushNotifications), [api, databaseId]);
  const [editing, setEditing] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [token, setToken] = useState('');
  const save = useAction(async () => {
    await api.setExpoAccessToken({ databaseId, token: token.trim() });
    setEditing(false);
    setToken('');
    await state.reload();
  });
  const push = state.data;
  return (
    <Card title="Push notifications (Expo)" actions={push && <>
      <Button className="btn-small" onClick={() => setEditing(true)}>{push.expoAccessTokenConfigured ? 'Edit' : 'Configure'}</Button>
      {push.expoAccessTokenConfigured && <Button variant="ghost" className="btn-small" onClick={() => setDeleting(true)}>Delete</Button>}
    </>}>
      {push === undefined ? (state.error ? <ErrorBox error={state.error} onRetry={() => void state.reload()} /> : <Spinner />) : (
        <dl className="facts">
          <div><dt>Expo access token</dt><dd>{push.expoAccessTokenConfigured ? <StatusDot tone="ok">Configured</StatusDot> : <StatusDot tone="off">Not configured</StatusDot>}</dd></div>
          <div><dt>Last updated</dt><dd>{formatDateTime(push.expoAccessTokenUpdatedAt)}</dd></div>
          <div><dt>Registered devices</dt><dd>{push.registeredTokens}</dd></div>
        </dl>
      )}
      {editing && (
        <Modal title="Expo access token" onClose={() => setEditing(false)}>
          <form className="form" onSubmit={(e) => { e.preventDefault(); void save.run(); }}>
            <p className="muted">Needed when “enhanced security” is on in your Expo project. It is stored encrypted and never shown again.</p>
            <label htmlFor="expo-token">Access token</label>
            <input id="expo-token" type="password" value={token} onChange={(e) => setToken(e.target.value)} autoComplete="off" required data-autofocus />
            <ErrorBox error={save.error} />
            <div className="dialog-actions">
              <Button onClick={() => setEditing(false)}>Cancel</Button>
              <Button type="submit" variant="primary" busy={save.busy} busyLabel="Saving…" disabled={token.trim() === ''}>Save</Button>
            </div>
          </form>
        </Modal>
      )}
      {deleting && (
        <ConfirmDialog title="Delete Expo access token?" confirmLabel="Delete" busyLabel="Deleting…" danger onCancel={() => setDeleting(false)} onConfirm={async () => {
          await api.deleteExpoAccessToken({ databaseId });
          setDeleting(false);
          await state.reload();
        }}>
          <p>Pushes are sent without it from now on (refused by Expo when enhanced security is on).</p>
        </ConfirmDialog>
      )}
    </Card>
  );
}

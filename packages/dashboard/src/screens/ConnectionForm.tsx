/** PostgreSQL connection settings (the password is write-only: never shown back). */
import type { PostgresConnectionInput } from '@offsync/client';

export interface ConnectionDraft { host: string; port: string; database: string; user: string; password: string; ssl: boolean }

export const emptyConnection: ConnectionDraft = { host: '', port: '5432', database: '', user: '', password: '', ssl: false };

export function toConnectionInput(d: ConnectionDraft): PostgresConnectionInput {
  return { host: d.host.trim(), port: Number.parseInt(d.port, 10) || 5432, database: d.database.trim(), user: d.user.trim(), ssl: d.ssl, ...(d.password === '' ? {} : { password: d.password }) };
}

export function ConnectionForm({ value, onChange, passwordHint }: { value: ConnectionDraft; onChange: (next: ConnectionDraft) => void; passwordHint?: string }) {
  const field = (key: 'host' | 'port' | 'database' | 'user' | 'password', label: string, type = 'text') => (
    <div className="field">
      <label htmlFor={`pg-${key}`}>{label}</label>
      <input id={`pg-${key}`} type={type} value={value[key]} onChange={(e) => onChange({ ...value, [key]: e.target.value })} required={key !== 'password'} autoComplete="off" inputMode={key === 'port' ? 'numeric' : undefined} />
    </div>
  );
  return (
    <fieldset className="connection-form">
      <legend>PostgreSQL connection</legend>
      <div className="grid-2">
        {field('host', 'Host')}
        {field('port', 'Port')}
        {field('database', 'Database')}
        {field('user', 'Username')}
        {field('password', 'Password', 'password')}
      </div>
      {passwordHint && <p className="muted">{passwordHint}</p>}
      <label className="checkbox"><input type="checkbox" checked={value.ssl} onChange={(e) => onChange({ ...value, ssl: e.target.checked })} /> Require TLS</label>
    </fieldset>
  );
}

/** Simulated devices (OffSync's own engine on :memory:) and a small HTTP client for sync tests. */
import { openSyncDatabase } from '@offsync/core/sqlite';
import { TODOS_DDL } from './server.ts';

export type Device = ReturnType<typeof openSyncDatabase>;

export function newDevice(): Device {
  const d = openSyncDatabase(':memory:');
  d.driver.exec(TODOS_DDL);
  d.init('todos');
  return d;
}

export const siteHex = (d: Device): string => Buffer.from(d.siteId).toString('hex');

/** The device's own changes (as a device uploads them), or null when none. */
export function ownPayload(d: Device, afterVersion = 0): Uint8Array | null {
  return d.encodeChanges(d.changes({ localOnly: true, after: { dbVersion: afterVersion, seq: Number.MAX_SAFE_INTEGER } }));
}

export function insertTodos(d: Device, n: number, prefix = 't', title = 'x'): void {
  d.driver.transaction(() => {
    const st = d.driver.prepare('INSERT INTO todos (id, title, done) VALUES (?, ?, 0)');
    for (let i = 0; i < n; i++) st.run(`${prefix}${String(i).padStart(6, '0')}`, `${title}${i}`);
  });
}

export interface Reply {
  status: number;
  statusText: string;
  text: string;
  bytes: Uint8Array;
  headers: Headers;
  json(): unknown;
}

export async function call(method: string, url: string, opts: { key?: string | null; json?: unknown; body?: Uint8Array | string; headers?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.key !== null) headers['authorization'] = `Bearer ${opts.key ?? 'TESTKEY123'}`;
  let body: Uint8Array | string | undefined = opts.body;
  if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.json);
  }
  const init: RequestInit = { method, headers };
  if (body !== undefined) init.body = typeof body === 'string' ? body : new Uint8Array(body);
  const r = await fetch(url, init);
  const bytes = new Uint8Array(await r.arrayBuffer());
  const text = Buffer.from(bytes).toString('utf8');
  return { status: r.status, statusText: r.statusText, text, bytes, headers: r.headers, json: () => JSON.parse(text) as unknown };
}

export const ROWS_SQL = 'SELECT id, title, done FROM todos ORDER BY id';

/**
 * A device running the REAL native SQLite Sync extension 1.1.4 (`@sqliteai/sqlite-sync-linux-x86_64`,
 * protocol G3, a devDependency for tests only under its licence: loaded, never copied) inside
 * better-sqlite3 in a worker thread. Its network functions do their own blocking HTTP, so they
 * block the worker while the OffSync server keeps running on the test's thread.
 *
 * `device.value(sql)` / `device.all(sql)` / `device.exec(sql)` run on the worker's connection;
 * values come back structured-cloned (INTEGER as bigint, BLOB as Uint8Array).
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

const require = createRequire(import.meta.url);

const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const Database = require(workerData.betterSqlite3);
const db = new Database(workerData.file);
db.defaultSafeIntegers(true);
db.loadExtension(workerData.extension);
parentPort.on('message', (m) => {
  try {
    let value;
    if (m.op === 'exec') value = db.exec(m.sql) && null;
    else {
      const stmt = db.prepare(m.sql);
      if (m.op === 'all') value = stmt.all(...m.params);
      else if (!stmt.reader) value = stmt.run(...m.params) && null;
      else {
        const row = stmt.raw(true).get(...m.params);
        value = row === undefined ? undefined : row[0];
      }
    }
    parentPort.postMessage({ seq: m.seq, ok: true, value });
  } catch (e) {
    parentPort.postMessage({ seq: m.seq, ok: false, error: e && e.message ? e.message : String(e) });
  }
});
parentPort.postMessage({ ready: true });
`;

export interface NativeDevice {
  /** First column of the first row (undefined when no row); statements without rows return null. */
  value(sql: string, ...params: unknown[]): Promise<unknown>;
  all(sql: string, ...params: unknown[]): Promise<Array<Record<string, unknown>>>;
  exec(sql: string): Promise<void>;
  close(): Promise<void>;
}

/** Path of the extension (`cloudsync.so`) of the native 1.1.4 package. */
export function nativeExtensionPath(): string {
  return (require('@sqliteai/sqlite-sync-linux-x86_64') as { path: string }).path;
}

/** Opens a native device on `file` (default: an in-memory database) in its own worker thread. */
export async function openNativeDevice(file = ':memory:'): Promise<NativeDevice> {
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { betterSqlite3: require.resolve('better-sqlite3'), extension: nativeExtensionPath(), file },
  });
  const pending = new Map<number, { ok: (v: unknown) => void; fail: (e: Error) => void }>();
  let seq = 0;
  await new Promise<void>((ok, fail) => {
    worker.on('error', (e) => {
      fail(e);
      for (const p of pending.values()) p.fail(e);
    });
    worker.on('message', (m: { ready?: boolean; seq?: number; ok?: boolean; value?: unknown; error?: string }) => {
      if (m.ready === true) return ok();
      const p = pending.get(m.seq ?? -1);
      pending.delete(m.seq ?? -1);
      if (m.ok === true) p?.ok(m.value);
      else p?.fail(new Error(m.error));
    });
  });
  const send = (op: string, sql: string, params: unknown[]): Promise<unknown> =>
    new Promise((ok, fail) => {
      const id = ++seq;
      pending.set(id, { ok, fail });
      worker.postMessage({ seq: id, op, sql, params });
    });
  return {
    value: (sql, ...params) => send('value', sql, params),
    all: (sql, ...params) => send('all', sql, params) as Promise<Array<Record<string, unknown>>>,
    exec: async (sql) => void (await send('exec', sql, [])),
    close: async () => void (await worker.terminate()),
  };
}

/** Sends until nothing is left unsent (at most `tries` sends); returns what is still unsent (0n when all went). */
export async function sendAll(dev: NativeDevice, tries = 5): Promise<unknown> {
  const unsent = (): Promise<unknown> => dev.value('SELECT cloudsync_network_has_unsent_changes()');
  for (let i = 0; i < tries && (await unsent()) !== 0n; i++) await dev.value('SELECT cloudsync_network_send_changes()');
  return unsent();
}

/** Receives until `sql`'s value is `want` (at most `tries` receives); returns the last value seen. */
export async function receiveUntil(dev: NativeDevice, sql: string, want: unknown, tries = 10): Promise<unknown> {
  for (let i = 0; i < tries && (await dev.value(sql)) !== want; i++) await dev.value('SELECT cloudsync_network_receive_changes()');
  return dev.value(sql);
}

/**
 * A fresh 1.1.4 device of `ddl` that syncs `table` (with `blockColumn` marked block-LWW, if given)
 * through `origin` / `databaseId`, with an access token or an API key.
 */
export async function openSyncingDevice(o: { origin: string; databaseId: string; ddl: string; table: string; blockColumn?: string; token?: string; apiKey?: string }): Promise<NativeDevice> {
  const dev = await openNativeDevice();
  try {
    if ((await dev.value('SELECT cloudsync_version()')) !== '1.1.4') throw new Error('expected the native 1.1.4 build');
    await dev.exec(o.ddl);
    await dev.value('SELECT cloudsync_init(?)', o.table);
    if (o.blockColumn !== undefined) await dev.exec(`SELECT cloudsync_set_column('${o.table}', '${o.blockColumn}', 'algo', 'block')`);
    await dev.value('SELECT cloudsync_network_init_custom(?, ?)', o.origin, o.databaseId);
    if (o.token !== undefined) await dev.value('SELECT cloudsync_network_set_token(?)', o.token);
    if (o.apiKey !== undefined) await dev.value('SELECT cloudsync_network_set_apikey(?)', o.apiKey);
    return dev;
  } catch (e) {
    await dev.close();
    throw e;
  }
}

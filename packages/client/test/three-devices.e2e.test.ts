/**
 * Three devices and a real OffSync sync handler (in a worker: the extension's XHR and our SQL
 * network functions block this thread). Device X is the real SQLite Sync extension 0.9.99 (G2a,
 * connection string), A is our client through the async API, B our client through the SQL
 * functions (G3). All edit offline — overlapping rows, concurrent cell updates, deletes,
 * re-inserts — reconnect in random orders, and must converge to the central database.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { loadHarness } from './fixtures/extension.ts';
import type { ExtensionDb, ExtensionModule, WorkerServer } from './fixtures/extension.ts';
import type { OffSyncDatabase } from '../src/sync/index.ts';
import { API_KEY, ROWS_SQL, TODOS_DDL } from './fixtures/sync-server.ts';
import { device, prng, removeTempDirs, rows } from './helpers.ts';

const DB = 'db_three';
let ext: ExtensionModule;
let server: WorkerServer;
let closeExtension: () => Promise<void>;

beforeAll(async () => {
  const h = await loadHarness();
  closeExtension = () => h.closeExtension();
  ext = await h.openExtension({ timeoutMs: 15_000 });
  server = await h.startServerInWorker(fileURLToPath(new URL('./fixtures/sync-server.ts', import.meta.url)), 'startSyncServerFactory', {
    options: { databaseId: DB },
  });
});
afterAll(async () => {
  await server?.close();
  await closeExtension();
  removeTempDirs();
});

interface Dev {
  name: string;
  exec(sql: string, params?: unknown[]): void;
  rows(): Array<Record<string, unknown>>;
  sync(): Promise<void>;
}

function extensionDevice(): Dev & { db: ExtensionDb } {
  const db = ext.openDb();
  db.exec(TODOS_DDL);
  db.exec(`SELECT cloudsync_init('todos')`);
  db.value('SELECT cloudsync_network_init(?)', [`${server.origin}/${DB}.sqlite?apikey=${API_KEY}`]);
  return {
    name: 'X',
    db,
    exec: (sql, params) => db.exec(sql, params),
    rows: () => db.all(ROWS_SQL).map((r) => ({ ...r, done: Number(r['done']) })),
    sync: async () => {
      db.value('SELECT cloudsync_network_send_changes()');
      while (Number(db.value('SELECT cloudsync_network_check_changes()')) > 0);
    },
  };
}

function asyncDevice(): Dev & { d: OffSyncDatabase } {
  const d = device({ serverUrl: server.origin, databaseId: DB });
  return {
    name: 'A',
    d,
    exec: (sql, params) => void d.db.prepare(sql).run(...(params ?? [])),
    rows: () => rows(d),
    sync: async () => void (await d.sync()),
  };
}

function sqlDevice(): Dev & { d: OffSyncDatabase } {
  const d = device();
  d.db.prepare('SELECT cloudsync_network_init_custom(?, ?)').get(server.origin, DB);
  d.db.prepare('SELECT cloudsync_network_set_apikey(?)').get(API_KEY);
  return {
    name: 'B',
    d,
    exec: (sql, params) => void d.db.prepare(sql).run(...(params ?? [])),
    rows: () => rows(d),
    sync: async () => {
      const r = JSON.parse(d.db.prepare('SELECT cloudsync_network_sync() AS r').pluck().get() as string) as { send: { status: string }; receive: { complete: boolean } };
      expect(r.send.status).not.toBe('error');
      expect(r.receive.complete).toBe(true);
    },
  };
}

function randomEdits(dev: Dev, rnd: () => number, round: number): void {
  for (let i = 0; i < 12; i++) {
    const id = `r${Math.floor(rnd() * 8)}`;
    const tag = `${dev.name}${round}.${i}`;
    const op = Math.floor(rnd() * 5);
    if (op === 0) dev.exec(`INSERT INTO todos (id, title) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET title = excluded.title`, [id, tag]);
    else if (op === 1) dev.exec(`UPDATE todos SET title = ? WHERE id = ?`, [tag, id]);
    else if (op === 2) dev.exec(`UPDATE todos SET done = 1 - done WHERE id = ?`, [id]);
    else if (op === 3) dev.exec(`DELETE FROM todos WHERE id = ?`, [id]);
    else dev.exec(`INSERT OR IGNORE INTO todos (id, title, done) VALUES (?, ?, 1)`, [id, `re-${tag}`]);
  }
}

test('extension + async client + SQL client converge through OffSync after offline edits in random orders', async () => {
  const x = extensionDevice();
  const a = asyncDevice();
  const b = sqlDevice();
  const devs: Dev[] = [x, a, b];
  const rnd = prng(0x5eed);
  // A shared starting point, so that later edits overlap on known rows.
  x.exec(`INSERT INTO todos (id, title) VALUES ('r0', 'seed0'), ('r1', 'seed1'), ('r2', 'seed2')`);
  for (const d of devs) await d.sync();
  for (const d of devs) await d.sync();
  expect(a.rows()).toEqual(x.rows());
  expect(b.rows()).toEqual(x.rows());

  for (let round = 0; round < 4; round++) {
    for (const d of devs) randomEdits(d, rnd, round); // all offline
    // Concurrent edits of the same cell everywhere.
    for (const d of devs) d.exec(`UPDATE todos SET title = ? WHERE id = 'r1'`, [`cell-${d.name}-${round}`]);
    const order = [...devs].sort(() => rnd() - 0.5);
    for (const d of order) if (rnd() < 0.8) await d.sync(); // some stay offline this round
  }
  // Everyone reconnects: one pass uploads everything, the second delivers it.
  for (let pass = 0; pass < 2; pass++) for (const d of [...devs].sort(() => rnd() - 0.5)) await d.sync();

  const central = (await server.call({ type: 'rows' })) as Array<Record<string, unknown>>;
  expect(central.length).toBeGreaterThan(0);
  for (const d of devs) expect(d.rows(), d.name).toEqual(central);
  x.db.close();
  await a.d.close();
  await b.d.close();
});

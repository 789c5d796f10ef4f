/**
 * Golden test of row filters (docs/PROTOCOL.md "Row filters"): the same SQL runs on the REAL
 * native client 1.1.4 (test-only devDependency, in a worker thread) and on OffSync's client, each
 * on its own rows (ids `n-…` / `o-…`) of one central database served in-process; what reaches the
 * central table must be the same for both. `cloudsync_set_filter('todos', 'done = 0')`: rows
 * outside the filter are not sent, a row leaving it by an UPDATE keeps its old central value, one
 * entering it by an UPDATE sends only the changed column, incoming rows apply regardless, and after
 * `cloudsync_clear_filter` every write is sent again.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openNativeDevice } from '../../api/test/sync-fixtures/native-device.ts';
import type { NativeDevice } from '../../api/test/sync-fixtures/native-device.ts';
import { openDatabase } from '../src/sync/index.ts';
import type { OffSyncDatabase } from '../src/sync/index.ts';
import { API_KEY, createSyncServer, listen, TODOS_DDL } from './fixtures/sync-server.ts';
import type { SyncServer } from './fixtures/sync-server.ts';
import { removeTempDirs, tempPath } from './helpers.ts';

const DB = 'db_filters';
let server: SyncServer;
let origin: string;
let native: NativeDevice;
let ours: OffSyncDatabase;

beforeAll(async () => {
  server = createSyncServer({ databaseId: DB });
  origin = `http://127.0.0.1:${await listen(server.server)}`;
  native = await openNativeDevice();
  expect(await native.value('SELECT cloudsync_version()')).toBe('1.1.4');
  await native.exec(TODOS_DDL);
  await native.value("SELECT cloudsync_init('todos')");
  await native.value('SELECT cloudsync_network_init_custom(?, ?)', origin, DB);
  await native.value('SELECT cloudsync_network_set_apikey(?)', API_KEY);
  ours = openDatabase(tempPath(), { apiKey: API_KEY, serverUrl: origin, databaseId: DB });
  ours.db.exec(TODOS_DDL);
  ours.db.prepare("SELECT cloudsync_init('todos')").get();
});

afterAll(async () => {
  await native?.close();
  await ours?.close();
  await server?.close();
  removeTempDirs();
});

type Outcome = { ok: unknown } | { err: string };
const norm = (v: unknown): unknown => (typeof v === 'bigint' ? Number(v) : v);

/** Runs `sql` (with `?` → the device's id prefix in `params`) on both devices. */
async function both(sql: string, ...params: string[]): Promise<[Outcome, Outcome]> {
  const theirs = await native.value(sql, ...params.map((p) => p.replace('?', 'n'))).then(
    (v) => ({ ok: norm(v) }),
    (e: Error) => ({ err: e.message }),
  );
  let mine: Outcome;
  try {
    const st = ours.db.prepare(sql);
    const args = params.map((p) => p.replace('?', 'o'));
    mine = { ok: st.reader ? norm(st.pluck().get(...args)) : (st.run(...args), null) };
  } catch (e) {
    mine = { err: (e as Error).message };
  }
  return [theirs, mine];
}

async function same(sql: string, ...params: string[]): Promise<Outcome> {
  const [theirs, mine] = await both(sql, ...params);
  expect(mine, sql).toEqual(theirs);
  return mine;
}

async function syncBoth(): Promise<void> {
  for (let i = 0; i < 3 && (await native.value('SELECT cloudsync_network_has_unsent_changes()')) !== 0n; i++) await native.value('SELECT cloudsync_network_send_changes()');
  await ours.sync();
  await native.value('SELECT cloudsync_network_receive_changes()');
  await ours.sync();
}

/** The central rows of one device, ids without their prefix. */
function central(prefix: 'n' | 'o'): Array<[unknown, unknown, unknown]> {
  return server
    .central(`SELECT id, title, done FROM todos WHERE id LIKE '${prefix}-%' ORDER BY id`)
    .map((r) => [String(r['id']).slice(2), r['title'], r['done']]);
}

test('cloudsync_set_filter / cloudsync_clear_filter: the same rows reach the server from a 1.1.4 device and from OffSync’s client', async () => {
  // Arguments and errors first.
  await same("SELECT cloudsync_set_filter('nope', 'done = 0')");
  await same("SELECT cloudsync_clear_filter('nope')");
  await same("SELECT cloudsync_set_filter('todos', NULL)");
  await same("SELECT cloudsync_set_filter('todos')");
  await same('SELECT cloudsync_clear_filter()');
  for (const bad of ['nope = 1', 'done = ', 'NEW.done = 0', '1; DROP TABLE todos']) {
    const [theirs, mine] = await both('SELECT cloudsync_set_filter(?, ?)', 'todos', bad);
    expect('err' in theirs && 'err' in mine, bad).toBe(true);
    expect((mine as { err: string }).err, bad).toMatch(/^cloudsync_set_filter: Invalid row filter for table todos: /);
  }
  // 1.1.4 keeps a refused filter in its settings (and may then refuse writes): set a good one.
  expect(await same("SELECT cloudsync_set_filter('todos', 'done = 0')")).toEqual({ ok: 1 });

  // Rows outside the filter are not sent.
  await same("INSERT INTO todos(id, title, done) VALUES (?, 'in', 0), (?, 'out', 1)", '?-a', '?-b');
  await syncBoth();
  expect(central('n')).toEqual([['a', 'in', 0]]);
  expect(central('o')).toEqual(central('n'));

  // a leaves the filter by an UPDATE: nothing is sent, the server keeps its old values.
  // b enters it by an UPDATE: only the changed column is sent (its title never was).
  await same("UPDATE todos SET title = 'in, now done', done = 1 WHERE id = ?", '?-a');
  await same('UPDATE todos SET done = 0 WHERE id = ?', '?-b');
  await syncBoth();
  expect(central('n')).toEqual([
    ['a', 'in', 0],
    ['b', '', 0],
  ]);
  expect(central('o')).toEqual(central('n'));

  // Each device has the other's rows as the server has them.
  expect(await native.value("SELECT count(*) FROM todos WHERE id LIKE 'o-%'")).toBe(2n);
  expect(ours.db.prepare("SELECT count(*) FROM todos WHERE id LIKE 'n-%'").pluck().get()).toBe(2);

  // Clearing the filter: every later write is sent again.
  expect(await same("SELECT cloudsync_clear_filter('todos')")).toEqual({ ok: 1 });
  await same("UPDATE todos SET title = 'bee' WHERE id = ?", '?-b');
  await same("INSERT INTO todos(id, title, done) VALUES (?, 'closed', 1)", '?-c');
  await syncBoth();
  expect(central('n')).toEqual([
    ['a', 'in', 0],
    ['b', 'bee', 0],
    ['c', 'closed', 1],
  ]);
  expect(central('o')).toEqual(central('n'));
  // Incoming changes apply regardless of the filter: a row outside it, written on the server
  // by another program, reaches both filtered devices.
  await same("SELECT cloudsync_set_filter('todos', 'done = 0')");
  const engine = server.handler.service.databases.peek(DB);
  if (engine === undefined) throw new Error('central database not open');
  engine.driver.prepare("INSERT INTO todos(id, title, done) VALUES ('s-z', 'from the server', 1)").run();
  await syncBoth();
  expect(await native.value("SELECT title FROM todos WHERE id = 's-z'")).toBe('from the server');
  expect(ours.db.prepare("SELECT title FROM todos WHERE id = 's-z'").pluck().get()).toBe('from the server');
  // Neither device sends it back as its own (it is outside their filters and came from elsewhere).
  expect(await native.value('SELECT cloudsync_network_has_unsent_changes()')).toBe(0n);
  expect(await ours.hasUnsentChanges()).toBe(false);
}, 120_000);

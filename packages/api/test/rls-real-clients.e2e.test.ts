/**
 * Row-level security end to end with the REAL SQLite Sync clients as token users (access tokens
 * from `createAccessToken`) under RLS ENFORCE, policies `owner = auth_userid()` on all four
 * operations (issue 8, "How we will know"):
 *
 * - the wasm build 0.9.99 (`@sqliteai/sqlite-wasm`, protocol G2a) on this thread, and
 * - the native build 1.1.4 (`@sqliteai/sqlite-sync-linux-x86_64`, protocol G3) in a worker,
 *
 * both against the real app (createApp) running in a worker thread (test/sync-fixtures/rls-app-server.ts,
 * per-credential request rates off). A device makes refused changes together with permitted
 * ones; it keeps syncing, its later permitted changes land, it converges to exactly the central
 * rows it may see, every refusal is in the rejection log, and another user's device never sees
 * the forged key. Re-inserting one's own deleted row and an insert + delete before the first sync
 * are accepted. The 100,000-row chunked upload of a 1.1.4 token user under ENFORCE is
 * test/sync-native.e2e.test.ts (not repeated here); a chunked batch holding a refused row is below.
 */
import { fileURLToPath } from 'node:url';
import { decodePk } from '@offsync/core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { clearXhrLog, closeExtension, openExtension, startServerInWorker, xhrLog } from '@offsync/core/testing';
import type { ExtensionDb, ExtensionModule, WorkerServer } from '@offsync/core/testing';
import type { SeenRequest } from './sync-fixtures/rls-app-server.ts';
import { openNativeDevice } from './sync-fixtures/native-device.ts';
import type { NativeDevice } from './sync-fixtures/native-device.ts';

const DDL = "CREATE TABLE items(id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT '')";
const ROWS = 'SELECT id, owner, title FROM items ORDER BY id';

let ext: ExtensionModule;
let server: WorkerServer;

beforeAll(async () => {
  ext = await openExtension({ timeoutMs: 30_000 });
  server = await startServerInWorker(fileURLToPath(new URL('./sync-fixtures/rls-app-server.ts', import.meta.url)), 'startRlsAppServer');
});

afterAll(async () => {
  await server?.call({ type: 'dispose' });
  await server?.close();
  await closeExtension();
});

type Row = { id: string; owner: string; title: string };
interface LogEntry { userId: string | null; siteId: string; table: string; pkValues: unknown[]; operation: string; code: string; credentialKind: string; values: Record<string, unknown> }

const setup = (): Promise<{ databaseId: string; tokens: Record<string, string> }> =>
  server.call({ type: 'setup', ddl: DDL, table: 'items', users: ['alice', 'bob'] }) as Promise<{ databaseId: string; tokens: Record<string, string> }>;
const centralOf = async (databaseId: string, owner?: string): Promise<Row[]> =>
  (await server.call({ type: 'rows', databaseId, sql: owner === undefined ? ROWS : `SELECT id, owner, title FROM items WHERE owner = '${owner}' ORDER BY id` })) as Row[];
const logOf = async (databaseId: string): Promise<LogEntry[]> => (await server.call({ type: 'rejections', databaseId })) as LogEntry[];
const requests = async (): Promise<SeenRequest[]> => (await server.call({ type: 'requests' })) as SeenRequest[];

describe('wasm client 0.9.99 (G2a) as token users under ENFORCE', () => {
  let databaseId: string;
  let tokens: Record<string, string>;
  const open: ExtensionDb[] = [];

  beforeAll(async () => {
    ({ databaseId, tokens } = await setup());
  });
  afterAll(() => {
    for (const d of open) d.close();
  });

  function device(user: string): ExtensionDb {
    const db = ext.openDb();
    open.push(db);
    db.exec(DDL);
    db.exec(`SELECT cloudsync_init('items')`);
    db.value('SELECT cloudsync_network_init(?)', [`${server.origin}/${databaseId}.sqlite?token=${encodeURIComponent(tokens[user] ?? '')}`]);
    return db;
  }
  const keysOf = (db: ExtensionDb): string[] => [...new Set(db.changes().map((c) => String(decodePk(c.pk as Uint8Array)[0])))].sort();

  test('after refused changes the device keeps syncing, its later changes land, it converges to the rows it may see; all refusals logged; the other user never sees the forged key', async () => {
    expect(ext.cloudsyncVersion).toBe('0.9.99');
    const a = device('alice');
    a.exec("INSERT INTO items (id, owner, title) VALUES ('a1', 'alice', 'alice 1'), ('a2', 'alice', 'alice 2')");
    a.value('SELECT cloudsync_network_sync()');
    const b = device('bob');
    b.exec("INSERT INTO items (id, owner, title) VALUES ('b1', 'bob', 'bob 1')");
    b.value('SELECT cloudsync_network_sync()');
    expect(await centralOf(databaseId)).toEqual([
      { id: 'a1', owner: 'alice', title: 'alice 1' },
      { id: 'a2', owner: 'alice', title: 'alice 2' },
      { id: 'b1', owner: 'bob', title: 'bob 1' },
    ]);

    // One send: a permitted insert, an insert as alice (INSERT denied), a guessed key of alice's
    // (an UPDATE of her row, denied), and giving his own row away (UPDATE denied).
    b.exec("INSERT INTO items (id, owner, title) VALUES ('b2', 'bob', 'bob 2')");
    b.exec("INSERT INTO items (id, owner, title) VALUES ('f1', 'alice', 'forged for alice')");
    b.exec("INSERT INTO items (id, owner, title) VALUES ('a1', 'bob', 'hacked by bob')");
    b.exec("UPDATE items SET owner = 'alice', title = 'given away' WHERE id = 'b1'");
    clearXhrLog();
    expect(b.value('SELECT cloudsync_network_send_changes()')).toBeNull();
    expect(xhrLog().map((e) => [e.method, new URL(e.url).pathname.split('/').at(-1), e.status])).toEqual([
      ['GET', 'upload', 200],
      ['PUT', expect.any(String), 200],
      ['POST', 'apply', 200],
    ]);
    // The window is acknowledged: nothing left to send, nothing re-sent.
    expect(b.value('SELECT cloudsync_network_has_unsent_changes()')).toBe(0n);
    clearXhrLog();
    b.value('SELECT cloudsync_network_send_changes()');
    expect(xhrLog().filter((e) => e.method === 'POST' && e.url.endsWith('/apply'))).toEqual([]);

    // Central: the permitted change landed, the refused ones did not.
    expect(await centralOf(databaseId)).toEqual([
      { id: 'a1', owner: 'alice', title: 'alice 1' },
      { id: 'a2', owner: 'alice', title: 'alice 2' },
      { id: 'b1', owner: 'bob', title: 'bob 1' },
      { id: 'b2', owner: 'bob', title: 'bob 2' },
    ]);
    const log = await logOf(databaseId);
    expect(log.map((e) => [e.userId, e.siteId, e.credentialKind, e.pkValues[0], e.operation, e.code]).sort()).toEqual([
      ['bob', b.siteIdHex(), 'accessToken', 'a1', 'UPDATE', 'rls_denied'],
      ['bob', b.siteIdHex(), 'accessToken', 'b1', 'UPDATE', 'rls_denied'],
      ['bob', b.siteIdHex(), 'accessToken', 'f1', 'INSERT', 'rls_denied'],
    ]);

    // Bob keeps syncing: the compensations arrive (f1 and a1 leave his device, b1 is his again)…
    b.value('SELECT cloudsync_network_check_changes()');
    expect(b.all(ROWS)).toEqual([
      { id: 'b1', owner: 'bob', title: 'bob 1' },
      { id: 'b2', owner: 'bob', title: 'bob 2' },
    ]);
    // …and his later permitted changes land.
    b.exec("INSERT INTO items (id, owner, title) VALUES ('b3', 'bob', 'bob 3')");
    b.exec("UPDATE items SET title = 'bob 2 edited' WHERE id = 'b2'");
    b.value('SELECT cloudsync_network_sync()');
    b.value('SELECT cloudsync_network_sync()');
    expect(b.value('SELECT cloudsync_network_has_unsent_changes()')).toBe(0n);
    expect(await centralOf(databaseId, 'bob')).toEqual([
      { id: 'b1', owner: 'bob', title: 'bob 1' },
      { id: 'b2', owner: 'bob', title: 'bob 2 edited' },
      { id: 'b3', owner: 'bob', title: 'bob 3' },
    ]);
    expect(b.all(ROWS)).toEqual(await centralOf(databaseId, 'bob'));
    expect(await logOf(databaseId)).toHaveLength(3);

    // Alice's devices: exactly her central rows; the forged key f1 never reached them.
    a.value('SELECT cloudsync_network_sync()');
    const a2 = device('alice');
    a2.value('SELECT cloudsync_network_check_changes()');
    for (const d of [a, a2]) {
      expect(d.all(ROWS)).toEqual(await centralOf(databaseId, 'alice'));
      expect(keysOf(d)).not.toContain('f1');
    }
    expect(a2.all(ROWS)).toEqual([
      { id: 'a1', owner: 'alice', title: 'alice 1' },
      { id: 'a2', owner: 'alice', title: 'alice 2' },
    ]);
  });

  test("re-inserting one's own deleted row, and an insert + delete before the first sync, are accepted (nothing logged)", async () => {
    const before = (await logOf(databaseId)).length;
    const a = device('alice');
    a.value('SELECT cloudsync_network_check_changes()');
    expect(a.all(ROWS).map((r) => r['id'])).toEqual(['a1', 'a2']);
    a.exec("DELETE FROM items WHERE id = 'a2'");
    a.value('SELECT cloudsync_network_sync()');
    expect((await centralOf(databaseId, 'alice')).map((r) => r.id)).toEqual(['a1']);
    a.exec("INSERT INTO items (id, owner, title) VALUES ('a2', 'alice', 'alice 2, again')");
    a.value('SELECT cloudsync_network_sync()');
    expect(a.value('SELECT cloudsync_network_has_unsent_changes()')).toBe(0n);
    expect(await centralOf(databaseId, 'alice')).toEqual([
      { id: 'a1', owner: 'alice', title: 'alice 1' },
      { id: 'a2', owner: 'alice', title: 'alice 2, again' },
    ]);

    const fresh = device('alice');
    fresh.exec("INSERT INTO items (id, owner, title) VALUES ('tmp', 'alice', 'short-lived')");
    fresh.exec("DELETE FROM items WHERE id = 'tmp'");
    fresh.exec("INSERT INTO items (id, owner, title) VALUES ('a3', 'alice', 'alice 3')");
    fresh.value('SELECT cloudsync_network_sync()');
    fresh.value('SELECT cloudsync_network_sync()');
    expect(fresh.value('SELECT cloudsync_network_has_unsent_changes()')).toBe(0n);
    expect(await centralOf(databaseId, 'alice')).toEqual([
      { id: 'a1', owner: 'alice', title: 'alice 1' },
      { id: 'a2', owner: 'alice', title: 'alice 2, again' },
      { id: 'a3', owner: 'alice', title: 'alice 3' },
    ]);
    expect(fresh.all(ROWS)).toEqual(await centralOf(databaseId, 'alice'));
    a.value('SELECT cloudsync_network_sync()');
    expect(a.all(ROWS)).toEqual(await centralOf(databaseId, 'alice'));
    expect(await logOf(databaseId)).toHaveLength(before);
  });
});

describe('native client 1.1.4 (G3) as token users under ENFORCE', () => {
  let databaseId: string;
  let tokens: Record<string, string>;
  const open: NativeDevice[] = [];

  beforeAll(async () => {
    ({ databaseId, tokens } = await setup());
  });
  afterAll(async () => {
    for (const d of open) await d.close();
  });

  async function device(user: string): Promise<NativeDevice & { site: string }> {
    const d = await openNativeDevice();
    open.push(d);
    expect(await d.value('SELECT cloudsync_version()')).toBe('1.1.4');
    await d.exec(DDL);
    await d.value("SELECT cloudsync_init('items')");
    await d.value('SELECT cloudsync_network_init_custom(?, ?)', server.origin, databaseId);
    await d.value('SELECT cloudsync_network_set_token(?)', tokens[user]);
    return Object.assign(d, { site: String(await d.value('SELECT lower(hex(cloudsync_siteid()))')) });
  }
  const rowsOf = async (d: NativeDevice): Promise<Row[]> => (await d.all(ROWS)) as Row[];
  const applies = async (site: string): Promise<SeenRequest[]> => (await requests()).filter((r) => r.method === 'POST' && r.path.endsWith(`/${site}/apply`));
  /** Syncs until nothing is unsent (bounded); returns what each send_changes answered. */
  async function send(d: NativeDevice): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < 3; i++) {
      out.push(String(await d.value('SELECT cloudsync_network_send_changes()')));
      if ((await d.value('SELECT cloudsync_network_has_unsent_changes()')) === 0n) break;
    }
    return out;
  }

  test('after refused changes (reported as failures.rejected) the device keeps syncing, its later changes land, it converges; all refusals logged; the other user never sees the forged key', async () => {
    const a = await device('alice');
    await a.exec("INSERT INTO items (id, owner, title) VALUES ('a1', 'alice', 'alice 1'), ('a2', 'alice', 'alice 2')");
    await send(a);
    const b = await device('bob');
    await b.exec("INSERT INTO items (id, owner, title) VALUES ('b1', 'bob', 'bob 1')");
    await send(b);
    await b.value('SELECT cloudsync_network_check_changes()');

    await b.exec("INSERT INTO items (id, owner, title) VALUES ('b2', 'bob', 'bob 2')");
    await b.exec("INSERT INTO items (id, owner, title) VALUES ('f1', 'alice', 'forged for alice')");
    await b.exec("INSERT INTO items (id, owner, title) VALUES ('a1', 'bob', 'hacked by bob')");
    await b.exec("UPDATE items SET owner = 'alice', title = 'given away' WHERE id = 'b1'");
    const appliesBefore = (await applies(b.site)).length;
    const answered = String(await b.value('SELECT cloudsync_network_send_changes()'));
    // How 1.1.4 takes `failures.rejected`: the batch counts as sent, nothing is left unsent, and
    // nothing is re-sent by later sends.
    const unsent = await b.value('SELECT cloudsync_network_has_unsent_changes()');
    const resent = String(await b.value('SELECT cloudsync_network_send_changes()'));
    const forgedApplies = (await applies(b.site)).slice(appliesBefore);
    console.info('1.1.4 send_changes after a rejection:', answered, '| has_unsent_changes:', unsent, '| next send:', resent, '| apply calls:', forgedApplies.length);
    expect(JSON.parse(answered)).toMatchObject({ send: { status: 'synced', chunks: 1 } });
    expect(answered).not.toContain('lastFailure');
    expect(JSON.parse(resent)).toMatchObject({ send: { status: 'synced', chunks: 0 } });
    expect(forgedApplies).toHaveLength(1);
    const reply = forgedApplies[0]?.reply as { lastOptimisticVersion: number; failures: { apply?: unknown; rejected?: { count: number; changes: Array<{ operation: string; code: string }> } } };
    expect(reply.failures.apply).toBeUndefined();
    expect(reply.failures.rejected?.count).toBe(3);
    expect(reply.failures.rejected?.changes.map((c) => `${c.operation} ${c.code}`).sort()).toEqual(['INSERT rls_denied', 'UPDATE rls_denied', 'UPDATE rls_denied']);
    expect(reply.lastOptimisticVersion).toBe(Number(await b.value('SELECT cloudsync_db_version()')));
    expect(unsent).toBe(0n);

    expect(await centralOf(databaseId)).toEqual([
      { id: 'a1', owner: 'alice', title: 'alice 1' },
      { id: 'a2', owner: 'alice', title: 'alice 2' },
      { id: 'b1', owner: 'bob', title: 'bob 1' },
      { id: 'b2', owner: 'bob', title: 'bob 2' },
    ]);
    const log = await logOf(databaseId);
    expect(log.map((e) => [e.userId, e.siteId, e.credentialKind, e.pkValues[0], e.operation, e.code, e.values['title']]).sort()).toEqual([
      ['bob', b.site, 'accessToken', 'a1', 'UPDATE', 'rls_denied', 'hacked by bob'],
      ['bob', b.site, 'accessToken', 'b1', 'UPDATE', 'rls_denied', 'given away'],
      ['bob', b.site, 'accessToken', 'f1', 'INSERT', 'rls_denied', 'forged for alice'],
    ]);

    // Bob keeps syncing: compensations arrive (f1 and a1 leave his device, b1 is his again), then
    // his later permitted changes land.
    await b.value('SELECT cloudsync_network_check_changes()');
    expect(await rowsOf(b)).toEqual([
      { id: 'b1', owner: 'bob', title: 'bob 1' },
      { id: 'b2', owner: 'bob', title: 'bob 2' },
    ]);
    await b.exec("INSERT INTO items (id, owner, title) VALUES ('b3', 'bob', 'bob 3')");
    await b.exec("UPDATE items SET title = 'bob 2 edited' WHERE id = 'b2'");
    await send(b);
    await b.value('SELECT cloudsync_network_check_changes()');
    expect(await b.value('SELECT cloudsync_network_has_unsent_changes()')).toBe(0n);
    expect(await centralOf(databaseId, 'bob')).toEqual([
      { id: 'b1', owner: 'bob', title: 'bob 1' },
      { id: 'b2', owner: 'bob', title: 'bob 2 edited' },
      { id: 'b3', owner: 'bob', title: 'bob 3' },
    ]);
    expect(await rowsOf(b)).toEqual(await centralOf(databaseId, 'bob'));
    expect(await logOf(databaseId)).toHaveLength(3);

    // Alice's devices hold exactly her central rows; the forged key never reached them.
    await a.value('SELECT cloudsync_network_check_changes()');
    const a2 = await device('alice');
    await a2.value('SELECT cloudsync_network_check_changes()');
    for (const d of [a, a2]) {
      expect(await rowsOf(d)).toEqual([
        { id: 'a1', owner: 'alice', title: 'alice 1' },
        { id: 'a2', owner: 'alice', title: 'alice 2' },
      ]);
      const keys = (await d.all('SELECT DISTINCT pk FROM cloudsync_changes')).map((r) => decodePk(r['pk'] as Uint8Array)[0]);
      expect(keys).not.toContain('f1');
    }
  });

  test("re-inserting one's own deleted row, and an insert + delete before the first sync, are accepted (nothing logged)", async () => {
    const before = (await logOf(databaseId)).length;
    const a = await device('alice');
    await a.value('SELECT cloudsync_network_check_changes()');
    expect((await rowsOf(a)).map((r) => r.id)).toEqual(['a1', 'a2']);
    await a.exec("DELETE FROM items WHERE id = 'a2'");
    await send(a);
    expect((await centralOf(databaseId, 'alice')).map((r) => r.id)).toEqual(['a1']);
    await a.exec("INSERT INTO items (id, owner, title) VALUES ('a2', 'alice', 'alice 2, again')");
    const replies = await applies(a.site);
    await send(a);
    const reinsert = (await applies(a.site)).slice(replies.length);
    expect(reinsert.map((r) => (r.reply as { failures?: unknown }).failures)).toEqual([undefined]);
    expect(await centralOf(databaseId, 'alice')).toEqual([
      { id: 'a1', owner: 'alice', title: 'alice 1' },
      { id: 'a2', owner: 'alice', title: 'alice 2, again' },
    ]);

    const fresh = await device('alice');
    await fresh.exec("INSERT INTO items (id, owner, title) VALUES ('tmp', 'alice', 'short-lived')");
    await fresh.exec("DELETE FROM items WHERE id = 'tmp'");
    await fresh.exec("INSERT INTO items (id, owner, title) VALUES ('a3', 'alice', 'alice 3')");
    await send(fresh);
    expect((await applies(fresh.site)).map((r) => (r.reply as { failures?: unknown }).failures)).toEqual([undefined]);
    expect(await fresh.value('SELECT cloudsync_network_has_unsent_changes()')).toBe(0n);
    await fresh.value('SELECT cloudsync_network_check_changes()');
    await a.value('SELECT cloudsync_network_check_changes()');
    const central = await centralOf(databaseId, 'alice');
    expect(central).toEqual([
      { id: 'a1', owner: 'alice', title: 'alice 1' },
      { id: 'a2', owner: 'alice', title: 'alice 2, again' },
      { id: 'a3', owner: 'alice', title: 'alice 3' },
    ]);
    expect(await rowsOf(fresh)).toEqual(central);
    expect(await rowsOf(a)).toEqual(central);
    expect(await logOf(databaseId)).toHaveLength(before);
  });

  test('a chunked transaction holding one refused row: the batch is assembled, the row is rejected alone, every other row lands exactly', async () => {
    const before = (await logOf(databaseId)).length;
    const b = await device('bob');
    // 1.1.4 raises payload_max_chunk_size to at least 256 KiB of uncompressed changes: 6,000 rows ≈ 5 chunks.
    await b.value("SELECT cloudsync_set('payload_max_chunk_size', 65536)");
    await b.exec(`BEGIN;
      WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 6000)
      INSERT INTO items (id, owner, title) SELECT printf('c%05d', i), CASE i WHEN 3000 THEN 'alice' ELSE 'bob' END, 'chunked ' || i || ' ' || hex(randomblob(6)) FROM s;
      COMMIT;`);
    const appliesBefore = (await applies(b.site)).length;
    await send(b);
    expect(await b.value('SELECT cloudsync_network_has_unsent_changes()')).toBe(0n);
    const calls = (await applies(b.site)).slice(appliesBefore);
    expect(calls.length).toBeGreaterThan(2);
    const last = calls.at(-1)?.reply as { failures?: { rejected?: { count: number } } };
    expect(last.failures?.rejected?.count).toBe(1);
    expect(calls.slice(0, -1).every((c) => (c.reply as { failures?: unknown }).failures === undefined)).toBe(true);

    const central = (await server.call({ type: 'rows', databaseId, sql: "SELECT id, owner, title FROM items WHERE id LIKE 'c%' ORDER BY id" })) as Row[];
    expect(central).toHaveLength(5999);
    expect(central.every((r) => r.owner === 'bob')).toBe(true);
    expect(central.map((r) => r.id)).not.toContain('c03000');
    const mine = (await b.all("SELECT id, owner, title FROM items WHERE id LIKE 'c%' AND id <> 'c03000' ORDER BY id")) as Row[];
    expect(central).toEqual(mine);
    const log = (await logOf(databaseId)).slice(before);
    expect(log.map((e) => [e.userId, e.pkValues[0], e.operation, e.code])).toEqual([['bob', 'c03000', 'INSERT', 'rls_denied']]);
    // The device converges: the refused row leaves it.
    await b.value('SELECT cloudsync_network_check_changes()');
    expect(await b.value("SELECT count(*) FROM items WHERE id = 'c03000'")).toBe(0n);
    expect(await b.value("SELECT count(*) FROM items WHERE id LIKE 'c%'")).toBe(5999n);
  }, 300_000);
});

/**
 * The `changes` subscription over a real graphql-ws client on an ephemeral port: replay, then
 * live batches without polling; after a disconnect, resubscribing from the last cursor delivers
 * exactly what was missed (no gap, no duplicate).
 */
import { createClient } from 'graphql-ws';
import type { Client } from 'graphql-ws';
import WebSocket from 'ws';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { decodePayload } from '@offsync/core';
import { stopEmbeddedPg } from './helpers.ts';
import { CHANGES, insertTodos, push, replica, rows, siteOf, startSyncApp } from './graphql-sync-fixture.ts';
import type { Batch, SyncTestApp } from './graphql-sync-fixture.ts';

let t: SyncTestApp;
let url: string;
beforeAll(async () => {
  t = await startSyncApp();
  await new Promise<void>((resolve) => t.app.server.listen(0, '127.0.0.1', resolve));
  const addr = t.app.server.address();
  url = `ws://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}/graphql`;
});
afterAll(async () => { await t.dispose(); await stopEmbeddedPg(); });

type Engine = ReturnType<typeof replica>;

/** A subscriber applying every batch to its replica and remembering cursors and change keys. */
class Subscriber {
  readonly batches: Batch[] = [];
  readonly keys: string[] = [];
  readonly client: Client;
  #waiters: Array<() => void> = [];
  #unsubscribe: (() => void) | undefined;
  error: unknown;

  constructor(readonly engine: Engine, key: string, databaseId?: string) {
    const connectionParams = { authorization: `Bearer ${key}`, ...(databaseId === undefined ? {} : { databaseId }) };
    this.client = createClient({ url, webSocketImpl: WebSocket, connectionParams, retryAttempts: 0, lazy: true });
  }

  subscribe(cursor: Batch['cursor'] | null, maxBytes: number | null = null): void {
    this.#unsubscribe = this.client.subscribe<{ changes: Batch }>(
      { query: CHANGES, variables: { db: t.databaseId, site: siteOf(this.engine), cursor, max: maxBytes } },
      {
        next: (r) => {
          const b = r.data?.changes;
          if (r.errors || !b) { this.error = r.errors; return; }
          this.batches.push(b);
          if (b.payload !== null) {
            const bytes = new Uint8Array(Buffer.from(b.payload, 'base64'));
            this.keys.push(...decodePayload(bytes).changes.map((c) => `${Buffer.from(c.pk).toString('hex')}/${c.col}/${c.colVersion}`));
            this.engine.applyPayload(bytes);
          }
          for (const w of this.#waiters.splice(0)) w();
        },
        error: (e) => { this.error = e; },
        complete: () => {},
      },
    );
  }

  get cursor(): Batch['cursor'] | null {
    return this.batches[this.batches.length - 1]?.cursor ?? null;
  }

  /** Waits until `pred` holds (re-checked on every batch), failing after `ms`. */
  async until(pred: () => boolean, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      if (this.error !== undefined) throw new Error(`subscription failed: ${JSON.stringify(this.error)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; ${this.batches.length} batches`);
      await new Promise<void>((resolve) => { this.#waiters.push(resolve); setTimeout(resolve, Math.min(left, 200)); });
    }
  }

  async close(): Promise<void> {
    this.#unsubscribe?.();
    await this.client.dispose();
  }
}

const total = (s: Subscriber): number => s.batches.reduce((n, b) => n + b.changes, 0);

test('replay, then a push by A reaches B live; B reconnects from its cursor and gets exactly what it missed', async () => {
  const a = replica();
  insertTodos(a, 0, 10);
  let aVersion = (await push(t, a, 0)).sent;

  const b = new Subscriber(replica(), t.adminKey);
  b.subscribe(null);
  // Replay: the 10 rows (3 changes each), ending with final = true.
  await b.until(() => total(b) === 30 && b.batches.some((x) => x.final));
  expect(rows(b.engine)).toEqual(rows(a));

  // Live: one update by A arrives without polling.
  a.driver.prepare("UPDATE todos SET title = 'live' WHERE id = 't000003'").run();
  const before = b.batches.length;
  aVersion = (await push(t, a, aVersion)).sent;
  await b.until(() => rows(b.engine).some((r) => (r as { title: string }).title === 'live'), 5000);
  expect(b.batches.length).toBe(before + 1);
  expect(b.batches[b.batches.length - 1]).toMatchObject({ changes: 1, final: true });

  // B goes away; A keeps writing.
  await b.close();
  const cursor = b.cursor;
  const seenBefore = b.keys.length;
  insertTodos(a, 100, 5);
  a.driver.prepare("UPDATE todos SET done = 1 WHERE id = 't000001'").run();
  aVersion = (await push(t, a, aVersion)).sent;

  const b2 = new Subscriber(b.engine, t.adminKey);
  b2.subscribe(cursor);
  await b2.until(() => b2.batches.some((x) => x.final));
  expect(total(b2)).toBe(5 * 3 + 1);
  expect(new Set([...b.keys, ...b2.keys]).size).toBe(seenBefore + 16);
  expect(rows(b.engine)).toEqual(rows(a));

  // And B2 is live again: B's own push is not echoed, A's next push is.
  const changesBefore = total(b2);
  b.engine.driver.prepare("UPDATE todos SET note = 'from B' WHERE id = 't000002'").run();
  const bPush = await push(t, b.engine, b.engine.dbVersion() - 1);
  expect(bPush.result.failures).toEqual([]);
  a.driver.prepare("UPDATE todos SET note = 'from A' WHERE id = 't000004'").run();
  await push(t, a, aVersion);
  await b2.until(() => rows(b.engine).some((r) => (r as { note: string | null }).note === 'from A'));
  expect(total(b2) - changesBefore).toBe(1);
  await b2.close();
});

test('merges committed during a paged replay are neither lost nor duplicated', async () => {
  const a = replica();
  insertTodos(a, 1000, 200, 'a title long enough to need several pages of two kilobytes');
  let aVersion = (await push(t, a, 0)).sent;
  const c = new Subscriber(replica(), t.adminKey);
  c.subscribe(null, 2000);
  // Push while the replay is running (pages are built one at a time, as they are consumed).
  for (let i = 0; i < 5; i++) {
    a.driver.prepare('UPDATE todos SET done = done + 1 WHERE id = ?').run(`t${String(1000 + i * 7).padStart(6, '0')}`);
    aVersion = (await push(t, a, aVersion)).sent;
  }
  // c also receives what the first test wrote; compare this test's rows.
  const text = (e: Engine): string => JSON.stringify(rows(e).filter((r) => (r as { id: string }).id.startsWith('t001')), (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v));
  await c.until(() => text(c.engine) === text(a));
  await new Promise((r) => setTimeout(r, 200));
  expect(c.batches.filter((x) => x.payload !== null).length).toBeGreaterThan(2);
  // Every (row, column, version) at most once, and the cursors strictly increase.
  expect(new Set(c.keys).size).toBe(c.keys.length);
  const cursors = c.batches.filter((x) => x.payload !== null).map((x) => x.cursor);
  for (let i = 1; i < cursors.length; i++) {
    const [p, q] = [cursors[i - 1], cursors[i]];
    expect(q && p && (q.dbVersion - p.dbVersion || q.seq - p.seq)).toBeGreaterThan(0);
  }
  await c.close();
});

test('a device connects with its own API key (connectionParams.databaseId) and receives changes; a key alone is refused', async () => {
  const a = replica();
  insertTodos(a, 9000, 3, 'device-key');
  const d = new Subscriber(replica(), t.apiKey, t.databaseId);
  d.subscribe(null);
  await push(t, a, 0);
  await d.until(() => d.engine.driver.prepare("SELECT count(*) AS n FROM todos WHERE title LIKE 'device-key%'").get()?.['n'] === 3n);
  await d.close();

  const refused = new Subscriber(replica(), t.apiKey);
  let err: unknown;
  await new Promise<void>((resolve) => {
    refused.client.subscribe({ query: CHANGES, variables: { db: t.databaseId, site: siteOf(refused.engine) } }, { next: () => {}, error: (e) => { err = e; resolve(); }, complete: resolve });
  });
  expect(err).toMatchObject({ code: 4403 });
  await refused.close();
});

test('the subscription refuses bad input and unknown databases', async () => {
  const s = new Subscriber(replica(), t.adminKey);
  const errs: unknown[] = [];
  await new Promise<void>((resolve) => {
    s.client.subscribe({ query: CHANGES, variables: { db: 'db_unknown', site: siteOf(s.engine) } }, { next: (r) => errs.push(r.errors), error: (e) => { errs.push(e); resolve(); }, complete: resolve });
  });
  expect(JSON.stringify(errs)).toContain('NOT_FOUND');
  await s.close();
});

test("a device never receives its own changes, even relayed by another device (shared live pages)", async () => {
  const a = replica();
  const b = new Subscriber(replica(), t.adminKey);
  const c = new Subscriber(replica(), t.adminKey);
  // Both start at the head of the feed.
  const head = await t.gql<{ pullChanges: Batch }>('query($db: ID!, $s: String!) { pullChanges(databaseId: $db, siteId: $s, maxBytes: 100000000) { cursor { dbVersion seq } } }', { db: t.databaseId, s: siteOf(b.engine) });
  let cursor = head.data?.pullChanges.cursor ?? null;
  for (;;) {
    const r = await t.gql<{ pullChanges: Batch }>('query($db: ID!, $s: String!, $c: SyncCursorInput) { pullChanges(databaseId: $db, siteId: $s, cursor: $c) { cursor { dbVersion seq } final } }', { db: t.databaseId, s: siteOf(b.engine), c: cursor });
    cursor = r.data?.pullChanges.cursor ?? cursor;
    if (r.data?.pullChanges.final !== false) break;
  }
  b.subscribe(cursor);
  c.subscribe(cursor);
  await b.until(() => b.batches.some((x) => x.final));
  await c.until(() => c.batches.some((x) => x.final));
  // B writes a row but never uploads it; A receives it directly (peer to peer) and uploads it with its own row.
  b.engine.driver.prepare("INSERT INTO todos (id, title) VALUES ('relayed-b', 'by B')").run();
  a.applyPayload(b.engine.encodeChanges(b.engine.changes({ localOnly: true })) ?? new Uint8Array());
  a.driver.prepare("INSERT INTO todos (id, title) VALUES ('relayed-a', 'by A')").run();
  const all = a.encodeChanges(a.changes());
  const r = await t.gql<{ pushChanges: { failures: unknown[]; applied: number } }>(
    'mutation($db: ID!, $s: String!, $p: String!) { pushChanges(databaseId: $db, siteId: $s, payload: $p) { failures { code } applied } }',
    { db: t.databaseId, s: siteOf(a), p: Buffer.from(all ?? new Uint8Array()).toString('base64') });
  expect(r.data?.pushChanges.failures).toEqual([]);
  await c.until(() => total(c) === 6);
  await b.until(() => total(b) === 3);
  await new Promise((resolve) => setTimeout(resolve, 200));
  expect(total(c)).toBe(6); // A's row and B's row, 3 changes each
  expect(total(b)).toBe(3); // only A's row
  expect(rows(c.engine).map((x) => (x as { id: string }).id).filter((id) => id.startsWith('relayed'))).toEqual(['relayed-a', 'relayed-b']);
  await b.close();
  await c.close();
});

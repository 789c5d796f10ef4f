/**
 * The rejection log through GraphQL: entries recorded with the module inside a transaction of the
 * central database and announced through the data plane's `onChangesRejected` hook are paged and
 * filtered by `Database.rejections`, counted by `Database.metrics`, and streamed by the
 * `rejections` subscription (over SSE). Admin key only.
 */
import Database from 'better-sqlite3';
import { TODOS_DDL } from '@offsync/core/testing';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { sqliteDatabasePath } from '../src/domains/databases/index.ts';
import { rejectionLogOf } from '../src/domains/sync/index.ts';
import type { RejectionEntry, RejectionInput } from '../src/domains/sync/index.ts';
import { createApp, createApiPubSub } from '../src/index.ts';
import type { App, ApiEventTarget } from '../src/index.ts';
import { createTestDeps, providers, stopEmbeddedPg } from './helpers.ts';

afterAll(stopEmbeddedPg);

/** An EventTarget that tells how many listeners each topic has, and waits for a count. */
class ObservedTarget extends EventTarget {
  readonly #counts = new Map<string, number>();
  #waiters: Array<() => void> = [];

  override addEventListener(type: string, cb: EventListenerOrEventListenerObject | null, options?: AddEventListenerOptions | boolean): void {
    super.addEventListener(type, cb, options);
    this.#bump(type, 1);
  }

  override removeEventListener(type: string, cb: EventListenerOrEventListenerObject | null, options?: EventListenerOptions | boolean): void {
    super.removeEventListener(type, cb, options);
    this.#bump(type, -1);
  }

  #bump(type: string, d: number): void {
    this.#counts.set(type, (this.#counts.get(type) ?? 0) + d);
    for (const w of this.#waiters.splice(0)) w();
  }

  listeners(type: string): number {
    return this.#counts.get(type) ?? 0;
  }

  async until(type: string, n: number, ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.listeners(type) !== n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${type}: ${this.listeners(type)} listeners, expected ${n}`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, Math.min(left, 500));
      });
    }
  }
}

const SITE_A = '0123456789abcdef0123456789abcdef';
const SITE_B = 'fedcba9876543210fedcba9876543210';

function rejection(over: Partial<RejectionInput> = {}): RejectionInput {
  return {
    siteId: SITE_A,
    userId: 'alice',
    credentialKind: 'accessToken',
    credentialId: 'accessToken:t1',
    table: 'todos',
    pk: new Uint8Array([1, 0x0b, 0x02, 0x74, 0x31]),
    pkValues: ['t1'],
    operation: 'INSERT',
    code: 'rls_denied',
    policy: 'NEW.owner = auth_userid()',
    reason: 'INSERT on todos denied by its policy',
    values: { title: 'stolen', done: 0n, note: new Uint8Array([0xde, 0xad]) },
    ...over,
  };
}

type Gql = { data?: Record<string, unknown> | null; errors?: Array<{ message: string; extensions?: { code?: string } }> };

describe.each(providers)('rejection log over GraphQL (control plane on %s)', (provider) => {
  let app: App;
  let adminKey: string;
  let apiKey: string;
  let databaseId: string;
  let target: ObservedTarget;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const t = await createTestDeps(provider);
    target = new ObservedTarget();
    t.deps.pubsub = createApiPubSub({ eventTarget: target as unknown as ApiEventTarget });
    app = createApp(t.deps);
    adminKey = (await app.services.auth.ensureAdminKey()) ?? '';
    cleanup = async () => { await app.dispose(); await t.cleanup(); };
    const project = await app.services.projects.createProject({ name: 'p', kind: 'SQLITE' });
    databaseId = (await app.services.databases.createDatabase({ projectId: project.id, name: 'todos' })).id;
    const file = new Database(sqliteDatabasePath(app.services.deps.dataDir, databaseId));
    file.exec(TODOS_DDL);
    file.close();
    await app.services.tables.deployTables(databaseId, ['todos']);
    await app.services.databases.setOffSync(databaseId, true);
    apiKey = (await app.services.auth.createApiKey(databaseId, 'devices')).secret;
  });
  afterAll(async () => { await cleanup(); });

  async function gql(query: string, variables: Record<string, unknown> = {}, key: string = adminKey): Promise<Gql> {
    const res = await app.yoga.fetch('http://localhost/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ query, variables }),
    });
    return (await res.json()) as Gql;
  }

  /** What the lead's merge does: record inside a transaction of the central database, then the hook after commit. */
  async function reject(rows: RejectionInput[], at = Date.now()): Promise<RejectionEntry[]> {
    const db = await app.sync.databases.get(databaseId);
    const entries = db.engine.driver.transaction(() => rejectionLogOf(db.engine).record(rows, at));
    await app.dataPlane.deps.onChangesRejected?.(databaseId, entries);
    return entries;
  }

  /** Opens the subscription over SSE; `next()` resolves with each event's data. */
  function subscribe(filter: Record<string, unknown> | null) {
    const abort = new AbortController();
    const response = app.yoga.fetch('http://localhost/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${adminKey}`, accept: 'text/event-stream' },
      body: JSON.stringify({
        query: `subscription($id: ID!, $f: RejectionFilter) { rejections(databaseId: $id, filter: $f) {
          id databaseId at siteId userId credentialKind credentialId table pk pkValues operation code policy reason values } }`,
        variables: { id: databaseId, f: filter },
      }),
      signal: abort.signal,
    });
    let text = '';
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    return {
      async next(): Promise<Gql> {
        reader ??= (await response).body?.getReader();
        for (;;) {
          const m = /^data: (\{.*\})\n\n/m.exec(text);
          if (m?.[1] !== undefined) {
            text = text.slice(m.index + m[0].length);
            return JSON.parse(m[1]) as Gql;
          }
          const chunk = await reader?.read();
          if (chunk === undefined || chunk.done) throw new Error(`stream ended: ${JSON.stringify(text)}`);
          text += Buffer.from(chunk.value).toString('utf8');
        }
      },
      close: async () => {
        await reader?.cancel().catch(() => {});
        abort.abort();
      },
    };
  }

  const PAGE = `query($id: ID!, $first: Int, $after: String, $f: RejectionFilter) { database(id: $id) { rejections(first: $first, after: $after, filter: $f) {
    totalCount nodes { id at siteId userId credentialKind credentialId table pk pkValues operation code policy reason values }
    edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }`;
  type Page = { totalCount: number; nodes: Array<Record<string, unknown>>; edges: Array<{ cursor: string; node: { id: string } }>; pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null } };
  const page = async (vars: Record<string, unknown>): Promise<Page> => {
    const r = await gql(PAGE, { id: databaseId, ...vars });
    if (r.errors !== undefined) throw new Error(JSON.stringify(r.errors));
    return (r.data?.['database'] as { rejections: Page }).rejections;
  };

  test('entries recorded by the module and the hook are paged newest first, filtered, and counted in metrics; admin key only', async () => {
    const at = Date.parse('2025-06-15T12:00:30Z');
    const entries = await reject([
      rejection(),
      rejection({ operation: 'UPDATE', reason: 'u1' }),
      rejection({ siteId: SITE_B, userId: null, credentialKind: 'apiKey', credentialId: null, table: 'notes', operation: 'DELETE', code: 'pk_type_mismatch', policy: null, reason: 'pk', pkValues: [5n], values: {} }),
      rejection({ operation: 'UPDATE', code: 'constraint_violation', policy: null, reason: 'u2' }),
      rejection({ siteId: SITE_B, reason: 'last' }),
    ], at);
    const ids = entries.map((e) => String(e.id));

    const p1 = await page({ first: 2 });
    expect(p1.totalCount).toBe(5);
    expect(p1.nodes.map((n) => n['id'])).toEqual([ids[4], ids[3]]);
    expect(p1.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false, startCursor: p1.edges[0]?.cursor, endCursor: p1.edges[1]?.cursor });
    const p2 = await page({ first: 2, after: p1.pageInfo.endCursor });
    expect(p2.nodes.map((n) => n['id'])).toEqual([ids[2], ids[1]]);
    expect(p2.nodes[0]).toEqual({
      id: ids[2], at: new Date(at).toISOString(), siteId: SITE_B, userId: null, credentialKind: 'API_KEY', credentialId: null,
      table: 'notes', pk: Buffer.from([1, 0x0b, 0x02, 0x74, 0x31]).toString('base64'), pkValues: [{ $int: '5' }],
      operation: 'DELETE', code: 'pk_type_mismatch', policy: null, reason: 'pk', values: {},
    });
    const p3 = await page({ first: 2, after: p2.pageInfo.endCursor });
    expect(p3.nodes.map((n) => n['id'])).toEqual([ids[0]]);
    expect(p3.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
    expect(p3.nodes[0]).toMatchObject({
      credentialKind: 'ACCESS_TOKEN', credentialId: 'accessToken:t1', userId: 'alice', policy: 'NEW.owner = auth_userid()', pkValues: ['t1'],
      values: { title: 'stolen', done: { $int: '0' }, note: { $blob: Buffer.from([0xde, 0xad]).toString('base64') } },
    });

    const updates = await page({ f: { table: 'todos', operation: 'UPDATE' } });
    expect(updates.totalCount).toBe(2);
    expect(updates.nodes.map((n) => n['reason'])).toEqual(['u2', 'u1']);
    expect((await page({ f: { siteId: SITE_B.toUpperCase() } })).nodes.map((n) => n['reason'])).toEqual(['last', 'pk']);
    expect((await page({ f: { userId: 'alice', code: 'rls_denied' } })).totalCount).toBe(3);
    expect((await page({ f: { since: new Date(at + 1).toISOString() } })).totalCount).toBe(0);

    const bad = await gql(PAGE, { id: databaseId, after: 'not-a-cursor' });
    expect(bad.errors?.map((e) => e.extensions?.code)).toEqual(['VALIDATION_FAILED']);
    const badSite = await gql(PAGE, { id: databaseId, f: { siteId: 'xyz' } });
    expect(badSite.errors?.map((e) => e.extensions?.code)).toEqual(['VALIDATION_FAILED']);
    const device = await gql(PAGE, { id: databaseId }, apiKey);
    expect(device.errors?.map((e) => e.extensions?.code)).toEqual(['UNAUTHENTICATED']);
    expect(device.data ?? null).toBeNull();

    // The hook counted every entry in the minute bucket of its site.
    const m = await gql(`query($id: ID!, $from: DateTime, $to: DateTime) { database(id: $id) { metrics(from: $from, to: $to, bucket: MINUTE) {
      rejectedChanges series { start rejectedChanges } } } }`, { id: databaseId, from: '2025-06-15T11:59:00Z', to: '2025-06-15T12:02:00Z' });
    const metrics = (m.data?.['database'] as { metrics: { rejectedChanges: number; series: Array<{ start: string; rejectedChanges: number }> } }).metrics;
    expect(metrics.rejectedChanges).toBe(5);
    expect(metrics.series.filter((p) => p.rejectedChanges > 0)).toEqual([{ start: '2025-06-15T12:00:00.000Z', rejectedChanges: 5 }]);
  });

  test('the subscription delivers each entry after the hook, filtered, and releases its listener when closed', async () => {
    const topic = `changesRejected:${databaseId}`;
    const before = target.listeners(topic);
    const all = subscribe(null);
    const notes = subscribe({ table: 'notes' });
    const first = all.next();
    const firstNote = notes.next();
    await target.until(topic, before + 2);

    const [todo, note] = await reject([rejection({ reason: 'live todo' }), rejection({ table: 'notes', operation: 'UPDATE', reason: 'live note', values: { body: new Uint8Array([1, 2, 3]) } })]);
    const a = await first;
    expect(a.errors).toBeUndefined();
    expect(a.data?.['rejections']).toEqual({
      id: String(todo?.id), databaseId, at: todo?.at.toISOString(), siteId: SITE_A, userId: 'alice', credentialKind: 'ACCESS_TOKEN', credentialId: 'accessToken:t1',
      table: 'todos', pk: Buffer.from(todo?.pk ?? []).toString('base64'), pkValues: ['t1'], operation: 'INSERT', code: 'rls_denied',
      policy: 'NEW.owner = auth_userid()', reason: 'live todo', values: { title: 'stolen', done: { $int: '0' }, note: { $blob: '3q0=' } },
    });
    expect((await all.next()).data?.['rejections']).toMatchObject({ id: String(note?.id), reason: 'live note' });
    // The filtered subscriber skipped the todos entry.
    expect((await firstNote).data?.['rejections']).toMatchObject({ id: String(note?.id), table: 'notes', values: { body: { $blob: 'AQID' } } });

    await all.close();
    await notes.close();
    await target.until(topic, before);
    expect(target.listeners(topic)).toBe(before);
  });

  test('a device credential cannot subscribe', async () => {
    const res = await app.yoga.fetch('http://localhost/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}`, accept: 'text/event-stream' },
      body: JSON.stringify({ query: 'subscription($id: ID!) { rejections(databaseId: $id) { id } }', variables: { id: databaseId } }),
    });
    const text = await res.text();
    expect(text).toContain('UNAUTHENTICATED');
    expect(text).not.toContain('"rejections":{');
  });
});

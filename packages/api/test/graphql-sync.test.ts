/** GraphQL sync over HTTP (yoga.fetch): pushChanges from one replica, pullChanges into another. */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { decodePayload } from '@offsync/core';
import { stopEmbeddedPg } from './helpers.ts';
import { insertTodos, outgoing, PULL, push, PUSH, replica, rows, siteOf, startSyncApp } from './graphql-sync-fixture.ts';
import type { Batch, PushResult, SyncTestApp } from './graphql-sync-fixture.ts';

let t: SyncTestApp;
beforeAll(async () => { t = await startSyncApp(); });
afterAll(async () => { await t.dispose(); await stopEmbeddedPg(); });

type Pull = { pullChanges: Batch };

/** Pulls pages until final, applying each; returns the pages and the last cursor. */
async function pullAll(e: ReturnType<typeof replica>, cursor: Batch['cursor'] | null, maxBytes?: number, key?: string) {
  const pages: Batch[] = [];
  for (let i = 0; i < 1000; i++) {
    const r = await t.gql<Pull>(PULL, { db: t.databaseId, site: siteOf(e), cursor, max: maxBytes ?? null }, key);
    expect(r.errors).toBeUndefined();
    const page = r.data?.pullChanges;
    if (!page) throw new Error('no page');
    if (page.payload !== null) {
      e.applyPayload(new Uint8Array(Buffer.from(page.payload, 'base64')));
      pages.push(page);
    }
    cursor = page.cursor;
    if (page.final) return { pages, cursor };
  }
  throw new Error('pull did not finish');
}

test('a push from device A is pulled into device B, in pages, each change once', async () => {
  const a = replica();
  const b = replica();
  insertTodos(a, 0, 120, 'from A, with a title long enough to fill pages');
  const { result, sent } = await push(t, a, 0);
  expect(result).toMatchObject({ failures: [], lastOptimisticVersion: sent, lastConfirmedVersion: sent, received: 360, applied: 360 });
  expect(result.dbVersion).toBeGreaterThan(0);

  const { pages, cursor } = await pullAll(b, null, 2000);
  expect(pages.length).toBeGreaterThan(2);
  const keys = pages.flatMap((p) => decodePayload(new Uint8Array(Buffer.from(p.payload ?? '', 'base64'))).changes.map((c) => `${Buffer.from(c.pk).toString('hex')}/${c.col}`));
  // title, done and note of 120 rows
  expect(keys).toHaveLength(360);
  expect(new Set(keys).size).toBe(360);
  expect(pages.reduce((n, p) => n + p.changes, 0)).toBe(360);
  expect(rows(b)).toEqual(rows(a));

  // Nothing new: an empty final page that keeps the cursor.
  const again = await t.gql<Pull>(PULL, { db: t.databaseId, site: siteOf(b), cursor });
  expect(again.data?.pullChanges).toEqual({ payload: null, changes: 0, cursor, final: true });
  // A's own changes are never sent back to A.
  const own = await t.gql<Pull>(PULL, { db: t.databaseId, site: siteOf(a) });
  expect(own.data?.pullChanges.payload).toBeNull();

  // B edits and pushes with the admin key; A pulls only that.
  b.driver.prepare("UPDATE todos SET done = 1, note = 'by B' WHERE id = 't000007'").run();
  const pushed = await push(t, b, 0, t.adminKey);
  expect(pushed.result.failures).toEqual([]);
  expect(pushed.result.applied).toBeGreaterThan(0);
  const aPull = await pullAll(a, null, undefined, t.adminKey);
  expect(aPull.pages.reduce((n, p) => n + p.changes, 0)).toBe(pushed.result.applied);
  expect(rows(a)).toEqual(rows(b));
});

test('re-pushing the same payload is idempotent; a corrupt payload is refused whole with a failure', async () => {
  const a = replica();
  insertTodos(a, 1000, 3);
  const first = await push(t, a, 0);
  const second = await push(t, a, 0);
  expect(second.result).toMatchObject({ failures: [], applied: 0, lastOptimisticVersion: first.sent });

  a.driver.prepare("UPDATE todos SET title = 'changed' WHERE id = 't001000'").run();
  const out = outgoing(a, first.sent);
  if (out === null) throw new Error('expected changes');
  const bytes = Buffer.from(out.payload, 'base64');
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0xff;
  const bad = await t.gql<{ pushChanges: PushResult }>(PUSH, { db: t.databaseId, site: siteOf(a), payload: bytes.toString('base64'), min: out.dbVersionMin, max: out.dbVersionMax });
  expect(bad.errors).toBeUndefined();
  expect(bad.data?.pushChanges).toMatchObject({ applied: 0, dbVersion: null, lastOptimisticVersion: first.sent, lastConfirmedVersion: first.sent });
  expect(bad.data?.pushChanges.failures).toEqual([expect.objectContaining({ code: 'invalid_payload', retryable: false })]);

  const notBase64 = await t.gql<{ pushChanges: PushResult }>(PUSH, { db: t.databaseId, site: siteOf(a), payload: 'not base64!', min: out.dbVersionMin, max: out.dbVersionMax });
  expect(notBase64.data?.pushChanges.failures[0]?.code).toBe('invalid_payload');
  // The good payload still goes through afterwards.
  expect((await push(t, a, first.sent)).result).toMatchObject({ failures: [], applied: 1 });
});

test('auth: no, wrong or other-database credentials are refused; bad input is a validation error', async () => {
  const a = replica();
  insertTodos(a, 2000, 1);
  const out = outgoing(a, 0);
  const vars = { db: t.databaseId, site: siteOf(a), payload: out?.payload ?? '', min: out?.dbVersionMin, max: out?.dbVersionMax };
  for (const key of [null, 'osk_wrong', 'osa_wrong']) {
    const r = await t.gql(PUSH, vars, key);
    expect(r.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
    const p = await t.gql(PULL, { db: t.databaseId, site: siteOf(a) }, key);
    expect(p.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
  }
  // An API key of another database does not open this one.
  const project = await t.app.services.projects.createProject({ name: 'other', kind: 'SQLITE' });
  const other = (await t.app.services.databases.createDatabase({ projectId: project.id, name: 'other' })).id;
  const { secret } = await t.app.services.auth.createApiKey(other, 'k');
  expect((await t.gql(PULL, { db: t.databaseId, site: siteOf(a) }, secret)).errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
  // The admin key works on any database; an unknown database is NOT_FOUND.
  expect((await t.gql(PULL, { db: 'db_nope', site: siteOf(a) }, t.adminKey)).errors?.[0]?.extensions?.['code']).toBe('NOT_FOUND');
  // The other database exists but is not OffSync-enabled.
  expect((await t.gql(PULL, { db: other, site: siteOf(a) }, t.adminKey)).errors?.[0]?.extensions).toMatchObject({ syncCode: expect.stringMatching(/sync_disabled|database_not_found/) });

  expect((await t.gql(PULL, { db: t.databaseId, site: 'xyz' })).errors?.[0]?.extensions?.['code']).toBe('VALIDATION_FAILED');
  expect((await t.gql(PULL, { db: t.databaseId, site: siteOf(a), cursor: { dbVersion: -1, seq: 0 } })).errors?.[0]?.extensions?.['code']).toBe('VALIDATION_FAILED');
  expect((await t.gql(PUSH, { ...vars, max: null })).errors?.[0]?.extensions?.['code']).toBe('VALIDATION_FAILED');
  expect((await t.gql(PUSH, { ...vars, min: 5, max: 2 })).errors?.[0]?.extensions?.['code']).toBe('VALIDATION_FAILED');
  // Nothing of the refused attempts was applied.
  const b = replica();
  const pulled = await pullAll(b, null);
  expect(pulled.pages.flatMap((p) => decodePayload(new Uint8Array(Buffer.from(p.payload ?? '', 'base64'))).changes).some((c) => Buffer.from(c.pk).toString('latin1').includes('t002000'))).toBe(false);
});

test('GraphQL sync registers the device and counts its traffic like the HTTP protocol', async () => {
  const a = replica();
  insertTodos(a, 7000, 5, 'counted');
  await push(t, a, 0);
  const b = replica();
  await pullAll(b, null);
  const r = await t.gql<{ database: { devices: { nodes: Array<{ siteId: string }> }; metrics: { uploadBytes: number; downloadBytes: number } } }>(
    'query($id: ID!) { database(id: $id) { devices(first: 50) { nodes { siteId } } metrics { uploadBytes downloadBytes } } }',
    { id: t.databaseId },
    t.adminKey,
  );
  expect(r.errors).toBeUndefined();
  const sites = r.data?.database.devices.nodes.map((n) => n.siteId) ?? [];
  expect(sites).toContain(siteOf(a));
  expect(sites).toContain(siteOf(b));
  expect(r.data?.database.metrics.uploadBytes).toBeGreaterThan(0);
  expect(r.data?.database.metrics.downloadBytes).toBeGreaterThan(0);
});

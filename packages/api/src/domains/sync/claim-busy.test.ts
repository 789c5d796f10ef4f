/**
 * A device's first request claims its site id in the central file (site-owners.ts). While another
 * connection (a central worker's merge) holds the file's write lock, the claim must not wait on
 * the main connection's busy timeout — that blocks the whole event loop — but be refused at once
 * and retried on a timer (sqlite-central.ts claimSite, main-connection.ts).
 */
import Database from 'better-sqlite3';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { SiteOwners } from './site-owners.ts';
import { listenTestServer } from '../../../test/sync-fixtures/server.ts';
import type { TestServer } from '../../../test/sync-fixtures/server.ts';

let t: TestServer & { origin: string };
beforeAll(async () => {
  t = await listenTestServer({ databases: [{ id: 'claimdb' }] });
});
afterAll(async () => t.close());

test('a first claim during a held write lock retries asynchronously and succeeds once the lock is free', async () => {
  const status = (s: string) => fetch(`${t.origin}/v2/cloudsync/databases/claimdb/${s}/status`, { headers: { authorization: 'Bearer TESTKEY123', 'x-cloudsync-version': '1.1.4' } });
  const first = await status('ef'.repeat(16)); // the file is open (opening it writes)
  expect(first.status).toBe(200);
  await first.arrayBuffer();
  const claims = vi.spyOn(SiteOwners.prototype, 'claimAll');
  const site = 'cd'.repeat(16);
  const merge = new Database(t.pathOf('claimdb'));
  merge.exec('BEGIN IMMEDIATE');
  const answer = status(site);
  // Refused and tried again: a blocked event loop could not have come back for a second try.
  await vi.waitFor(() => expect(claims.mock.calls.length).toBeGreaterThan(2), { timeout: 4_000, interval: 5 });
  merge.exec('COMMIT');
  merge.close();
  const r = await answer;
  expect(r.status).toBe(200);
  await r.arrayBuffer();
  claims.mockRestore();
  const owner = new Database(t.pathOf('claimdb'), { readonly: true }).prepare('SELECT owner FROM offsync_site_owners WHERE site_id = ?').pluck().get(Buffer.from(site, 'hex'));
  expect(owner).toBe('apiKey');
});

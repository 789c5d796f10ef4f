import { copyFileSync, existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, expect, test, vi } from 'vitest';
import { CentralDatabases } from './central-databases.ts';
import { createCentralFile } from './central-file.ts';
import { CentralWorkers } from './central-worker/pool.ts';
import { siteOwnersOf } from './site-owners.ts';
import type { DatabaseTarget } from './sync-deps.ts';

let dir: string;
let targets: Map<string, DatabaseTarget>;
let dbs: CentralDatabases;
let now: number;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'offsync-central-'));
  targets = new Map();
  now = 1_000_000;
});
afterEach(() => {
  dbs.dispose();
  rmSync(dir, { recursive: true, force: true });
});

function target(id: string, identity: string | null, extra: Partial<DatabaseTarget> = {}): DatabaseTarget {
  const t: DatabaseTarget = { path: join(dir, `${id}.sqlite`), enabled: true, schemaHashMode: 'strict', identity, ...extra };
  targets.set(id, t);
  return t;
}

function registry(checkIntervalMs?: number): CentralDatabases {
  dbs = new CentralDatabases((id) => targets.get(id), { now: () => now, ...(checkIntervalMs === undefined ? {} : { checkIntervalMs }) });
  return dbs;
}

const refusedWith = { code: 'database_file_missing', status: 503 };

test('a missing file is refused and never created', async () => {
  const t = target('gone', 'fid_x');
  await expect(registry().get('gone')).rejects.toMatchObject(refusedWith);
  expect(existsSync(t.path)).toBe(false);
  // No identity expected (tests, files older than identities): still never created.
  target('gone2', null);
  await expect(dbs.get('gone2')).rejects.toMatchObject(refusedWith);
  expect(existsSync(join(dir, 'gone2.sqlite'))).toBe(false);
  // Not even its folder.
  targets.set('nodir', { path: join(dir, 'no', 'such', 'x.sqlite'), enabled: true, schemaHashMode: 'strict', identity: null });
  await expect(dbs.get('nodir')).rejects.toMatchObject(refusedWith);
  expect(existsSync(join(dir, 'no'))).toBe(false);
});

test('on open the identity inside the file must be the expected one', async () => {
  const path = join(dir, 'a.sqlite');
  const identity = createCentralFile(path);
  registry();
  target('a', 'fid_other');
  await expect(dbs.get('a')).rejects.toMatchObject({ ...refusedWith, message: expect.stringMatching(/another identity/) });
  target('a', identity);
  expect((await dbs.get('a')).engine.driver.prepare('PRAGMA synchronous').get()).toEqual({ synchronous: 2n });

  const plain = join(dir, 'plain.sqlite');
  new Database(plain).exec('CREATE TABLE t (x)');
  target('plain', 'fid_expected');
  await expect(dbs.get('plain')).rejects.toMatchObject({ ...refusedWith, message: expect.stringMatching(/no identity/) });

  writeFileSync(join(dir, 'junk.sqlite'), 'this is not a database, just text that is long enough to have a header'.repeat(10));
  target('junk', 'fid_expected');
  await expect(dbs.get('junk')).rejects.toMatchObject({ ...refusedWith, message: expect.stringMatching(/not a database/) });
});

test('deleted while open: refused from the next use on, until the control plane gives another identity', async () => {
  const t = target('a', null);
  const first = createCentralFile(t.path);
  target('a', first);
  registry();
  await dbs.get('a');
  rmSync(t.path);
  await expect(dbs.get('a')).rejects.toMatchObject({ ...refusedWith, message: expect.stringMatching(/was deleted/) });
  expect(dbs.peek('a')).toBeUndefined();
  expect(dbs.isRefused('a', first)).toBe(true);
  // The same file name with the same identity again (a copy put back): still refused.
  createCentralFile(join(dir, 'copy.sqlite'));
  const copy = new Database(join(dir, 'copy.sqlite'));
  copy.prepare('UPDATE offsync_identity SET id = ?').run(first);
  copy.close();
  renameSync(join(dir, 'copy.sqlite'), t.path);
  await expect(dbs.get('a')).rejects.toMatchObject(refusedWith);
  // restoreConnection stamps a new identity into the file and the control plane.
  const accepted = createCentralFile(join(dir, 'b.sqlite'));
  renameSync(join(dir, 'b.sqlite'), t.path);
  target('a', accepted);
  expect(dbs.isRefused('a', accepted)).toBe(false);
  expect((await dbs.get('a')).path).toBe(t.path);
});

test('replaced while open (rename over it): refused', async () => {
  const t = target('a', null);
  target('a', createCentralFile(t.path));
  registry();
  await dbs.get('a');
  createCentralFile(join(dir, 'other.sqlite'));
  renameSync(join(dir, 'other.sqlite'), t.path);
  await expect(dbs.get('a')).rejects.toMatchObject({ ...refusedWith, message: expect.stringMatching(/was replaced/) });
});

test('checkIntervalMs: the dev/ino check of an open file is skipped within the interval', async () => {
  const t = target('a', null);
  target('a', createCentralFile(t.path));
  registry(1000);
  await dbs.get('a');
  rmSync(t.path);
  now += 999;
  await expect(dbs.get('a')).resolves.toMatchObject({ id: 'a' });
  now += 1;
  await expect(dbs.get('a')).rejects.toMatchObject(refusedWith);
});

test('synchronous NORMAL when the target asks for it', async () => {
  const t = target('a', null, { synchronous: 'NORMAL' });
  createCentralFile(t.path);
  expect((await registry().get('a')).engine.driver.prepare('PRAGMA synchronous').get()).toEqual({ synchronous: 1n });
});

test('with central workers the main connection never checkpoints: the file\'s worker does, after a write on the main connection', async () => {
  const t = target('w', null);
  target('w', createCentralFile(t.path));
  const workers = new CentralWorkers({ size: 1 });
  try {
    dbs = new CentralDatabases((id) => targets.get(id), { workers, checkpointDelayMs: 0 });
    const db = await dbs.get('w');
    const main = db.engine.driver;
    expect(main.prepare('PRAGMA wal_autocheckpoint').getRaw()).toEqual([0n]);
    // Setup: the owners table in the file itself, so the copy below can be read on its own.
    siteOwnersOf(db.engine);
    main.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    expect(dbs.checkpointing('w')).toBeUndefined();
    const site = 'ab'.repeat(16);
    /** The owner of `site` as the database file alone holds it (a copy without its WAL). */
    const ownerInFile = (): unknown => {
      const copy = join(dir, 'copy.sqlite');
      rmSync(`${copy}-wal`, { force: true });
      rmSync(`${copy}-shm`, { force: true });
      copyFileSync(t.path, copy);
      const d = new Database(copy);
      try {
        return d.prepare('SELECT owner FROM offsync_site_owners WHERE site_id = ?').pluck().get(Buffer.from(site, 'hex'));
      } finally {
        d.close();
      }
    };
    // A first claim of a site: a write on the main connection, committed to the WAL only.
    await expect(db.claimSite(site, 'apiKey')).resolves.toBe('apiKey');
    expect(ownerInFile()).toBeUndefined();
    const checkpoint = dbs.checkpointing('w');
    expect(checkpoint).toBeDefined();
    await checkpoint;
    // The worker's passive checkpoint copied it into the file.
    expect(ownerInFile()).toBe('apiKey');
    expect(dbs.checkpointing('w')).toBeUndefined();
    // A known site writes nothing and schedules nothing.
    await expect(db.claimSite(site, 'apiKey')).resolves.toBe('apiKey');
    expect(dbs.checkpointing('w')).toBeUndefined();
  } finally {
    dbs.dispose();
    await workers.dispose();
  }
});

test('without central workers the main connection keeps SQLite\'s own checkpoints', async () => {
  const t = target('a', null);
  target('a', createCentralFile(t.path));
  const db = await registry().get('a');
  expect(db.engine.driver.prepare('PRAGMA wal_autocheckpoint').getRaw()).toEqual([1000n]);
  await db.claimSite('cd'.repeat(16), 'apiKey');
  expect(dbs.checkpointing('a')).toBeUndefined();
});

test('first claims arriving in one turn are written in one transaction; the first claimant of a site wins', async () => {
  const t = target('a', null);
  target('a', createCentralFile(t.path));
  const db = await registry().get('a');
  const transactions = vi.spyOn(db.engine.driver, 'transaction');
  const sites = Array.from({ length: 50 }, (_, i) => i.toString(16).padStart(32, '0'));
  const claims = sites.map((s) => db.claimSite(s, 'apiKey'));
  // The same new site claimed by another principal in the same turn: it lost to the first.
  const late = db.claimSite(sites[0] as string, 'user:u2');
  expect(await Promise.all(claims)).toEqual(sites.map(() => 'apiKey'));
  expect(await late).toBe('apiKey');
  expect(transactions).toHaveBeenCalledTimes(1);
  const owners = new Database(t.path, { readonly: true });
  try {
    expect(owners.prepare('SELECT count(*) FROM offsync_site_owners').pluck().get()).toBe(50);
  } finally {
    owners.close();
  }
  // Known sites are reads: no transaction; a new one later is its own batch.
  expect(await db.claimSite(sites[1] as string, 'user:u3')).toBe('apiKey');
  expect(transactions).toHaveBeenCalledTimes(1);
  expect(await db.claimSite('ff'.repeat(16), 'user:u3')).toBe('user:u3');
  expect(transactions).toHaveBeenCalledTimes(2);
});

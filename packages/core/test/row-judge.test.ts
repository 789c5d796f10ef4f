/**
 * Whole-row judging, per-row rejection and compensation in the merge (docs/ARCHITECTURE.md
 * "RLS model"): a refused row is rolled back alone, the rest of the batch merges, and the
 * device that made the refused write converges to what the server holds.
 */
import { describe, expect, test } from 'vitest';
import { encodePk, RIP_SENTINEL } from '@offsync/core';
import type { RowTransition, RowVerdict, SyncEngine, Tombstone, Change, SqlValue } from '@offsync/core';
import { changesFor, openReplica, tableRows } from '@offsync/core/testing';

const ITEMS = "CREATE TABLE items (id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT '', slug TEXT UNIQUE)";

type Row = Readonly<Record<string, SqlValue>> | undefined;

/** A toy policy: a user may write and see rows whose owner is themself. */
function ownerJudge(user: string, log: RowTransition[] = [], visibleTo: 'owner' | 'all' = 'all') {
  return (t: RowTransition): RowVerdict | undefined => {
    log.push(t);
    const ok = (r: Row): boolean => r !== undefined && r['owner'] === user;
    const allowed = t.operation === 'INSERT' ? ok(t.new) : t.operation === 'DELETE' ? ok(t.old) : ok(t.old) && ok(t.new);
    return allowed ? undefined : { code: 'rls_denied', reason: `${t.operation} denied`, policy: 'owner = auth_userid()', visible: visibleTo === 'all' || ok(t.old) };
  };
}

function ownerFilter(user: string) {
  return (_t: string, _pk: readonly SqlValue[], row: Row, tomb?: Tombstone): boolean => {
    if (row !== undefined) return row['owner'] === user;
    return tomb?.lastValues?.['owner'] === user;
  };
}

function server(): SyncEngine {
  const s = openReplica(ITEMS, ['items']);
  s.setKeepTombstoneValues(true);
  return s;
}

/** Uploads everything `dev` has that `srv` lacks, as `user`. */
function upload(dev: SyncEngine, srv: SyncEngine, user: string, log?: RowTransition[], visibleTo: 'owner' | 'all' = 'all') {
  return srv.applyChanges(changesFor(dev, srv), { judge: ownerJudge(user, log, visibleTo), audience: `user:${user}` });
}

/** Downloads what `user` may see into `dev`. */
function download(srv: SyncEngine, dev: SyncEngine, user: string): Change[] {
  const feed = [...srv.changes({ excludeSiteId: dev.siteId, rowFilter: ownerFilter(user), audience: `user:${user}` })];
  dev.applyChanges(feed);
  return feed;
}

const rows = (e: SyncEngine) => tableRows(e, 'items');

describe('whole-row judging', () => {
  test('the judge sees full OLD/NEW rows and the operation of the transition', () => {
    const srv = server();
    const dev = openReplica(ITEMS, ['items']);
    const log: RowTransition[] = [];
    dev.driver.exec("INSERT INTO items (id, owner, title) VALUES ('a', 'u1', 'one')");
    expect(upload(dev, srv, 'u1', log).rejected).toEqual([]);
    expect(log.map((t) => [t.operation, t.old, t.new])).toEqual([['INSERT', undefined, { id: 'a', owner: 'u1', title: 'one', slug: null }]]);
    dev.driver.exec("UPDATE items SET title = 'two' WHERE id = 'a'");
    log.length = 0;
    upload(dev, srv, 'u1', log);
    expect(log.map((t) => [t.operation, t.old?.['title'], t.new?.['title']])).toEqual([['UPDATE', 'one', 'two']]);
    dev.driver.exec("DELETE FROM items WHERE id = 'a'");
    log.length = 0;
    upload(dev, srv, 'u1', log);
    expect(log.map((t) => [t.operation, t.old, t.new])).toEqual([['DELETE', { id: 'a', owner: 'u1', title: 'two', slug: null }, undefined]]);
    expect(rows(srv)).toEqual([]);
  });

  test("re-inserting one's own deleted row is judged on the merged row, not on column defaults", () => {
    const srv = server();
    const dev = openReplica(ITEMS, ['items']);
    dev.driver.exec("INSERT INTO items (id, owner, title) VALUES ('a', 'u1', 'one')");
    upload(dev, srv, 'u1');
    dev.driver.exec("DELETE FROM items WHERE id = 'a'");
    upload(dev, srv, 'u1');
    dev.driver.exec("INSERT INTO items (id, owner, title) VALUES ('a', 'u1', 'again')");
    const log: RowTransition[] = [];
    const r = upload(dev, srv, 'u1', log);
    expect(r.rejected).toEqual([]);
    expect(log.map((t) => [t.operation, t.new?.['owner'], t.new?.['title']])).toEqual([['INSERT', 'u1', 'again']]);
    expect(rows(srv)).toEqual([{ id: 'a', owner: 'u1', title: 'again', slug: null }]);
  });

  test('a row inserted and deleted offline before the first sync needs no policy', () => {
    const srv = server();
    const dev = openReplica(ITEMS, ['items']);
    dev.driver.exec("INSERT INTO items (id, owner) VALUES ('gone', 'u1')");
    dev.driver.exec("DELETE FROM items WHERE id = 'gone'");
    const log: RowTransition[] = [];
    const r = upload(dev, srv, 'u1', log);
    expect(log).toEqual([]);
    expect(r.rejected).toEqual([]);
    expect(r.received).toBeGreaterThan(0);
  });
});

describe('per-row rejection and compensation', () => {
  test('a refused row is rolled back alone; the rest of the batch lands', () => {
    const srv = server();
    const dev = openReplica(ITEMS, ['items']);
    dev.driver.exec("INSERT INTO items (id, owner, title) VALUES ('mine', 'u1', 'ok'), ('theirs', 'u2', 'forged')");
    const r = upload(dev, srv, 'u1');
    expect(rows(srv)).toEqual([{ id: 'mine', owner: 'u1', title: 'ok', slug: null }]);
    expect(r.rejected.map((x) => [x.table, x.pkValues, x.operation, x.code, x.policy, x.values])).toEqual([
      ['items', ['theirs'], 'INSERT', 'rls_denied', 'owner = auth_userid()', { owner: 'u2', title: 'forged', slug: null }],
    ]);
    expect(r.tables).toEqual(['items']);
  });

  test('a refused insert is removed from the device; nobody else learns the key; a permitted insert of that key later wins', () => {
    const srv = server();
    const dev1 = openReplica(ITEMS, ['items']);
    const dev2 = openReplica(ITEMS, ['items']);
    dev1.driver.exec("INSERT INTO items (id, owner, title) VALUES ('k', 'u2', 'forged by u1')");
    expect(upload(dev1, srv, 'u1').rejected).toHaveLength(1);
    expect(download(srv, dev1, 'u1').map((c) => c.col)).toEqual([RIP_SENTINEL]);
    expect(rows(dev1)).toEqual([]);
    // u2 never hears of the forged key.
    expect(download(srv, dev2, 'u2')).toEqual([]);
    // u2 creates the same key legitimately: it lands although its causal length is lower.
    dev2.driver.exec("INSERT INTO items (id, owner, title) VALUES ('k', 'u2', 'real')");
    expect(upload(dev2, srv, 'u2').rejected).toEqual([]);
    expect(rows(srv)).toEqual([{ id: 'k', owner: 'u2', title: 'real', slug: null }]);
    download(srv, dev2, 'u2');
    expect(rows(dev2)).toEqual(rows(srv));
    // The clocks agree too: u2's later delete wins centrally.
    dev2.driver.exec("DELETE FROM items WHERE id = 'k'");
    expect(upload(dev2, srv, 'u2').rejected).toEqual([]);
    expect(rows(srv)).toEqual([]);
  });

  test('a refused update is answered with the central values, which win on the device', () => {
    const srv = server();
    const owner = openReplica(ITEMS, ['items']);
    const other = openReplica(ITEMS, ['items']);
    owner.driver.exec("INSERT INTO items (id, owner, title) VALUES ('a', 'u1', 'original')");
    upload(owner, srv, 'u1');
    // u2's device holds u1's row (downloaded without a filter: readable, not writable).
    other.applyChanges([...srv.changes({ excludeSiteId: other.siteId })]);
    other.driver.exec("UPDATE items SET title = 'vandalised' WHERE id = 'a'");
    const r = upload(other, srv, 'u2');
    expect(r.rejected.map((x) => [x.operation, x.values['title']])).toEqual([['UPDATE', 'vandalised']]);
    expect(rows(srv)).toEqual([{ id: 'a', owner: 'u1', title: 'original', slug: null }]);
    other.applyChanges([...srv.changes({ excludeSiteId: other.siteId })]);
    expect(rows(other)).toEqual(rows(srv));
    // The owner receives re-stamped clocks with unchanged values and stays identical.
    download(srv, owner, 'u1');
    expect(rows(owner)).toEqual(rows(srv));
  });

  test("a refused write to a row the user may not see removes that row from the user's device only", () => {
    const srv = server();
    const owner = openReplica(ITEMS, ['items']);
    const attacker = openReplica(ITEMS, ['items']);
    owner.driver.exec("INSERT INTO items (id, owner, title) VALUES ('a', 'u1', 'secret')");
    upload(owner, srv, 'u1');
    // u2 guesses the key and writes a row over it.
    attacker.driver.exec("INSERT INTO items (id, owner, title) VALUES ('a', 'u2', 'mine now')");
    expect(upload(attacker, srv, 'u2', undefined, 'owner').rejected.map((x) => x.operation)).toEqual(['UPDATE']);
    const got = download(srv, attacker, 'u2');
    expect(got.map((c) => [c.col, c.cl % 2])).toEqual([[RIP_SENTINEL, 0]]);
    expect(got.some((c) => c.val === 'secret')).toBe(false);
    expect(rows(attacker)).toEqual([]);
    // Nobody else receives anything, and the central row is untouched.
    expect(download(srv, owner, 'u1')).toEqual([]);
    expect(rows(srv)).toEqual([{ id: 'a', owner: 'u1', title: 'secret', slug: null }]);
  });

  test('a refused delete brings the row back whole on the device', () => {
    const srv = server();
    const owner = openReplica(ITEMS, ['items']);
    const other = openReplica(ITEMS, ['items']);
    owner.driver.exec("INSERT INTO items (id, owner, title) VALUES ('a', 'u1', 'keep me')");
    upload(owner, srv, 'u1');
    other.applyChanges([...srv.changes({ excludeSiteId: other.siteId })]);
    other.driver.exec("DELETE FROM items WHERE id = 'a'");
    expect(upload(other, srv, 'u2').rejected.map((x) => x.operation)).toEqual(['DELETE']);
    other.applyChanges([...srv.changes({ excludeSiteId: other.siteId })]);
    expect(rows(other)).toEqual([{ id: 'a', owner: 'u1', title: 'keep me', slug: null }]);
  });
});

describe('a change writes only the row its primary key names', () => {
  for (const mode of ['judged (RLS)', 'unjudged (API key)'] as const) {
    test(`a clash with another UNIQUE column is a rejected change (${mode}); the victim's row is untouched`, () => {
      const srv = server();
      const victim = openReplica(ITEMS, ['items']);
      const attacker = openReplica(ITEMS, ['items']);
      victim.driver.exec("INSERT INTO items (id, owner, title, slug) VALUES ('v', 'u2', 'private', 'shared-slug')");
      upload(victim, srv, 'u2');
      attacker.driver.exec("INSERT INTO items (id, owner, title, slug) VALUES ('x', 'u1', 'mine', 'shared-slug'), ('y', 'u1', 'fine', 'other')");
      const r = mode === 'judged (RLS)' ? upload(attacker, srv, 'u1') : srv.applyChanges(changesFor(attacker, srv), { rejectRows: true, audience: 'apiKey' });
      expect(r.rejected.map((x) => [x.pkValues, x.code])).toEqual([[['x'], 'constraint_violation']]);
      expect(rows(srv)).toEqual([
        { id: 'v', owner: 'u2', title: 'private', slug: 'shared-slug' },
        { id: 'y', owner: 'u1', title: 'fine', slug: 'other' },
      ]);
      // What the attacker downloads holds none of the victim's values.
      if (mode === 'judged (RLS)') {
        const got = download(srv, attacker, 'u1');
        expect(got.some((c) => c.val === 'private')).toBe(false);
        expect(rows(attacker).map((x) => x['id'])).toEqual(['y']);
      } else {
        // An API key may read everything; the rejected 'x' is answered with a removal.
        const removal = [...srv.changes({ excludeSiteId: attacker.siteId })].filter((c) => c.col === RIP_SENTINEL);
        expect(removal.map((c) => [Buffer.from(c.pk).toString(), c.cl % 2])).toEqual([[Buffer.from(encodePk(['x'])).toString(), 0]]);
      }
    });
  }

  test('primary-key values must have the declared type', () => {
    const srv = openReplica("CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, v TEXT); CREATE TABLE n (id INTEGER PRIMARY KEY NOT NULL, v TEXT)", ['t']);
    srv.init('n', 'cls', 1);
    const site = openReplica('CREATE TABLE z (id TEXT PRIMARY KEY NOT NULL)', []).siteId;
    const mk = (tbl: string, pk: SqlValue, val: string): Change => ({ tbl, pk: encodePk([pk]), col: 'v', val, colVersion: 1, dbVersion: 1, seq: 0, siteId: site, cl: 1 });
    srv.driver.exec("INSERT INTO t VALUES ('a1', 'victim'); INSERT INTO n VALUES (5, 'five')");
    const batch = [mk('t', new Uint8Array([0x61, 0x31]), 'blob key'), mk('n', '5', 'text key'), mk('t', 'ok', 'fine')];
    // A device (not authoritative) refuses such a batch whole.
    expect(() => srv.applyChanges(batch)).toThrow(/declared TEXT; the change carries a BLOB value/);
    const r = srv.applyChanges(batch, { rejectRows: true });
    expect(r.rejected.map((x) => [x.table, x.code])).toEqual([
      ['t', 'pk_type_mismatch'],
      ['n', 'pk_type_mismatch'],
    ]);
    expect(r.rejected[0]?.reason).toMatch(/declared TEXT; the change carries a BLOB value/);
    expect(tableRows(srv, 't')).toEqual([{ id: 'a1', v: 'victim' }, { id: 'ok', v: 'fine' }]);
    expect(tableRows(srv, 'n')).toEqual([{ id: 5n, v: 'five' }]);
  });
});

describe('tombstones remember last values', () => {
  test('a deletion is offered to the feed filter with the row it deleted', () => {
    const srv = server();
    const dev = openReplica(ITEMS, ['items']);
    dev.driver.exec("INSERT INTO items (id, owner, title) VALUES ('a', 'u1', 'x')");
    upload(dev, srv, 'u1');
    dev.driver.exec("DELETE FROM items WHERE id = 'a'");
    upload(dev, srv, 'u1');
    // A local delete (another program writing the central file) is remembered too.
    srv.driver.exec("INSERT INTO items (id, owner, title) VALUES ('b', 'u2', 'y')");
    srv.driver.exec("DELETE FROM items WHERE id = 'b'");
    const seen: [SqlValue, Tombstone | undefined][] = [];
    for (const _ of srv.changes({ rowFilter: (_t, pk, row, tomb) => (row === undefined && seen.push([pk[0] ?? null, tomb]), true) })) void _;
    expect(seen).toEqual([
      ['a', { lastValues: { id: 'a', owner: 'u1', title: 'x', slug: null }, audience: null }],
      ['b', { lastValues: { id: 'b', owner: 'u2', title: 'y', slug: null }, audience: null }],
    ]);
    const other = openReplica(ITEMS, ['items']);
    expect(download(srv, other, 'u3')).toEqual([]);
  });
});

describe('an authoritative merge numbers changes with its own clock', () => {
  test("a peer's huge db_version does not move the server clock (no clock poisoning)", () => {
    const srv = server();
    const dev = openReplica(ITEMS, ['items']);
    dev.driver.exec("INSERT INTO items (id, owner) VALUES ('a', 'u1')");
    const poisoned = changesFor(dev, srv).map((c) => ({ ...c, dbVersion: 2 ** 48 - 1 }));
    const before = srv.dbVersion();
    const r = srv.applyChanges(poisoned, { rejectRows: true, audience: 'apiKey' });
    expect(r.applied).toBeGreaterThan(0);
    expect(srv.dbVersion()).toBe(before + 1);
    // A device (not authoritative) keeps the Lamport rule.
    const peer = openReplica(ITEMS, ['items']);
    peer.applyChanges(poisoned);
    expect(peer.dbVersion()).toBe(2 ** 48 - 1);
  });
});

describe('rows that leave or enter a user\'s sight (a visibility-relevant change starts a new life)', () => {
  const VIS = new Map([['items', new Set(['owner'])]]);
  const giveAway = (user: string) => (t: RowTransition): RowVerdict | undefined =>
    (t.operation === 'INSERT' ? t.new?.['owner'] === user : t.old?.['owner'] === user) ? undefined : { code: 'rls_denied', reason: 'denied' };
  const send = (dev: SyncEngine, srv: SyncEngine, user: string, vis = VIS) =>
    srv.applyChanges(changesFor(dev, srv), { judge: giveAway(user), audience: `user:${user}`, canHold: ownerFilter(user), visibilityColumns: vis });
  const cursors = new Map<SyncEngine, number>();
  const pull = (srv: SyncEngine, dev: SyncEngine, user: string) => {
    const w = srv.dbVersion();
    dev.applyChanges([...srv.changes({ after: { dbVersion: cursors.get(dev) ?? 0, seq: Number.MAX_SAFE_INTEGER }, excludeSiteId: dev.siteId, rowFilter: ownerFilter(user), audience: `user:${user}` })]);
    cursors.set(dev, w);
  };

  test('a row given away leaves the giver\'s devices and reaches the receiver whole, though older than their cursor; and back again', () => {
    const srv = server();
    const a = openReplica(ITEMS, ['items']);
    const b = openReplica(ITEMS, ['items']);
    a.driver.exec("INSERT INTO items (id, owner, title) VALUES ('r', 'u1', 'keep this title')");
    expect(send(a, srv, 'u1').rejected).toEqual([]);
    pull(srv, a, 'u1');
    pull(srv, b, 'u2'); // b's cursor is now past the row's creation
    expect(rows(b)).toEqual([]);
    a.driver.exec("UPDATE items SET owner = 'u2' WHERE id = 'r'");
    expect(send(a, srv, 'u1').rejected).toEqual([]);
    pull(srv, b, 'u2');
    expect(rows(b)).toEqual([{ id: 'r', owner: 'u2', title: 'keep this title', slug: null }]);
    pull(srv, a, 'u1');
    expect(rows(a)).toEqual([]);
    // u2 gives it back: u1's device, which holds a removal of it, gets it whole again.
    b.driver.exec("UPDATE items SET owner = 'u1', title = 'returned' WHERE id = 'r'");
    expect(send(b, srv, 'u2').rejected).toEqual([]);
    pull(srv, a, 'u1');
    pull(srv, b, 'u2');
    expect(rows(a)).toEqual([{ id: 'r', owner: 'u1', title: 'returned', slug: null }]);
    expect(rows(b)).toEqual([]);
    expect(rows(srv)).toEqual(rows(a));
  });

  test('without visibility columns the receiver would get a partial row (the reason for the new life)', () => {
    const srv = server();
    const a = openReplica(ITEMS, ['items']);
    const b = openReplica(ITEMS, ['items']);
    a.driver.exec("INSERT INTO items (id, owner, title) VALUES ('r', 'u1', 'keep this title')");
    send(a, srv, 'u1', new Map());
    pull(srv, b, 'u2');
    a.driver.exec("UPDATE items SET owner = 'u2' WHERE id = 'r'");
    send(a, srv, 'u1', new Map());
    pull(srv, b, 'u2');
    expect(rows(b)).toEqual([{ id: 'r', owner: 'u2', title: '', slug: null }]);
  });
});

test('removals addressed to a principal are read for every table of one feed at once', () => {
  const ddl = `${ITEMS}; CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL DEFAULT '', body TEXT)`;
  const srv = openReplica(ddl, ['items', 'notes']);
  srv.setKeepTombstoneValues(true);
  const dev = openReplica(ddl, ['items', 'notes']);
  dev.driver.exec("INSERT INTO items (id, owner) VALUES ('i', 'u2'); INSERT INTO notes (id, owner) VALUES ('n', 'u2')");
  expect(srv.applyChanges(changesFor(dev, srv), { judge: ownerJudge('u1'), audience: 'user:u1' }).rejected).toHaveLength(2);
  const feed = [...srv.changes({ excludeSiteId: dev.siteId, rowFilter: ownerFilter('u1'), audience: 'user:u1' })];
  expect(feed.map((c) => [c.tbl, c.col, c.cl % 2])).toEqual([
    ['items', RIP_SENTINEL, 0],
    ['notes', RIP_SENTINEL, 0],
  ]);
});

test('a policy change: every live row starts a new life; devices drop what the old policy showed and the new one hides, and get what it newly shows, whole', () => {
  const srv = server();
  const owner1 = openReplica(ITEMS, ['items']);
  const owner2 = openReplica(ITEMS, ['items']);
  owner1.driver.exec("INSERT INTO items (id, owner, title) VALUES ('a', 'u1', 'private'), ('b', 'u1', 'public')");
  owner2.driver.exec("INSERT INTO items (id, owner, title) VALUES ('c', 'u2', 'public'), ('d', 'u2', 'private')");
  upload(owner1, srv, 'u1');
  upload(owner2, srv, 'u2');
  // Policy 1: own rows. u1's device syncs.
  const p1 = ownerFilter('u1');
  const p2 = (_t: string, _pk: readonly SqlValue[], row: Row) => row !== undefined && row['title'] === 'public';
  const dev = openReplica(ITEMS, ['items']);
  let cursor = srv.dbVersion();
  dev.applyChanges([...srv.changes({ excludeSiteId: dev.siteId, rowFilter: p1 })]);
  expect(rows(dev).map((r) => r['id'])).toEqual(['a', 'b']);
  // Policy 2: public rows. The change renews the table at version v.
  const v = srv.renewTable('items');
  expect(v).toBe(cursor + 1);
  const prior = (t: string, pk: readonly SqlValue[], row: Readonly<Record<string, SqlValue>>, at: number) => (at < (v as number) ? p1(t, pk, row) : p2(t, pk, row));
  const feed = [...srv.changes({ after: { dbVersion: cursor, seq: Number.MAX_SAFE_INTEGER }, excludeSiteId: dev.siteId, rowFilter: p2, priorFilter: prior })];
  dev.applyChanges(feed);
  cursor = srv.dbVersion();
  expect(rows(dev)).toEqual([
    { id: 'b', owner: 'u1', title: 'public', slug: null },
    { id: 'c', owner: 'u2', title: 'public', slug: null },
  ]);
  // Nothing of 'd' (hidden before and after) was sent.
  expect(feed.some((c) => Buffer.from(c.pk).toString().includes('d'))).toBe(false);
  // Later changes flow normally, and the renewed clocks still merge with the owners' devices.
  download(srv, owner1, 'u1');
  owner1.driver.exec("UPDATE items SET title = 'public' WHERE id = 'a'");
  // Under policy 2 visibility depends on the title: the change starts a new life of 'a'.
  srv.applyChanges(changesFor(owner1, srv), { judge: ownerJudge('u1'), audience: 'user:u1', visibilityColumns: new Map([['items', new Set(['title'])]]) });
  dev.applyChanges([...srv.changes({ after: { dbVersion: cursor, seq: Number.MAX_SAFE_INTEGER }, excludeSiteId: dev.siteId, rowFilter: p2, priorFilter: prior })]);
  expect(rows(dev).map((r) => r['id'])).toEqual(['a', 'b', 'c']);
  expect(rows(dev)[0]).toEqual({ id: 'a', owner: 'u1', title: 'public', slug: null });
});

test('turning tombstone values on regenerates delete triggers made by an older OffSync', () => {
  const e = openReplica(ITEMS, ['items']);
  // An older OffSync's delete trigger: no offsync_tombstones statement.
  const del = e.driver.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'items' AND sql LIKE '%AFTER DELETE%'").get() as { name: string; sql: string };
  const old = del.sql.replace(/INSERT OR REPLACE INTO offsync_tombstones[\s\S]*?;\s*(?=END)/, '');
  expect(old).not.toContain('offsync_tombstones');
  e.driver.exec(`DROP TRIGGER "${del.name}"; ${old}`);
  e.setKeepTombstoneValues(true);
  e.driver.exec("INSERT INTO items (id, owner, title) VALUES ('z', 'u1', 'gone'); DELETE FROM items WHERE id = 'z'");
  const seen: (Tombstone | undefined)[] = [];
  for (const _ of e.changes({ rowFilter: (_t, _pk, row, tomb) => (row === undefined && seen.push(tomb), true) })) void _;
  expect(seen).toEqual([{ lastValues: { id: 'z', owner: 'u1', title: 'gone', slug: null }, audience: null }]);
});

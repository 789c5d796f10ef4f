/**
 * Tombstone compaction (engine/compaction.ts, docs/PROTOCOL.md "Compaction and the resync
 * horizon"): a server and three devices in a star run random inserts, updates, deletes and
 * re-inserts of a few keys, with syncs in random order; the same run is replayed with compaction
 * at the smallest acknowledged version interleaved, and must end with exactly the same rows on
 * every replica. Random runs where devices are replaced by fresh ones (downloaded from 0, so they
 * never saw the compacted tombstones) that re-insert forgotten keys must converge too (the lift of
 * compaction.ts). Then: metadata after insert/delete churn and compaction against a fresh copy,
 * and a device past the horizon that is refused, resyncs and ends identical.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { CoreErrorCode, acknowledgedBy, isCoreError } from '@offsync/core';
import type { CompactionResult, SyncEngine } from '@offsync/core';
import { clockRows, openHarnessReplica, openReplica, Star, tableRows, TODOS_DDL } from '@offsync/core/testing';
import type { StarDevice } from '@offsync/core/testing';

/** FC_NUM_RUNS raises the number of runs, FC_SEED picks another seed (fixed in CI). */
const envRuns = Number(process.env['FC_NUM_RUNS']);
const RUNS = Number.isFinite(envRuns) && envRuns > 0 ? envRuns : 60;
const envSeed = Number(process.env['FC_SEED']);
const SEED = Number.isSafeInteger(envSeed) ? envSeed : 41_117;

const KEYS = ['a', 'b', 'c', 'd', 'e', 'f'];
const DEVICES = 3;

type Op =
  | { k: 'put'; d: number; key: string; title: string; done: number }
  | { k: 'update'; d: number; key: string; title: string }
  | { k: 'delete'; d: number; key: string }
  | { k: 'sync'; d: number }
  | { k: 'compact' }
  | { k: 'fresh'; d: number }
  | { k: 'freshPut'; d: number; key: string; title: string };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant('put' as const), d: fc.nat(DEVICES - 1), key: fc.constantFrom(...KEYS), title: fc.constantFrom('x', 'y', 'z'), done: fc.nat(2) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('update' as const), d: fc.nat(DEVICES - 1), key: fc.constantFrom(...KEYS), title: fc.constantFrom('p', 'q') }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('delete' as const), d: fc.nat(DEVICES - 1), key: fc.constantFrom(...KEYS) }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('sync' as const), d: fc.nat(DEVICES - 1) }) },
  { weight: 2, arbitrary: fc.constant({ k: 'compact' as const }) },
);

/** The same operations plus devices replaced by fresh ones that download from 0 (they never see compacted tombstones). */
const freshOpArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: opArb },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('fresh' as const), d: fc.nat(DEVICES - 1) }) },
  // Everyone syncs, the server compacts, device d is replaced by a fresh one and writes a key.
  { weight: 3, arbitrary: fc.record({ k: fc.constant('freshPut' as const), d: fc.nat(DEVICES - 1), key: fc.constantFrom(...KEYS), title: fc.constantFrom('x', 'y', 'z') }) },
);

type Device = StarDevice;

/**
 * A fresh device database (the Star's todos schema): a byte copy of one initialised template with
 * a site id of its own (openHarnessReplica, a third of openReplica's cost; the two properties open
 * ~1,300 devices). Every device ever opened here gets the next seed, so site ids never repeat.
 */
let deviceSeed = 0;
const freshDevice = (): Device => ({ e: openHarnessReplica(++deviceSeed, TODOS_DDL, ['todos']), sent: 0, recv: { dbVersion: 0, seq: 0 } });

/** The compaction star (`@offsync/core/testing` Star) with `n` devices, counting compactions that removed rows, driven by random operations. */
class RunStar extends Star {
  compactions = 0;

  constructor(n: number) {
    super();
    for (let i = 0; i < n; i++) this.add();
  }

  override add(): Device {
    const d = freshDevice();
    this.devices.push(d);
    return d;
  }

  /** Compaction at the smallest version every device has acknowledged (downloaded). */
  override compact(devices: readonly Device[] = this.devices): CompactionResult {
    const r = super.compact(devices);
    if (r.rows > 0) this.compactions++;
    return r;
  }

  /** Device i uploads what it has, then is replaced by a fresh device that downloads from 0. */
  reset(i: number): void {
    const old = this.devices[i] as Device;
    this.upload(old);
    old.e.close();
    const d = freshDevice();
    this.devices[i] = d;
    this.download(d);
  }

  apply(op: Op, withCompaction: boolean): void {
    if (op.k === 'compact') {
      if (withCompaction) this.compact();
      return;
    }
    if (op.k === 'fresh') return this.reset(op.d);
    if (op.k === 'freshPut') {
      this.settle();
      if (withCompaction) this.compact();
      this.reset(op.d);
      return this.apply({ k: 'put', d: op.d, key: op.key, title: op.title, done: 1 }, withCompaction);
    }
    const d = this.devices[op.d] as Device;
    const db = d.e.driver;
    if (op.k === 'put') db.prepare('INSERT INTO todos (id, title, done) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET title = excluded.title, done = excluded.done').run(op.key, op.title, BigInt(op.done));
    else if (op.k === 'update') db.prepare('UPDATE todos SET title = ? WHERE id = ?').run(op.title, op.key);
    else if (op.k === 'delete') db.prepare('DELETE FROM todos WHERE id = ?').run(op.key);
    else this.sync(d);
  }
}

const METADATA = /(__crdt_rows|__crdt_cells|^offsync_tombstones$|^offsync_prior$|^offsync_evictions$|^offsync_blocks|^offsync_lifted$)/;

/** Bytes of CRDT metadata (clock tables, their indexes, tombstone tables) stored in `e`'s pages. */
function metadataBytes(e: SyncEngine): number {
  e.foldPending();
  let sum = 0;
  for (const r of e.driver.prepare('SELECT name, sum(payload) AS p FROM dbstat GROUP BY name').all()) {
    if (METADATA.test(String(r['name']))) sum += Number(r['p']);
  }
  return sum;
}

describe('compaction property', () => {
  test('random runs with compaction at the min acknowledged version converge to the same rows as without it', () => {
    let compacted = 0;
    let deletedSeen = 0;
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 10, maxLength: 60 }), (ops) => {
        const plain = new RunStar(DEVICES);
        const compacting = new RunStar(DEVICES);
        try {
          for (const op of ops) {
            plain.apply(op, false);
            compacting.apply(op, true);
          }
          plain.settle();
          compacting.settle();
          compacting.compact();
          const expected = plain.rows();
          // Every replica of each run agrees with its server, and the two runs agree.
          for (const rows of expected) expect(rows).toEqual(expected[0]);
          expect(compacting.rows()).toEqual(expected);
          // And the compacted server still merges later writes the same way.
          const late = (s: Star): void => {
            const d = s.devices[0] as Device;
            for (const key of KEYS) d.e.driver.prepare("INSERT INTO todos (id, title) VALUES (?, 'late') ON CONFLICT (id) DO UPDATE SET note = 'late'").run(key);
            s.settle();
          };
          late(plain);
          late(compacting);
          expect(compacting.rows()).toEqual(plain.rows());
          compacted += compacting.compactions;
          if (ops.some((o) => o.k === 'delete')) deletedSeen++;
        } finally {
          plain.close();
          compacting.close();
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
    // The runs really compacted something (not only no-op compactions).
    expect(compacted).toBeGreaterThan(10);
    expect(deletedSeen).toBeGreaterThan(10);
  }, 120_000);

  test('random runs where fresh devices (downloaded from 0) re-insert compacted keys converge on every replica', () => {
    let reinserted = 0;
    fc.assert(
      fc.property(fc.array(freshOpArb, { minLength: 20, maxLength: 60 }), (ops) => {
        const s = new RunStar(DEVICES);
        /** Keys the server has held a clock for. */
        const known = new Set<string>();
        try {
          for (const op of ops) {
            if (op.k === 'freshPut') {
              s.settle();
              s.compact();
              s.reset(op.d);
              // A re-insert of a key the server forgot, by a device that never saw its tombstone.
              const hex = Buffer.from(op.key).toString('hex').toUpperCase();
              if (known.has(op.key) && !clockRows(s.server, 'todos').some((l) => l.includes(hex))) reinserted++;
              s.apply({ k: 'put', d: op.d, key: op.key, title: op.title, done: 1 }, true);
            } else s.apply(op, true);
            for (const r of tableRows(s.server, 'todos')) known.add(String(r['id']));
          }
          s.settle();
          const rows = s.rows();
          for (const r of rows) expect(r).toEqual(rows[0]);
          // Compaction again, then a write of every key on every device: still one state everywhere.
          s.compact();
          for (const [i, d] of s.devices.entries()) {
            for (const key of KEYS) d.e.driver.prepare('INSERT INTO todos (id, title) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET note = excluded.title').run(key, `late-${i}`);
          }
          s.settle();
          const after = s.rows();
          for (const r of after) expect(r).toEqual(after[0]);
          expect(after[0]?.map((r) => r['id'])).toEqual(KEYS);
        } finally {
          s.close();
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
    // Fresh devices really re-inserted forgotten keys.
    expect(reinserted).toBeGreaterThan(RUNS / 6);
  }, 120_000);

  test('after 10 rounds of insert/delete churn, compaction brings the metadata within 1.2× of a fresh copy', () => {
    const s = new RunStar(2);
    try {
      const [a, b] = s.devices as [Device, Device];
      const N = 200;
      let next = 0;
      const live: string[] = [];
      for (let round = 0; round < 10; round++) {
        const ins = a.e.driver.prepare("INSERT INTO todos (id, title, done) VALUES (?, 'churn', 0)");
        a.e.driver.transaction(() => {
          for (let i = 0; i < N; i++) {
            const id = `row-${String(next++).padStart(6, '0')}`;
            ins.run(id);
            live.push(id);
          }
        });
        s.sync(a);
        s.sync(b);
        // Device b deletes the older half of what is alive and updates a few of the rest.
        const del = b.e.driver.prepare('DELETE FROM todos WHERE id = ?');
        b.e.driver.transaction(() => {
          for (const id of live.splice(0, N / 2)) del.run(id);
          for (const id of live.slice(0, 10)) b.e.driver.prepare("UPDATE todos SET done = 1 WHERE id = ?").run(id);
        });
        s.sync(b);
        s.sync(a);
      }
      s.settle();
      const before = metadataBytes(s.server);
      s.compact();
      const after = metadataBytes(s.server);
      const fresh = openReplica();
      try {
        fresh.applyChanges([...s.server.changes({ after: { dbVersion: 0, seq: 0 } })]);
        expect(tableRows(fresh, 'todos')).toEqual(tableRows(s.server, 'todos'));
        const copy = metadataBytes(fresh);
        expect(tableRows(s.server, 'todos')).toHaveLength(live.length);
        // Churn left tombstones for 10 × N/2 deleted rows: compaction removes them.
        expect(before).toBeGreaterThan(1.5 * copy);
        expect(after).toBeLessThanOrEqual(1.2 * copy);
      } finally {
        fresh.close();
      }
    } finally {
      s.close();
    }
  }, 120_000);

  test('a device past the horizon is refused with RESYNC_REQUIRED, resyncs from 0 and ends identical', () => {
    const s = new RunStar(3);
    try {
      const [a, b, away] = s.devices as [Device, Device, Device];
      a.e.driver.exec("INSERT INTO todos (id, title) VALUES ('k1', 'one'), ('k2', 'two'), ('k3', 'three')");
      s.settle();
      // `away` leaves; the others delete, re-insert and update while it is gone.
      a.e.driver.exec("DELETE FROM todos WHERE id IN ('k1', 'k2')");
      s.sync(a);
      s.sync(b);
      b.e.driver.exec("INSERT INTO todos (id, title) VALUES ('k2', 'again'); UPDATE todos SET done = 1 WHERE id = 'k3'");
      s.sync(b);
      s.sync(a);
      // Compaction leaves the absent device out (it is past the horizon).
      const r = s.server.compact({ upTo: Math.min(acknowledgedBy(a.recv), acknowledgedBy(b.recv)) });
      expect(r.rows).toBeGreaterThan(0);
      expect(s.server.compactionFloor()).toBeGreaterThan(acknowledgedBy(away.recv));
      // Back, with an old cursor: refused, nothing half-applied.
      let code: string | undefined;
      try {
        s.download(away);
      } catch (e) {
        code = isCoreError(e) ? e.code : String(e);
      }
      expect(code).toBe(CoreErrorCode.RESYNC_REQUIRED);
      // A cursor at 0 (a fresh device) is exact and served.
      const fresh = openReplica();
      try {
        const device: Device = { e: fresh, sent: 0, recv: { dbVersion: 0, seq: 0 } };
        s.download(device);
        s.devices[2] = device;
        const expected = tableRows(s.server, 'todos');
        expect(expected.map((x) => x['id'])).toEqual(['k2', 'k3']);
        for (const rows of s.rows()) expect(rows).toEqual(expected);
        // It syncs on like any device: a later write of it reaches everyone.
        fresh.driver.exec("UPDATE todos SET title = 'from-resynced' WHERE id = 'k3'");
        s.settle();
        for (const rows of s.rows()) expect(rows.find((x) => x['id'] === 'k3')?.['title']).toBe('from-resynced');
      } finally {
        away.e.close();
      }
    } finally {
      s.close();
    }
  }, 120_000);
});

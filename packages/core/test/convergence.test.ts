/**
 * Convergence of the CRDT engine (docs/PROTOCOL.md §P5) under an unreliable network:
 * fast-check drives the replica simulator (src/testing/replica-harness.ts) over the real engine.
 *
 * Defaults: fixed seed, 1,000 mesh runs + 300 star runs. Long mode: `FC_NUM_RUNS=20000` (both
 * properties), `FC_SEED=<n>` to pick another seed, `FC_PATH=<path>` with the seed to replay a
 * reported counterexample. fast-check prints the seed and path of any failure.
 */
import fc from 'fast-check';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import type { SyncEngine, SqlValue } from '@offsync/core';
import {
  ReplicaCluster,
  assertConverged,
  drainReplicaPool,
  openHarnessReplica,
  randomScenario,
  runScenario,
  runStarScenario,
  scenarioArb,
  starScenarioArb,
  tableRows,
  tagValue,
  typedRows,
} from '@offsync/core/testing';

const envInt = (name: string): number | undefined => {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : Number.parseInt(v, 10);
};
const LONG_RUNS = envInt('FC_NUM_RUNS');
const SEED = envInt('FC_SEED') ?? 20_240_611;
const PATH = process.env['FC_PATH'];
const params = (defaultRuns: number): fc.Parameters<unknown> => ({
  numRuns: LONG_RUNS ?? defaultRuns,
  seed: SEED,
  ...(PATH ? { path: PATH } : {}),
  endOnFailure: false,
});

afterAll(() => drainReplicaPool());

describe('convergence properties', () => {
  test('mesh: 3–5 replicas, reordered/duplicated/dropped messages, partitions, then anti-entropy', () => {
    fc.assert(
      fc.property(scenarioArb({ minReplicas: 3, maxReplicas: 5, minSteps: 5, maxSteps: 25 }), (s) => {
        runScenario(s, { seed: 1 });
      }),
      params(1000),
    );
  }, 600_000);

  test('star: clients sync with a server through cursors that never skip changes', () => {
    fc.assert(
      fc.property(starScenarioArb({ minReplicas: 2, maxReplicas: 4, minSteps: 5, maxSteps: 25 }), (s) => {
        runStarScenario(s, { seed: 2 });
      }),
      params(300),
    );
  }, 600_000);
});

describe('harness self-checks', () => {
  test('pooled replicas (reset in SQL) behave exactly like fresh ones', () => {
    let ops = 0;
    let applied = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const s = randomScenario(seed, { maxSteps: 25 });
      const pooled = runScenario(s, { seed: 3 });
      const fresh = runScenario(s, { seed: 3, reuse: false });
      expect(pooled).toEqual(fresh);
      ops += fresh.ops;
      applied += fresh.applied;
    }
    // The scenarios do real work: local writes, and messages that change receivers.
    expect(ops).toBeGreaterThan(100);
    expect(applied).toBeGreaterThan(50);
  });

  test('assertConverged sees storage classes (1 vs 1.0) and clocks', () => {
    const [a, b] = replicas(2) as [SyncEngine, SyncEngine];
    exec(a, "INSERT INTO t (id, a) VALUES ('old', 1)");
    exec(b, "INSERT INTO t (id, a) VALUES ('old', 1.0)");
    expect(() => assertConverged([a, b])).toThrow(/diverges/);
    exec(b, "UPDATE t SET a = 1 WHERE id = 'old'"); // same rows, but col_version 2 vs 1
    expect(typedRows(a, 't')).toEqual(typedRows(b, 't'));
    expect(() => assertConverged([a, b])).toThrow(/diverges/);
  });
});

// ---------------------------------------------------------------------------------------------
// Targeted cases

const open: SyncEngine[] = [];
function replicas(n: number): SyncEngine[] {
  const rs = Array.from({ length: n }, (_, i) => openHarnessReplica(1000 + open.length + i));
  open.push(...rs);
  return rs;
}
afterEach(() => {
  for (const r of open.splice(0)) r.close();
});

function exec(e: SyncEngine, sql: string, ...params: SqlValue[]): void {
  e.driver.prepare(sql).run(...params);
}

/** A payload of everything `from` has for `to`, built now (a snapshot), or null. */
function payload(from: SyncEngine, to: SyncEngine): Uint8Array | null {
  return from.encodeChanges([...from.changes({ excludeSiteId: to.siteId })]);
}

function deliver(p: Uint8Array | null, to: SyncEngine): number {
  return p === null ? 0 : to.applyPayload(p).applied;
}

/** Full pairwise exchange until nothing applies, then the convergence assertion. */
function settle(rs: SyncEngine[]): void {
  for (let round = 0; round < 10; round++) {
    let applied = 0;
    for (const a of rs) for (const b of rs) if (a !== b) applied += deliver(payload(a, b), b);
    if (applied === 0) break;
  }
  assertConverged(rs);
}

function cl(e: SyncEngine, table: string, pkHex: string): number {
  const c = [...e.changes()].find((ch) => ch.tbl === table && Buffer.from(ch.pk).toString('hex') === pkHex.toLowerCase());
  return c?.cl ?? 0;
}

const PK_OLD = '010b036f6c64'; // ['old']

describe('delete vs concurrent update', () => {
  for (const order of ['delete first', 'update first'] as const) {
    test(`the delete wins (${order})`, () => {
      const [a, b] = replicas(2) as [SyncEngine, SyncEngine];
      exec(a, "INSERT INTO t (id, a, b) VALUES ('old', 1, 'x')");
      deliver(payload(a, b), b);
      exec(a, "DELETE FROM t WHERE id = 'old'");
      exec(b, "UPDATE t SET a = 2, b = 'y', c = 5 WHERE id = 'old'");
      exec(b, "UPDATE t SET a = 3 WHERE id = 'old'");
      const pa = payload(a, b);
      const pb = payload(b, a);
      if (order === 'delete first') {
        deliver(pa, b);
        deliver(pb, a);
      } else {
        deliver(pb, a);
        deliver(pa, b);
      }
      settle([a, b]);
      expect(tableRows(a, 't')).toEqual([]);
      expect(cl(a, 't', PK_OLD)).toBe(2);
    });
  }

  test('an update after the delete was merged cannot touch the row; a re-insert resurrects it everywhere', () => {
    const [a, b, c] = replicas(3) as [SyncEngine, SyncEngine, SyncEngine];
    exec(a, "INSERT INTO t (id, a) VALUES ('old', 1)");
    settle([a, b, c]);
    exec(a, "DELETE FROM t WHERE id = 'old'");
    exec(b, "UPDATE t SET a = 9 WHERE id = 'old'");
    deliver(payload(a, c), c);
    deliver(payload(b, c), c); // stale update (cl 1) arrives after the delete (cl 2)
    expect(tableRows(c, 't')).toEqual([]);
    exec(c, "INSERT INTO t (id, a) VALUES ('old', 'again')");
    settle([a, b, c]);
    expect(typedRows(b, 't')).toEqual(['id=text:"old" a=text:"again" b=null c=int:0']);
    expect(cl(b, 't', PK_OLD)).toBe(3);
  });
});

describe('concurrent re-inserts', () => {
  test('the longer causal length wins whole: its row, not a mix', () => {
    const [a, b, c] = replicas(3) as [SyncEngine, SyncEngine, SyncEngine];
    exec(a, "INSERT INTO t (id, a, b, c) VALUES ('old', 1, 'base', 1)");
    settle([a, b, c]);
    // a: delete + re-insert (cl 3)
    exec(a, "DELETE FROM t WHERE id = 'old'");
    exec(a, "INSERT INTO t (id, a, b, c) VALUES ('old', 'A', 'A', 3)");
    exec(a, "UPDATE t SET b = 'A2' WHERE id = 'old'"); // higher col_version on b, but an older life
    // b: two lives (cl 5)
    exec(b, "DELETE FROM t WHERE id = 'old'");
    exec(b, "INSERT INTO t (id, a) VALUES ('old', 'B')");
    exec(b, "DELETE FROM t WHERE id = 'old'");
    exec(b, "INSERT INTO t (id, a) VALUES ('old', 'B2')");
    // c only hears about a first, then b
    deliver(payload(a, c), c);
    expect(cl(c, 't', PK_OLD)).toBe(3);
    deliver(payload(b, c), c);
    expect(cl(c, 't', PK_OLD)).toBe(5);
    settle([a, b, c]);
    expect(typedRows(a, 't')).toEqual(['id=text:"old" a=text:"B2" b=null c=int:0']);
    expect(cl(a, 't', PK_OLD)).toBe(5);
  });

  test('re-insert (cl 3) beats a concurrent second delete (cl 2) and the other way round with cl 4', () => {
    const [a, b] = replicas(2) as [SyncEngine, SyncEngine];
    exec(a, "INSERT INTO t (id, a) VALUES ('old', 1)");
    settle([a, b]);
    exec(a, "DELETE FROM t WHERE id = 'old'");
    exec(a, "INSERT INTO t (id, a) VALUES ('old', 2)");
    exec(b, "DELETE FROM t WHERE id = 'old'");
    settle([a, b]);
    expect(typedRows(b, 't')).toEqual(['id=text:"old" a=int:2 b=null c=int:0']);
    exec(b, "DELETE FROM t WHERE id = 'old'"); // cl 4
    exec(a, "UPDATE t SET a = 3 WHERE id = 'old'"); // still cl 3
    settle([a, b]);
    expect(tableRows(a, 't')).toEqual([]);
    expect(cl(a, 't', PK_OLD)).toBe(4);
  });
});

describe('primary-key change', () => {
  for (const order of ['pk change first', 'update first'] as const) {
    test(`concurrent with an update of the old key (${order})`, () => {
      const [a, b] = replicas(2) as [SyncEngine, SyncEngine];
      exec(a, "INSERT INTO t (id, a, b) VALUES ('old', 1, 'x')");
      settle([a, b]);
      exec(a, "UPDATE t SET id = 'new' WHERE id = 'old'");
      exec(b, "UPDATE t SET b = 'edited', c = 7 WHERE id = 'old'");
      const pa = payload(a, b);
      const pb = payload(b, a);
      if (order === 'pk change first') {
        deliver(pa, b);
        deliver(pb, a);
      } else {
        deliver(pb, a);
        deliver(pa, b);
      }
      settle([a, b]);
      // The old key is tombstoned (cl 2), so the concurrent update of it (cl 1) is ignored.
      expect(typedRows(a, 't')).toEqual(['id=text:"new" a=int:1 b=text:"x" c=int:0']);
      expect(cl(a, 't', PK_OLD)).toBe(2);
    });
  }

  test('composite key change and a concurrent change of the same row to another key', () => {
    const [a, b, c] = replicas(3) as [SyncEngine, SyncEngine, SyncEngine];
    exec(a, "INSERT INTO k (a, b, v, w) VALUES ('x', 0, 1.5, 'w')");
    settle([a, b, c]);
    exec(a, "UPDATE k SET b = 1 WHERE a = 'x' AND b = 0");
    exec(b, "UPDATE k SET a = 'y' WHERE a = 'x' AND b = 0");
    exec(c, "UPDATE k SET v = x'00' WHERE a = 'x' AND b = 0");
    settle([a, b, c]);
    expect(typedRows(a, 'k')).toEqual(['a=text:"x" b=int:1 v=real:1.5 w=text:"w"', 'a=text:"y" b=int:0 v=real:1.5 w=text:"w"']);
  });
});

describe('duplicate and stale delivery', () => {
  test('a payload applied twice, and an old payload after a newer one, change nothing', () => {
    const [a, b] = replicas(2) as [SyncEngine, SyncEngine];
    exec(a, "INSERT INTO t (id, a, b) VALUES ('old', 1, 'x')");
    const p1 = payload(a, b);
    exec(a, "UPDATE t SET a = 2.0, b = NULL WHERE id = 'old'");
    exec(a, "INSERT INTO k (a, b, v) VALUES ('x', 0, x'ff')");
    const p2 = payload(a, b);
    exec(a, "DELETE FROM k WHERE a = 'x'");
    const p3 = payload(a, b);
    expect(deliver(p2, b)).toBeGreaterThan(0);
    const after2 = JSON.stringify([typedRows(b, 't'), typedRows(b, 'k')]);
    expect(deliver(p2, b)).toBe(0);
    expect(deliver(p1, b)).toBe(0);
    expect(JSON.stringify([typedRows(b, 't'), typedRows(b, 'k')])).toBe(after2);
    deliver(p3, b);
    deliver(p3, b);
    deliver(p2, b);
    deliver(p1, b);
    settle([a, b]);
    expect(typedRows(b, 'k')).toEqual([]);
    expect(typedRows(b, 't')).toEqual(['id=text:"old" a=real:2 b=null c=int:0']);
  });

  test('the same messages in different orders, duplicated, give the same state', () => {
    const states = [
      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      [3, 1, 1, 0, 2, 5, 0, 4, 0, 0, 0, 0],
      [5, 4, 3, 2, 1, 0, 0, 0],
    ].map((order) => {
      const c = new ReplicaCluster(3, { seed: 77, reuse: false });
      try {
        c.op(0, { kind: 'insert', table: 't', key: 0, vals: [1, 9, 2] });
        c.send(0, 1);
        c.send(0, 2, 'full', true);
        c.deliver(1, true); // 0 → 2 arrives (and stays queued: delivered again later)
        c.op(1, { kind: 'update', table: 't', key: 0, cols: [0], vals: [5] });
        c.op(2, { kind: 'delete', table: 't', key: 0 });
        c.send(1, 2);
        c.send(2, 1, 'full', true);
        c.send(1, 0);
        c.send(2, 0);
        for (const i of order) c.deliver(i, i % 2 === 1);
        c.antiEntropy();
        c.assertConverged();
        return JSON.stringify([typedRows(c.replicas[0]!, 't'), typedRows(c.replicas[0]!, 'k')]);
      } finally {
        c.close();
      }
    });
    expect(new Set(states).size).toBe(1);
    expect(states[0]).toBe('[[],[]]');
  });
});

describe('equal col_version: the value order breaks the tie (INTEGER > REAL > TEXT > BLOB > NULL)', () => {
  const cases: [string, string, string][] = [
    // [sql literal on replica a, sql literal on replica b, expected tagged winner]
    ['1', '1.0', 'int:1'],
    ['1.0', "'1'", 'real:1'],
    ['0.5', "'zzz'", 'real:0.5'],
    ["'a'", "x'ff'", 'text:"a"'],
    ["x''", 'NULL', 'blob:'],
    ['-5', '2', 'int:2'],
    ['1.5', '1.25', 'real:1.5'],
    ["'ab'", "'b'", 'text:"b"'],
    ["'abc'", "'ab'", 'text:"abc"'],
    ["x'0100'", "x'01'", 'blob:0100'],
    ["x'02'", "x'0100'", 'blob:02'],
  ];
  for (const [x, y, winner] of cases) {
    for (const order of ['a first', 'b first'] as const) {
      test(`${x} vs ${y} → ${winner} (${order})`, () => {
        const [a, b] = replicas(2) as [SyncEngine, SyncEngine];
        exec(a, "INSERT INTO t (id, a) VALUES ('old', 'base')");
        settle([a, b]);
        exec(a, `UPDATE t SET a = ${x} WHERE id = 'old'`);
        exec(b, `UPDATE t SET a = ${y} WHERE id = 'old'`);
        const pa = payload(a, b);
        const pb = payload(b, a);
        if (order === 'a first') {
          deliver(pa, b);
          deliver(pb, a);
        } else {
          deliver(pb, a);
          deliver(pa, b);
        }
        settle([a, b]);
        const v = tableRows(a, 't')[0]?.['a'] ?? null;
        expect(tagValue(v)).toBe(winner);
        expect(tagValue(tableRows(b, 't')[0]?.['a'] ?? null)).toBe(winner);
      });
    }
  }

  test('a higher col_version beats the value order', () => {
    const [a, b] = replicas(2) as [SyncEngine, SyncEngine];
    exec(a, "INSERT INTO t (id, a) VALUES ('old', 'base')");
    settle([a, b]);
    exec(a, "UPDATE t SET a = 'n1' WHERE id = 'old'");
    exec(a, "UPDATE t SET a = NULL WHERE id = 'old'"); // col_version 3
    exec(b, "UPDATE t SET a = 99 WHERE id = 'old'"); // col_version 2, INTEGER
    settle([a, b]);
    expect(tagValue(tableRows(b, 't')[0]?.['a'] ?? null)).toBe('null');
  });
});

/**
 * Golden interop tests against the REAL SQLite Sync extension (cloudsync 0.9.99 in wasm, used
 * under its licence's test-only allowance, docs/PROTOCOL.md §P7): an OffSync replica and an
 * extension database exchange payloads both ways and must end with identical tables (exact
 * storage classes) and identical per-cell clocks (col_version, causal length).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { SyncEngine, SqlValue } from '@offsync/core';
import {
  TODOS_DDL,
  acquireReplica,
  closeExtension,
  drainReplicaPool,
  openExtension,
  openReplica,
  releaseReplica,
  tagValue,
  typedRows,
} from '@offsync/core/testing';
import type { ExtensionDb, ExtensionModule } from '@offsync/core/testing';

let ext: ExtensionModule;
beforeAll(async () => {
  ext = await openExtension();
});
afterAll(async () => {
  drainReplicaPool();
  await closeExtension();
});

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function openExt(): ExtensionDb {
  const db = ext.openDb();
  db.exec(TODOS_DDL);
  db.exec(`SELECT cloudsync_init('todos')`);
  return db;
}

/** Extension → ours: everything the extension has that did not come from `ours`. */
function extToOurs(db: ExtensionDb, ours: SyncEngine): number {
  const p = db.payloadEncode(`site_id != x'${hex(ours.siteId)}'`);
  if (p === null) return 0;
  // Strict schema-hash check (default): the extension's hash must be one ours knows.
  return ours.applyPayload(p).applied;
}

/** Ours → extension. */
function oursToExt(ours: SyncEngine, db: ExtensionDb): number {
  const siteId = Buffer.from(db.siteIdHex(), 'hex');
  const p = ours.encodeChanges([...ours.changes({ excludeSiteId: siteId })]);
  if (p === null) return 0;
  return db.payloadApply(p);
}

function oursToOurs(from: SyncEngine, to: SyncEngine): number {
  const p = from.encodeChanges([...from.changes({ excludeSiteId: to.siteId })]);
  return p === null ? 0 : to.applyPayload(p).applied;
}

const TODO_COLS = ['id', 'title', 'done', 'note'];

/**
 * The extension's rows rendered like {@link typedRows}. TEXT is read as hex and decoded here:
 * ExtensionDb's TEXT reader stops at an embedded NUL (wasm C-string conversion) although the
 * stored value is complete.
 */
function extRows(db: ExtensionDb): string[] {
  const sel = TODO_COLS.map((c) => `${c}, typeof(${c}) AS "t_${c}", hex(${c}) AS "h_${c}"`).join(', ');
  return db.all(`SELECT ${sel} FROM todos ORDER BY id`).map((r) =>
    TODO_COLS.map((c) => {
      const v = r[`t_${c}`] === 'text' ? new TextDecoder().decode(Buffer.from(String(r[`h_${c}`]), 'hex')) : (r[c] ?? null);
      return `${c}=${tagValue(v)}`;
    }).join(' '),
  );
}

/**
 * (tbl, hex(pk), col, col_version, cl) of every clock entry. Explicit cl-1 sentinels are left
 * out: §P5 "no sentinel means 1", and a peer that already knows the row ignores an incoming cl-1
 * sentinel (§P5 merge step 3), so its presence is not a comparable fact.
 */
function extClocks(db: ExtensionDb): string[] {
  return db
    .all<{ c: string }>(
      `SELECT tbl || '/' || hex(pk) || '/' || col_name || '=' || col_version || '/cl' || cl AS c FROM cloudsync_changes
       WHERE NOT (col_name = '__[RIP]__' AND col_version = 1)`,
    )
    .map((r) => String(r.c))
    .sort();
}

function ourClocks(e: SyncEngine): string[] {
  return [...e.changes()]
    .filter((c) => !(c.col === '__[RIP]__' && c.colVersion === 1))
    .map((c) => `${c.tbl}/${hex(c.pk).toUpperCase()}/${c.col}=${c.colVersion}/cl${c.cl}`)
    .sort();
}

/** Rows and clocks of one peer, for quiescence checks (the extension's apply count includes losers). */
function state(p: SyncEngine | ExtensionDb): string {
  return 'driver' in p ? JSON.stringify([typedRows(p, 'todos'), ourClocks(p)]) : JSON.stringify([extRows(p), extClocks(p)]);
}

/** Exchanges both ways until neither side's rows or clocks change any more. */
function sync(db: ExtensionDb, ours: SyncEngine): void {
  let before = state(db) + state(ours);
  for (let i = 0; i < 6; i++) {
    extToOurs(db, ours);
    oursToExt(ours, db);
    const after = state(db) + state(ours);
    if (after === before) return;
    before = after;
  }
  throw new Error('no quiescence after 6 exchanges');
}

function expectSame(db: ExtensionDb, ours: SyncEngine): void {
  expect(typedRows(ours, 'todos')).toEqual(extRows(db));
  expect(ourClocks(ours)).toEqual(extClocks(db));
}

function both(): { db: ExtensionDb; ours: SyncEngine; close: () => void } {
  const db = openExt();
  const ours = openReplica();
  return {
    db,
    ours,
    close: () => {
      db.close();
      ours.close();
    },
  };
}

function run(e: SyncEngine | ExtensionDb, sql: string, params: SqlValue[] = []): void {
  if ('driver' in e) e.driver.prepare(sql).run(...params);
  else e.exec(sql, params);
}

describe('golden scenarios: ours ↔ extension 0.9.99', () => {
  test('extension version and schema hash', () => {
    expect(ext.cloudsyncVersion).toBe('0.9.99');
    const { db, ours, close } = both();
    try {
      const extHashes = db.all('SELECT hash FROM cloudsync_schema_versions').map((r) => BigInt.asUintN(64, r['hash'] as bigint));
      expect(extHashes.length).toBeGreaterThan(0);
      for (const h of extHashes) expect(ours.knownSchemaHashes()).toContain(h);
      expect(extHashes).toContain(ours.ddlSchemaHash());
    } finally {
      close();
    }
  });

  test('inserts on both sides', () => {
    const { db, ours, close } = both();
    try {
      run(db, "INSERT INTO todos (id, title, done, note) VALUES ('e1', 'from ext', 1, 'n')");
      run(db, "INSERT INTO todos (id) VALUES ('e2')");
      run(ours, "INSERT INTO todos (id, title, done, note) VALUES ('o1', 'from ours', 0, NULL)");
      run(ours, "INSERT INTO todos (id, title) VALUES ('e2', 'same key, other side')");
      sync(db, ours);
      expectSame(db, ours);
      expect(extRows(db)).toHaveLength(3);
    } finally {
      close();
    }
  });

  const ties: [string, string, string][] = [
    ['title', "'fromExt'", "'fromOurs'"],
    ['done', '1', '1.0'],
    ['done', '1.5', "'1'"],
    ['note', "x'01'", "'a'"],
    ['note', 'NULL', "x''"],
    ['note', "'zz'", "'zza'"],
  ];
  for (const [col, onExt, onOurs] of ties) {
    for (const first of ['ext first', 'ours first'] as const) {
      test(`concurrent update, equal col_version: ${col} = ${onExt} (ext) vs ${onOurs} (ours), ${first}`, () => {
        const { db, ours, close } = both();
        try {
          run(db, "INSERT INTO todos (id, title, note) VALUES ('x', 'base', 'base')");
          sync(db, ours);
          run(db, `UPDATE todos SET ${col} = ${onExt} WHERE id = 'x'`);
          run(ours, `UPDATE todos SET ${col} = ${onOurs} WHERE id = 'x'`);
          if (first === 'ext first') {
            extToOurs(db, ours);
            oursToExt(ours, db);
          } else {
            oursToExt(ours, db);
            extToOurs(db, ours);
          }
          sync(db, ours);
          expectSame(db, ours);
        } finally {
          close();
        }
      });
    }
  }

  test('concurrent update, different col_version: the side that wrote more often wins', () => {
    const { db, ours, close } = both();
    try {
      run(ours, "INSERT INTO todos (id, title) VALUES ('x', 'base')");
      sync(db, ours);
      run(db, "UPDATE todos SET title = 'e1' WHERE id = 'x'");
      run(db, "UPDATE todos SET title = 'a-lower' WHERE id = 'x'");
      run(ours, "UPDATE todos SET title = 'zzz' WHERE id = 'x'");
      run(ours, "UPDATE todos SET done = 7 WHERE id = 'x'");
      sync(db, ours);
      expectSame(db, ours);
      expect(extRows(db)).toEqual(['id=text:"x" title=text:"a-lower" done=int:7 note=null']);
    } finally {
      close();
    }
  });

  for (const deleter of ['ext', 'ours'] as const) {
    test(`delete (${deleter}) vs concurrent update (other side)`, () => {
      const { db, ours, close } = both();
      try {
        run(db, "INSERT INTO todos (id, title) VALUES ('x', 'base')");
        sync(db, ours);
        run(deleter === 'ext' ? db : ours, "DELETE FROM todos WHERE id = 'x'");
        run(deleter === 'ext' ? ours : db, "UPDATE todos SET title = 'edit', done = 1 WHERE id = 'x'");
        sync(db, ours);
        expectSame(db, ours);
        expect(extRows(db)).toEqual([]);
      } finally {
        close();
      }
    });

    test(`re-insert after delete (${deleter}), then a concurrent longer life on the other side`, () => {
      const { db, ours, close } = both();
      try {
        const me = deleter === 'ext' ? db : ours;
        const other = deleter === 'ext' ? ours : db;
        run(me, "INSERT INTO todos (id, title, note) VALUES ('x', 'one', 'n1')");
        sync(db, ours);
        run(me, "DELETE FROM todos WHERE id = 'x'");
        run(me, "INSERT INTO todos (id, title) VALUES ('x', 'two')");
        sync(db, ours);
        expectSame(db, ours);
        run(me, "UPDATE todos SET title = 'three' WHERE id = 'x'");
        run(other, "DELETE FROM todos WHERE id = 'x'");
        run(other, "INSERT INTO todos (id, title, done) VALUES ('x', 'four', 4)");
        sync(db, ours);
        expectSame(db, ours);
        expect(extRows(db)).toEqual(['id=text:"x" title=text:"four" done=int:4 note=null']);
      } finally {
        close();
      }
    });

    test(`primary-key change on ${deleter}, with a concurrent update of the old key on the other side`, () => {
      const { db, ours, close } = both();
      try {
        const me = deleter === 'ext' ? db : ours;
        const other = deleter === 'ext' ? ours : db;
        run(me, "INSERT INTO todos (id, title, done, note) VALUES ('old', 't', 1, 'n')");
        run(me, "UPDATE todos SET title = 't2' WHERE id = 'old'");
        sync(db, ours);
        run(me, "UPDATE todos SET id = 'new', note = 'moved' WHERE id = 'old'");
        run(other, "UPDATE todos SET done = 9 WHERE id = 'old'");
        sync(db, ours);
        expectSame(db, ours);
        run(other, "UPDATE todos SET id = 'newer' WHERE id = 'new'");
        sync(db, ours);
        expectSame(db, ours);
        expect(extRows(db).map((r) => r.split(' ')[0])).toEqual(['id=text:"newer"']);
      } finally {
        close();
      }
    });
  }

  test('values of every storage class, both directions', () => {
    const { db, ours, close } = both();
    try {
      const values: SqlValue[] = [null, 0n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 1.0, -2.5, 1e300, '', 'ü€😀', 'a\u0000b', new Uint8Array([]), new Uint8Array([0, 255])];
      values.forEach((v, i) => {
        run(i % 2 === 0 ? db : ours, 'INSERT INTO todos (id, title, done, note) VALUES (?, ?, ?, ?)', [`v${i}`, `t${i}`, v ?? 0n, v]);
      });
      sync(db, ours);
      expectSame(db, ours);
      values.forEach((v, i) => {
        run(i % 2 === 0 ? ours : db, 'UPDATE todos SET done = ?, note = ? WHERE id = ?', [v ?? 1n, v, `v${(i + 3) % values.length}`]);
      });
      sync(db, ours);
      expectSame(db, ours);
    } finally {
      close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Randomized: one extension database and two OffSync replicas

type Op =
  | { kind: 'insert' | 'replace'; key: number; title: number; done: number; note: number }
  | { kind: 'update'; key: number; col: 'title' | 'done' | 'note'; val: number }
  | { kind: 'delete'; key: number }
  | { kind: 'pk'; key: number; to: number };

const KEYS = ['a', 'b', 'c'];
const VALS: SqlValue[] = [null, 0n, 1n, 1.0, 2.5, '', '1', 'a', 'b', new Uint8Array([1]), new Uint8Array([])];

function opSql(op: Op): [string, SqlValue[]] {
  const v = (i: number): SqlValue => VALS[i % VALS.length] ?? null;
  const nn = (i: number): SqlValue => v(i) ?? 0n;
  switch (op.kind) {
    case 'insert':
    case 'replace':
      return [`INSERT ${op.kind === 'replace' ? 'OR REPLACE ' : ''}INTO todos (id, title, done, note) VALUES (?, ?, ?, ?)`, [KEYS[op.key]!, nn(op.title), nn(op.done), v(op.note)]];
    case 'update':
      return [`UPDATE todos SET ${op.col} = ? WHERE id = ?`, [op.col === 'note' ? v(op.val) : nn(op.val), KEYS[op.key]!]];
    case 'delete':
      return ['DELETE FROM todos WHERE id = ?', [KEYS[op.key]!]];
    case 'pk':
      return ['UPDATE todos SET id = ? WHERE id = ?', [KEYS[op.to]!, KEYS[op.key]!]];
  }
}

const key = fc.nat({ max: KEYS.length - 1 });
const val = fc.nat({ max: VALS.length - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constantFrom('insert' as const, 'replace' as const), key, title: val, done: val, note: val }),
  fc.record({ kind: fc.constant('update' as const), key, col: fc.constantFrom('title' as const, 'done' as const, 'note' as const), val }),
  fc.record({ kind: fc.constant('delete' as const), key }),
  fc.record({ kind: fc.constant('pk' as const), key, to: key }),
);
/** who: 0 = extension, 1 and 2 = ours. sync: [from, to]. */
const stepArb = fc.oneof(
  { weight: 3, arbitrary: fc.record({ who: fc.nat({ max: 2 }), op: opArb }) },
  { weight: 2, arbitrary: fc.record({ from: fc.nat({ max: 2 }), to: fc.nat({ max: 2 }) }) },
);

function tryRun(target: SyncEngine | ExtensionDb, op: Op): void {
  const [sql, params] = opSql(op);
  try {
    run(target, sql, params);
  } catch (e) {
    if (!/constraint/i.test(String(e))) throw e;
  }
}

describe('randomized interop', () => {
  test('one extension database and two OffSync replicas converge', () => {
    const numRuns = Number(process.env['FC_INTEROP_RUNS'] ?? 100);
    const seed = Number(process.env['FC_SEED'] ?? 424_242);
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 3, maxLength: 20, size: 'max' }), (steps) => {
        const db = openExt();
        const o1 = acquireReplica(501, TODOS_DDL, ['todos']);
        const o2 = acquireReplica(502, TODOS_DDL, ['todos']);
        const peers: (SyncEngine | ExtensionDb)[] = [db, o1, o2];
        const send = (from: number, to: number): number => {
          if (from === to) return 0;
          const a = peers[from]!;
          const b = peers[to]!;
          if (!('driver' in a)) return extToOurs(a, b as SyncEngine);
          if (!('driver' in b)) return oursToExt(a, b);
          return oursToOurs(a, b);
        };
        try {
          for (const s of steps) {
            if ('op' in s) tryRun(peers[s.who]!, s.op);
            else send(s.from, s.to);
          }
          let quiet = false;
          let before = peers.map(state).join();
          for (let round = 0; round < 6 && !quiet; round++) {
            for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) send(i, j);
            const after = peers.map(state).join();
            quiet = after === before;
            before = after;
          }
          expect(quiet).toBe(true);
          const rows = extRows(db);
          const clocks = extClocks(db);
          expect(typedRows(o1, 'todos')).toEqual(rows);
          expect(typedRows(o2, 'todos')).toEqual(rows);
          expect(ourClocks(o1)).toEqual(clocks);
          expect(ourClocks(o2)).toEqual(clocks);
        } finally {
          db.close();
          releaseReplica(o1);
          releaseReplica(o2);
        }
      }),
      { numRuns, seed },
    );
  }, 300_000);
});

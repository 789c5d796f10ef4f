/**
 * The fold of the write log (`offsync_write_log`, written by the triggers of sql-gen.ts) into the
 * clock tables, set-based: the clocks it leaves are exactly those the per-row local-write rules of
 * docs/PROTOCOL.md §P5 give when applied one log row at a time, in log order.
 *
 * Log row `id` (ids restart at 1 after each fold, and stay contiguous: a rolled-back write takes
 * its log rows with it) is local version `offsync_clock.v + id`; a primary-key change is one log
 * row, both keys at that version. Per key the log rows are cut into rounds: a round starts at an
 * insert, a delete or a key change of that key (its *head*) and holds the updates that follow it
 * until the next head; updates before the first head form round 0. Keys never interact, so round r
 * of every key is folded at once: heads first (a revive or a tombstone of the row record, the cell
 * bump or drop that goes with it), then the round's updates aggregated per cell (count and last
 * version: col_version + count, or the implicit clock + count for a new explicit cell).
 */
import type { SqlDriver } from '../storage/driver.ts';
import type { TableContext } from './table-context.ts';
import { BARE_CL, BARE_RECORD_COLUMNS, LOG_DELETE, LOG_INSERT, LOG_PK_CHANGE, LOG_UPDATE, MAX_MASK_BITS, bareRecordValues, cellsTableName, loggedKeyBlobSql, quoteIdent, quoteText, rowsTableName } from './sql-gen.ts';

const TEMP_SQL = `
CREATE TEMP TABLE IF NOT EXISTS offsync_fold (pk BLOB NOT NULL, id INTEGER NOT NULL, v INTEGER NOT NULL, kind INTEGER NOT NULL, op INTEGER NOT NULL, m TEXT, rnd INTEGER NOT NULL);
CREATE TEMP TABLE IF NOT EXISTS offsync_fold_cells (pk BLOB NOT NULL, col INTEGER NOT NULL, ord INTEGER NOT NULL, n INTEGER NOT NULL, v INTEGER NOT NULL, PRIMARY KEY (pk, col)) WITHOUT ROWID;`;

/** Statement texts of one table's fold (parameters: the clock base, then the round). */
interface TableFold {
  /** Single-kind runs of log rows (ids a..b), folded straight from the log: see {@link foldRun}. */
  runRevive: string;
  runReviveProbe: string;
  runReviveCells: string | undefined;
  runTombstone: string;
  runTombstoneCells: string | undefined;
  anyCell: string;
  runBare: string | undefined;
  runCells: string | undefined;
  stage: string;
  revive: string;
  reviveCells: string | undefined;
  tombstone: string;
  tombstoneCells: string | undefined;
  aggregate: string | undefined;
  bare: string | undefined;
  cells: string | undefined;
}

const folds = new WeakMap<TableContext, TableFold>();

function tableFold(ctx: TableContext): TableFold {
  const cached = folds.get(ctx);
  if (cached !== undefined) return cached;
  const r = quoteIdent(rowsTableName(ctx.name));
  const c = quoteIdent(cellsTableName(ctx.name));
  const tbl = quoteText(ctx.name);
  const pkOnly = ctx.columns.length === 0;
  const wide = ctx.columns.length > MAX_MASK_BITS;
  const bit = (ord: number): string => (wide ? `substr(f.m, ${ord + 1}, 1) = '1'` : `(f.op >> ${ord + 2}) & 1`);
  const key = (k: string): string => loggedKeyBlobSql(ctx.schema, k);
  const colsSql = `(${ctx.columns.map((v) => `SELECT ${v.id} AS col, ${v.ord} AS ord`).join(' UNION ALL ')})`;
  const bitOn = ctx.columns.length === 1 ? bit(0) : `CASE k.ord ${ctx.columns.map((v) => `WHEN ${v.ord} THEN ${bit(v.ord)}`).join(' ')} END`;
  const inRun = `tbl = ${tbl} AND id BETWEEN ? AND ?`;
  // Explicit cells of key `k` (through its record's rid; a bare record counts: it has cells).
  const hasCells = (k: string): string => `EXISTS (SELECT 1 FROM ${r} rr JOIN ${c} cc ON cc.rid = rr.rid WHERE rr.pk = ${k})`;
  // A revive over a bare record (BARE_CL: no record, only a rid for cells) writes the new record as if none existed.
  const reviveSet = `cl = CASE cl WHEN ${BARE_CL} THEN excluded.cl ELSE cl + CASE cl % 2 WHEN 0 THEN 1 ELSE 2 END END,
        sent = CASE cl WHEN ${BARE_CL} THEN excluded.sent ELSE 1 END,
        icv = ${pkOnly ? 'NULL' : 'CASE WHEN icv IS NULL OR cl % 2 = 0 THEN 1 ELSE icv + 1 END'},
        db_version = excluded.db_version, seq = 0, site = 0`;
  // (A bare record's cl 0 is even: a tombstone over it is cl 2, as over no record.)
  const tombstoneSet = `cl = cl + CASE cl % 2 WHEN 1 THEN 1 ELSE 2 END, sent = 1, icv = NULL,
        db_version = excluded.db_version, seq = 0, site = 0`;
  // The implicit col_version of a record `rr` (0 when the row is not alive, or bare).
  const implicitCv = 'CASE WHEN rr.cl % 2 = 1 THEN COALESCE(rr.icv, 0) ELSE 0 END';
  const fold: TableFold = {
    // Inserts in log order: each upsert sees the ones before it (a key inserted twice, INSERT OR REPLACE).
    runRevive: `INSERT INTO ${r} (pk, cl, sent, icv, db_version, seq, site)
      SELECT f.pk, 1 + 2 * f.e, ${pkOnly ? 1 : 'f.e'}, ${pkOnly ? 'NULL' : 1}, f.v, 0, 0
      FROM (SELECT x.pk, x.v, ${hasCells('x.pk')} AS e
        FROM (SELECT ${key('k')} AS pk, ? + id AS v FROM offsync_write_log WHERE ${inRun} ORDER BY id LIMIT -1) x LIMIT -1) f WHERE true
      ON CONFLICT (pk) DO UPDATE SET ${reviveSet}`,
    anyCell: `SELECT 1 FROM ${c} LIMIT 1`,
    runReviveProbe: `SELECT 1 FROM offsync_write_log l WHERE ${inRun} AND ${hasCells(key('l.k'))} LIMIT 1`,
    // Each insert of a key bumps its explicit cells once, at its version.
    runReviveCells: pkOnly
      ? undefined
      : `UPDATE ${c} SET col_version = col_version + g.n, db_version = g.v, seq = 0, site = 0
      FROM (SELECT rr.rid, g.n, g.v FROM (SELECT ${key('k')} AS pk, count(*) AS n, ? + max(id) AS v FROM offsync_write_log WHERE ${inRun} GROUP BY 1) g
        JOIN ${r} rr ON rr.pk = g.pk) g WHERE ${c}.rid = g.rid`,
    runTombstone: `INSERT INTO ${r} (pk, cl, sent, icv, db_version, seq, site)
      SELECT ${key('k')}, 2, 1, NULL, ? + id, 0, 0 FROM offsync_write_log WHERE ${inRun} ORDER BY id
      ON CONFLICT (pk) DO UPDATE SET ${tombstoneSet}`,
    runTombstoneCells: pkOnly ? undefined : `DELETE FROM ${c} WHERE rid IN (SELECT rid FROM ${r} WHERE pk IN (SELECT ${key('k')} FROM offsync_write_log WHERE ${inRun}))`,
    // Updated keys without a record get a bare one first: their cells need a rid.
    runBare: pkOnly
      ? undefined
      : `INSERT INTO ${r} ${BARE_RECORD_COLUMNS} SELECT ${bareRecordValues('x.pk')}
      FROM (SELECT ${key('k')} AS pk FROM offsync_write_log WHERE ${inRun}) x WHERE NOT EXISTS (SELECT 1 FROM ${r} WHERE pk = x.pk) ON CONFLICT (pk) DO NOTHING`,
    // Updates in log order, one upsert per changed cell: a key updated again in the run finds the
    // cell the earlier update made (col_version + 1, the later version), as the per-row rules do.
    // The row's implicit col_version (a cell without an explicit clock) is read once per log row.
    runCells: pkOnly
      ? undefined
      : `INSERT INTO ${c} (rid, col, col_version, db_version, seq, site)
      SELECT f.rid, k.col, f.icv + 1, f.v, k.ord + 1, 0
      FROM (SELECT rr.rid, x.v, x.op, x.m, ${implicitCv} AS icv
        FROM (SELECT ${key('k')} AS pk, ? + id AS v, op, m FROM offsync_write_log WHERE ${inRun} ORDER BY id LIMIT -1) x CROSS JOIN ${r} rr ON rr.pk = x.pk LIMIT -1) f
      CROSS JOIN ${colsSql} k WHERE ${bitOn}
      ON CONFLICT (rid, col) DO UPDATE SET col_version = col_version + 1, db_version = excluded.db_version, seq = excluded.seq, site = 0`,
    // Every (key, log row) item with its version, kind and round.
    stage: `INSERT INTO temp.offsync_fold (pk, id, v, kind, op, m, rnd)
      SELECT pk, id, v, kind, op, m, sum(kind <> ${LOG_UPDATE}) OVER (PARTITION BY pk ORDER BY id) FROM (
        SELECT ${key('k')} AS pk, id, ? + id AS v, op & 3 AS kind, op, m FROM offsync_write_log WHERE tbl = ${tbl}
        UNION ALL
        SELECT ${key('k2')}, id, ? + id, ${LOG_DELETE}, ${LOG_DELETE}, NULL FROM offsync_write_log WHERE tbl = ${tbl} AND op & 3 = ${LOG_PK_CHANGE})`,
    // Insert (or re-insert over a tombstone), and the new key of a key change (always a sentinel).
    revive: `INSERT INTO ${r} (pk, cl, sent, icv, db_version, seq, site)
      SELECT f.pk, 1 + 2 * f.e, ${pkOnly ? 1 : `CASE WHEN f.kind = ${LOG_PK_CHANGE} THEN 1 ELSE f.e END`}, ${pkOnly ? 'NULL' : 1}, f.v, 0, 0
      FROM (SELECT x.pk, x.kind, x.v, ${hasCells('x.pk')} AS e FROM temp.offsync_fold x WHERE x.rnd = ? AND x.kind IN (1, 3) LIMIT -1) f WHERE true
      ON CONFLICT (pk) DO UPDATE SET ${reviveSet}`,
    // A revived row's explicit cells are bumped (a row alive in metadata but missing from the table).
    reviveCells: pkOnly
      ? undefined
      : `UPDATE ${c} SET col_version = col_version + 1, db_version = g.v, seq = 0, site = 0
      FROM (SELECT rr.rid, f.v FROM temp.offsync_fold f JOIN ${r} rr ON rr.pk = f.pk WHERE f.rnd = ? AND f.kind IN (1, 3)) g WHERE ${c}.rid = g.rid`,
    tombstone: `INSERT INTO ${r} (pk, cl, sent, icv, db_version, seq, site)
      SELECT pk, 2, 1, NULL, v, 0, 0 FROM temp.offsync_fold WHERE rnd = ? AND kind = ${LOG_DELETE}
      ON CONFLICT (pk) DO UPDATE SET ${tombstoneSet}`,
    tombstoneCells: `DELETE FROM ${c} WHERE rid IN (SELECT rid FROM ${r} WHERE pk IN (SELECT pk FROM temp.offsync_fold WHERE rnd = ? AND kind = ${LOG_DELETE}))`,
    // Updates of the round, per cell: how many changed it and the last version that did.
    aggregate: pkOnly
      ? undefined
      : `INSERT INTO temp.offsync_fold_cells (pk, col, ord, n, v)
      SELECT f.pk, k.col, k.ord, count(*), max(f.v)
      FROM temp.offsync_fold f CROSS JOIN ${colsSql} k ON ${bitOn}
      WHERE f.rnd = ? AND f.kind IN (${LOG_UPDATE}, ${LOG_PK_CHANGE}) GROUP BY f.pk, k.col`,
    bare: pkOnly
      ? undefined
      : `INSERT INTO ${r} ${BARE_RECORD_COLUMNS} SELECT ${bareRecordValues('pk')} FROM temp.offsync_fold_cells WHERE true ON CONFLICT (pk) DO NOTHING`,
    // A cell without an explicit clock starts from the row's implicit col_version (0 when the row is not alive).
    cells: pkOnly
      ? undefined
      : `INSERT INTO ${c} (rid, col, col_version, db_version, seq, site)
      SELECT rr.rid, u.col, ${implicitCv} + u.n, u.v, u.ord + 1, 0
      FROM temp.offsync_fold_cells u CROSS JOIN ${r} rr ON rr.pk = u.pk WHERE true
      ON CONFLICT (rid, col) DO UPDATE SET col_version = col_version + (SELECT n FROM temp.offsync_fold_cells WHERE pk = (SELECT pk FROM ${r} WHERE rid = excluded.rid) AND col = excluded.col),
        db_version = excluded.db_version, seq = excluded.seq, site = 0`,
  };
  if (pkOnly) fold.tombstoneCells = undefined;
  folds.set(ctx, fold);
  return fold;
}

/** The highest pending log id (0 when the log is empty): the versions the log holds. */
export function pendingVersions(driver: SqlDriver): number {
  return Number(driver.prepare('SELECT COALESCE(max(id), 0) FROM offsync_write_log').getRaw()?.[0] ?? 0);
}

/**
 * Folds the whole pending log into the clock tables and advances the clock past it, in one
 * transaction (nested in the caller's when there is one). Log rows of tables that no longer sync
 * are dropped (their versions are still used). Returns how many versions were folded.
 */
export function foldWriteLog(driver: SqlDriver, table: (name: string) => TableContext | undefined, checkClock: (v: number) => number): number {
  if (pendingVersions(driver) === 0) return 0;
  return driver.transaction(() => {
    // Read again under the write lock: another connection may have folded in between.
    const n = pendingVersions(driver);
    if (n === 0) return 0;
    driver.exec(TEMP_SQL);
    const base = Number(driver.prepare('SELECT v FROM offsync_clock WHERE id = 1').getRaw()?.[0] ?? 0);
    checkClock(base + n);
    // Runs: consecutive log rows of one table and one kind (where the previous row differs).
    const starts = runStarts(driver, n);
    const byTable = new Map<string, Run[]>();
    starts.forEach((x, i) => {
      const runs = byTable.get(x.tbl) ?? byTable.set(x.tbl, []).get(x.tbl);
      runs?.push({ kind: x.kind, a: x.id, b: (starts[i + 1]?.id ?? n + 1) - 1 });
    });
    for (const [tbl, runs] of byTable) {
      const ctx = table(tbl);
      if (ctx !== undefined) foldTable(driver, ctx, base, runs);
    }
    driver.prepare('UPDATE offsync_clock SET v = v + ? WHERE id = 1').run(BigInt(n));
    driver.exec('DELETE FROM offsync_write_log');
    return n;
  });
}

/** Log rows a..b (ids) of one table, all of one kind. */
interface Run {
  kind: number;
  a: number;
  b: number;
}

/** From log id ?: where each run starts (the previous row of another table or kind, or none). */
const RUNS_SQL = `SELECT l.tbl, l.id, l.op & 3 FROM offsync_write_log l LEFT JOIN offsync_write_log p ON p.id = l.id - 1
  WHERE l.id >= ? AND (p.id IS NULL OR l.id = ? OR p.tbl IS NOT l.tbl OR (p.op & 3) <> (l.op & 3)) ORDER BY l.id`;
const ROW_SQL = 'SELECT id, tbl, op & 3 FROM offsync_write_log WHERE id >= ? ORDER BY id LIMIT 1';
/** The first log row after id ? of another table or kind than ? and ?: the next run's start. */
const RUN_END_SQL = 'SELECT min(id) FROM offsync_write_log WHERE id > ? AND (tbl IS NOT ? OR (op & 3) <> ?)';

/** Beyond this many runs (in all tables), the rest of the log is cut by RUNS_SQL in one pass. */
const MAX_JUMPS = 64;

/**
 * The runs of log rows 1..n (ids are contiguous, see the file comment). A few long runs (a bulk insert, an UPDATE of
 * many rows) are found by jumping from one start to the next, each a scan of its run without the
 * self-join; a log of many short runs is cut by RUNS_SQL.
 */
function runStarts(driver: SqlDriver, n: number): { tbl: string; id: number; kind: number }[] {
  const out: { tbl: string; id: number; kind: number }[] = [];
  let id = 1;
  while (id <= n) {
    if (out.length === MAX_JUMPS) {
      const at = BigInt(id);
      for (const [tbl, start, kind] of driver.prepare(RUNS_SQL).iterateRaw(at, at)) out.push({ tbl: String(tbl), id: Number(start), kind: Number(kind) });
      break;
    }
    const row = driver.prepare(ROW_SQL).getRaw(BigInt(id));
    if (row === undefined) break;
    const [start, tbl, kind] = row;
    out.push({ tbl: String(tbl), id: Number(start), kind: Number(kind) });
    const next = driver.prepare(RUN_END_SQL).getRaw(start ?? null, tbl ?? null, kind ?? null)?.[0];
    id = next === null || next === undefined ? n + 1 : Number(next);
  }
  return out;
}

/** Beyond this many single-kind runs in one table's log, the rounds fold is cheaper. */
const MAX_RUNS = 16;

/**
 * One table's log. Usually it is a few runs of one kind each (a bulk insert, an UPDATE of many
 * rows, a DELETE): runs are folded one after the other, each straight from the log. Key changes,
 * or many short runs, take the general fold by rounds.
 */
function foldTable(driver: SqlDriver, ctx: TableContext, base: number, runs: readonly Run[]): void {
  const f = tableFold(ctx);
  if (runs.length > MAX_RUNS || runs.some((x) => x.kind === LOG_PK_CHANGE)) return foldRounds(driver, f, base);
  for (const x of runs) foldRun(driver, f, base, x.kind, x.a, x.b);
}

/** Log rows a..b of one kind, with the per-row rules' result (sequential where keys repeat). */
function foldRun(driver: SqlDriver, f: TableFold, base: number, kind: number, a: number, b: number): void {
  const [v, lo, hi] = [BigInt(base), BigInt(a), BigInt(b)];
  if (kind === LOG_INSERT) {
    driver.prepare(f.runRevive).run(v, lo, hi);
    // Explicit cells of inserted keys (a re-insert, a row merged but missing from the table): an
    // empty cells table (a table only ever inserted into) needs no probe of every key.
    if (f.runReviveCells !== undefined && driver.prepare(f.anyCell).getRaw() !== undefined && driver.prepare(f.runReviveProbe).getRaw(lo, hi) !== undefined) {
      driver.prepare(f.runReviveCells).run(v, lo, hi);
    }
  } else if (kind === LOG_DELETE) {
    driver.prepare(f.runTombstone).run(v, lo, hi);
    if (f.runTombstoneCells !== undefined) driver.prepare(f.runTombstoneCells).run(lo, hi);
  } else if (f.runCells !== undefined && f.runBare !== undefined) {
    driver.prepare(f.runBare).run(lo, hi);
    driver.prepare(f.runCells).run(v, lo, hi);
  }
}

/** The general fold: every key's log rows cut into rounds (see the file comment). */
function foldRounds(driver: SqlDriver, f: TableFold, base: number): void {
  const b = BigInt(base);
  driver.exec('DELETE FROM temp.offsync_fold');
  driver.prepare(f.stage).run(b, b);
  const rounds = Number(driver.prepare('SELECT COALESCE(max(rnd), -1) FROM temp.offsync_fold').getRaw()?.[0] ?? -1);
  for (let rnd = 0; rnd <= rounds; rnd++) {
    const r = BigInt(rnd);
    if (rnd > 0) {
      driver.prepare(f.revive).run(r);
      if (f.reviveCells !== undefined) driver.prepare(f.reviveCells).run(r);
      driver.prepare(f.tombstone).run(r);
      if (f.tombstoneCells !== undefined) driver.prepare(f.tombstoneCells).run(r);
    }
    if (f.aggregate !== undefined && f.cells !== undefined && f.bare !== undefined) {
      driver.exec('DELETE FROM temp.offsync_fold_cells');
      if (driver.prepare(f.aggregate).run(r) > 0) {
        driver.prepare(f.bare).run();
        driver.prepare(f.cells).run();
      }
    }
  }
  driver.exec('DELETE FROM temp.offsync_fold');
}

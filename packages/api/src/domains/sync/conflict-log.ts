/**
 * The conflict log: every merge in which a concurrent write lost (issue 13, point 5) — a cell's
 * LWW tiebreak, an older edit superseded by a newer one of another device, an update lost to a
 * delete, a delete that ended another device's row — with both sides (value, col_version, causal
 * length, site), the uploading device and user, and the time.
 *
 * Stored IN the central database (table `offsync_conflicts`, created lazily and idempotently like
 * `offsync_rejections`) and written by {@link ConflictLog.record} inside the merge transaction
 * (SyncService.upload collects `ApplyOptions.onConflict` reports, drops those of rows the merge
 * then rejected, and records the rest before it commits): an entry exists exactly when the merge
 * that decided it committed. Off per database through the control-plane flag
 * `Database.conflictLog` (`DatabaseTarget.conflictLog`). Read by GraphQL `Database.conflicts`;
 * `restoreConflictValue` writes a losing value back as a new local write of the central database
 * ({@link restoreLosingWrite}).
 *
 * Values (columns `pk_values`, `winner_value`, `loser_value`, `row_values`) use the JSON encoding
 * of the rejection log (`$int` / `$blob` / `$real` tags; rejection-log.ts), which round-trips
 * every SqlValue exactly.
 *
 * Bounded growth (applied in `record`): entries older than `maxAgeMs` (default 30 days) and all
 * but the newest `maxEntries` ids (default 100,000) are deleted. AUTOINCREMENT ids are never
 * reused, so a cursor stays valid after retention.
 */
import type { MergeConflict, SqlDriver, SqlValue, SyncEngine } from '@offsync/core';
import { readTombstone } from '@offsync/core';
import type { LogRetention } from './central-log.ts';
import { CentralLog, decodeLogCursor, decodeSqlValue, encodeSqlValue, keysetPage, logCursor, text, textOrNull } from './central-log.ts';
import type { EncodedSqlValue } from './central-log.ts';

export type ConflictKind = MergeConflict['kind'];

export interface ConflictSideEntry {
  value: SqlValue;
  colVersion: number;
  cl: number;
  /** 32 lowercase hex digits. */
  siteId: string;
}

export interface ConflictInput {
  table: string;
  /** The primary-key blob (protocol encoding). */
  pk: Uint8Array;
  pkValues: readonly SqlValue[];
  /** The cell, or null for a row-level conflict (delete_over_update). */
  column: string | null;
  kind: ConflictKind;
  winner: ConflictSideEntry;
  loser: ConflictSideEntry;
  /** delete_over_update: the row the delete removed. */
  row: Readonly<Record<string, SqlValue>> | null;
  /** The device whose upload the merge was deciding (32 hex). */
  uploaderSiteId: string;
  /** Its user (access token / JWT), null for API keys. */
  uploaderUserId: string | null;
}

export interface ConflictEntry extends ConflictInput {
  id: number;
  at: Date;
  /** When `restoreConflictValue` wrote the losing value back, or null. */
  restoredAt: Date | null;
}

export interface ConflictFilter {
  table?: string;
  /** Primary-key values: a JSON array (log encoding; a bare number also matches an INTEGER key) or a single key's text. */
  key?: string;
  /** Either side was written by this site (32 hex). */
  siteId?: string;
  /**
   * Either side belongs to this user: the uploading user is it, or a side's site is one of
   * `userSiteIds` (the user's devices, resolved by the caller).
   */
  userId?: string;
  userSiteIds?: readonly string[];
  kind?: ConflictKind;
  /** Entries at or after this time. */
  since?: Date;
}

export interface ConflictPage {
  /** Newest first. */
  nodes: ConflictEntry[];
  totalCount: number;
  endCursor: string | null;
  hasNextPage: boolean;
}

/** Retention of the log (default 100,000 newest entries per database, 30 days). */
export type ConflictLogOptions = LogRetention;

export const DEFAULT_CONFLICT_MAX_ENTRIES = 100_000;
export const DEFAULT_CONFLICT_MAX_AGE_MS = 30 * 86_400_000;
export const MAX_CONFLICT_PAGE = 500;

const KINDS: ReadonlySet<string> = new Set<ConflictKind>(['tiebreak', 'superseded', 'update_lost_to_delete', 'delete_over_update']);
const SITE_ID = /^[0-9a-f]{32}$/;

const DDL = `CREATE TABLE IF NOT EXISTS offsync_conflicts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  tbl TEXT NOT NULL,
  pk BLOB NOT NULL,
  pk_values TEXT NOT NULL,
  col TEXT,
  kind TEXT NOT NULL,
  winner_value TEXT NOT NULL,
  winner_col_version INTEGER NOT NULL,
  winner_cl INTEGER NOT NULL,
  winner_site TEXT NOT NULL,
  loser_value TEXT NOT NULL,
  loser_col_version INTEGER NOT NULL,
  loser_cl INTEGER NOT NULL,
  loser_site TEXT NOT NULL,
  row_values TEXT,
  uploader_site TEXT NOT NULL,
  uploader_user TEXT,
  restored_at INTEGER
);
CREATE INDEX IF NOT EXISTS offsync_conflicts_at ON offsync_conflicts (at);
CREATE INDEX IF NOT EXISTS offsync_conflicts_key ON offsync_conflicts (tbl, pk_values, id);
CREATE INDEX IF NOT EXISTS offsync_conflicts_winner ON offsync_conflicts (winner_site, id);
CREATE INDEX IF NOT EXISTS offsync_conflicts_loser ON offsync_conflicts (loser_site, id)`;

const COLUMNS = `id, at, tbl, pk, pk_values, col, kind, winner_value, winner_col_version, winner_cl, winner_site,
  loser_value, loser_col_version, loser_cl, loser_site, row_values, uploader_site, uploader_user, restored_at`;

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** A merge's report (`ApplyOptions.onConflict`) as a log input. */
export function conflictInput(c: MergeConflict, uploaderSiteId: string, uploaderUserId: string | null): ConflictInput {
  const side = (s: MergeConflict['winner']): ConflictSideEntry => ({ value: s.value, colVersion: s.colVersion, cl: s.cl, siteId: hex(s.siteId) });
  return {
    table: c.table,
    pk: new Uint8Array(c.pk),
    pkValues: [...c.pkValues],
    column: c.column,
    kind: c.kind,
    winner: side(c.winner),
    loser: side(c.loser),
    row: c.row === undefined ? null : { ...c.row },
    uploaderSiteId,
    uploaderUserId,
  };
}

/** The opaque `after` cursor of an entry. */
export function conflictCursor(id: number): string {
  return logCursor('c', id);
}

export function decodeConflictCursor(cursor: string): number {
  return decodeLogCursor('c', cursor);
}

/**
 * The stored `pk_values` texts a `key` filter matches. A JSON array is read in the log encoding
 * (a plain integer also matches the `$int` form INTEGER keys are stored in); anything else is the
 * text of a single-column key (also matched as an INTEGER when it is one).
 */
export function keyCandidates(key: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(key);
  } catch {
    parsed = undefined;
  }
  let elems: SqlValue[][];
  if (Array.isArray(parsed)) {
    try {
      elems = parsed.map((v) => variants(decodeSqlValue(v)));
    } catch {
      elems = [[key]];
    }
  } else if (typeof parsed === 'number') {
    elems = [[...variants(parsed), key]];
  } else {
    elems = [/^-?\d{1,19}$/.test(key) ? [key, BigInt(key)] : [key]];
  }
  let combos: SqlValue[][] = [[]];
  for (const alts of elems) {
    combos = combos.flatMap((c) => alts.map((a) => [...c, a]));
    if (combos.length > 64) break;
  }
  return [...new Set(combos.map((c) => JSON.stringify(c.map(encodeSqlValue))))];
}

function variants(v: SqlValue): SqlValue[] {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return [v, BigInt(v)];
  if (typeof v === 'bigint' && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return [v, Number(v)];
  return [v];
}

function decodeValue(v: SqlValue | undefined): SqlValue {
  return decodeSqlValue(JSON.parse(text(v)) as unknown);
}

function encodeRow(row: Readonly<Record<string, SqlValue>>): string {
  const out: Record<string, EncodedSqlValue> = {};
  for (const [k, v] of Object.entries(row)) out[k] = encodeSqlValue(v);
  return JSON.stringify(out);
}

function fromRow(r: SqlValue[]): ConflictEntry {
  const side = (i: number): ConflictSideEntry => ({ value: decodeValue(r[i]), colVersion: Number(r[i + 1]), cl: Number(r[i + 2]), siteId: text(r[i + 3]) });
  let row: Record<string, SqlValue> | null = null;
  if (typeof r[15] === 'string') {
    row = {};
    for (const [k, v] of Object.entries(JSON.parse(r[15]) as Record<string, unknown>)) row[k] = decodeSqlValue(v);
  }
  const pk = r[3];
  return {
    id: Number(r[0]),
    at: new Date(Number(r[1])),
    table: text(r[2]),
    pk: pk instanceof Uint8Array ? new Uint8Array(pk) : new Uint8Array(0),
    pkValues: (JSON.parse(text(r[4])) as unknown[]).map(decodeSqlValue),
    column: textOrNull(r[5]),
    kind: text(r[6]) as ConflictKind,
    winner: side(7),
    loser: side(11),
    row,
    uploaderSiteId: text(r[16]),
    uploaderUserId: textOrNull(r[17]),
    restoredAt: r[18] === null || r[18] === undefined ? null : new Date(Number(r[18])),
  };
}

function validate(c: ConflictInput): void {
  if (!KINDS.has(c.kind)) throw new TypeError(`conflict log: unknown kind ${JSON.stringify(c.kind)}`);
  for (const s of [c.winner.siteId, c.loser.siteId, c.uploaderSiteId]) {
    if (!SITE_ID.test(s)) throw new TypeError(`conflict log: site ids must be 32 lowercase hex digits, got ${JSON.stringify(s)}`);
  }
  if (!(c.pk instanceof Uint8Array)) throw new TypeError('conflict log: pk must be a Uint8Array');
}

export class ConflictLog extends CentralLog {
  constructor(engine: { driver: SqlDriver }, options: ConflictLogOptions = {}) {
    super(engine, { table: 'offsync_conflicts', label: 'conflict log', ddl: DDL, defaults: { maxEntries: DEFAULT_CONFLICT_MAX_ENTRIES, maxAgeMs: DEFAULT_CONFLICT_MAX_AGE_MS } }, options);
  }

  /**
   * Appends `rows` (ids ascending) at `now` (ms since epoch), then applies the retention.
   * Synchronous; meant to run inside the merge transaction (own savepoint).
   */
  record(rows: readonly ConflictInput[], now: number): ConflictEntry[] {
    if (rows.length === 0) return [];
    for (const row of rows) validate(row);
    const at = Math.trunc(now);
    return this.driver.transaction(() => {
      const insert = this.driver.prepare(
        `INSERT INTO offsync_conflicts (at, tbl, pk, pk_values, col, kind, winner_value, winner_col_version, winner_cl, winner_site,
           loser_value, loser_col_version, loser_cl, loser_site, row_values, uploader_site, uploader_user)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
      );
      const out: ConflictEntry[] = [];
      for (const c of rows) {
        const r = insert.getRaw(
          BigInt(at), c.table, c.pk, JSON.stringify(c.pkValues.map(encodeSqlValue)), c.column, c.kind,
          JSON.stringify(encodeSqlValue(c.winner.value)), BigInt(c.winner.colVersion), BigInt(c.winner.cl), c.winner.siteId,
          JSON.stringify(encodeSqlValue(c.loser.value)), BigInt(c.loser.colVersion), BigInt(c.loser.cl), c.loser.siteId,
          c.row === null ? null : encodeRow(c.row), c.uploaderSiteId, c.uploaderUserId,
        );
        out.push({ ...c, id: Number(r?.[0]), at: new Date(at), restoredAt: null, pk: new Uint8Array(c.pk), pkValues: [...c.pkValues], winner: { ...c.winner }, loser: { ...c.loser }, row: c.row === null ? null : { ...c.row } });
      }
      this.retain(at);
      return out;
    });
  }

  get(id: number): ConflictEntry | undefined {
    const r = this.driver.prepare(`SELECT ${COLUMNS} FROM offsync_conflicts WHERE id = ?`).getRaw(BigInt(id));
    return r === undefined ? undefined : fromRow(r);
  }

  /** Marks an entry restored (inside the restore's transaction). */
  markRestored(id: number, now: number): void {
    this.driver.prepare('UPDATE offsync_conflicts SET restored_at = ? WHERE id = ?').run(BigInt(Math.trunc(now)), BigInt(id));
  }

  /** One page, newest first (keyset on id). */
  list(args: { first: number; after?: string | undefined; filter?: ConflictFilter | undefined }): ConflictPage {
    const where: string[] = [];
    const params: SqlValue[] = [];
    const f = args.filter ?? {};
    if (f.table !== undefined) {
      where.push('tbl = ?');
      params.push(f.table);
    }
    if (f.key !== undefined) {
      const keys = keyCandidates(f.key);
      where.push(`pk_values IN (${keys.map(() => '?').join(', ')})`);
      params.push(...keys);
    }
    if (f.siteId !== undefined) {
      where.push('(winner_site = ? OR loser_site = ?)');
      params.push(f.siteId.toLowerCase(), f.siteId.toLowerCase());
    }
    if (f.userId !== undefined) {
      const sites = [...new Set(f.userSiteIds ?? [])].map((s) => s.toLowerCase());
      const marks = sites.map(() => '?').join(', ');
      where.push(sites.length === 0 ? 'uploader_user = ?' : `(uploader_user = ? OR winner_site IN (${marks}) OR loser_site IN (${marks}))`);
      params.push(f.userId, ...sites, ...sites);
    }
    if (f.kind !== undefined) {
      where.push('kind = ?');
      params.push(f.kind);
    }
    if (f.since !== undefined) {
      where.push('at >= ?');
      params.push(BigInt(f.since.getTime()));
    }
    const page = keysetPage(this.driver, { table: 'offsync_conflicts', columns: COLUMNS, prefix: 'c', where, params, first: args.first, maxPage: MAX_CONFLICT_PAGE, after: args.after });
    const nodes = page.rows.map(fromRow);
    const last = nodes[nodes.length - 1];
    return { nodes, totalCount: page.totalCount, endCursor: last === undefined ? null : conflictCursor(last.id), hasNextPage: page.hasNextPage };
  }
}

const logs = new WeakMap<SqlDriver, ConflictLog>();

/** The one ConflictLog of a central database (table created on first use); `options` reconfigure its retention. */
export function conflictLogOf(engine: { driver: SqlDriver }, options?: ConflictLogOptions): ConflictLog {
  let log = logs.get(engine.driver);
  if (log === undefined) {
    log = new ConflictLog(engine, options);
    logs.set(engine.driver, log);
  } else if (options !== undefined) {
    log.configure(options);
  }
  return log;
}

/**
 * Keeps the conflicts of rows that were not rejected: the merge may report a conflict of a row
 * before it rolls that row back (`ApplyOptions.onConflict`).
 */
export function dropRejected<T extends { table: string; pk: Uint8Array }>(conflicts: readonly T[], rejected: readonly { table: string; pk: Uint8Array }[]): T[] {
  if (rejected.length === 0) return [...conflicts];
  const gone = new Set(rejected.map((r) => `${r.table.toLowerCase()}\u0000${hex(r.pk)}`));
  return conflicts.filter((c) => !gone.has(`${c.table.toLowerCase()}\u0000${hex(c.pk)}`));
}

export type RestoreErrorCode = 'not_found' | 'table_not_synced' | 'column_missing';

export class ConflictRestoreError extends Error {
  constructor(readonly code: RestoreErrorCode, message: string) {
    super(message);
    this.name = 'ConflictRestoreError';
  }
}

export interface RestoreResult {
  entry: ConflictEntry;
  /** How the losing write came back: the cell(s) updated, or the row inserted again. */
  action: 'update' | 'insert';
  /** Server db_version after the write. */
  dbVersion: number;
}

const q = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/**
 * Writes the losing side of conflict `id` back into the central database as a NEW local write
 * (the triggers stamp it col_version + 1 from the server's site), so every device receives it:
 * - a cell loser: UPDATE of that cell, or, when the row is gone, a re-insert of the row with
 *   that cell (other columns from the tombstone's last values when kept, else defaults);
 * - `delete_over_update` (the row-level loser is the deleted row): re-insert of `row`, or an
 *   UPDATE of its columns when the key is alive again.
 * Synchronous, one transaction together with marking the entry restored; the caller runs it on
 * the sync service's open engine so it serialises with merges, then announces it like a merge.
 */
export function restoreLosingWrite(engine: SyncEngine, id: number, now: number): RestoreResult {
  const log = conflictLogOf(engine);
  return engine.driver.transaction(() => {
    const entry = log.get(id);
    if (entry === undefined) throw new ConflictRestoreError('not_found', `No conflict ${id} in this database's log (retention may have removed it)`);
    const t = engine.table(entry.table);
    if (t === undefined) throw new ConflictRestoreError('table_not_synced', `Table ${entry.table} is no longer synced`);
    const names = new Set(t.schema.columns.map((c) => c.name));
    const pkCols = t.schema.pkColumns.map((c) => c.name);
    const where = pkCols.map((c) => `${q(c)} = ?`).join(' AND ');
    const alive = engine.driver.prepare(`SELECT 1 FROM ${q(t.name)} WHERE ${where}`).getRaw(...entry.pkValues) !== undefined;
    let values: Record<string, SqlValue>;
    if (entry.column !== null) {
      if (!names.has(entry.column)) throw new ConflictRestoreError('column_missing', `Column ${entry.column} of ${entry.table} no longer exists`);
      values = { [entry.column]: entry.loser.value };
    } else {
      values = {};
      for (const [k, v] of Object.entries(entry.row ?? {})) if (names.has(k) && !pkCols.includes(k)) values[k] = v;
    }
    let action: 'update' | 'insert';
    if (alive) {
      const cols = Object.keys(values);
      if (cols.length > 0) engine.driver.prepare(`UPDATE ${q(t.name)} SET ${cols.map((c) => `${q(c)} = ?`).join(', ')} WHERE ${where}`).run(...Object.values(values), ...entry.pkValues);
      action = 'update';
    } else {
      const last = entry.column === null ? undefined : readTombstone(t, entry.pk)?.lastValues;
      const row: Record<string, SqlValue> = {};
      for (const [k, v] of Object.entries(last ?? {})) if (names.has(k)) row[k] = v;
      Object.assign(row, values);
      pkCols.forEach((c, i) => (row[c] = entry.pkValues[i] ?? null));
      const cols = Object.keys(row);
      engine.driver.prepare(`INSERT INTO ${q(t.name)} (${cols.map(q).join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`).run(...Object.values(row));
      action = 'insert';
    }
    log.markRestored(id, now);
    return { entry: { ...entry, restoredAt: new Date(Math.trunc(now)) }, action, dbVersion: engine.dbVersion() };
  });
}

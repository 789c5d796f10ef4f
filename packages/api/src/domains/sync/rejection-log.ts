/**
 * The rejection log: every change the merge refused on its own (RLS denial, primary-key type
 * mismatch, UNIQUE-constraint violation) while the rest of the upload merged (issue 8, point 3).
 *
 * Stored IN the central database (table `offsync_rejections`, created lazily and idempotently
 * like `offsync_peers`) and written by {@link RejectionLog.record} inside the merge transaction,
 * so an entry exists exactly when the merge that refused it committed. Read by GraphQL
 * `Database.rejections`; streamed after commit through `SyncDeps.onChangesRejected`.
 *
 * Value encoding (columns `pk_values`, `vals`; also the GraphQL `pkValues` / `values` JSON and
 * the pub/sub payload) — JSON that round-trips every {@link SqlValue} exactly:
 *   null, TEXT → themselves; REAL (a JS number) → a JSON number, or `{"$real":"Infinity"}` /
 *   `{"$real":"-Infinity"}` / `{"$real":"NaN"}`; INTEGER read as bigint → `{"$int":"<decimal>"}`;
 *   BLOB → `{"$blob":"<base64>"}`. Tags never collide: a SqlValue is never a plain object.
 *
 * Bounded growth (applied in `record`): entries older than `maxAgeMs` (default 30 days) and all
 * but the newest `maxEntries` ids (default 100,000) are deleted. Ids come from AUTOINCREMENT, so
 * they are never reused and a cursor stays valid after retention.
 */
import type { SqlDriver, SqlValue } from '@offsync/core';
import type { LogRetention } from './central-log.ts';
import { CentralLog, decodeLogCursor, decodeSqlValue, encodeSqlValue, keysetPage, logCursor, text, textOrNull } from './central-log.ts';
import type { EncodedSqlValue } from './central-log.ts';

export type RejectedOperation = 'INSERT' | 'UPDATE' | 'DELETE';
export type RejectionCredentialKind = 'apiKey' | 'accessToken' | 'jwt';

export interface RejectionInput {
  /** 32 lowercase hex digits. */
  siteId: string;
  userId: string | null;
  credentialKind: RejectionCredentialKind;
  credentialId: string | null;
  table: string;
  /** The primary-key blob (protocol encoding). */
  pk: Uint8Array;
  pkValues: readonly SqlValue[];
  operation: RejectedOperation;
  /** 'rls_denied' | 'pk_type_mismatch' | 'constraint_violation'. */
  code: string;
  /** The policy expression that denied, if any. */
  policy: string | null;
  /** Human-readable. */
  reason: string;
  /** The rejected incoming column values. */
  values: Readonly<Record<string, SqlValue>>;
}

export interface RejectionEntry extends RejectionInput {
  id: number;
  at: Date;
}

export interface RejectionFilter {
  table?: string;
  siteId?: string;
  userId?: string;
  operation?: RejectedOperation;
  code?: string;
  /** Entries at or after this time. */
  since?: Date;
}

export interface RejectionPage {
  /** Newest first. */
  nodes: RejectionEntry[];
  /** Entries matching the filter (ignoring `after`). */
  totalCount: number;
  /** Cursor of the last node (pass as `after` for the next page); null when there are no nodes. */
  endCursor: string | null;
  hasNextPage: boolean;
}

export interface RejectionListArgs {
  first: number;
  after?: string | undefined;
  filter?: RejectionFilter | undefined;
}

/**
 * What GraphQL `Database.rejections` reads, whatever the database's kind: the SQLite log of a
 * central file ({@link rejectionReader} wraps the synchronous {@link RejectionLog}) or the
 * PostgreSQL log of a POSTGRES database (pg-rejection-log.ts). Same entries, cursors, filters and
 * pages; `list` throws RangeError for a bad `first` or `after`.
 */
export interface RejectionLogReader {
  list(args: RejectionListArgs): Promise<RejectionPage>;
}

/** Retention of the log (default 100,000 newest entries per database, 30 days). */
export type RejectionLogOptions = LogRetention;

export const DEFAULT_REJECTION_MAX_ENTRIES = 100_000;
export const DEFAULT_REJECTION_MAX_AGE_MS = 30 * 86_400_000;
/** Largest page of `list`. */
export const MAX_REJECTION_PAGE = 500;

/** JSON form of one SqlValue (see the module comment). */

/** A rejection in JSON-safe form: GraphQL nodes and the `changesRejected` pub/sub payload. */
export interface RejectionJson {
  id: number;
  /** ISO-8601. */
  at: string;
  siteId: string;
  userId: string | null;
  credentialKind: RejectionCredentialKind;
  credentialId: string | null;
  table: string;
  /** Base64 of the primary-key blob. */
  pk: string;
  pkValues: EncodedSqlValue[];
  operation: RejectedOperation;
  code: string;
  policy: string | null;
  reason: string;
  values: Record<string, EncodedSqlValue>;
}

const OPERATIONS: ReadonlySet<string> = new Set<RejectedOperation>(['INSERT', 'UPDATE', 'DELETE']);
const CREDENTIAL_KINDS: ReadonlySet<string> = new Set<RejectionCredentialKind>(['apiKey', 'accessToken', 'jwt']);
const SITE_ID = /^[0-9a-f]{32}$/;

const DDL = `CREATE TABLE IF NOT EXISTS offsync_rejections (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  site_id TEXT NOT NULL,
  user_id TEXT,
  credential_kind TEXT NOT NULL,
  credential_id TEXT,
  tbl TEXT NOT NULL,
  pk BLOB NOT NULL,
  pk_values TEXT NOT NULL,
  operation TEXT NOT NULL,
  code TEXT NOT NULL,
  policy TEXT,
  reason TEXT NOT NULL,
  vals TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS offsync_rejections_at ON offsync_rejections (at);
CREATE INDEX IF NOT EXISTS offsync_rejections_tbl ON offsync_rejections (tbl, id);
CREATE INDEX IF NOT EXISTS offsync_rejections_site ON offsync_rejections (site_id, id);
CREATE INDEX IF NOT EXISTS offsync_rejections_user ON offsync_rejections (user_id, id)`;

const COLUMNS = 'id, at, site_id, user_id, credential_kind, credential_id, tbl, pk, pk_values, operation, code, policy, reason, vals';

/** The opaque `after` cursor of an entry. */
export function rejectionCursor(id: number): string {
  return logCursor('r', id);
}

/** Entry id of a cursor; RangeError when it is not one of ours. */
export function decodeRejectionCursor(cursor: string): number {
  return decodeLogCursor('r', cursor);
}

/** JSON-safe form of an entry (GraphQL, pub/sub). */
export function toRejectionJson(e: RejectionEntry): RejectionJson {
  return {
    id: e.id,
    at: e.at.toISOString(),
    siteId: e.siteId,
    userId: e.userId,
    credentialKind: e.credentialKind,
    credentialId: e.credentialId,
    table: e.table,
    pk: Buffer.from(e.pk.buffer, e.pk.byteOffset, e.pk.byteLength).toString('base64'),
    pkValues: e.pkValues.map(encodeSqlValue),
    operation: e.operation,
    code: e.code,
    policy: e.policy,
    reason: e.reason,
    values: encodeValues(e.values),
  };
}

/** The stored form of a rejected change's values (both logs, column `vals`). */
export function encodeValues(values: Readonly<Record<string, SqlValue>>): Record<string, EncodedSqlValue> {
  const out: Record<string, EncodedSqlValue> = {};
  for (const [k, v] of Object.entries(values)) out[k] = encodeSqlValue(v);
  return out;
}

function bytes(v: SqlValue | undefined): Uint8Array {
  if (!(v instanceof Uint8Array)) return new Uint8Array(0);
  return new Uint8Array(v); // a copy: raw reads may hand out a Buffer over a reused allocation
}

/**
 * An entry from a row of either log (SQLite `offsync_rejections`, PostgreSQL `offsync.rejections`),
 * columns in the order id, at, site_id, user_id, credential_kind, credential_id, tbl, pk, pk_values,
 * operation, code, policy, reason, vals.
 */
export function rejectionFromRow(row: readonly unknown[]): RejectionEntry {
  const r = row as readonly SqlValue[];
  const pkValues = (JSON.parse(text(r[8])) as unknown[]).map(decodeSqlValue);
  const values: Record<string, SqlValue> = {};
  for (const [k, v] of Object.entries(JSON.parse(text(r[13])) as Record<string, unknown>)) values[k] = decodeSqlValue(v);
  return {
    id: Number(r[0]),
    at: new Date(Number(r[1])),
    siteId: text(r[2]),
    userId: textOrNull(r[3]),
    credentialKind: text(r[4]) as RejectionCredentialKind,
    credentialId: textOrNull(r[5]),
    table: text(r[6]),
    pk: bytes(r[7]),
    pkValues,
    operation: text(r[9]) as RejectedOperation,
    code: text(r[10]),
    policy: textOrNull(r[11]),
    reason: text(r[12]),
    values,
  };
}

/** Refuses (TypeError) an input that is not an entry: bad site id, operation, credential kind or pk. */
export function validate(row: RejectionInput): void {
  if (!SITE_ID.test(row.siteId)) throw new TypeError(`rejection log: siteId must be 32 lowercase hex digits, got ${JSON.stringify(row.siteId)}`);
  if (!OPERATIONS.has(row.operation)) throw new TypeError(`rejection log: unknown operation ${JSON.stringify(row.operation)}`);
  if (!CREDENTIAL_KINDS.has(row.credentialKind)) throw new TypeError(`rejection log: unknown credential kind ${JSON.stringify(row.credentialKind)}`);
  if (!(row.pk instanceof Uint8Array)) throw new TypeError('rejection log: pk must be a Uint8Array');
}

export class RejectionLog extends CentralLog {
  constructor(engine: { driver: SqlDriver }, options: RejectionLogOptions = {}) {
    super(engine, { table: 'offsync_rejections', label: 'rejection log', ddl: DDL, defaults: { maxEntries: DEFAULT_REJECTION_MAX_ENTRIES, maxAgeMs: DEFAULT_REJECTION_MAX_AGE_MS } }, options);
  }

  /**
   * Appends `rows` (in order; ids ascending) at time `now` (ms since epoch), then applies the
   * retention. Synchronous; meant to run inside the caller's merge transaction (it opens a
   * savepoint of its own, so a failure leaves nothing half-written either way).
   */
  record(rows: readonly RejectionInput[], now: number): RejectionEntry[] {
    if (rows.length === 0) return [];
    for (const row of rows) validate(row);
    const at = Math.trunc(now);
    return this.driver.transaction(() => {
      const insert = this.driver.prepare(
        `INSERT INTO offsync_rejections (at, site_id, user_id, credential_kind, credential_id, tbl, pk, pk_values, operation, code, policy, reason, vals)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
      );
      const out: RejectionEntry[] = [];
      for (const row of rows) {
        const r = insert.getRaw(
          BigInt(at), row.siteId, row.userId, row.credentialKind, row.credentialId, row.table, row.pk,
          JSON.stringify(row.pkValues.map(encodeSqlValue)), row.operation, row.code, row.policy, row.reason, JSON.stringify(encodeValues(row.values)),
        );
        out.push({
          ...row,
          id: Number(r?.[0]),
          at: new Date(at),
          pk: new Uint8Array(row.pk),
          pkValues: [...row.pkValues],
          values: { ...row.values },
        });
      }
      this.retain(at);
      return out;
    });
  }

  /** One page, newest first (keyset on id: new entries never shift later pages). */
  list(args: RejectionListArgs): RejectionPage {
    const where: string[] = [];
    const params: SqlValue[] = [];
    const add = (sql: string, v: SqlValue): void => {
      where.push(sql);
      params.push(v);
    };
    const f = args.filter ?? {};
    if (f.table !== undefined) add('tbl = ?', f.table);
    if (f.siteId !== undefined) add('site_id = ?', f.siteId.toLowerCase());
    if (f.userId !== undefined) add('user_id = ?', f.userId);
    if (f.operation !== undefined) add('operation = ?', f.operation);
    if (f.code !== undefined) add('code = ?', f.code);
    if (f.since !== undefined) add('at >= ?', BigInt(f.since.getTime()));
    const page = keysetPage(this.driver, { table: 'offsync_rejections', columns: COLUMNS, prefix: 'r', where, params, first: args.first, maxPage: MAX_REJECTION_PAGE, after: args.after });
    const nodes = page.rows.map(rejectionFromRow);
    const last = nodes[nodes.length - 1];
    return { nodes, totalCount: page.totalCount, endCursor: last === undefined ? null : rejectionCursor(last.id), hasNextPage: page.hasNextPage };
  }
}

const logs = new WeakMap<SqlDriver, RejectionLog>();

/**
 * The one RejectionLog of a central database (the table is created on first use). `options`,
 * when given, (re)configure its retention — readers (GraphQL) pass none.
 */
export function rejectionLogOf(engine: { driver: SqlDriver }, options?: RejectionLogOptions): RejectionLog {
  let log = logs.get(engine.driver);
  if (log === undefined) {
    log = new RejectionLog(engine, options);
    logs.set(engine.driver, log);
  } else if (options !== undefined) {
    log.configure(options);
  }
  return log;
}

/** The SQLite log behind the asynchronous {@link RejectionLogReader} interface. */
export function rejectionReader(log: RejectionLog): RejectionLogReader {
  return { list: async (args) => log.list(args) };
}

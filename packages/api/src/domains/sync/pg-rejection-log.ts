/**
 * The rejection log of a POSTGRES database (docs/ARCHITECTURE.md "PostgreSQL row-level security",
 * "Per-row rejection"): the PostgreSQL twin of rejection-log.ts, with the same entries, value
 * encoding (central-log.ts `encodeSqlValue` / `decodeSqlValue`), cursors, filters, keyset pages
 * and retention, behind the same {@link RejectionLogReader} interface GraphQL reads.
 *
 * Stored in the customer database, in table `<meta>.rejections` of OffSync's metadata schema
 * (created idempotently by `PgCentral.open` with `peers` and `site_owners`; dropped with the
 * schema by `deleteDatabase(uninstall: true)`). {@link PgRejectionLog.record} runs inside the
 * merge's transaction, on its connection, as the connection's own user (never under the device's
 * `SET LOCAL ROLE`): an entry exists exactly when the merge that refused the row committed.
 *
 * Ids come from a bigserial, taken with `nextval` in row order: never reused (a rolled-back merge
 * only leaves a gap), so a cursor stays valid after retention and across nodes (merges of one
 * database serialise on its clock row lock, and the log is written while it is held).
 *
 * Retention (applied by `record`, cheap: two indexed deletes and an index-only max): entries
 * older than `maxAgeMs` (default 30 days) and all but the newest `maxEntries` ids (default 100,000).
 */
import type { PgConn } from '@offsync/core/postgres';
import type { LogRetention } from './central-log.ts';
import { decodeLogCursor, encodeSqlValue, positiveInt } from './central-log.ts';
import { DEFAULT_REJECTION_MAX_AGE_MS, DEFAULT_REJECTION_MAX_ENTRIES, encodeValues, MAX_REJECTION_PAGE, rejectionCursor, rejectionFromRow, validate as validateRejection } from './rejection-log.ts';
import type { RejectionEntry, RejectionInput, RejectionListArgs, RejectionLogReader, RejectionPage } from './rejection-log.ts';

/** Rows per INSERT statement (14 parameters each, far below PostgreSQL's 65,535). */
const INSERT_CHUNK = 500;

// Renamed: a bare `id` in ORDER BY would name the text output column and sort as text.
const COLUMNS = 'id::text AS id_text, at::text AS at_text, site_id, user_id, credential_kind, credential_id, tbl, pk, pk_values, operation, code, policy, reason, vals';

/** The statements that create the log in metadata schema `m` (quoted), idempotently. */
export function pgRejectionLogDdl(m: string): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${m}.rejections (
      id bigserial PRIMARY KEY, at bigint NOT NULL, site_id text NOT NULL, user_id text, credential_kind text NOT NULL,
      credential_id text, tbl text NOT NULL, pk bytea NOT NULL, pk_values text NOT NULL, operation text NOT NULL,
      code text NOT NULL, policy text, reason text NOT NULL, vals text NOT NULL)`,
    `CREATE INDEX IF NOT EXISTS rejections_at ON ${m}.rejections (at)`,
    `CREATE INDEX IF NOT EXISTS rejections_tbl ON ${m}.rejections (tbl, id)`,
    `CREATE INDEX IF NOT EXISTS rejections_site ON ${m}.rejections (site_id, id)`,
    `CREATE INDEX IF NOT EXISTS rejections_user ON ${m}.rejections (user_id, id)`,
  ];
}

export class PgRejectionLog implements RejectionLogReader {
  readonly #m: string;
  readonly #read: <T>(fn: (c: PgConn) => Promise<T>) => Promise<T>;
  #maxEntries = DEFAULT_REJECTION_MAX_ENTRIES;
  #maxAgeMs = DEFAULT_REJECTION_MAX_AGE_MS;

  /**
   * `m`: the metadata schema, quoted; `read`: runs a read on a connection of the database
   * (`engine.withConnection`).
   */
  constructor(m: string, read: <T>(fn: (c: PgConn) => Promise<T>) => Promise<T>, options: LogRetention = {}) {
    this.#m = m;
    this.#read = read;
    this.configure(options);
  }

  get maxEntries(): number {
    return this.#maxEntries;
  }

  get maxAgeMs(): number {
    return this.#maxAgeMs;
  }

  /** Changes the retention (given fields only); applied from the next append. */
  configure(options: LogRetention): void {
    this.#maxEntries = positiveInt(options.maxEntries, this.#maxEntries, 'maxEntries', 'rejection log');
    this.#maxAgeMs = positiveInt(options.maxAgeMs, this.#maxAgeMs, 'maxAgeMs', 'rejection log');
  }

  /**
   * Appends `rows` (ids ascending in their order) at `now` (ms since epoch) on `c`, the merge's
   * transaction, then applies the retention. The caller makes sure `c` runs as the connection's
   * own user (no device role in force).
   */
  async record(c: PgConn, rows: readonly RejectionInput[], now: number): Promise<RejectionEntry[]> {
    if (rows.length === 0) return [];
    for (const row of rows) validateRejection(row);
    const at = Math.trunc(now);
    const m = this.#m;
    const ids = (await c.q(`SELECT nextval(pg_get_serial_sequence($1, 'id'))::text FROM generate_series(1, $2::int)`, [`${m}.rejections`, rows.length]))
      .map((r) => Number(r[0]))
      .sort((a, b) => a - b);
    const out: RejectionEntry[] = [];
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      const chunk = rows.slice(i, i + INSERT_CHUNK);
      const params: unknown[] = [];
      const tuples = chunk.map((row, j) => {
        const id = ids[i + j];
        params.push(String(id), at, row.siteId, row.userId, row.credentialKind, row.credentialId, row.table, row.pk,
          JSON.stringify(row.pkValues.map(encodeSqlValue)), row.operation, row.code, row.policy, row.reason, JSON.stringify(encodeValues(row.values)));
        const b = j * 14;
        return `(${Array.from({ length: 14 }, (_, k) => `$${b + k + 1}`).join(', ')})`;
      });
      await c.q(
        `INSERT INTO ${m}.rejections (id, at, site_id, user_id, credential_kind, credential_id, tbl, pk, pk_values, operation, code, policy, reason, vals) VALUES ${tuples.join(', ')}`,
        params,
      );
      chunk.forEach((row, j) => {
        out.push({ ...row, id: Number(ids[i + j]), at: new Date(at), pk: new Uint8Array(row.pk), pkValues: [...row.pkValues], values: { ...row.values } });
      });
    }
    await c.q(`DELETE FROM ${m}.rejections WHERE at < $1`, [at - this.#maxAgeMs]);
    const [max] = await c.q(`SELECT max(id)::text FROM ${m}.rejections`);
    if (max?.[0] != null && Number(max[0]) > this.#maxEntries) await c.q(`DELETE FROM ${m}.rejections WHERE id <= $1`, [String(Number(max[0]) - this.#maxEntries)]);
    return out;
  }

  /** One page, newest first (keyset on id: new entries never shift later pages), as the SQLite log's `list`. */
  async list(args: RejectionListArgs): Promise<RejectionPage> {
    if (!Number.isSafeInteger(args.first) || args.first < 0) throw new RangeError('first: must be a non-negative integer');
    const first = Math.min(args.first, MAX_REJECTION_PAGE);
    const before = args.after === undefined ? undefined : decodeLogCursor('r', args.after);
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, v: unknown): void => {
      params.push(v);
      where.push(`${sql} $${params.length}`);
    };
    const f = args.filter ?? {};
    if (f.table !== undefined) add('tbl =', f.table);
    if (f.siteId !== undefined) add('site_id =', f.siteId.toLowerCase());
    if (f.userId !== undefined) add('user_id =', f.userId);
    if (f.operation !== undefined) add('operation =', f.operation);
    if (f.code !== undefined) add('code =', f.code);
    if (f.since !== undefined) add('at >=', f.since.getTime());
    const filterSql = where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`;
    const pageSql = before === undefined ? filterSql : `${filterSql === '' ? 'WHERE' : `${filterSql} AND`} id < $${params.length + 1}`;
    const pageParams = before === undefined ? params : [...params, String(before)];
    const m = this.#m;
    const { total, rows } = await this.#read(async (c) => {
      const [n] = await c.q(`SELECT count(*)::text FROM ${m}.rejections ${filterSql}`, params);
      // One row more than asked tells whether another page follows (also for first = 0).
      const page = await c.q(`SELECT ${COLUMNS} FROM ${m}.rejections ${pageSql} ORDER BY id DESC LIMIT ${first + 1}`, pageParams);
      return { total: Number(n?.[0] ?? 0), rows: page };
    });
    const nodes = rows.slice(0, first).map(rejectionFromRow);
    const last = nodes[nodes.length - 1];
    return { nodes, totalCount: total, endCursor: last === undefined ? null : rejectionCursor(last.id), hasNextPage: rows.length > first };
  }
}

/** Live connection checks: SQLite file reachable and writable; PostgreSQL connect + auth + `offsync` schema. */
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import pg from 'pg';
import { readFileIdentity } from '../sync/central-file.ts';
import { isSqliteBusyError } from '../sync/main-connection.ts';

export interface ConnectionError { code: string; message: string; retryable: boolean }

export interface ConnectionStatus {
  /** FILE_MISSING: the SQLite file is gone or is not the one the control plane knows; sync refuses it until restoreConnection. */
  status: 'OK' | 'ERROR' | 'FILE_MISSING';
  host: string | null;
  port: number | null;
  database: string | null;
  checkedAt: Date;
  error: ConnectionError | null;
  extensionInstalled: boolean;
}

/** `identity`: the id the file must carry (control plane `fileIdentity`); null = not checked. */
export function checkSqliteFile(file: string, now: Date, identity: string | null = null): ConnectionStatus {
  const base = { host: null, port: null, database: file, checkedAt: now };
  const missing = (code: string, message: string): ConnectionStatus => ({ ...base, status: 'FILE_MISSING', extensionInstalled: false, error: { code, message, retryable: false } });
  if (!existsSync(file)) return missing('FILE_MISSING', 'The database file does not exist; sync is refused until restoreConnection');
  try {
    accessSync(file, constants.R_OK | constants.W_OK);
    const db = new Database(file, { fileMustExist: true });
    try {
      const found = readFileIdentity(db);
      if (identity !== null && found !== identity) {
        return missing('FILE_REPLACED', `The database file ${found === null ? 'carries no identity' : 'carries another identity'}: it is not the file sync wrote to; sync is refused until restoreConnection`);
      }
      // Writable: take the write lock and give it back, without waiting for it. The connection's
      // default busy wait (5 s) would block the event loop while a central worker's merge holds
      // the lock (the dashboards poll this). Held by another writer, the file is in use: writable.
      db.pragma('busy_timeout = 0');
      try {
        db.exec('BEGIN IMMEDIATE; ROLLBACK');
      } catch (e) {
        if (!isSqliteBusyError(e)) throw e;
      }
      // The core engine's metadata (offsync_tables) or the SQLite Sync extension's (cloudsync_*).
      const meta = db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND (name = 'offsync_tables' OR name LIKE 'cloudsync\\_%' ESCAPE '\\')").pluck().get() as number;
      return { ...base, status: 'OK', error: null, extensionInstalled: meta > 0 };
    } finally {
      db.close();
    }
  } catch (e) {
    return { ...base, status: 'ERROR', extensionInstalled: false, error: { code: 'FILE_NOT_WRITABLE', message: e instanceof Error ? e.message : String(e), retryable: true } };
  }
}

/**
 * What a SQLite check's result depends on besides the expected identity: the file's inode, mode,
 * owner and change time ('' when there is no file). A file replaced, removed, re-created or
 * re-permissioned gets another fingerprint.
 */
export function sqliteFileFingerprint(file: string): string {
  const st = statSync(file, { throwIfNoEntry: false });
  return st === undefined ? '' : `${st.dev}:${st.ino}:${st.mode}:${st.uid}:${st.gid}:${st.ctimeMs}`;
}

/** How long a connection check answers `connection { status }` for the same file or settings (dashboards poll it). */
export const CONNECTION_CHECK_MAX_AGE_MS = 2000;

/**
 * The last connection check of each database, reused while it is younger than `maxAgeMs` and
 * made under the same key (the file's fingerprint and expected identity, or the connection
 * settings): a dashboard's poll then costs a stat instead of opening the file (bench/load.ts:
 * 0.8 s of event-loop time in 20 s with four dashboards) or a PostgreSQL connection. The
 * result's `checkedAt` says when it was checked. Concurrent polls share one check.
 */
export class RecentChecks {
  readonly #last = new Map<string, { key: string; at: number; result: Promise<ConnectionStatus> }>();

  constructor(
    private readonly maxAgeMs: number,
    private readonly nowMs: () => number,
  ) {}

  check(id: string, key: string, run: () => ConnectionStatus | Promise<ConnectionStatus>): Promise<ConnectionStatus> {
    const at = this.nowMs();
    const last = this.#last.get(id);
    if (last !== undefined && last.key === key && at - last.at < this.maxAgeMs) return last.result;
    let result: Promise<ConnectionStatus>;
    try {
      result = Promise.resolve(run());
    } catch (e) {
      result = Promise.reject(e);
    }
    const entry = { key, at, result };
    this.#last.set(id, entry);
    // A check that threw is not kept: the next poll checks again.
    result.catch(() => {
      if (this.#last.get(id) === entry) this.#last.delete(id);
    });
    return result;
  }

  forget(id: string): void {
    this.#last.delete(id);
  }
}

export interface PgSettings { host: string; port: number; database: string; user: string; password: string; ssl: boolean }

/** node-postgres settings of a connection (client or pool): TLS verified when `ssl`. */
export function pgConnectionConfig(s: PgSettings, timeoutMs = 5000): pg.ClientConfig {
  return {
    host: s.host, port: s.port, database: s.database, user: s.user, password: s.password,
    ssl: s.ssl ? { rejectUnauthorized: true } : false,
    connectionTimeoutMillis: timeoutMs,
  };
}

/** Opens a pg client; caller ends it. */
export async function connectPg(s: PgSettings, timeoutMs = 5000): Promise<pg.Client> {
  const client = new pg.Client(pgConnectionConfig(s, timeoutMs));
  client.on('error', () => {});
  await client.connect();
  return client;
}

export async function checkPostgres(s: PgSettings, now: Date): Promise<ConnectionStatus> {
  const base = { host: s.host, port: s.port, database: s.database, checkedAt: now };
  let client: pg.Client | null = null;
  try {
    client = await connectPg(s);
    const res = await client.query<{ installed: boolean }>("SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = 'offsync') AS installed");
    return { ...base, status: 'OK', error: null, extensionInstalled: res.rows[0]?.installed === true };
  } catch (e) {
    return { ...base, status: 'ERROR', extensionInstalled: false, error: describePgError(e) };
  } finally {
    await client?.end().catch(() => {});
  }
}

const nonRetryablePg = new Set(['28P01', '28000', '3D000', '42501']);

export function describePgError(e: unknown): ConnectionError {
  const err = e as { code?: unknown; message?: unknown };
  const code = typeof err.code === 'string' ? err.code : 'UNKNOWN';
  const message = typeof err.message === 'string' && err.message !== '' ? err.message : 'Connection failed';
  const known: Record<string, string> = {
    '28P01': 'AUTHENTICATION_FAILED', '28000': 'AUTHENTICATION_FAILED', '3D000': 'DATABASE_NOT_FOUND',
    '42501': 'PERMISSION_DENIED', ECONNREFUSED: 'CONNECTION_REFUSED', ENOTFOUND: 'HOST_NOT_FOUND',
    ETIMEDOUT: 'TIMEOUT', ECONNRESET: 'CONNECTION_RESET', EHOSTUNREACH: 'HOST_UNREACHABLE',
  };
  const mapped = known[code] ?? (/timeout/i.test(message) ? 'TIMEOUT' : code);
  return { code: mapped, message, retryable: !nonRetryablePg.has(code) && code !== 'ENOTFOUND' };
}

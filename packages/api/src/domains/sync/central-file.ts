/**
 * Identity and file modes of a central SQLite file (docs/ARCHITECTURE.md "Central files").
 *
 * Every central file carries a random id in `offsync_identity` (one row), written when the file is
 * created (`createDatabase`) or accepted by an operator (`restoreConnection`); the control plane
 * remembers it (`Database.fileIdentity`). A file that is missing, lacks the id or carries another
 * one is not the file the acknowledged uploads went to: sync refuses it (503
 * `database_file_missing`) and nothing recreates it silently.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

/** Mode of every file OffSync writes under DATA_DIR (owner read/write only). */
export const PRIVATE_FILE_MODE = 0o600;
/** Mode of DATA_DIR and its folders. */
export const PRIVATE_DIR_MODE = 0o700;

/** `PRAGMA synchronous` of central databases: FULL (default) or NORMAL (`OFFSYNC_SYNCHRONOUS`). */
export type CentralSynchronous = 'FULL' | 'NORMAL';

const IDENTITY_DDL = `CREATE TABLE IF NOT EXISTS offsync_identity (
  one INTEGER PRIMARY KEY NOT NULL CHECK (one = 1),
  id TEXT NOT NULL,
  created_at TEXT NOT NULL
)`;

export function newFileIdentity(): string {
  return `fid_${randomBytes(16).toString('hex')}`;
}

/** Creates `dir` (and parents) and sets it to 0700 whatever the umask. */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  chmodSync(dir, PRIVATE_DIR_MODE);
}

/**
 * Creates `file` empty with mode 0600 when it does not exist (an empty file is an empty SQLite
 * database), so SQLite never creates it with the umask's mode; its -wal/-shm files inherit the
 * mode of the database file. Existing files are only chmod-ed.
 */
export function touchPrivateFile(file: string): void {
  ensurePrivateDir(dirname(file));
  closeSync(openSync(file, 'a', PRIVATE_FILE_MODE));
  chmodSync(file, PRIVATE_FILE_MODE);
}

/** The id stored inside an open central file, or null when it has none. */
export function readFileIdentity(db: { prepare(sql: string): { get(): unknown } }): string | null {
  try {
    const row = db.prepare('SELECT id FROM offsync_identity WHERE one = 1').get() as { id?: unknown } | undefined;
    return typeof row?.id === 'string' ? row.id : null;
  } catch (e) {
    if (e instanceof Error && /no such table/.test(e.message)) return null;
    throw e;
  }
}

/** Opens an existing central file (never creates it); null when it does not exist. */
function openExisting(file: string): Database.Database | null {
  if (!existsSync(file)) return null;
  try {
    return new Database(file, { fileMustExist: true });
  } catch (e) {
    if ((e as { code?: unknown }).code === 'SQLITE_CANTOPEN') return null;
    throw e;
  }
}

/** Creates a new central file (0600, WAL) with a fresh identity; returns the identity. */
export function createCentralFile(file: string): string {
  touchPrivateFile(file);
  const db = new Database(file, { fileMustExist: true });
  try {
    db.pragma('journal_mode = WAL');
    return stamp(db, newFileIdentity(), true);
  } finally {
    db.close();
  }
}

function stamp(db: Database.Database, identity: string, replace: boolean): string {
  db.exec(IDENTITY_DDL);
  const verb = replace ? 'INSERT OR REPLACE' : 'INSERT OR IGNORE';
  db.prepare(`${verb} INTO offsync_identity (one, id, created_at) VALUES (1, ?, ?)`).run(identity, new Date().toISOString());
  return readFileIdentity(db) ?? identity;
}

/**
 * Writes `identity` into an existing central file (replacing any other); returns false when the
 * file does not exist. Used by `restoreConnection` to accept the file as it is.
 */
export function restampCentralFile(file: string, identity: string): boolean {
  const db = openExisting(file);
  if (db === null) return false;
  try {
    stamp(db, identity, true);
    chmodSync(file, PRIVATE_FILE_MODE);
    return true;
  } finally {
    db.close();
  }
}

/**
 * The identity of an existing file, stamping a new one into a file that has none (files created
 * before identities existed; concurrent callers converge on the first stamp). Null when the file
 * does not exist.
 */
export function adoptCentralFile(file: string): string | null {
  const db = openExisting(file);
  if (db === null) return null;
  try {
    return readFileIdentity(db) ?? stamp(db, newFileIdentity(), false);
  } finally {
    db.close();
  }
}

/** The identity of an existing file, without writing to it. */
export function peekCentralFile(file: string): { exists: false } | { exists: true; identity: string | null } {
  const db = openExisting(file);
  if (db === null) return { exists: false };
  try {
    return { exists: true, identity: readFileIdentity(db) };
  } finally {
    db.close();
  }
}

/**
 * File modes of DATA_DIR (docs/ARCHITECTURE.md "Files and keys"): the folder and its sub-folders
 * are 0700, every file in them 0600 (control-plane SQLite, central databases and their -wal/-shm,
 * server.key), whatever the umask. Wider modes found at start are tightened, with a warning.
 */
import { chmodSync, closeSync, lstatSync, mkdirSync, openSync, readdirSync } from 'node:fs';
import type { Dirent } from 'node:fs';
import { dirname, isAbsolute, join, relative } from 'node:path';
import type { Logger } from './deps.ts';
import { ensurePrivateDir, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from './domains/sync/central-file.ts';

export interface Tightened {
  path: string;
  /** Mode found (permission bits). */
  from: number;
  to: number;
}

function tighten(path: string, to: number, out: Tightened[], logger: Logger): void {
  let mode: number;
  try {
    mode = lstatSync(path).mode & 0o777;
  } catch {
    return; // vanished meanwhile
  }
  if ((mode & 0o077) === 0) return;
  try {
    chmodSync(path, to);
    out.push({ path, from: mode, to });
  } catch (e) {
    logger.warn('cannot tighten file mode', { path, mode: mode.toString(8), error: e instanceof Error ? e.message : String(e) });
  }
}

function walk(dir: string, out: Tightened[], logger: Logger): void {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const path = join(dir, e.name);
    // Symbolic links are not followed: their targets are the operator's business.
    if (e.isDirectory()) {
      tighten(path, PRIVATE_DIR_MODE, out, logger);
      walk(path, out, logger);
    } else if (e.isFile()) {
      tighten(path, PRIVATE_FILE_MODE, out, logger);
    }
  }
}

/**
 * Creates DATA_DIR and `databases/` (0700) and tightens every folder (0700) and regular file
 * (0600) below it that group or others may access. Returns what was tightened (also logged).
 */
export function secureDataDir(dataDir: string, logger: Logger): Tightened[] {
  const out: Tightened[] = [];
  mkdirSync(dataDir, { recursive: true, mode: PRIVATE_DIR_MODE });
  tighten(dataDir, PRIVATE_DIR_MODE, out, logger);
  walk(dataDir, out, logger);
  ensurePrivateDir(join(dataDir, 'databases'));
  for (const t of out) logger.warn('file mode tightened', { path: t.path, from: t.from.toString(8), to: t.to.toString(8) });
  return out;
}

function inside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

/**
 * Before migrations: the control-plane SQLite file exists with mode 0600 (created empty if
 * needed, so SQLite never creates it with the umask's mode; -wal/-shm inherit its mode), and an
 * existing wider mode of it or its -wal/-shm is tightened. A parent folder outside DATA_DIR is
 * created 0700 when missing but an existing one is left as the operator made it.
 */
export function prepareControlPlaneFile(file: string, dataDir: string, logger: Logger): Tightened[] {
  const out: Tightened[] = [];
  const dir = dirname(file);
  if (inside(dataDir, file)) ensurePrivateDir(dir);
  else mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  closeSync(openSync(file, 'a', PRIVATE_FILE_MODE));
  for (const suffix of ['', '-wal', '-shm', '-journal']) tighten(file + suffix, PRIVATE_FILE_MODE, out, logger);
  for (const t of out) logger.warn('file mode tightened', { path: t.path, from: t.from.toString(8), to: t.to.toString(8) });
  return out;
}

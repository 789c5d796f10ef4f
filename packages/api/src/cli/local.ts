/**
 * The CLI commands that work on DATA_DIR directly (same host as the server, same environment as
 * `npm start`: DATA_DIR, DATABASE_URL): admin keys (also when the printed key is lost), a
 * database's schema applied with OffSync's bundled SQLite (better-sqlite3, never a system
 * `sqlite3`), and online backups of central databases.
 */
import { chmodSync, existsSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { loadConfig } from '../config.ts';
import { generateId, generateSecret, sha256Hex } from '../crypto.ts';
import { prepareControlPlaneFile, secureDataDir } from '../data-dir.ts';
import { migrate } from '../db/migrate.ts';
import { createPrismaClient, parseDatabaseUrl } from '../db/prisma.ts';
import type { PrismaClient } from '../db/prisma.ts';
import type { Logger } from '../deps.ts';
import { sqliteDatabasePath } from '../domains/databases/databases.service.ts';
import { CliError, Exit } from './args.ts';

const stderrLogger: Logger = {
  info: () => {},
  warn: (m, f) => process.stderr.write(`warning: ${m}${f === undefined ? '' : ` ${JSON.stringify(f)}`}\n`),
  error: (m, f) => process.stderr.write(`error: ${m}${f === undefined ? '' : ` ${JSON.stringify(f)}`}\n`),
};

export function dataDir(): string {
  return loadConfig(process.env).dataDir;
}

/** The control plane as `npm start` opens it (migrations applied, so a fresh DATA_DIR works too). */
export async function withControlPlane<T>(fn: (prisma: PrismaClient) => Promise<T>): Promise<T> {
  const config = loadConfig(process.env);
  const target = parseDatabaseUrl(config.databaseUrl, config.dataDir);
  secureDataDir(config.dataDir, stderrLogger);
  if (target.provider === 'sqlite') prepareControlPlaneFile(target.file, config.dataDir, stderrLogger);
  await migrate(target);
  const prisma = createPrismaClient(target);
  try {
    return await fn(prisma);
  } finally {
    await prisma.$disconnect();
  }
}

export interface AdminKeyView { id: string; createdAt: string; lastUsedAt: string | null }
const view = (k: { id: string; createdAt: Date; lastUsedAt: Date | null }): AdminKeyView => ({ id: k.id, createdAt: k.createdAt.toISOString(), lastUsedAt: k.lastUsedAt?.toISOString() ?? null });

async function newKey(prisma: PrismaClient): Promise<{ id: string; secret: string }> {
  const secret = generateSecret('osa');
  const id = generateId('adm', 12);
  await prisma.adminKey.create({ data: { id, hash: sha256Hex(secret), createdAt: new Date() } });
  return { id, secret };
}

export const adminKeys = {
  list: () => withControlPlane(async (p) => (await p.adminKey.findMany({ orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] })).map(view)),
  create: () => withControlPlane((p) => newKey(p)),
  /** A new key replaces `id` (created, then `id` deleted, in one transaction). */
  rotate: (id: string) =>
    withControlPlane(async (p) => {
      if ((await p.adminKey.findUnique({ where: { id } })) === null) throw new CliError(Exit.FAILED, 'NOT_FOUND', `no admin key ${id}`);
      const secret = generateSecret('osa');
      const newId = generateId('adm', 12);
      await p.$transaction([p.adminKey.create({ data: { id: newId, hash: sha256Hex(secret), createdAt: new Date() } }), p.adminKey.delete({ where: { id } })]);
      return { id: newId, secret, replaced: id };
    }),
  /** Deletes `id`; refuses the last key unless `force` (then only `recover` opens the API again). */
  revoke: (id: string, force: boolean) =>
    withControlPlane(async (p) => {
      if ((await p.adminKey.findUnique({ where: { id } })) === null) throw new CliError(Exit.FAILED, 'NOT_FOUND', `no admin key ${id}`);
      if (!force && (await p.adminKey.count()) <= 1) throw new CliError(Exit.FAILED, 'LAST_KEY', `${id} is the only admin key: create another first, or pass --force`);
      await p.adminKey.delete({ where: { id } });
      return { revoked: id };
    }),
  /** Lost key: a new one from DATA_DIR access alone; `revokeOthers` deletes every other key. */
  recover: (revokeOthers: boolean) =>
    withControlPlane(async (p) => {
      const k = await newKey(p);
      const revoked = revokeOthers ? (await p.adminKey.findMany({ where: { id: { not: k.id } } })).map((x) => x.id) : [];
      if (revoked.length > 0) await p.adminKey.deleteMany({ where: { id: { in: revoked } } });
      return { ...k, revoked };
    }),
};

/** The central file of a SQLITE database; FAILED when it does not exist here. */
export function centralFile(databaseId: string): string {
  if (!/^[A-Za-z0-9_-]{1,100}$/.test(databaseId)) throw new CliError(Exit.FAILED, 'NOT_FOUND', `invalid database id ${JSON.stringify(databaseId)}`);
  const file = sqliteDatabasePath(dataDir(), databaseId);
  if (!existsSync(file)) throw new CliError(Exit.FAILED, 'NOT_FOUND', `no central file for ${databaseId} in ${dataDir()} (run the CLI where the server's DATA_DIR is)`);
  return file;
}

/** Names of user tables (not SQLite's, not OffSync's metadata). */
function userTables(db: Database.Database): string[] {
  return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[])
    .filter((n) => !n.startsWith('sqlite_') && !n.startsWith('offsync_') && !/__crdt(_rows|_cells)?$/.test(n));
}

/** Runs `sql` (a schema file) on the central file in one transaction; returns the user tables it created. */
export function applySchema(databaseId: string, sql: string): { created: string[]; tables: string[]; sqliteVersion: string } {
  const db = new Database(centralFile(databaseId), { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    const before = new Set(userTables(db));
    try {
      db.exec(`BEGIN IMMEDIATE;\n${sql}\n;COMMIT;`);
    } catch (e) {
      if (db.inTransaction) db.exec('ROLLBACK');
      throw new CliError(Exit.FAILED, 'SCHEMA_FAILED', `the schema file failed (nothing applied): ${e instanceof Error ? e.message : String(e)}`);
    }
    const tables = userTables(db);
    return { created: tables.filter((t) => !before.has(t)), tables, sqliteVersion: String(db.prepare('SELECT sqlite_version()').pluck().get()) };
  } finally {
    db.close();
  }
}

/** Online backup (SQLite backup API) of a central database to `dest`; the copy is integrity-checked. */
export async function backup(databaseId: string, dest: string): Promise<{ database: string; file: string; bytes: number; integrity: string }> {
  const src = new Database(centralFile(databaseId), { fileMustExist: true });
  try {
    src.pragma('busy_timeout = 5000');
    await src.backup(dest);
  } catch (e) {
    throw new CliError(Exit.FAILED, 'BACKUP_FAILED', `backup failed: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    src.close();
  }
  chmodSync(dest, 0o600);
  const copy = new Database(dest, { readonly: true, fileMustExist: true });
  try {
    const integrity = String(copy.prepare('PRAGMA integrity_check').pluck().get());
    if (integrity !== 'ok') throw new CliError(Exit.FAILED, 'BACKUP_CORRUPT', `the copy failed its integrity check: ${integrity}`);
    return { database: databaseId, file: dest, bytes: statSync(dest).size, integrity };
  } finally {
    copy.close();
  }
}

/** Databases: creation (SQLite file or PostgreSQL registration), OffSync status, connection settings. */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ServiceDeps } from '../../deps.ts';
import { generateId, generateSecret, sha256Hex } from '../../crypto.ts';
import { ApiError } from '../../errors.ts';
import { validateHost, validateIdentifier, validateName, validatePort, validateSecret } from '../../validation.ts';
import type { Database as DatabaseRow } from '../../generated/sqlite/client.ts';
import { adoptCentralFile, createCentralFile, newFileIdentity, restampCentralFile } from '../sync/central-file.ts';
import { pgSyncedTables, uninstallPg } from '../tables/pg-tables.ts';
import { checkPostgres, checkSqliteFile, CONNECTION_CHECK_MAX_AGE_MS, RecentChecks, sqliteFileFingerprint } from './connection.ts';
import type { ConnectionStatus, PgSettings } from './connection.ts';

export interface PgConnectionInput {
  host: string;
  port: number;
  database: string;
  user: string;
  /** Required when registering; optional on update (keeps the stored one). */
  password?: string | null | undefined;
  ssl?: boolean | null | undefined;
}

export interface DatabaseFilter { nameContains?: string | null | undefined; offSyncEnabled?: boolean | null | undefined }

/** Path of the SQLite file behind a SQLITE database. */
export function sqliteDatabasePath(dataDir: string, databaseId: string): string {
  return join(dataDir, 'databases', `${databaseId}.sqlite`);
}

export function createDatabasesService(deps: ServiceDeps) {
  const { prisma, secretBox } = deps;
  const now = () => new Date(deps.clock.now());
  const recentChecks = new RecentChecks(CONNECTION_CHECK_MAX_AGE_MS, () => deps.clock.now());

  /** The password is optional: none on create means the server needs none (trust); none on reconfigure keeps the stored one. */
  function validatePg(input: PgConnectionInput) {
    const password = input.password ?? null;
    return {
      pgHost: validateHost('connection.host', input.host),
      pgPort: validatePort('connection.port', input.port),
      pgDatabase: validateIdentifier('connection.database', input.database),
      pgUser: validateIdentifier('connection.user', input.user),
      pgSsl: input.ssl ?? false,
      ...(password === null ? {} : { pgPasswordEnc: secretBox.encrypt(validateSecret('connection.password', password, 1)) }),
    };
  }

  const service = {
    async getDatabase(id: string): Promise<DatabaseRow> {
      const db = await prisma.database.findUnique({ where: { id } });
      if (db === null) throw new ApiError('NOT_FOUND', `Database ${id} not found`, { details: { databaseId: id } });
      return db;
    },

    async listDatabases(projectId: string, filter: DatabaseFilter = {}) {
      const project = await prisma.project.findUnique({ where: { id: projectId } });
      if (project === null) throw new ApiError('NOT_FOUND', `Project ${projectId} not found`, { details: { projectId } });
      return prisma.database.findMany({
        where: {
          projectId,
          ...(filter.nameContains ? { name: { contains: filter.nameContains } } : {}),
          ...(filter.offSyncEnabled == null ? {} : { offSyncEnabled: filter.offSyncEnabled }),
        },
        orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
      });
    },

    async createDatabase(input: { projectId: string; name: string; connection?: PgConnectionInput | null }) {
      const project = await prisma.project.findUnique({ where: { id: input.projectId } });
      if (project === null) throw new ApiError('NOT_FOUND', `Project ${input.projectId} not found`, { details: { projectId: input.projectId } });
      const name = validateName('name', input.name);
      if (await prisma.database.findFirst({ where: { projectId: project.id, name } })) {
        throw new ApiError('CONFLICT', `A database named "${name}" already exists in this project`, { details: { field: 'name' } });
      }
      const id = generateId('db');
      if (project.kind === 'SQLITE') {
        if (input.connection) throw new ApiError('VALIDATION_FAILED', 'connection: only POSTGRES databases take connection settings', { details: { field: 'connection' } });
        const fileIdentity = createCentralFile(sqliteDatabasePath(deps.dataDir, id));
        return prisma.database.create({
          data: { id, projectId: project.id, name, kind: 'SQLITE', createdAt: now(), serviceKeyHash: sha256Hex(generateSecret('osv')), serviceKeyUpdatedAt: now(), fileIdentity },
        });
      }
      if (!input.connection) throw new ApiError('VALIDATION_FAILED', 'connection: POSTGRES databases need connection settings', { details: { field: 'connection' } });
      return prisma.database.create({ data: { id, projectId: project.id, name, kind: 'POSTGRES', createdAt: now(), ...validatePg(input.connection) } });
    },

    async deleteDatabase(id: string, opts: { uninstall?: boolean } = {}): Promise<string> {
      return (await service.deleteDatabaseWith(id, opts)).id;
    },

    /**
     * Removes the database from the control plane (credentials, devices, metrics cascade).
     * SQLITE: its file is deleted. POSTGRES: the customer database keeps everything unless
     * `uninstall`: then OffSync's triggers, trigger functions and `offsync` schema are removed from
     * it first (pg-tables.ts `uninstallPg`); when that fails (CONNECTION_FAILED, …) nothing is deleted.
     */
    async deleteDatabaseWith(id: string, opts: { uninstall?: boolean } = {}): Promise<{ id: string; uninstalled: boolean }> {
      const db = await service.getDatabase(id);
      let uninstalled = false;
      if (db.kind === 'POSTGRES' && opts.uninstall === true) {
        uninstalled = await uninstallPg(service.pgSettings(db));
        deps.logger.warn('OffSync uninstalled from the PostgreSQL database by deleteDatabase', { databaseId: id, removed: uninstalled });
      }
      await prisma.database.delete({ where: { id } });
      deps.pubsub.publish('syncAccessEnded', id, { databaseId: id, reason: 'SYNC_DISABLED', at: now().toISOString() });
      if (db.kind === 'SQLITE') {
        const file = sqliteDatabasePath(deps.dataDir, id);
        for (const suffix of ['', '-wal', '-shm']) rmSync(file + suffix, { force: true });
      }
      recentChecks.forget(id);
      return { id, uninstalled };
    },

    /**
     * Why a database cannot serve devices, or null when it can. SQLITE: its file is missing,
     * replaced or not writable. POSTGRES: the connection fails, or no table is deployed (the
     * `offsync` metadata is not installed, or its synced set is empty).
     */
    async whyCannotServe(db: DatabaseRow): Promise<ApiError | null> {
      if (db.kind === 'SQLITE') {
        const c = checkSqliteFile(sqliteDatabasePath(deps.dataDir, db.id), now(), db.fileIdentity);
        if (c.status === 'OK') return null;
        const reason = c.error?.code ?? 'FILE_MISSING';
        const what = reason === 'FILE_NOT_WRITABLE' ? 'cannot be opened for writing' : reason === 'FILE_REPLACED' ? 'was replaced' : 'is missing';
        return new ApiError('CONFLICT', `OffSync cannot be enabled: the database file ${what} (${c.error?.message ?? reason}); run restoreConnection first`, {
          details: { databaseId: db.id, reason },
        });
      }
      const c = await checkPostgres(service.pgSettings(db), now());
      if (c.status !== 'OK') {
        return new ApiError('CONNECTION_FAILED', `OffSync cannot be enabled: cannot connect to the PostgreSQL database (${c.error?.message ?? 'connection failed'}); fix the connection with configureConnection`, {
          details: { databaseId: db.id, reason: 'CONNECTION_FAILED', ...(c.error ?? {}) },
        });
      }
      const synced = c.extensionInstalled ? await pgSyncedTables(service.pgSettings(db)) : null;
      if (synced === null || synced.length === 0) {
        return new ApiError('CONFLICT', `OffSync cannot be enabled: no table is deployed for sync in the PostgreSQL database (${synced === null ? 'the offsync metadata schema is not installed' : 'the synced set is empty'}); deploy tables first (deployTables)`, {
          details: { databaseId: db.id, reason: 'NO_SYNCED_TABLES', metadataInstalled: synced !== null },
        });
      }
      return null;
    },

    /** Enabling refuses a database that cannot serve (see {@link whyCannotServe}), nothing changed; disabling always works. */
    async setOffSync(id: string, enabled: boolean) {
      const db = await service.getDatabase(id);
      if (db.offSyncEnabled === enabled) return db;
      if (enabled) {
        const why = await service.whyCannotServe(db);
        if (why !== null) throw why;
      }
      const updated = await prisma.database.update({ where: { id }, data: { offSyncEnabled: enabled, offSyncEnabledAt: enabled ? now() : null } });
      // Live `changes` subscriptions of this database end now (domains/sync/graphql/live-sessions.ts).
      if (!enabled) deps.pubsub.publish('syncAccessEnded', id, { databaseId: id, reason: 'SYNC_DISABLED', at: now().toISOString() });
      return updated;
    },

    async configureConnection(id: string, input: PgConnectionInput) {
      const db = await service.getDatabase(id);
      if (db.kind !== 'POSTGRES') throw new ApiError('CONFLICT', 'configureConnection applies to POSTGRES databases only', { details: { databaseId: id } });
      return prisma.database.update({ where: { id }, data: validatePg(input) });
    },

    /**
     * SQLITE: the operator accepts the central file as it is now: a missing file is re-created
     * empty, an existing one (replaced, restored from a backup) gets a new identity, so sync
     * serves it again (docs/ARCHITECTURE.md "Central files"); the internal service key is
     * regenerated. POSTGRES: re-checks.
     */
    async restoreConnection(id: string) {
      const db = await service.getDatabase(id);
      if (db.kind === 'SQLITE') {
        const file = sqliteDatabasePath(deps.dataDir, id);
        let fileIdentity = newFileIdentity();
        if (restampCentralFile(file, fileIdentity)) {
          deps.logger.warn('central database file accepted by restoreConnection', { databaseId: id, file });
        } else {
          fileIdentity = createCentralFile(file);
          deps.logger.warn('central database file re-created empty by restoreConnection', { databaseId: id, file });
        }
        return prisma.database.update({ where: { id }, data: { serviceKeyHash: sha256Hex(generateSecret('osv')), serviceKeyUpdatedAt: now(), fileIdentity } });
      }
      return db;
    },

    /**
     * The identity of a SQLITE database's file when the control plane has none yet (files made
     * before identities existed): read from, or stamped into, the existing file and remembered.
     * Null when the file is missing (sync then refuses it; nothing is created).
     */
    async adoptFileIdentity(db: DatabaseRow): Promise<string | null> {
      if (db.kind !== 'SQLITE') return null;
      if (db.fileIdentity !== null) return db.fileIdentity;
      const fileIdentity = adoptCentralFile(sqliteDatabasePath(deps.dataDir, db.id));
      if (fileIdentity === null) return null;
      await prisma.database.updateMany({ where: { id: db.id, fileIdentity: null }, data: { fileIdentity } });
      const row = await prisma.database.findUnique({ where: { id: db.id }, select: { fileIdentity: true } });
      return row?.fileIdentity ?? fileIdentity;
    },

    /** Decrypted PostgreSQL settings, for the data plane and table listing. */
    pgSettings(db: DatabaseRow): PgSettings {
      if (db.kind !== 'POSTGRES' || db.pgHost === null || db.pgPort === null || db.pgDatabase === null || db.pgUser === null) {
        throw new ApiError('CONFLICT', `Database ${db.id} has no PostgreSQL connection settings`, { details: { databaseId: db.id } });
      }
      // No password stored: the server authenticates this user without one (trust, peer, cert).
      const password = db.pgPasswordEnc === null ? '' : secretBox.decrypt(db.pgPasswordEnc);
      return { host: db.pgHost, port: db.pgPort, database: db.pgDatabase, user: db.pgUser, password, ssl: db.pgSsl };
    },

    /** Drops the database's kept connection check (tables deployed or removed: `extensionInstalled` may have changed). */
    connectionChanged(id: string): void {
      recentChecks.forget(id);
    },

    /**
     * The database's connection: its SQLite file, or its PostgreSQL server. A check made less than
     * {@link CONNECTION_CHECK_MAX_AGE_MS} ago for the same file (inode, mode, owner, change time)
     * and identity, or the same settings, answers again (`checkedAt` says when it ran), until
     * {@link connectionChanged}. Enabling sync (`whyCannotServe`) always checks afresh.
     */
    async checkConnection(idOrRow: string | DatabaseRow): Promise<ConnectionStatus> {
      const db = typeof idOrRow === 'string' ? await service.getDatabase(idOrRow) : idOrRow;
      if (db.kind === 'SQLITE') {
        const file = sqliteDatabasePath(deps.dataDir, db.id);
        return recentChecks.check(db.id, `${sqliteFileFingerprint(file)}|${db.fileIdentity ?? ''}`, () => checkSqliteFile(file, now(), db.fileIdentity));
      }
      // The settings as stored (the password by a digest of its ciphertext, which changes with it).
      const key = JSON.stringify([db.pgHost, db.pgPort, db.pgDatabase, db.pgUser, db.pgSsl, db.pgPasswordEnc === null ? null : sha256Hex(db.pgPasswordEnc)]);
      return recentChecks.check(db.id, key, () => checkPostgres(service.pgSettings(db), now()));
    },
  };
  return service;
}
export type DatabasesService = ReturnType<typeof createDatabasesService>;

/** Tables of a database: listing with schema issues, declarative deploy, RLS mode and policies. */
import type { ServiceDeps } from '../../deps.ts';
import { isCoreError } from '@offsync/core';
import { ApiError } from '../../errors.ts';
import type { DatabasesService } from '../databases/databases.service.ts';
import { sqliteDatabasePath } from '../databases/databases.service.ts';
import { deployPgTables, listPgTables, pgBlockColumns } from './pg-tables.ts';
import type { PgRlsInfo } from './pg-tables.ts';
import { validateRlsExpression } from './rls-validate.ts';
import type { RlsOperation } from './rls-validate.ts';
import { directCentralFiles, issuesUnderFlags, refuseUnsyncable, requireCentralFile, tableEngineOf } from './table-engine.ts';
import type { CentralFileOwner, SchemaHashVersion, TableEngine, TableInfo } from './table-engine.ts';
import { accessTokenPrincipal } from '../sync/data-plane/authenticate.ts';
import type { SyncEngine } from '../sync/sync-deps.ts';
import { previewVisibility } from './rls-preview.ts';
import { alterTable, deviceDdl } from './alter.ts';
import type { AlterDeps, AlterResult, DeviceTableDdl } from './alter.ts';
import type { PreviewSubject, RlsPreview } from './rls-preview.ts';

export const RlsMode = { BYPASS: 'BYPASS', ENFORCE: 'ENFORCE' } as const;
export type RlsMode = (typeof RlsMode)[keyof typeof RlsMode];

export interface TableNode extends TableInfo {
  selected: boolean;
  enabled: boolean;
  /** Init flags it was deployed with (0 when not synced). */
  flags: number;
  /** POSTGRES: row-level security of the table in PostgreSQL (pg_class, pg_policies); null for SQLITE. */
  postgresRls: PgRlsInfo | null;
}
export interface TableList { selectedCount: number; totalCount: number; nodes: TableNode[] }
export interface TableFilter { nameContains?: string | null | undefined; selected?: boolean | null | undefined }
export interface RlsPolicyEntry { table: string; operation: RlsOperation; expression: string; updatedAt: Date }
export interface RlsConfig { mode: RlsMode; policies: RlsPolicyEntry[] }
/** REPLACE: the synced set becomes the tables given; ADD: they join it; REMOVE: they leave it. */
export type DeployMode = 'REPLACE' | 'ADD' | 'REMOVE';
export interface TableDeployOptions {
  table: string;
  algorithm?: 'cls' | 'gos' | null | undefined;
  flags?: number | null | undefined;
  /**
   * Text columns to mark block-LWW (docs/PROTOCOL.md "Block columns") when the table is added.
   * An already-synced table keeps its block columns: listing the same ones is accepted, others
   * are refused (BLOCK_COLUMNS_CHANGE: remove the table and add it again). SQLITE and POSTGRES
   * databases (POSTGRES: a text, varchar or char column).
   */
  blockColumns?: readonly string[] | null | undefined;
}
export interface DeployOptions { mode?: DeployMode | undefined; options?: readonly TableDeployOptions[] | null | undefined }

/** SQLite's affinity rules (datatype3.html §3.1): INT first, then CHAR / CLOB / TEXT. */
export function hasTextAffinity(declaredType: string): boolean {
  return !/INT/i.test(declaredType) && /CHAR|CLOB|TEXT/i.test(declaredType);
}

/**
 * The block columns to mark per added table (declared names), after checking every
 * `blockColumns` option: the column exists, has TEXT affinity and is not part of the primary key;
 * an already-synced table may only repeat the block columns it has. Throws VALIDATION_FAILED with
 * `details.reason` BLOCK_COLUMN_UNKNOWN / BLOCK_COLUMN_NOT_TEXT / BLOCK_COLUMN_PRIMARY_KEY /
 * BLOCK_COLUMNS_CHANGE before anything is changed.
 */
function blockColumnsToMark(tables: readonly TableInfo[], options: ReadonlyMap<string, TableDeployOptions>, added: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const o of options.values()) {
    if (o.blockColumns == null) continue;
    const t = tables.find((x) => x.name === o.table);
    if (t === undefined) continue; // refused as missing by refuseUnsyncable
    const names: string[] = [];
    for (const wanted of o.blockColumns) {
      const col = t.columns.find((c) => c.name.toLowerCase() === wanted.toLowerCase());
      const fail = (reason: string, message: string): never => {
        throw new ApiError('VALIDATION_FAILED', `options.blockColumns: ${message}`, { details: { field: 'options', table: t.name, column: wanted, reason } });
      };
      if (col === undefined) fail('BLOCK_COLUMN_UNKNOWN', `column ${wanted} does not exist in table ${t.name}`);
      else if (col.pk > 0) fail('BLOCK_COLUMN_PRIMARY_KEY', `column ${col.name} of table ${t.name} is part of the primary key; only other TEXT columns can be block columns`);
      else if (!hasTextAffinity(col.type)) fail('BLOCK_COLUMN_NOT_TEXT', `column ${col.name} of table ${t.name} is declared ${col.type === '' ? 'without a type' : col.type}; block columns hold text (TEXT affinity)`);
      else if (!names.includes(col.name)) names.push(col.name);
    }
    if (added.includes(t.name)) {
      out.set(t.name, names);
      continue;
    }
    const has = new Set(t.blockColumns.map((c) => c.toLowerCase()));
    if (t.synced && (names.length !== has.size || names.some((n) => !has.has(n.toLowerCase())))) {
      throw new ApiError('VALIDATION_FAILED', `options.blockColumns: table ${t.name} syncs with block columns (${t.blockColumns.join(', ') || 'none'}); to change them, remove the table (mode REMOVE) and add it again`, {
        details: { field: 'options', table: t.name, reason: 'BLOCK_COLUMNS_CHANGE' },
      });
    }
  }
  return out;
}

export function createTablesService(deps: ServiceDeps, databases: DatabasesService) {
  const { prisma } = deps;
  /** Who runs the work on SQLITE central files (the sync service's owner once attached: `useCentralFileOwner`). */
  let owner: CentralFileOwner = directCentralFiles;

  /** A schema change of a SQLITE database's central file, through its owner (serialised with merges; the sync connections are told). */
  function changeSchema<T>(databaseId: string, fn: (engine: TableEngine) => T): Promise<T> {
    const path = sqliteDatabasePath(deps.dataDir, databaseId);
    requireCentralFile(path);
    return owner.withSchemaChange(databaseId, path, (engine) => fn(tableEngineOf(engine)));
  }

  /** A read of a SQLITE database's central file, on its owner's connection. */
  function readSchema<T>(databaseId: string, fn: (engine: TableEngine) => T): Promise<T> {
    return readFile(databaseId, (engine) => fn(tableEngineOf(engine)));
  }

  function readFile<T>(databaseId: string, fn: (engine: SyncEngine) => T): Promise<T> {
    const path = sqliteDatabasePath(deps.dataDir, databaseId);
    requireCentralFile(path);
    return owner.readSchema(databaseId, path, fn);
  }

  async function readTables(databaseId: string): Promise<{ tables: (TableInfo & { postgresRls?: PgRlsInfo | null })[]; offSyncEnabled: boolean }> {
    const db = await databases.getDatabase(databaseId);
    if (db.kind === 'SQLITE') return { tables: await readSchema(databaseId, (engine) => engine.listTables()), offSyncEnabled: db.offSyncEnabled };
    const tables = await listPgTables(databases.pgSettings(db));
    return { tables, offSyncEnabled: db.offSyncEnabled };
  }

  /**
   * After a change of who may see what (SELECT policy while enforcing, or the RLS mode), the
   * central rows of the affected tables start a new life and what held before is recorded, so
   * devices drop what they may no longer hold and receive what they newly may (policy-history.ts).
   * SQLITE central databases only (POSTGRES databases apply their own PostgreSQL policies).
   */
  async function renewVisibility(databaseId: string, changes: { table: string; mode: RlsMode; select: string | null }[]): Promise<void> {
    const db = await databases.getDatabase(databaseId);
    if (db.kind !== 'SQLITE' || changes.length === 0) return;
    await changeSchema(databaseId, (engine) => engine.renewVisibility(changes));
  }

  async function selectPolicies(databaseId: string): Promise<Map<string, string>> {
    const rows = await prisma.rlsPolicy.findMany({ where: { databaseId, operation: 'SELECT' } });
    return new Map(rows.map((r) => [r.tableName, r.expression]));
  }

  const alterDeps: AlterDeps = {
    databases,
    policies: {
      list: async (databaseId) => (await prisma.rlsPolicy.findMany({ where: { databaseId } })).map((r) => ({ table: r.tableName, operation: r.operation as RlsOperation, expression: r.expression })),
      replace: (databaseId, changes) =>
        prisma.$transaction(async (tx) => {
          for (const c of changes) {
            const res = await tx.rlsPolicy.updateMany({ where: { databaseId, tableName: c.table, operation: c.operation, expression: c.from }, data: { expression: c.to } });
            if (res.count !== 1) {
              throw new ApiError('CONFLICT', `The RLS ${c.operation} policy of ${c.table} changed while the alter ran; nothing was changed, retry the alter`, { details: { table: c.table, operation: c.operation } });
            }
          }
        }),
    },
    withSchemaChange: (databaseId, fn) => {
      const path = sqliteDatabasePath(deps.dataDir, databaseId);
      requireCentralFile(path);
      return owner.withSchemaChange(databaseId, path, fn);
    },
    readSchema: readFile,
  };

  /** {@link TablesService.deployTables} without its epilogue. */
  async function deploy(databaseId: string, names: string[], opts: DeployOptions): Promise<{ added: string[]; removed: string[] }> {
    const db = await databases.getDatabase(databaseId);
    const mode: DeployMode = opts.mode ?? 'REPLACE';
    const requested = [...new Set(names)];
    const options = new Map<string, TableDeployOptions>();
    for (const o of opts.options ?? []) {
      if (mode === 'REMOVE' || !requested.includes(o.table)) {
        throw new ApiError('VALIDATION_FAILED', `options: table ${o.table} is not among the tables being deployed`, { details: { field: 'options', table: o.table } });
      }
      if (o.flags != null && (!Number.isInteger(o.flags) || o.flags < 0 || o.flags > 7)) throw new ApiError('VALIDATION_FAILED', 'options.flags: must be 0–7', { details: { field: 'options', table: o.table } });
      if (options.has(o.table)) throw new ApiError('VALIDATION_FAILED', `options: table ${o.table} is given twice`, { details: { field: 'options', table: o.table } });
      options.set(o.table, o);
    }
    const plan = (current: string[]): { wanted: string[]; added: string[]; removed: string[] } => {
      const wanted = mode === 'REPLACE' ? requested : mode === 'ADD' ? [...new Set([...current, ...requested])] : current.filter((n) => !requested.includes(n));
      return { wanted, added: wanted.filter((n) => !current.includes(n)), removed: current.filter((n) => !wanted.includes(n)) };
    };
    if (db.kind === 'POSTGRES') {
      if ([...options.values()].some((o) => (o.algorithm ?? 'cls') !== 'cls' || (o.flags ?? 0) !== 0)) {
        throw new ApiError('VALIDATION_FAILED', 'options: POSTGRES databases deploy tables with the cls algorithm and no flags', { details: { field: 'options' } });
      }
      const mirrored = (await prisma.syncedTable.findMany({ where: { databaseId } })).map((t) => t.name);
      const { wanted } = plan(mirrored);
      // The engine metadata in the database is the truth; the control-plane rows mirror it.
      const result = await deployPgTables(databases.pgSettings(db), wanted, { blockColumns: (listed, added) => blockColumnsToMark(listed, options, added) });
      await prisma.$transaction([
        prisma.syncedTable.deleteMany({ where: { databaseId, name: { notIn: wanted } } }),
        ...wanted.map((name) => prisma.syncedTable.upsert({
          where: { databaseId_name: { databaseId, name } },
          create: { databaseId, name, algorithm: 'cls', deployedAt: new Date(deps.clock.now()) },
          update: {},
        })),
      ]);
      return result;
    }
    const flagsOf = (name: string): number => options.get(name)?.flags ?? 0;
    // One synchronous section on the owner's connection: read, check, change — nothing interleaves.
    const { added, removed } = await changeSchema(databaseId, (engine) => {
      const synced = new Map(engine.listTables().filter((t) => t.synced).map((t) => [t.name, t.algorithm ?? 'cls']));
      const { added, removed, wanted } = plan([...synced.keys()]);
      for (const name of wanted) {
        const algo = options.get(name)?.algorithm;
        const has = synced.get(name);
        if (algo != null && has !== undefined && has !== algo) {
          throw new ApiError('VALIDATION_FAILED', `Table ${name} syncs with ${has}; to change its algorithm, remove it (mode REMOVE) and add it again`, { details: { field: 'options', table: name, code: 'ALGORITHM_CHANGE', reason: 'ALGORITHM_CHANGE' } });
        }
      }
      const listed = engine.listTables();
      refuseUnsyncable(listed.map((t) => ({ ...t, issues: issuesUnderFlags(t.issues, flagsOf(t.name)) })), added);
      const blocks = blockColumnsToMark(listed, options, added);
      try {
        engine.transaction(() => {
          for (const name of removed) engine.cleanup(name);
          for (const name of added) {
            engine.init(name, options.get(name)?.algorithm ?? 'cls', flagsOf(name));
            for (const column of blocks.get(name) ?? []) engine.setBlockColumn(name, column);
          }
        });
      } catch (e) {
        if (isCoreError(e)) throw new ApiError('SCHEMA_ISSUES', e.message, { cause: e, details: { refused: [{ table: String(e.details['table'] ?? ''), issues: [{ rule: e.code, message: e.message }] }] } });
        throw e;
      }
      return { added, removed };
    });
    await prisma.$transaction([
      prisma.syncedTable.deleteMany({ where: { databaseId, name: { in: removed } } }),
      ...added.map((name) => prisma.syncedTable.create({ data: { databaseId, name, algorithm: options.get(name)?.algorithm ?? 'cls', flags: flagsOf(name), deployedAt: new Date(deps.clock.now()) } })),
    ]);
    return { added, removed };
  }

  const service = {
    /** Attaches the owner of the SQLITE central files (the sync service's `CentralDatabases`; composition root). */
    useCentralFileOwner(o: CentralFileOwner): void {
      owner = o;
    },

    async listTables(databaseId: string, filter: TableFilter = {}): Promise<TableList> {
      const { tables, offSyncEnabled } = await readTables(databaseId);
      const flags = new Map((await prisma.syncedTable.findMany({ where: { databaseId } })).map((r) => [r.name, r.flags]));
      const all = tables.map((t) => {
        const f = t.synced ? (flags.get(t.name) ?? 0) : 0;
        return { ...t, issues: issuesUnderFlags(t.issues, f), flags: f, selected: t.synced, enabled: t.synced && offSyncEnabled, postgresRls: t.postgresRls ?? null };
      });
      const needle = filter.nameContains?.toLowerCase();
      const nodes = all.filter((t) => (needle ? t.name.toLowerCase().includes(needle) : true) && (filter.selected == null || t.selected === filter.selected));
      return { selectedCount: all.filter((t) => t.selected).length, totalCount: all.length, nodes };
    },

    /**
     * Deploys tables for sync. `mode` REPLACE (default): the synced set becomes exactly `names`;
     * ADD: `names` are added to it; REMOVE: `names` are taken out of it. `options` set a table's
     * CRDT algorithm and init flags when it is added (an already-synced table keeps its algorithm:
     * another one is refused, remove and re-add it). All or nothing: refuses with SCHEMA_ISSUES
     * per table when an added table cannot sync (issues waived by its flags excepted).
     */
    async deployTables(databaseId: string, names: string[], opts: DeployOptions = {}): Promise<{ added: string[]; removed: string[] }> {
      try {
        return await deploy(databaseId, names, opts);
      } finally {
        // The metadata may be installed or gone now: the next connection check looks again.
        databases.connectionChanged(databaseId);
      }
    },

    async setRlsMode(databaseId: string, mode: RlsMode) {
      const before = await databases.getDatabase(databaseId);
      if (!Object.values(RlsMode).includes(mode)) throw new ApiError('VALIDATION_FAILED', 'mode: must be BYPASS or ENFORCE', { details: { field: 'mode' } });
      const updated = await prisma.database.update({ where: { id: databaseId }, data: { rlsMode: mode } });
      const was: RlsMode = before.rlsMode === 'ENFORCE' ? 'ENFORCE' : 'BYPASS';
      if (was !== mode && before.kind === 'SQLITE') {
        const selects = await selectPolicies(databaseId);
        const synced = await prisma.syncedTable.findMany({ where: { databaseId } });
        await renewVisibility(databaseId, synced.map((t) => ({ table: t.name, mode: was, select: selects.get(t.name) ?? null })));
      }
      // Users' live `changes` subscriptions of this database end now (domains/sync/graphql/live-sessions.ts).
      if ((before.rlsMode === 'ENFORCE' ? 'ENFORCE' : 'BYPASS') !== mode) {
        deps.pubsub.publish('syncAccessEnded', databaseId, { databaseId, reason: 'RLS_MODE_CHANGED', at: new Date(deps.clock.now()).toISOString() });
      }
      return updated;
    },

    async setRlsPolicy(databaseId: string, table: string, operation: RlsOperation, expression: string): Promise<RlsPolicyEntry> {
      const target = await databases.getDatabase(databaseId);
      if (target.kind === 'POSTGRES') {
        // Stored but never applied would be worse than refused: PostgreSQL's own policies decide there.
        throw new ApiError('CONFLICT', "POSTGRES databases enforce PostgreSQL's own row-level security (CREATE POLICY; see Table.postgresRls); OffSync's policies apply to SQLITE databases", {
          details: { databaseId, reason: 'POSTGRES_USES_DATABASE_POLICIES' },
        });
      }
      const { tables } = await readTables(databaseId);
      const t = tables.find((x) => x.name === table);
      if (t === undefined) throw new ApiError('NOT_FOUND', `Table ${table} not found`, { details: { table } });
      const expr = validateRlsExpression(table, t.columns, operation, expression);
      const db = await databases.getDatabase(databaseId);
      const prior = operation === 'SELECT' ? ((await selectPolicies(databaseId)).get(table) ?? null) : undefined;
      const row = await prisma.rlsPolicy.upsert({
        where: { databaseId_tableName_operation: { databaseId, tableName: table, operation } },
        create: { databaseId, tableName: table, operation, expression: expr },
        update: { expression: expr },
      });
      if (prior !== undefined && prior !== expr && db.rlsMode === 'ENFORCE' && t.synced) await renewVisibility(databaseId, [{ table, mode: 'ENFORCE', select: prior }]);
      return { table, operation, expression: row.expression, updatedAt: row.updatedAt };
    },

    async removeRlsPolicy(databaseId: string, table: string, operation: RlsOperation): Promise<boolean> {
      const db = await databases.getDatabase(databaseId);
      const prior = operation === 'SELECT' ? ((await selectPolicies(databaseId)).get(table) ?? null) : null;
      const res = await prisma.rlsPolicy.deleteMany({ where: { databaseId, tableName: table, operation } });
      if (prior !== null && res.count > 0 && db.rlsMode === 'ENFORCE') await renewVisibility(databaseId, [{ table, mode: 'ENFORCE', select: prior }]);
      return res.count > 0;
    },

    /**
     * Which users gain and lose rows if `expression` became the table's `operation` policy, and
     * which devices that affects (rls-preview.ts). Nothing is changed. SQLITE databases only.
     */
    async previewRlsPolicy(databaseId: string, table: string, operation: RlsOperation, expression: string, sampleSize = 10): Promise<RlsPreview> {
      const { tables } = await readTables(databaseId);
      const t = tables.find((x) => x.name === table);
      if (t === undefined) throw new ApiError('NOT_FOUND', `Table ${table} not found`, { details: { table } });
      const expr = validateRlsExpression(table, t.columns, operation, expression);
      const db = await databases.getDatabase(databaseId);
      if (db.kind !== 'SQLITE') throw new ApiError('CONFLICT', 'previewRlsPolicy applies to SQLITE databases (POSTGRES databases apply their own PostgreSQL policies: see Table.postgresRls)', { details: { databaseId } });
      const config = await service.getRlsConfig(databaseId);
      const current = config.policies.find((p) => p.table === table && p.operation === operation)?.expression ?? null;
      const base = { table, operation, currentExpression: current, expression: expr, enforced: config.mode === 'ENFORCE' };
      if (operation !== 'SELECT') return { ...base, changesVisibility: false, totalRows: 0, users: [], affectedDevices: [] };
      const n = Math.min(Math.max(Math.trunc(sampleSize), 0), 1000);

      const now = deps.clock.now();
      const [tokens, devices] = await Promise.all([
        prisma.accessToken.findMany({ where: { databaseId, revokedAt: null }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] }),
        prisma.device.findMany({ where: { databaseId, userId: { not: null }, credentialKind: { not: 'API_KEY' } }, orderBy: { siteId: 'asc' } }),
      ]);
      const sitesOf = new Map<string, string[]>();
      for (const d of devices) if (d.userId !== null) sitesOf.set(d.userId, [...(sitesOf.get(d.userId) ?? []), d.siteId]);
      const subjects = new Map<string, PreviewSubject>();
      for (const tok of tokens) {
        if (subjects.has(tok.userId) || (tok.expiresAt !== null && tok.expiresAt.getTime() <= now)) continue;
        const principal = accessTokenPrincipal({ ...tok, attributes: JSON.parse(tok.attributes) as Record<string, unknown> });
        subjects.set(tok.userId, { userId: tok.userId, principal, source: 'ACCESS_TOKEN', devices: sitesOf.get(tok.userId) ?? [] });
      }
      for (const [userId, sites] of sitesOf) {
        if (!subjects.has(userId)) subjects.set(userId, { userId, principal: { kind: 'jwt', userId, claims: { sub: userId } }, source: 'DEVICE', devices: sites });
      }
      return readFile(databaseId, (engine) => {
        const r = previewVisibility(engine, {
          table,
          before: config.mode === 'ENFORCE' ? current : 'ALL',
          after: expr,
          subjects: [...subjects.values()].sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0)),
          sampleSize: n,
        });
        const affected = new Set(r.users.filter((u) => u.gained + u.lost > 0).flatMap((u) => u.devices));
        return { ...base, changesVisibility: true, totalRows: r.totalRows, users: r.users, affectedDevices: [...affected].sort() };
      });
    },

    /**
     * The synced tables with their block columns, for the client-integration snippet. SQLITE: from
     * the file (the control-plane rows when it cannot be read); POSTGRES: the control-plane rows
     * with the block columns of the engine metadata (none when the database cannot be reached).
     */
    async syncedTablesForSnippet(databaseId: string): Promise<{ name: string; blockColumns: string[] }[]> {
      const db = await databases.getDatabase(databaseId);
      const rows = await prisma.syncedTable.findMany({ where: { databaseId }, orderBy: { name: 'asc' } });
      if (db.kind === 'SQLITE') {
        try {
          const block = await readSchema(databaseId, (engine) => new Map(engine.listTables().filter((t) => t.synced).map((t) => [t.name, t.blockColumns])));
          return rows.map((r) => ({ name: r.name, blockColumns: block.get(r.name) ?? [] }));
        } catch {
          // File missing or unreadable: the snippet still lists the tables (the connection card says why).
        }
      }
      if (db.kind === 'POSTGRES') {
        try {
          const block = await pgBlockColumns(databases.pgSettings(db));
          return rows.map((r) => ({ name: r.name, blockColumns: block.get(r.name) ?? [] }));
        } catch {
          // Unreachable: the snippet still lists the tables (the connection card says why).
        }
      }
      return rows.map((r) => ({ name: r.name, blockColumns: [] }));
    },

    /** An operator's ALTER TABLE of a synced table, atomically between beginAlter and commitAlter (alter.ts). */
    alterTable(databaseId: string, table: string, statements: readonly string[]): Promise<AlterResult> {
      return alterTable(alterDeps, databaseId, table, statements);
    },

    /** The CREATE TABLE statements devices create the synced tables with (alter.ts). */
    deviceDdl(databaseId: string): Promise<DeviceTableDdl[]> {
      return deviceDdl(alterDeps, databaseId);
    },

    /** Every schema hash of a SQLITE database (oldest first); POSTGRES databases: empty. */
    async schemaHistory(databaseId: string): Promise<SchemaHashVersion[]> {
      const db = await databases.getDatabase(databaseId);
      if (db.kind !== 'SQLITE') return [];
      return readSchema(databaseId, (engine) => engine.schemaHistory());
    },

    /** For the data plane: RLS mode and every policy of a database. */
    async getRlsConfig(databaseId: string): Promise<RlsConfig> {
      const db = await databases.getDatabase(databaseId);
      const rows = await prisma.rlsPolicy.findMany({ where: { databaseId }, orderBy: [{ tableName: 'asc' }, { operation: 'asc' }] });
      return {
        mode: db.rlsMode === 'ENFORCE' ? 'ENFORCE' : 'BYPASS',
        policies: rows.map((r) => ({ table: r.tableName, operation: r.operation as RlsOperation, expression: r.expression, updatedAt: r.updatedAt })),
      };
    },
  };
  return service;
}
export type TablesService = ReturnType<typeof createTablesService>;

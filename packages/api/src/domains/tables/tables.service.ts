/** Tables of a database: listing with schema issues, declarative deploy, RLS mode and policies. */
import type { ServiceDeps } from '../../deps.ts';
import { isCoreError } from '@offsync/core';
import { ApiError } from '../../errors.ts';
import type { DatabasesService } from '../databases/databases.service.ts';
import { sqliteDatabasePath } from '../databases/databases.service.ts';
import { deployPgTables, listPgTables } from './pg-tables.ts';
import { validateRlsExpression } from './rls-validate.ts';
import type { RlsOperation } from './rls-validate.ts';
import { openTableEngine, refuseUnsyncable } from './table-engine.ts';
import type { TableInfo } from './table-engine.ts';

export const RlsMode = { BYPASS: 'BYPASS', ENFORCE: 'ENFORCE' } as const;
export type RlsMode = (typeof RlsMode)[keyof typeof RlsMode];

export interface TableNode extends TableInfo { selected: boolean; enabled: boolean }
export interface TableList { selectedCount: number; totalCount: number; nodes: TableNode[] }
export interface TableFilter { nameContains?: string | null | undefined; selected?: boolean | null | undefined }
export interface RlsPolicyEntry { table: string; operation: RlsOperation; expression: string; updatedAt: Date }
export interface RlsConfig { mode: RlsMode; policies: RlsPolicyEntry[] }

export function createTablesService(deps: ServiceDeps, databases: DatabasesService) {
  const { prisma } = deps;

  async function readTables(databaseId: string): Promise<{ tables: TableInfo[]; offSyncEnabled: boolean }> {
    const db = await databases.getDatabase(databaseId);
    if (db.kind === 'SQLITE') {
      const engine = openTableEngine(sqliteDatabasePath(deps.dataDir, databaseId));
      try {
        return { tables: engine.listTables(), offSyncEnabled: db.offSyncEnabled };
      } finally {
        engine.close();
      }
    }
    const tables = await listPgTables(databases.pgSettings(db));
    return { tables, offSyncEnabled: db.offSyncEnabled };
  }

  /**
   * After a change of who may see what (SELECT policy while enforcing, or the RLS mode), the
   * central rows of the affected tables start a new life and what held before is recorded, so
   * devices drop what they may no longer hold and receive what they newly may (policy-history.ts).
   * SQLITE central databases only (POSTGRES databases are not served to devices yet).
   */
  async function renewVisibility(databaseId: string, changes: { table: string; mode: RlsMode; select: string | null }[]): Promise<void> {
    const db = await databases.getDatabase(databaseId);
    if (db.kind !== 'SQLITE' || changes.length === 0) return;
    const engine = openTableEngine(sqliteDatabasePath(deps.dataDir, databaseId));
    try {
      engine.renewVisibility(changes);
    } finally {
      engine.close();
    }
  }

  async function selectPolicies(databaseId: string): Promise<Map<string, string>> {
    const rows = await prisma.rlsPolicy.findMany({ where: { databaseId, operation: 'SELECT' } });
    return new Map(rows.map((r) => [r.tableName, r.expression]));
  }

  const service = {
    async listTables(databaseId: string, filter: TableFilter = {}): Promise<TableList> {
      const { tables, offSyncEnabled } = await readTables(databaseId);
      const all = tables.map((t) => ({ ...t, selected: t.synced, enabled: t.synced && offSyncEnabled }));
      const needle = filter.nameContains?.toLowerCase();
      const nodes = all.filter((t) => (needle ? t.name.toLowerCase().includes(needle) : true) && (filter.selected == null || t.selected === filter.selected));
      return { selectedCount: all.filter((t) => t.selected).length, totalCount: all.length, nodes };
    },

    /** The synced set becomes exactly `names`. All or nothing: refuses with SCHEMA_ISSUES per table. */
    async deployTables(databaseId: string, names: string[]): Promise<{ added: string[]; removed: string[] }> {
      const db = await databases.getDatabase(databaseId);
      const wanted = [...new Set(names)];
      if (db.kind === 'POSTGRES') {
        // The engine metadata in the database is the truth; the control-plane rows mirror it.
        const result = await deployPgTables(databases.pgSettings(db), wanted);
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
      const engine = openTableEngine(sqliteDatabasePath(deps.dataDir, databaseId));
      try {
        refuseUnsyncable(engine.listTables(), wanted);
        const current = new Set(engine.syncedTables());
        const added = wanted.filter((n) => !current.has(n));
        const removed = [...current].filter((n) => !wanted.includes(n));
        try {
          engine.transaction(() => {
            for (const name of removed) engine.cleanup(name);
            for (const name of added) engine.init(name, 'cls');
          });
        } catch (e) {
          if (isCoreError(e)) throw new ApiError('SCHEMA_ISSUES', e.message, { cause: e, details: { refused: [{ table: String(e.details['table'] ?? ''), issues: [{ rule: e.code, message: e.message }] }] } });
          throw e;
        }
        await prisma.$transaction([
          prisma.syncedTable.deleteMany({ where: { databaseId, name: { in: removed } } }),
          ...added.map((name) => prisma.syncedTable.create({ data: { databaseId, name, algorithm: 'cls', deployedAt: new Date(deps.clock.now()) } })),
        ]);
        return { added, removed };
      } finally {
        engine.close();
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

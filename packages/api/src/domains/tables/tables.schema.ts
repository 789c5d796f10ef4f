import { builder } from '../../builder.ts';
import { DatabaseRef, RlsModeEnum } from '../databases/databases.schema.ts';
import type { RlsPolicyEntry, TableList, TableNode } from './tables.service.ts';
import type { TableColumn, TableIssue } from './table-engine.ts';

const RlsOperationEnum = builder.enumType('RlsOperation', { values: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] as const });
const AlgorithmEnum = builder.enumType('CrdtAlgorithm', { values: { CLS: { value: 'cls' }, GOS: { value: 'gos' } } as const });

const ColumnRef = builder.objectRef<TableColumn>('TableColumn').implement({
  fields: (t) => ({
    name: t.exposeString('name'),
    type: t.exposeString('type'),
    notNull: t.exposeBoolean('notNull'),
    defaultValue: t.exposeString('defaultValue', { nullable: true }),
    primaryKeyPosition: t.int({ description: '1-based position in the primary key, 0 when not part of it', resolve: (c) => c.pk }),
  }),
});

const SchemaIssueRef = builder.objectRef<TableIssue>('SchemaIssue').implement({
  description: 'Why a table cannot be synced (protocol reference D.1)',
  fields: (t) => ({ rule: t.exposeString('rule'), message: t.exposeString('message') }),
});

const TableRef = builder.objectRef<TableNode>('Table').implement({
  fields: (t) => ({
    name: t.exposeString('name'),
    selected: t.exposeBoolean('selected', { description: 'Deployed for sync' }),
    enabled: t.exposeBoolean('enabled', { description: 'Deployed and OffSync is enabled on the database' }),
    algorithm: t.field({ type: AlgorithmEnum, nullable: true, resolve: (x) => x.algorithm }),
    columns: t.field({ type: [ColumnRef], resolve: (x) => x.columns }),
    schemaIssues: t.field({ type: [SchemaIssueRef], resolve: (x) => x.issues }),
  }),
});

const TableListRef = builder.objectRef<TableList>('TableList').implement({
  fields: (t) => ({
    selectedCount: t.exposeInt('selectedCount'),
    totalCount: t.exposeInt('totalCount'),
    nodes: t.field({ type: [TableRef], resolve: (l) => l.nodes }),
  }),
});

const RlsPolicyRef = builder.objectRef<RlsPolicyEntry>('RlsPolicy').implement({
  fields: (t) => ({
    table: t.exposeString('table'),
    operation: t.field({ type: RlsOperationEnum, resolve: (p) => p.operation }),
    expression: t.exposeString('expression'),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
  }),
});

const TableFilterInput = builder.inputType('TableFilter', {
  fields: (t) => ({ nameContains: t.string(), selected: t.boolean() }),
});

builder.prismaObjectFields('Database', (t) => ({
  tables: t.field({
    type: TableListRef,
    args: { filter: t.arg({ type: TableFilterInput }) },
    resolve: (d, { filter }, ctx) => ctx.services.tables.listTables(d.id, filter ?? {}),
  }),
  rlsPolicies: t.field({
    type: [RlsPolicyRef],
    resolve: async (d, _a, ctx) => (await ctx.services.tables.getRlsConfig(d.id)).policies,
  }),
}));

const DeployTablesPayload = builder.objectRef<{ databaseId: string; added: string[]; removed: string[] }>('DeployTablesPayload').implement({
  fields: (t) => ({
    added: t.exposeStringList('added'),
    removed: t.exposeStringList('removed'),
    tables: t.field({ type: TableListRef, resolve: (p, _a, ctx) => ctx.services.tables.listTables(p.databaseId) }),
  }),
});

builder.mutationFields((t) => ({
  deployTables: t.field({
    type: DeployTablesPayload,
    description: 'Declarative: the synced set becomes exactly `tables`. Refuses (SCHEMA_ISSUES, per table in extensions.refused) tables that cannot sync',
    args: { databaseId: t.arg.id({ required: true }), tables: t.arg.stringList({ required: true }) },
    resolve: async (_r, { databaseId, tables }, ctx) => ({ databaseId: String(databaseId), ...(await ctx.services.tables.deployTables(String(databaseId), tables)) }),
  }),
  setRlsMode: t.field({
    type: DatabaseRef,
    args: { databaseId: t.arg.id({ required: true }), mode: t.arg({ type: RlsModeEnum, required: true }) },
    resolve: (_r, { databaseId, mode }, ctx) => ctx.services.tables.setRlsMode(String(databaseId), mode),
  }),
  setRlsPolicy: t.field({
    type: RlsPolicyRef,
    description: 'SQLite boolean expression; may use auth_userid(), auth_json(), NEW.col (INSERT/UPDATE), OLD.col (UPDATE/DELETE)',
    args: {
      databaseId: t.arg.id({ required: true }),
      table: t.arg.string({ required: true }),
      operation: t.arg({ type: RlsOperationEnum, required: true }),
      expression: t.arg.string({ required: true }),
    },
    resolve: (_r, a, ctx) => ctx.services.tables.setRlsPolicy(String(a.databaseId), a.table, a.operation, a.expression),
  }),
  removeRlsPolicy: t.boolean({
    args: { databaseId: t.arg.id({ required: true }), table: t.arg.string({ required: true }), operation: t.arg({ type: RlsOperationEnum, required: true }) },
    resolve: (_r, a, ctx) => ctx.services.tables.removeRlsPolicy(String(a.databaseId), a.table, a.operation),
  }),
}));

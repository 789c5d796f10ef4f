import { builder } from '../../builder.ts';
import { ApiError } from '../../errors.ts';
import { DatabaseRef, RlsModeEnum } from '../databases/databases.schema.ts';
import type { RlsPolicyEntry, TableList, TableNode } from './tables.service.ts';
import type { PreviewUser, RlsPreview } from './rls-preview.ts';
import type { SchemaHashVersion, TableColumn, TableIssue } from './table-engine.ts';
import type { PgPolicy, PgRlsInfo } from './pg-tables.ts';
import type { AlterResult, DeviceTableDdl } from './alter.ts';

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
  description: 'Why a table cannot be synced (docs/PROTOCOL.md §P6)',
  fields: (t) => ({ rule: t.exposeString('rule'), message: t.exposeString('message') }),
});

const PostgresPolicyRef = builder.objectRef<PgPolicy>('PostgresPolicy').implement({
  description: 'One row-level security policy of a PostgreSQL table, as `pg_policies` has it (managed in PostgreSQL, read only here)',
  fields: (t) => ({
    name: t.exposeString('name'),
    command: t.exposeString('command', { description: 'ALL, SELECT, INSERT, UPDATE or DELETE' }),
    permissive: t.exposeString('permissive', { description: 'PERMISSIVE or RESTRICTIVE' }),
    roles: t.exposeStringList('roles', { description: 'Roles it applies to (`public`: every role)' }),
    using: t.exposeString('using', { nullable: true, description: 'USING expression: which existing rows are visible / may be changed' }),
    withCheck: t.exposeString('withCheck', { nullable: true, description: 'WITH CHECK expression: which new rows may be written' }),
  }),
});

const PostgresRlsRef = builder.objectRef<PgRlsInfo>('PostgresRls').implement({
  description: 'Row-level security of a PostgreSQL table (pg_class.relrowsecurity / relforcerowsecurity, pg_policies). In RLS mode ENFORCE these policies decide what each user\'s device reads and writes; in BYPASS they are not applied',
  fields: (t) => ({
    enabled: t.exposeBoolean('enabled', { description: 'ALTER TABLE … ENABLE ROW LEVEL SECURITY: without a policy that allows it, users see and write nothing' }),
    forced: t.exposeBoolean('forced', { description: 'FORCE ROW LEVEL SECURITY: the policies apply to the table owner too' }),
    policies: t.field({ type: [PostgresPolicyRef], resolve: (r) => r.policies }),
  }),
});

const TableRef = builder.objectRef<TableNode>('Table').implement({
  fields: (t) => ({
    name: t.exposeString('name'),
    selected: t.exposeBoolean('selected', { description: 'Deployed for sync' }),
    enabled: t.exposeBoolean('enabled', { description: 'Deployed and OffSync is enabled on the database' }),
    algorithm: t.field({ type: AlgorithmEnum, nullable: true, resolve: (x) => x.algorithm }),
    initFlags: t.exposeInt('flags', { description: 'cloudsync_init flags it was deployed with (bitmask: 1 ALLOW_INTEGER_PK, 2 SKIP_NOT_NULL_DEFAULT, 4 SKIP_PK_NOT_NULL); 0 when not synced' }),
    columns: t.field({ type: [ColumnRef], resolve: (x) => x.columns }),
    blockColumns: t.exposeStringList('blockColumns', {
      description: 'Block-LWW text columns (docs/PROTOCOL.md "Block columns"): devices send and receive them as line blocks; set with deployTables options.blockColumns when the table is added. Empty when not synced',
    }),
    schemaIssues: t.field({ type: [SchemaIssueRef], resolve: (x) => x.issues }),
    postgresRls: t.field({
      type: PostgresRlsRef,
      nullable: true,
      description: 'POSTGRES databases: whether row-level security is enabled on the table in PostgreSQL and its policies (read at listing time; managed in PostgreSQL). Null for SQLITE',
      resolve: (x) => x.postgresRls,
    }),
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

const SchemaHashVersionRef = builder.objectRef<SchemaHashVersion>('SchemaHashVersion').implement({
  fields: (t) => ({
    hash: t.exposeString('hash', { description: 'Decimal u64, as devices report it' }),
    seq: t.exposeInt('seq'),
    kind: t.exposeString('kind', { description: 'column-list (0.9.118+, 1.x), ddl-text (0.8 – 0.9.99) or peer (accepted in lenient mode)' }),
    current: t.exposeBoolean('current', { description: 'The hash of the tables as deployed now' }),
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
  schemaHistory: t.field({
    type: [SchemaHashVersionRef],
    description: 'Every schema hash this database has had (offsync_schema_versions), oldest first; uploads with any of them are accepted. SQLITE databases only (empty for POSTGRES)',
    resolve: (d, _a, ctx) => ctx.services.tables.schemaHistory(d.id),
  }),
  rlsPolicies: t.field({
    type: [RlsPolicyRef],
    resolve: async (d, _a, ctx) => (await ctx.services.tables.getRlsConfig(d.id)).policies,
  }),
}));

const DeviceTableDdlRef = builder.objectRef<DeviceTableDdl>('DeviceTableDdl').implement({
  description: 'The SQLite CREATE TABLE statement a device creates one synced table with (docs/PROTOCOL.md §P6): a 0.8.x – 0.9.99 device created from these statements carries the database\'s DDL-text schema hash',
  fields: (t) => ({ table: t.exposeString('table'), sql: t.exposeString('sql') }),
});

builder.prismaObjectFields('Database', (t) => ({
  deviceDdl: t.field({
    type: [DeviceTableDdlRef],
    description: 'CREATE TABLE statements of the synced tables, in the order devices run them: SQLITE the central file\'s own texts (sqlite_master), POSTGRES the SQLite statements derived from the PostgreSQL tables',
    resolve: (d, _a, ctx) => ctx.services.tables.deviceDdl(d.id),
  }),
}));

const AlterTablePayloadRef = builder.objectRef<AlterResult & { databaseId: string }>('AlterTablePayload').implement({
  fields: (t) => ({
    statements: t.exposeStringList('statements', { description: 'The statements that ran, as rebuilt from the ones given (quoted names)' }),
    schemaHash: t.exposeString('schemaHash', { description: 'Column-list schema hash after the change (decimal u64); the previous hashes stay accepted' }),
    ddlSchemaHash: t.exposeString('ddlSchemaHash', { description: 'DDL-text schema hash after the change (decimal u64, 0.8.x – 0.9.99 devices)' }),
    table: t.field({
      type: TableRef,
      resolve: async (p, _a, ctx) => {
        const list = await ctx.services.tables.listTables(p.databaseId);
        const node = list.nodes.find((n) => n.name === p.table);
        if (node === undefined) throw new ApiError('NOT_FOUND', `table ${p.table} not found after the change`);
        return node;
      },
    }),
  }),
});

const DeployTablesPayload = builder.objectRef<{ databaseId: string; added: string[]; removed: string[] }>('DeployTablesPayload').implement({
  fields: (t) => ({
    added: t.exposeStringList('added'),
    removed: t.exposeStringList('removed'),
    tables: t.field({ type: TableListRef, resolve: (p, _a, ctx) => ctx.services.tables.listTables(p.databaseId) }),
  }),
});

const RlsPreviewUserRef = builder.objectRef<PreviewUser>('RlsPreviewUser').implement({
  fields: (t) => ({
    userId: t.exposeString('userId'),
    source: t.exposeString('source', { description: 'ACCESS_TOKEN (judged with its newest active token\'s claims) or DEVICE (a device\'s user without a token: JWT claims beyond sub unknown)' }),
    rowsBefore: t.exposeInt('rowsBefore'),
    rowsAfter: t.exposeInt('rowsAfter'),
    gained: t.exposeInt('gained'),
    lost: t.exposeInt('lost'),
    sampleGained: t.field({ type: ['JSON'], description: 'Primary keys (column → value; INTEGER as {"$int"}, BLOB as {"$blob"}) of gained rows, key order', resolve: (u) => u.sampleGained }),
    sampleLost: t.field({ type: ['JSON'], resolve: (u) => u.sampleLost }),
    devices: t.exposeStringList('devices', { description: 'Site ids of this user\'s devices' }),
  }),
});

const RlsPreviewRef = builder.objectRef<RlsPreview>('RlsPreview').implement({
  description: 'What a policy would change, before it is applied (judged over the central rows with the data plane\'s evaluator)',
  fields: (t) => ({
    table: t.exposeString('table'),
    operation: t.exposeString('operation'),
    currentExpression: t.exposeString('currentExpression', { nullable: true }),
    expression: t.exposeString('expression'),
    changesVisibility: t.exposeBoolean('changesVisibility', { description: 'Only SELECT policies change what devices hold' }),
    enforced: t.exposeBoolean('enforced', { description: 'False in BYPASS mode: before = every row, after = what ENFORCE with this policy would give' }),
    totalRows: t.exposeInt('totalRows'),
    users: t.field({ type: [RlsPreviewUserRef], resolve: (p) => p.users }),
    affectedDevices: t.exposeStringList('affectedDevices', { description: 'Devices of the users who gain or lose rows' }),
  }),
});

builder.queryFields((t) => ({
  previewRlsPolicy: t.field({
    type: RlsPreviewRef,
    description: 'Which users gain and lose rows, and which devices are affected, if `expression` became the policy; changes nothing',
    args: {
      databaseId: t.arg.id({ required: true }),
      table: t.arg.string({ required: true }),
      operation: t.arg({ type: RlsOperationEnum, required: true }),
      expression: t.arg.string({ required: true }),
      sampleSize: t.arg.int({ defaultValue: 10, description: 'Sample keys per user and direction (0–1000)' }),
    },
    resolve: (_r, a, ctx) => ctx.services.tables.previewRlsPolicy(String(a.databaseId), a.table, a.operation, a.expression, a.sampleSize ?? 10),
  }),
}));

const DeployModeEnum = builder.enumType('DeployMode', {
  values: {
    REPLACE: { description: 'The synced set becomes exactly `tables` (tables not listed stop syncing)' },
    ADD: { description: '`tables` are added to the synced set; the others stay' },
    REMOVE: { description: '`tables` stop syncing; the others stay' },
  } as const,
});

const TableDeployOptionsInput = builder.inputType('TableDeployOptions', {
  description: 'How one added table is initialised (cloudsync_init algorithm and flags, block columns)',
  fields: (t) => ({
    table: t.string({ required: true }),
    algorithm: t.field({ type: AlgorithmEnum, description: 'Default CLS' }),
    allowIntegerPk: t.boolean({ description: 'Flag 1: allow a single-column INTEGER primary key (your ids are globally unique)' }),
    skipNotNullDefault: t.boolean({ description: 'Flag 2: allow NOT NULL columns without a DEFAULT' }),
    skipPkNotNull: t.boolean({ description: 'Flag 4: allow primary-key columns not declared NOT NULL (NULL values are still refused)' }),
    blockColumns: t.stringList({
      description: 'TEXT columns (not in the primary key) to mark block-LWW when the table is added (docs/PROTOCOL.md "Block columns"; devices call cloudsync_set_column(table, column, \'algo\', \'block\')). An already-synced table keeps its block columns: other ones are refused (VALIDATION_FAILED, reason BLOCK_COLUMNS_CHANGE). SQLITE and POSTGRES databases',
    }),
  }),
});

builder.mutationFields((t) => ({
  deployTables: t.field({
    type: DeployTablesPayload,
    description: 'Mode REPLACE (default, declarative): the synced set becomes exactly `tables`; ADD / REMOVE change only the tables given. Refuses (SCHEMA_ISSUES, per table in extensions.refused) added tables that cannot sync',
    args: {
      databaseId: t.arg.id({ required: true }),
      tables: t.arg.stringList({ required: true }),
      mode: t.arg({ type: DeployModeEnum, defaultValue: 'REPLACE' }),
      options: t.arg({ type: [TableDeployOptionsInput], description: 'Algorithm and flags of tables being added' }),
    },
    resolve: async (_r, { databaseId, tables, mode, options }, ctx) => ({
      databaseId: String(databaseId),
      ...(await ctx.services.tables.deployTables(String(databaseId), tables, {
        mode: mode ?? 'REPLACE',
        options: (options ?? []).map((o) => ({
          table: o.table,
          algorithm: o.algorithm ?? null,
          flags: (o.allowIntegerPk === true ? 1 : 0) | (o.skipNotNullDefault === true ? 2 : 0) | (o.skipPkNotNull === true ? 4 : 0),
          blockColumns: o.blockColumns ?? null,
        })),
      })),
    }),
  }),
  alterTable: t.field({
    type: AlterTablePayloadRef,
    authScopes: { admin: true },
    description:
      'Changes a synced table\'s schema (docs/PROTOCOL.md §P6 "Alteration"): beginAlter, the statements, commitAlter, in one transaction — new columns back-filled as changes, both new schema hashes recorded (devices on the old schema keep being accepted). Only ALTER TABLE of `table`: ADD COLUMN (NOT NULL, DEFAULT <constant>, COLLATE), DROP COLUMN, RENAME COLUMN, ALTER COLUMN (SET/DROP DEFAULT, SET/DROP NOT NULL, TYPE). Refused with ALTER_REFUSED (details.reason: NOT_ALTER_TABLE, OTHER_TABLE, MULTIPLE_STATEMENTS, TABLE_RENAME, PRIMARY_KEY_CHANGE, UNSUPPORTED, TABLE_NOT_SYNCED, SCHEMA_INVALID, SYNTAX, INVALID_INPUT, POLICY_DEPENDENCY; details.statement) before anything runs; a statement the database rejects is ALTER_FAILED. Either way nothing changes. On SQLITE databases the table\'s RLS policies follow: DROP of a column a policy names is refused (POLICY_DEPENDENCY), RENAME COLUMN rewrites the policies that name it, and every policy must still validate afterwards. SQLITE and POSTGRES databases',
    args: {
      databaseId: t.arg.id({ required: true }),
      table: t.arg.string({ required: true }),
      statements: t.arg.stringList({ required: true }),
    },
    resolve: async (_r, a, ctx) => ({ databaseId: String(a.databaseId), ...(await ctx.services.tables.alterTable(String(a.databaseId), a.table, a.statements)) }),
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

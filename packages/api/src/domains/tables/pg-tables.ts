/**
 * The one place the API touches a POSTGRES database's tables: listing through information_schema
 * (schema `public`, §P6 checks via `tableIssues`), the synced set from the engine's metadata
 * schema (`offsync.tables`), and deploys through the core PostgreSQL engine
 * (`createPgSyncEngine` from `@offsync/core/postgres`). Every call uses one short-lived client,
 * always closed.
 */
import { createPgSyncEngine, sqliteDdlFor } from '@offsync/core/postgres';
import type pg from 'pg';
import { ApiError } from '../../errors.ts';
import type { PgSettings } from '../databases/connection.ts';
import { connectPg, describePgError } from '../databases/connection.ts';
import { engineErrorToApi, refuseUnsyncable, tableIssues, uniqueIssues } from './table-engine.ts';
import { alterFailed, commitRefusal } from './alter.ts';
import type { AlterTarget, DeviceTableDdl } from './alter.ts';
import type { TableColumn, TableInfo } from './table-engine.ts';

/** Metadata schema of the engine (its presence is what `connection.extensionInstalled` reports). */
export const PG_META_SCHEMA = 'offsync';
/** Schema whose tables are listed and synced. */
export const PG_TABLES_SCHEMA = 'public';

export interface DeployResult { added: string[]; removed: string[] }

async function withClient<T>(settings: PgSettings, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  let client: pg.Client;
  try {
    client = await connectPg(settings);
  } catch (e) {
    const err = describePgError(e);
    throw new ApiError('CONNECTION_FAILED', `Cannot connect to the PostgreSQL database: ${err.message}`, { cause: e, details: { ...err, reason: 'CONNECTION_FAILED' } });
  }
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Synced tables and their algorithm from the engine metadata; empty when the schema is not installed. */
async function readSynced(client: pg.Client): Promise<Map<string, string> | null> {
  const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [`"${PG_META_SCHEMA}".tables`]);
  if (exists.rows[0]?.t == null) return null;
  const res = await client.query<{ tbl: string; algo: string }>(`SELECT tbl, algo FROM "${PG_META_SCHEMA}".tables`);
  return new Map(res.rows.map((r) => [r.tbl, r.algo]));
}

/** Block-LWW columns per synced table (`offsync.block_columns`, core PgSyncEngine.setBlockColumn); empty when not installed. */
async function readBlockColumns(client: pg.Client): Promise<Map<string, string[]>> {
  const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [`"${PG_META_SCHEMA}".block_columns`]);
  if (exists.rows[0]?.t == null) return new Map();
  const res = await client.query<{ tbl: string; col: string }>(`SELECT tbl, col FROM "${PG_META_SCHEMA}".block_columns ORDER BY tbl, col`);
  const out = new Map<string, string[]>();
  for (const r of res.rows) out.set(r.tbl, [...(out.get(r.tbl) ?? []), r.col]);
  return out;
}

async function readTables(client: pg.Client, synced: Map<string, string>): Promise<TableInfo[]> {
  const res = await client.query<{ table_name: string; column_name: string; data_type: string; is_nullable: string; column_default: string | null; pk: number | null }>(`
    SELECT c.table_name, c.column_name, c.data_type, c.is_nullable, c.column_default,
           (SELECT k.ordinal_position FROM information_schema.table_constraints tc
              JOIN information_schema.key_column_usage k ON k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema AND k.table_name = tc.table_name
             WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = c.table_schema AND tc.table_name = c.table_name AND k.column_name = c.column_name) AS pk
      FROM information_schema.columns c
      JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
     WHERE c.table_schema = $1
     ORDER BY c.table_name, c.ordinal_position`, [PG_TABLES_SCHEMA]);
  const byTable = new Map<string, TableColumn[]>();
  for (const r of res.rows) {
    const cols = byTable.get(r.table_name) ?? [];
    cols.push({ name: r.column_name, type: r.data_type.toUpperCase(), notNull: r.is_nullable === 'NO', defaultValue: r.column_default, pk: r.pk ?? 0 });
    byTable.set(r.table_name, cols);
  }
  // UNIQUE constraints / unique indexes other than the primary key (rule OS1-unique).
  const uq = await client.query<{ tbl: string; cols: string[] }>(`
    SELECT c.relname AS tbl, ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
                                     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.n ORDER BY k.o)::text[] AS cols
      FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace ns ON ns.oid = c.relnamespace
     WHERE ns.nspname = $1 AND i.indisunique AND NOT i.indisprimary
     ORDER BY c.relname, i.indexrelid`, [PG_TABLES_SCHEMA]);
  const uniques = new Map<string, string[][]>();
  for (const r of uq.rows) uniques.set(r.tbl, [...(uniques.get(r.tbl) ?? []), r.cols]);
  const blocks = synced.size === 0 ? new Map<string, string[]>() : await readBlockColumns(client);
  return [...byTable].map(([name, columns]) => {
    const algorithm = synced.get(name);
    const issues = [...tableIssues(name, columns), ...uniqueIssues(name, uniques.get(name) ?? [])];
    return { name, columns, issues, synced: algorithm !== undefined, algorithm: algorithm === 'gos' ? 'gos' : algorithm === undefined ? null : 'cls', blockColumns: algorithm === undefined ? [] : (blocks.get(name) ?? []) };
  });
}

/**
 * Tables of schema `public`; `synced`/`algorithm` come from the engine metadata (`offsync.tables`),
 * `postgresRls` from pg_class and pg_policies (same client).
 */
export async function listPgTables(settings: PgSettings): Promise<(TableInfo & { postgresRls: PgRlsInfo | null })[]> {
  return withClient(settings, async (client) => {
    const tables = await readTables(client, (await readSynced(client)) ?? new Map());
    const rls = await readRls(client, tables.map((t) => t.name));
    return tables.map((t) => ({ ...t, postgresRls: rls.get(t.name) ?? null }));
  });
}

/**
 * Makes the synced set exactly `wanted` (deduplicated by the caller). Refuses all or nothing
 * (SCHEMA_ISSUES) before touching the database; then `init`s the added tables (marking the
 * `blockColumns` given for them, core `setBlockColumn`) and `cleanup`s the removed ones, in that
 * order. The engine runs each `init`/`setBlockColumn`/`cleanup` in its own transaction, not the
 * deploy as a whole: when one fails, the tables this deploy already initialised are cleaned up
 * again (best effort) and nothing is removed, then the error is reported. `check` runs on the
 * listed tables before anything is changed (the caller's validation of its options).
 */
export async function deployPgTables(
  settings: PgSettings,
  wanted: string[],
  opts: { blockColumns?: (tables: readonly TableInfo[], added: readonly string[]) => ReadonlyMap<string, readonly string[]> } = {},
): Promise<DeployResult> {
  return withClient(settings, async (client) => {
    const installed = await readSynced(client);
    const listed = await readTables(client, installed ?? new Map());
    refuseUnsyncable(listed, wanted);
    const blocks = opts.blockColumns?.(listed, wanted.filter((n) => !installed?.has(n))) ?? new Map<string, readonly string[]>();
    // Nothing to sync and no metadata yet: do not install the schema just to record an empty set.
    if (installed === null && wanted.length === 0) return { added: [], removed: [] };
    const engine = await createPgSyncEngine({ client, schema: PG_META_SCHEMA, tablesSchema: PG_TABLES_SCHEMA });
    const current = new Set((await engine.syncedTables()).map((t) => t.name));
    const added = wanted.filter((n) => !current.has(n));
    const removed = [...current].filter((n) => !wanted.includes(n));
    const done: string[] = [];
    try {
      for (const name of added) {
        await engine.init(name, 'cls');
        done.push(name);
        for (const column of blocks.get(name) ?? []) await engine.setBlockColumn(name, column);
      }
    } catch (e) {
      for (const name of done.reverse()) await engine.cleanup(name).catch(() => {});
      throw engineErrorToApi(e);
    }
    try {
      for (const name of removed) await engine.cleanup(name);
    } catch (e) {
      throw engineErrorToApi(e);
    }
    return { added, removed };
  });
}

/** How long the operator's ALTER TABLE waits for the table's lock (downloads reading it) before it fails (ALTER_FAILED). */
export const PG_ALTER_LOCK_TIMEOUT_MS = 10_000;

/**
 * The operator's alter of a synced table (alter.ts) through the core engine on one client:
 * `plan` validates the statements against the table as synced (throws to refuse: nothing was
 * touched), then beginAlter (one pinned transaction, clock row locked, triggers off), the planned
 * statements, commitAlter (new columns back-filled, both hashes recorded, a changed key refused).
 * Any failure rolls the whole transaction back: the table syncs as before.
 */
export async function alterPgTable(
  settings: PgSettings,
  table: string,
  plan: (target: AlterTarget) => string[],
): Promise<{ table: string; statements: string[]; schemaHash: bigint; ddlSchemaHash: bigint }> {
  return withClient(settings, async (client) => {
    const synced = await readSynced(client);
    const name = synced === null ? undefined : [...synced.keys()].find((n) => n === table) ?? [...synced.keys()].find((n) => n.toLowerCase() === table.toLowerCase());
    if (name === undefined) {
      throw new ApiError('ALTER_REFUSED', `table ${table} is not synced (deployTables first; an unsynced table is altered directly)`, { details: { field: 'table', reason: 'TABLE_NOT_SYNCED' } });
    }
    const engine = await createPgSyncEngine({ client, schema: PG_META_SCHEMA, tablesSchema: PG_TABLES_SCHEMA });
    await engine.syncedTables();
    const ctx = engine.table(name);
    if (ctx === undefined) throw new ApiError('ALTER_REFUSED', `table ${name} is synced but missing from schema ${PG_TABLES_SCHEMA}`, { details: { field: 'table', reason: 'TABLE_NOT_SYNCED' } });
    const statements = plan({ name: ctx.name, pk: ctx.schema.pkColumns.map((k) => k.name) });
    try {
      await engine.beginAlter(ctx.name);
    } catch (e) {
      throw commitRefusal(e);
    }
    try {
      await engine.withConnection(async (c) => {
        await c.q(`SELECT set_config('lock_timeout', $1, true)`, [`${PG_ALTER_LOCK_TIMEOUT_MS}ms`]);
        for (const [i, sql] of statements.entries()) {
          try {
            await c.q(sql);
          } catch (e) {
            throw alterFailed(i, e);
          }
        }
      });
    } catch (e) {
      await engine.close(); // rolls the alter back
      throw e;
    }
    try {
      await engine.commitAlter(ctx.name); // rolls back by itself when it refuses
    } catch (e) {
      await engine.close();
      throw commitRefusal(e);
    }
    return { table: ctx.name, statements, schemaHash: await engine.schemaHash(), ddlSchemaHash: await engine.ddlSchemaHash() };
  });
}

/** The SQLite CREATE TABLE statements devices create the synced tables with (core `deviceDdl`, name order); empty when the metadata is not installed. */
export async function pgDeviceDdl(settings: PgSettings): Promise<DeviceTableDdl[]> {
  return withClient(settings, async (client) => {
    const synced = await readSynced(client);
    if (synced === null || synced.size === 0) return [];
    const engine = await createPgSyncEngine({ client, schema: PG_META_SCHEMA, tablesSchema: PG_TABLES_SCHEMA });
    // deviceDdl() gives the statements in the order devices run them; each names its table as sqliteDdlFor does.
    const ddl = await engine.deviceDdl();
    const byText = new Map((await engine.syncedTables()).map((t) => {
      const ctx = engine.table(t.name);
      return [ctx === undefined ? '' : sqliteDdlFor(ctx.schema), t.name] as const;
    }));
    return ddl.map((sql) => ({ table: byText.get(sql) ?? '', sql }));
  });
}

/** Block-LWW columns per synced table (for the client-integration snippet). */
export async function pgBlockColumns(settings: PgSettings): Promise<Map<string, string[]>> {
  return withClient(settings, readBlockColumns);
}

/** Names of the synced tables in the engine metadata; null when the `offsync` schema is not installed. */
export async function pgSyncedTables(settings: PgSettings): Promise<string[] | null> {
  return withClient(settings, async (client) => {
    const synced = await readSynced(client);
    return synced === null ? null : [...synced.keys()].sort();
  });
}

/** One row of `pg_policies`. */
export interface PgPolicy {
  name: string;
  /** ALL, SELECT, INSERT, UPDATE or DELETE. */
  command: string;
  /** PERMISSIVE or RESTRICTIVE. */
  permissive: string;
  roles: string[];
  using: string | null;
  withCheck: string | null;
}

/** Row-level security of one PostgreSQL table, as PostgreSQL has it (read only: managed in PostgreSQL). */
export interface PgRlsInfo { enabled: boolean; forced: boolean; policies: PgPolicy[] }

/** Per table of `tables` (schema `public`): relrowsecurity / relforcerowsecurity and its pg_policies rows. */
async function readRls(client: pg.Client, tables: readonly string[]): Promise<Map<string, PgRlsInfo>> {
  const out = new Map<string, PgRlsInfo>();
  if (tables.length === 0) return out;
  const rel = await client.query<{ relname: string; relrowsecurity: boolean; relforcerowsecurity: boolean }>(`
    SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relname = ANY($2::text[]) AND c.relkind IN ('r', 'p')`, [PG_TABLES_SCHEMA, tables]);
  for (const r of rel.rows) out.set(r.relname, { enabled: r.relrowsecurity, forced: r.relforcerowsecurity, policies: [] });
  const pol = await client.query<{ tablename: string; policyname: string; permissive: string; roles: string[]; cmd: string; qual: string | null; with_check: string | null }>(`
    SELECT tablename::text, policyname::text, permissive, roles::text[] AS roles, cmd, qual, with_check
      FROM pg_catalog.pg_policies
     WHERE schemaname = $1 AND tablename = ANY($2::text[])
     ORDER BY tablename, policyname`, [PG_TABLES_SCHEMA, tables]);
  for (const r of pol.rows) {
    out.get(r.tablename)?.policies.push({ name: r.policyname, command: r.cmd, permissive: r.permissive, roles: r.roles, using: r.qual, withCheck: r.with_check });
  }
  return out;
}

/** Row-level security per table of `tables` (missing tables are left out). */
export async function readPgRls(settings: PgSettings, tables: readonly string[]): Promise<Map<string, PgRlsInfo>> {
  return withClient(settings, (client) => readRls(client, tables));
}

/**
 * Removes OffSync from a customer database: `cleanup` per synced table through the core engine
 * (its triggers, trigger functions and clock table), then `DROP SCHEMA offsync CASCADE` (the
 * metadata, the bookkeeping of the data plane and its rejection log, the helper functions). The tables and their rows
 * stay. Idempotent: a database without the schema is left as it is (returns false). A synced
 * table that no longer exists is skipped (the schema drop removes what is left of it).
 */
export async function uninstallPg(settings: PgSettings): Promise<boolean> {
  return withClient(settings, async (client) => {
    const installed = await readSynced(client);
    const schema = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = $1', [PG_META_SCHEMA]);
    if ((schema.rows[0]?.n ?? 0) === 0) return false;
    if (installed !== null && installed.size > 0) {
      const engine = await createPgSyncEngine({ client, schema: PG_META_SCHEMA, tablesSchema: PG_TABLES_SCHEMA });
      const exists = await client.query<{ relname: string }>(
        `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = ANY($2::text[])`,
        [PG_TABLES_SCHEMA, [...installed.keys()]],
      );
      const present = new Set(exists.rows.map((r) => r.relname));
      try {
        for (const name of installed.keys()) if (present.has(name)) await engine.cleanup(name);
      } catch (e) {
        throw engineErrorToApi(e);
      }
    }
    await client.query(`DROP SCHEMA IF EXISTS "${PG_META_SCHEMA}" CASCADE`);
    return true;
  });
}

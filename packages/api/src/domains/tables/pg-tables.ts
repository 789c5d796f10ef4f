/** Table listing of a POSTGRES database through information_schema (schema `public`). */
import type { PgSettings } from '../databases/connection.ts';
import { connectPg } from '../databases/connection.ts';
import { tableIssues } from './table-engine.ts';
import type { TableColumn, TableInfo } from './table-engine.ts';

export async function listPgTables(settings: PgSettings, synced: Map<string, string>): Promise<TableInfo[]> {
  const client = await connectPg(settings);
  try {
    const res = await client.query<{ table_name: string; column_name: string; data_type: string; is_nullable: string; column_default: string | null; pk: number | null }>(`
      SELECT c.table_name, c.column_name, c.data_type, c.is_nullable, c.column_default,
             (SELECT k.ordinal_position FROM information_schema.table_constraints tc
                JOIN information_schema.key_column_usage k ON k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema AND k.table_name = tc.table_name
               WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = c.table_schema AND tc.table_name = c.table_name AND k.column_name = c.column_name) AS pk
        FROM information_schema.columns c
        JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
       WHERE c.table_schema = 'public'
       ORDER BY c.table_name, c.ordinal_position`);
    const byTable = new Map<string, TableColumn[]>();
    for (const r of res.rows) {
      const cols = byTable.get(r.table_name) ?? [];
      cols.push({ name: r.column_name, type: r.data_type.toUpperCase(), notNull: r.is_nullable === 'NO', defaultValue: r.column_default, pk: r.pk ?? 0 });
      byTable.set(r.table_name, cols);
    }
    return [...byTable].map(([name, columns]) => {
      const algorithm = synced.get(name);
      return { name, columns, issues: tableIssues(name, columns), synced: algorithm !== undefined, algorithm: algorithm === 'gos' ? 'gos' : algorithm === undefined ? null : 'cls' };
    });
  } finally {
    await client.end().catch(() => {});
  }
}

/** The table picker's logic (Database Setup): filtering, selection, the deploy plan and its per-table result. */
import type { RefusedTable } from '../api.ts';

export interface PickerTable {
  name: string;
  selected: boolean;
  enabled: boolean;
  schemaIssues: readonly { rule: string; message: string }[];
}

export interface PickerColumn { name: string; type: string; primaryKeyPosition: number }

/** SQLite's affinity rules (INT first, then CHAR / CLOB / TEXT), as the server checks block columns. */
export function hasTextAffinity(declaredType: string): boolean {
  return !/INT/i.test(declaredType) && /CHAR|CLOB|TEXT/i.test(declaredType);
}

/** Columns that can be block-LWW: TEXT affinity, not in the primary key. */
export function blockCandidates<C extends PickerColumn>(columns: readonly C[]): C[] {
  return columns.filter((c) => c.primaryKeyPosition === 0 && hasTextAffinity(c.type));
}

/** Block columns picked per table not synced yet (table → column names, in column order). */
export type BlockDraft = ReadonlyMap<string, readonly string[]>;

export function toggleBlockColumn(draft: BlockDraft, table: string, column: string, columnOrder: readonly string[]): Map<string, string[]> {
  const next = new Map<string, string[]>([...draft].map(([t, cols]) => [t, [...cols]]));
  const cur = new Set(next.get(table) ?? []);
  if (cur.has(column)) cur.delete(column);
  else cur.add(column);
  const cols = columnOrder.filter((c) => cur.has(c));
  if (cols.length === 0) next.delete(table);
  else next.set(table, cols);
  return next;
}

export function filterTables<T extends PickerTable>(tables: readonly T[], filter: string): T[] {
  const needle = filter.trim().toLowerCase();
  return needle === '' ? [...tables] : tables.filter((t) => t.name.toLowerCase().includes(needle));
}

/** A table with schema issues can be deselected but not newly selected (the server would refuse it). */
export function canSelect(t: PickerTable, chosen: ReadonlySet<string>): boolean {
  return t.schemaIssues.length === 0 || chosen.has(t.name);
}

export function initialSelection(tables: readonly PickerTable[]): Set<string> {
  return new Set(tables.filter((t) => t.selected).map((t) => t.name));
}

export function toggle(chosen: ReadonlySet<string>, name: string): Set<string> {
  const next = new Set(chosen);
  if (next.has(name)) next.delete(name);
  else next.add(name);
  return next;
}

/** Select All acts on the visible (filtered) tables that can sync; Deselect All on the visible ones. */
export function selectAll(chosen: ReadonlySet<string>, visible: readonly PickerTable[]): Set<string> {
  const next = new Set(chosen);
  for (const t of visible) if (t.schemaIssues.length === 0) next.add(t.name);
  return next;
}

export function deselectAll(chosen: ReadonlySet<string>, visible: readonly PickerTable[]): Set<string> {
  const next = new Set(chosen);
  for (const t of visible) next.delete(t.name);
  return next;
}

export interface DeployPlan {
  add: string[];
  remove: string[];
  /** The declarative set sent to deployTables (every chosen table that exists). */
  tables: string[];
  /** deployTables `options`: the block columns of tables being added (only those with some). */
  options: { table: string; blockColumns: string[] }[];
  changed: boolean;
}

/** Block columns are only picked for tables being added: a synced table keeps its own (the server refuses a change). */
export function deployPlan(tables: readonly PickerTable[], chosen: ReadonlySet<string>, blocks: BlockDraft = new Map()): DeployPlan {
  const names = tables.map((t) => t.name);
  const add = tables.filter((t) => !t.selected && chosen.has(t.name)).map((t) => t.name);
  const remove = tables.filter((t) => t.selected && !chosen.has(t.name)).map((t) => t.name);
  const options = add.flatMap((table) => {
    const blockColumns = blocks.get(table) ?? [];
    return blockColumns.length > 0 ? [{ table, blockColumns: [...blockColumns] }] : [];
  });
  return { add, remove, tables: names.filter((n) => chosen.has(n)), options, changed: add.length + remove.length > 0 };
}

export type TableOutcome = { table: string; result: 'added' | 'removed' } | { table: string; result: 'refused'; message: string } | { table: string; result: 'not-deployed' };

/** Per-table outcome of a deploy: from the payload on success, from `extensions.refused` on SCHEMA_ISSUES (nothing was changed then). */
export function deployOutcome(plan: DeployPlan, result: { added: readonly string[]; removed: readonly string[] } | { refused: readonly RefusedTable[] }): TableOutcome[] {
  if ('refused' in result) {
    const refused = new Map(result.refused.map((r) => [r.table, r.issues.map((i) => i.message).join('; ')]));
    return [...plan.add, ...plan.remove].map((table) => {
      const message = refused.get(table);
      return message === undefined ? { table, result: 'not-deployed' as const } : { table, result: 'refused' as const, message };
    }).concat(result.refused.filter((r) => !plan.add.includes(r.table) && !plan.remove.includes(r.table)).map((r) => ({ table: r.table, result: 'refused' as const, message: r.issues.map((i) => i.message).join('; ') })));
  }
  return [...result.added.map((table) => ({ table, result: 'added' as const })), ...result.removed.map((table) => ({ table, result: 'removed' as const }))];
}

/**
 * `offsync_policy_history` in the central database: which SELECT policy (and RLS mode) was in
 * force BEFORE each change of who may see what, at the server version where the change started a
 * new life of the table's rows (`SyncEngine.renewTable`; docs/ARCHITECTURE.md "RLS model").
 * Downloads use it to tell what a device could see at its cursor: a row it could see then and may
 * not see now is answered with a removal; a row it may see now reaches it whole.
 *
 * Written by the control plane (tables.service → table-engine `renewVisibility`) in the same
 * transaction as the renewal; read by the data plane (rls.ts `priorFilterFor`).
 */
import type { SqlDriver } from '@offsync/core';

export type HistoryMode = 'ENFORCE' | 'BYPASS';

export interface PolicyChange {
  table: string;
  /** Server version of the renewal: the entry describes what held before it. */
  dbVersion: number;
  mode: HistoryMode;
  /** The SELECT expression before the change; null = no SELECT policy (denied). */
  select: string | null;
}

const DDL = `CREATE TABLE IF NOT EXISTS offsync_policy_history (
  tbl TEXT NOT NULL, db_version INTEGER NOT NULL, mode TEXT NOT NULL, select_expr TEXT,
  PRIMARY KEY (tbl, db_version)
) WITHOUT ROWID`;

export function recordPolicyChange(driver: SqlDriver, change: PolicyChange): void {
  driver.exec(DDL);
  driver.prepare('INSERT OR REPLACE INTO offsync_policy_history (tbl, db_version, mode, select_expr) VALUES (?, ?, ?, ?)').run(change.table.toLowerCase(), BigInt(change.dbVersion), change.mode, change.select);
}

/** Whether the file has a policy history yet (it is created by the first recorded change). */
function historyExists(driver: SqlDriver): boolean {
  return driver.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'offsync_policy_history'").getRaw() !== undefined;
}

/** Every recorded change, by table (lower case), oldest first. */
export function readPolicyHistory(driver: SqlDriver): Map<string, PolicyChange[]> {
  const out = new Map<string, PolicyChange[]>();
  if (!historyExists(driver)) return out;
  for (const r of driver.prepare('SELECT tbl, db_version, mode, select_expr FROM offsync_policy_history ORDER BY tbl, db_version').all()) {
    const table = String(r['tbl']);
    const list = out.get(table) ?? [];
    list.push({ table, dbVersion: Number(r['db_version']), mode: r['mode'] === 'BYPASS' ? 'BYPASS' : 'ENFORCE', select: r['select_expr'] == null ? null : String(r['select_expr']) });
    out.set(table, list);
  }
  return out;
}

/** The policy in force at `version` for a table: the first change after it says what held before; undefined = the current policy. */
export function policyAt(history: ReadonlyMap<string, readonly PolicyChange[]>, table: string, version: number): PolicyChange | undefined {
  return history.get(table.toLowerCase())?.find((c) => c.dbVersion > version);
}

/**
 * Rewrites the SELECT expressions recorded for `table` with `rewrite` (an operator's RENAME
 * COLUMN carries the policies along, docs/PROTOCOL.md §P6 "Alteration": the expressions of older
 * versions must keep naming the table's columns). Runs inside the caller's transaction; returns
 * how many entries changed. Not a change of who may see what: no renewal, no new entry.
 */
export function rewritePolicyHistory(driver: SqlDriver, table: string, rewrite: (select: string) => string): number {
  if (!historyExists(driver)) return 0;
  const tbl = table.toLowerCase();
  const update = driver.prepare('UPDATE offsync_policy_history SET select_expr = ? WHERE tbl = ? AND db_version = ?');
  let changed = 0;
  for (const r of driver.prepare('SELECT db_version, select_expr FROM offsync_policy_history WHERE tbl = ? AND select_expr IS NOT NULL').all(tbl)) {
    const before = String(r['select_expr']);
    const after = rewrite(before);
    if (after === before) continue;
    update.run(after, tbl, BigInt(r['db_version'] as number | bigint));
    changed++;
  }
  return changed;
}

/**
 * The policies' epoch (rls.ts: a cached policy set is reloaded when it moves): the latest renewal
 * version (0 = none) plus the file's schema version. Both only grow, so the sum moves with each
 * renewal and with each schema change — an operator's alter that rewrote the policies of a table
 * (RENAME COLUMN) included, so no merge or download evaluates the old text against the new columns.
 */
export function policyEpoch(driver: SqlDriver): number {
  const schema = Number((driver.prepare('PRAGMA schema_version').getRaw() ?? [0])[0]);
  if (!historyExists(driver)) return schema;
  return schema + Number((driver.prepare('SELECT COALESCE(MAX(db_version), 0) FROM offsync_policy_history').getRaw() ?? [0])[0]);
}

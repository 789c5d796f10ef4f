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

/** Every recorded change, by table (lower case), oldest first. */
export function readPolicyHistory(driver: SqlDriver): Map<string, PolicyChange[]> {
  const out = new Map<string, PolicyChange[]>();
  const exists = driver.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'offsync_policy_history'").getRaw();
  if (exists === undefined) return out;
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

/** Latest renewal version (0 = none): a policy cache older than it must be reloaded. */
export function policyEpoch(driver: SqlDriver): number {
  const exists = driver.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'offsync_policy_history'").getRaw();
  if (exists === undefined) return 0;
  return Number((driver.prepare('SELECT COALESCE(MAX(db_version), 0) FROM offsync_policy_history').getRaw() ?? [0])[0]);
}

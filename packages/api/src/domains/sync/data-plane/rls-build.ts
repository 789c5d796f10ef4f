/**
 * Row-level security built from plain data (docs/ARCHITECTURE.md "RLS model"): the policies of a
 * database (table → operation → expression, or null when RLS is not enforced) and the caller turn
 * into the merge's whole-row judge, the feed's row filter, the prior filter and the visibility
 * columns, over one central engine. Pure of the control plane, so the same code runs on the main
 * thread (rls.ts loads the policies) and in a central worker (central-worker/, which receives them
 * with the job).
 */
import type { RowVerdict } from '@offsync/core';
import type { RlsOperation } from '../../tables/rls-validate.ts';
import { policyAt, readPolicyHistory } from '../policy-history.ts';
import type { PriorFilter, Principal, RowFilter, RowJudge, SyncEngine } from '../sync-deps.ts';
import type { RlsEvaluator } from './rls-evaluator.ts';
import { keyOf, policySql, visibleKeys } from './rls-sql.ts';

/** Policies of a database under ENFORCE, by lower-case table name; null = RLS not enforced. */
export type Policies = ReadonlyMap<string, ReadonlyMap<RlsOperation, string>>;

function columnsOf(engine: SyncEngine, table: string): string[] {
  return engine.table(table)?.schema.columns.map((c) => c.name) ?? [];
}

/** Users are filtered; API keys bypass (null policies: nobody is). */
const enforcedFor = (policies: Policies | null, principal: Principal): Policies | null => (principal.kind === 'apiKey' ? null : policies);

/**
 * The SELECT filter of this caller. With `bulk` (a large download) the policy of each table runs
 * once as SQL over the central table (rls-sql.ts) and live rows are looked up in the key set; the
 * caller must use the filter in the same synchronous section (no merge in between).
 */
export function buildRowFilter(all: Policies | null, principal: Principal, engine: SyncEngine, evaluator: RlsEvaluator, opts: { bulk?: boolean } = {}): RowFilter | undefined {
  const policies = enforcedFor(all, principal);
  if (policies === null) return undefined;
  const sets = new Map<string, Set<string> | undefined>();
  const visibleSet = (table: string, expr: string): Set<string> | undefined => {
    const key = table.toLowerCase();
    if (!sets.has(key)) sets.set(key, visibleKeys(engine, table, expr, principal));
    return sets.get(key);
  };
  const filter: RowFilter = (table, _pk, row, tombstone) => {
    const expr = policies.get(table.toLowerCase())?.get('SELECT');
    if (expr === undefined) return false;
    if (row === undefined) {
      if (tombstone?.lastValues === undefined) return false;
      row = tombstone.lastValues;
    }
    return evaluator.allows(principal, table, 'SELECT', expr, columnsOf(engine, table), { row });
  };
  if (opts.bulk === true) {
    // Live rows decided by key: the feed then reads only the rows the user may see.
    filter.byKey = (table, pk) => {
      const expr = policies.get(table.toLowerCase())?.get('SELECT');
      if (expr === undefined) return false;
      return visibleSet(table, expr)?.has(keyOf(pk));
    };
    // And the same policy as SQL inside the feed's scan (rls-sql.ts): invisible live rows never
    // leave SQLite — what makes an initial sync under RLS cost the rows it sends.
    filter.sqlVisible = (table) => {
      const expr = policies.get(table.toLowerCase())?.get('SELECT');
      if (expr === undefined) return { where: '0', params: {} };
      // Only where the key set could be built from the same SQL (so both agree, and it compiles).
      return visibleSet(table, expr) === undefined ? undefined : policySql(expr, principal);
    };
  }
  return filter;
}

/**
 * What this user could see as of a server version (downloads: a row it could see at the device's
 * cursor and may not see now is answered with a removal). The policy in force then is the one
 * recorded before the first renewal after that version, else the current one.
 */
export function buildPriorFilter(all: Policies | null, principal: Principal, engine: SyncEngine, evaluator: RlsEvaluator): PriorFilter | undefined {
  const policies = enforcedFor(all, principal);
  if (policies === null) return undefined;
  const history = readPolicyHistory(engine.driver);
  return (table, _pk, row, version) => {
    const then = policyAt(history, table, version);
    const mode = then?.mode ?? 'ENFORCE';
    if (mode === 'BYPASS') return true;
    const expr = then === undefined ? policies.get(table.toLowerCase())?.get('SELECT') : (then.select ?? undefined);
    if (expr === undefined) return false;
    return evaluator.allows(principal, table, 'SELECT', expr, columnsOf(engine, table), { row });
  };
}

/** The merge's whole-row judge for this caller (undefined: every write allowed). */
export function buildJudge(all: Policies | null, principal: Principal, engine: SyncEngine, evaluator: RlsEvaluator): RowJudge | undefined {
  const policies = enforcedFor(all, principal);
  if (policies === null) return undefined;
  return (t): RowVerdict | undefined => {
    const op: RlsOperation = t.operation;
    const expr = policies.get(t.table.toLowerCase())?.get(op);
    const columns = columnsOf(engine, t.table);
    const allowed = expr !== undefined && evaluator.allows(principal, t.table, op, expr, columns, { old: t.old, new: t.new });
    if (allowed) return undefined;
    // May the user see the row as it stands centrally? If not, their device gets a removal.
    const select = policies.get(t.table.toLowerCase())?.get('SELECT');
    const visible = t.old !== undefined && select !== undefined && evaluator.allows(principal, t.table, 'SELECT', select, columns, { row: t.old });
    return {
      code: 'rls_denied',
      reason: expr === undefined ? `No ${op} policy on table ${t.table}: denied by default` : `Row-level security denies ${op} on table ${t.table}`,
      policy: expr ?? null,
      visible,
    };
  };
}

/**
 * Per table, the columns its SELECT policy reads (every column name the expression mentions): a
 * merge that changes one of them starts a new life of the row, so that devices receive the row
 * whole when it enters their user's sight and a removal when it leaves it. Undefined when RLS is
 * not enforced. Applies to every upload (API keys included): visibility is about readers.
 */
export function buildVisibility(policies: Policies | null, engine: SyncEngine): ReadonlyMap<string, ReadonlySet<string>> | undefined {
  if (policies === null) return undefined;
  const out = new Map<string, Set<string>>();
  for (const [table, ops] of policies) {
    const expr = ops.get('SELECT');
    if (expr === undefined) continue;
    const words = new Set((expr.match(/[A-Za-z_][A-Za-z0-9_]*|"(?:[^"]|"")+"/g) ?? []).map((w) => (w.startsWith('"') ? w.slice(1, -1).replace(/""/g, '"') : w).toLowerCase()));
    const cols = columnsOf(engine, table).filter((c) => words.has(c.toLowerCase()));
    if (cols.length > 0) out.set(table, new Set(cols));
  }
  return out;
}

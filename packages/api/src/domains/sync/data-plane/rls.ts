/**
 * Row-level security of the sync data plane (docs/ARCHITECTURE.md "RLS model"), applied when the
 * database's RLS mode is ENFORCE and the caller is a user (access token or JWT); API keys bypass.
 * Policies are per table and operation, deny by default (no policy = operation refused).
 *
 * - Downloads (`rowFilterFor`): a row reaches the user only when its SELECT policy holds for the
 *   row's current values. A deletion is judged on the row's LAST values (kept in
 *   `offsync_tombstones`): it reaches only users who could see the row; a deletion whose last
 *   values are unknown reaches nobody under ENFORCE (no key, value or site id of a row the user
 *   may not see). Compensating removals reach their principal only, as evictions
 *   (`FeedOptions.audience`).
 * - Uploads (`judgeFor`): every row an upload batch changes is judged once, on whole rows: the
 *   operation follows from the row's transition (absent/deleted → alive = INSERT, alive → alive =
 *   UPDATE, alive → deleted = DELETE) and the policy sees the full OLD (central, before the batch)
 *   and NEW (after ALL of the batch's changes to the row merged). A refusal rejects that row only
 *   (the merge rolls it back and compensates it); the rest of the batch merges.
 */
import type { RowVerdict } from '@offsync/core';
import type { Services } from '../../../services.ts';
import type { RlsOperation } from '../../tables/rls-validate.ts';
import type { PriorFilter, Principal, RowFilter, RowJudge, SyncEngine } from '../sync-deps.ts';
import { policyAt, policyEpoch, readPolicyHistory } from '../policy-history.ts';
import { keyOf, visibleKeys } from './rls-sql.ts';
import { createPromiseCache } from './promise-cache.ts';
import { RlsEvaluator } from './rls-evaluator.ts';

/** table (lower case) → operation → expression. */
type Policies = ReadonlyMap<string, ReadonlyMap<RlsOperation, string>>;

export interface RlsOptions {
  /** Lifetime of a database's cached policies (default 2000 ms; 0 disables caching). */
  ttlMs: number;
  now: () => number;
}

export function createRls(services: Services, opts: RlsOptions) {
  const evaluator = new RlsEvaluator();
  const cache = createPromiseCache<Policies | null>({ ttlMs: opts.ttlMs, now: opts.now });

  async function load(databaseId: string): Promise<Policies | null> {
    const config = await services.tables.getRlsConfig(databaseId);
    if (config.mode !== 'ENFORCE') return null;
    const out = new Map<string, Map<RlsOperation, string>>();
    for (const p of config.policies) {
      const key = p.table.toLowerCase();
      const ops = out.get(key) ?? new Map<RlsOperation, string>();
      ops.set(p.operation, p.expression);
      out.set(key, ops);
    }
    return out;
  }

  const epochs = new Map<string, number>();
  /**
   * A policy or mode change renews the central rows and records what held before
   * (policy-history.ts) right after the control plane stored it: a cached policy older than
   * that renewal is dropped, so no download mixes the new clocks with the old policy.
   */
  function checkEpoch(databaseId: string, engine: SyncEngine): void {
    const e = policyEpoch(engine.driver);
    if (epochs.get(databaseId) !== e) {
      cache.invalidate(databaseId);
      epochs.set(databaseId, e);
    }
  }

  /** The policies to enforce for this caller, or null (API key, or mode BYPASS). */
  async function policiesFor(databaseId: string, principal: Principal, engine: SyncEngine): Promise<Policies | null> {
    checkEpoch(databaseId, engine);
    if (principal.kind === 'apiKey') return null;
    return cache.get(databaseId, load);
  }

  /**
   * What this user could see as of a server version (downloads: a row it could see at the
   * device's cursor and may not see now is answered with a removal). The policy in force then is
   * the one recorded before the first renewal after that version, else the current one.
   */
  async function priorFilterFor(databaseId: string, principal: Principal, engine: SyncEngine): Promise<PriorFilter | undefined> {
    const policies = await policiesFor(databaseId, principal, engine);
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

  function columnsOf(engine: SyncEngine, table: string): string[] {
    return engine.table(table)?.schema.columns.map((c) => c.name) ?? [];
  }

  /**
   * The SELECT filter of this caller. With `bulk` (a large download: an initial sync, a far-behind
   * device) the policy of each table runs once as SQL over the central table (rls-sql.ts) and
   * live rows are looked up in the resulting key set — one query instead of one evaluation per
   * row; the caller must use the filter in the same synchronous section (no merge in between).
   */
  async function rowFilterFor(databaseId: string, principal: Principal, engine: SyncEngine, opts: { bulk?: boolean } = {}): Promise<RowFilter | undefined> {
    const policies = await policiesFor(databaseId, principal, engine);
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
    }
    return filter;
  }

  async function judgeFor(databaseId: string, principal: Principal, engine: SyncEngine): Promise<RowJudge | undefined> {
    const policies = await policiesFor(databaseId, principal, engine);
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
   * Per table, the columns its SELECT policy reads (every column name the expression mentions):
   * a merge that changes one of them starts a new life of the row, so that devices receive the
   * row whole when it enters their user's sight and a removal when it leaves it. Undefined when
   * RLS is not enforced. Applies to every upload (API keys included): visibility is about readers.
   */
  async function visibilityFor(databaseId: string, engine: SyncEngine): Promise<ReadonlyMap<string, ReadonlySet<string>> | undefined> {
    checkEpoch(databaseId, engine);
    const policies = await cache.get(databaseId, load);
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

  return {
    rowFilterFor,
    priorFilterFor,
    judgeFor,
    visibilityFor,
    invalidate(databaseId?: string): void {
      cache.invalidate(databaseId);
    },
    close: () => evaluator.close(),
  };
}
export type Rls = ReturnType<typeof createRls>;

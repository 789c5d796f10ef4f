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
import type { Services } from '../../../services.ts';
import type { RlsOperation } from '../../tables/rls-validate.ts';
import type { PriorFilter, Principal, RowFilter, RowJudge, SyncEngine } from '../sync-deps.ts';
import { policyEpoch } from '../policy-history.ts';
import { createPromiseCache } from './promise-cache.ts';
import { RlsEvaluator } from './rls-evaluator.ts';
import { buildJudge, buildPriorFilter, buildRowFilter, buildVisibility } from './rls-build.ts';
import type { Policies } from './rls-build.ts';

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

  /** The policies to enforce for this caller, or null (API key, or mode BYPASS); the builders skip API keys too. */
  async function policiesFor(databaseId: string, principal: Principal, engine: SyncEngine): Promise<Policies | null> {
    checkEpoch(databaseId, engine);
    if (principal.kind === 'apiKey') return null;
    return cache.get(databaseId, load);
  }

  async function priorFilterFor(databaseId: string, principal: Principal, engine: SyncEngine): Promise<PriorFilter | undefined> {
    return buildPriorFilter(await policiesFor(databaseId, principal, engine), principal, engine, evaluator);
  }

  async function rowFilterFor(databaseId: string, principal: Principal, engine: SyncEngine, opts: { bulk?: boolean } = {}): Promise<RowFilter | undefined> {
    return buildRowFilter(await policiesFor(databaseId, principal, engine), principal, engine, evaluator, opts);
  }

  async function judgeFor(databaseId: string, principal: Principal, engine: SyncEngine): Promise<RowJudge | undefined> {
    return buildJudge(await policiesFor(databaseId, principal, engine), principal, engine, evaluator);
  }

  async function visibilityFor(databaseId: string, engine: SyncEngine): Promise<ReadonlyMap<string, ReadonlySet<string>> | undefined> {
    return buildVisibility(await policiesOf(databaseId, engine), engine);
  }

  /** The database's policies under ENFORCE (null: BYPASS), epoch-checked: what a central worker builds RLS from (rls-build.ts). */
  async function policiesOf(databaseId: string, engine: SyncEngine): Promise<Policies | null> {
    checkEpoch(databaseId, engine);
    return cache.get(databaseId, load);
  }

  return {
    rowFilterFor,
    priorFilterFor,
    judgeFor,
    visibilityFor,
    policiesOf,
    invalidate(databaseId?: string): void {
      cache.invalidate(databaseId);
    },
    close: () => evaluator.close(),
  };
}
export type Rls = ReturnType<typeof createRls>;

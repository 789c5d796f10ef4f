/**
 * Row-level security of the sync data plane (protocol reference A.7), applied when the
 * database's RLS mode is ENFORCE and the caller is a user (access token or JWT); API keys bypass.
 * Policies are per table and operation, deny by default (no policy = operation refused).
 *
 * - Downloads (`rowFilterFor`): a row reaches the user only when its SELECT policy holds for the
 *   row's current values. Deletions (no current row) carry only the primary key and are sent.
 * - Uploads (`authorizerFor`), before every base-table write of the merge: INSERT sees NEW
 *   (column defaults + incoming values), UPDATE sees OLD (the current row) and NEW (OLD merged with
 *   the incoming values), DELETE sees OLD. A refusal throws CoreError `CORE_RLS_DENIED` naming
 *   the table and operation: the merge transaction rolls back and nothing of the payload is applied.
 */
import { CoreError, CoreErrorCode } from '@offsync/core';
import type { SqlValue } from '@offsync/core';
import type { Services } from '../../../services.ts';
import type { RlsOperation } from '../../tables/rls-validate.ts';
import type { Principal, RowFilter, SyncEngine, WriteAuthorizer } from '../sync-deps.ts';
import { createPromiseCache } from './promise-cache.ts';
import { RlsEvaluator } from './rls-evaluator.ts';
import type { RowValues } from './rls-evaluator.ts';

/** table (lower case) → operation → expression. */
type Policies = ReadonlyMap<string, ReadonlyMap<RlsOperation, string>>;

export interface RlsOptions {
  /** Lifetime of a database's cached policies (default 2000 ms; 0 disables caching). */
  ttlMs: number;
  now: () => number;
}

const quote = (name: string): string => `"${name.replace(/"/g, '""')}"`;

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

  /** The policies to enforce for this caller, or null (API key, or mode BYPASS). */
  async function policiesFor(databaseId: string, principal: Principal): Promise<Policies | null> {
    if (principal.kind === 'apiKey') return null;
    return cache.get(databaseId, load);
  }

  function columnsOf(engine: SyncEngine, table: string): string[] {
    return engine.table(table)?.schema.columns.map((c) => c.name) ?? [];
  }

  async function rowFilterFor(databaseId: string, principal: Principal, engine: SyncEngine): Promise<RowFilter | undefined> {
    const policies = await policiesFor(databaseId, principal);
    if (policies === null) return undefined;
    return (table, _pk, row) => {
      if (row === undefined) return true;
      const expr = policies.get(table.toLowerCase())?.get('SELECT');
      if (expr === undefined) return false;
      return evaluator.allows(principal, table, 'SELECT', expr, columnsOf(engine, table), { row });
    };
  }

  async function authorizerFor(databaseId: string, principal: Principal, engine: SyncEngine): Promise<WriteAuthorizer | undefined> {
    const policies = await policiesFor(databaseId, principal);
    if (policies === null) return undefined;
    return (write) => {
      const ctx = engine.table(write.table);
      const schema = ctx?.schema;
      const columns = schema?.columns.map((c) => c.name) ?? [];
      const pkCols = schema?.pkColumns ?? [];
      const where = pkCols.map((c) => `${quote(c.name)} = ?`).join(' AND ');
      const old: RowValues | undefined = where === '' ? undefined : engine.driver.prepare(`SELECT * FROM ${quote(write.table)} WHERE ${where}`).get(...write.pk);
      const op: RlsOperation = write.kind === 'delete' ? 'DELETE' : old === undefined ? 'INSERT' : 'UPDATE';
      const expr = policies.get(write.table.toLowerCase())?.get(op);
      let allowed = false;
      if (expr !== undefined) {
        const pk: Record<string, SqlValue> = {};
        pkCols.forEach((c, i) => (pk[c.name] = write.pk[i] ?? null));
        if (op === 'DELETE') allowed = evaluator.allows(principal, write.table, op, expr, columns, { old: old ?? pk });
        else if (op === 'UPDATE') allowed = evaluator.allows(principal, write.table, op, expr, columns, { old, new: { ...old, ...write.values } });
        else {
          const defaults: Record<string, SqlValue> = {};
          for (const c of schema?.columns ?? []) defaults[c.name] = evaluator.defaultValue(c.defaultValue) as SqlValue;
          allowed = evaluator.allows(principal, write.table, op, expr, columns, { new: { ...defaults, ...pk, ...write.values } });
        }
      }
      if (!allowed) {
        throw new CoreError(CoreErrorCode.RLS_DENIED, `Row-level security denies ${op} on table ${write.table}`, { details: { table: write.table, operation: op } });
      }
    };
  }

  return {
    rowFilterFor,
    authorizerFor,
    invalidate(databaseId?: string): void {
      cache.invalidate(databaseId);
    },
    close: () => evaluator.close(),
  };
}
export type Rls = ReturnType<typeof createRls>;

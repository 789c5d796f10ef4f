/**
 * Set-based RLS SELECT for large downloads (issue "hostile devices", storms): instead of one
 * evaluator call per row, the policy runs ONCE as a WHERE clause over the central table, on the
 * engine's own connection, and yields the primary-key blobs of the rows the user may see; the
 * feed's row filter is then a set lookup.
 *
 * Policies are validated to reference only the row and `auth_userid()` / `auth_json()`
 * (tables/rls-validate.ts); those two calls are replaced by bound parameters (outside string
 * literals and quoted identifiers), so the expression means exactly what the per-row evaluator
 * computes. Anything that does not prepare or run falls back to the per-row evaluator.
 */
import type { SqlValue } from '@offsync/core';
import type { Principal, SyncEngine } from '../sync-deps.ts';

const AUTH_CALL = /^(auth_userid|auth_json)\s*\(\s*\)/i;

/** The expression with `auth_userid()` → `@offsync_uid` and `auth_json()` → `@offsync_claims`, or undefined when it cannot be rewritten safely. */
export function bindAuthCalls(expression: string): string | undefined {
  let out = '';
  let i = 0;
  while (i < expression.length) {
    const c = expression[i] as string;
    if (c === "'" || c === '"' || c === '`' || c === '[') {
      const close = c === '[' ? ']' : c;
      let j = i + 1;
      for (;;) {
        if (j >= expression.length) return undefined;
        if (expression[j] === close) {
          if (close !== ']' && expression[j + 1] === close) {
            j += 2;
            continue;
          }
          break;
        }
        j++;
      }
      out += expression.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    const prev = i === 0 ? '' : (expression[i - 1] as string);
    const m = /[A-Za-z0-9_$]/.test(prev) ? null : AUTH_CALL.exec(expression.slice(i));
    if (m !== null) {
      out += (m[1] as string).toLowerCase() === 'auth_userid' ? '@offsync_uid' : '@offsync_claims';
      i += m[0].length;
      continue;
    }
    out += c;
    i++;
  }
  return out;
}

const quote = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/** A primary key's values as one string (type-tagged: INTEGER 5 and TEXT '5' differ). */
export function keyOf(values: readonly SqlValue[]): string {
  let out = '';
  for (const v of values) {
    if (v === null) out += 'n;';
    else if (typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v))) out += `i${String(v)};`;
    else if (typeof v === 'number') out += `r${String(v)};`;
    else if (typeof v === 'string') out += `s${v.length}:${v};`;
    else out += `b${Buffer.from(v).toString('hex')};`;
  }
  return out;
}

/**
 * A SELECT policy as a WHERE clause over its table with named parameters (the caller's user id
 * and claims), or undefined when it cannot be rewritten safely. `@p IS @p` (always true) keeps both
 * parameters declared whichever the policy uses.
 */
export function policySql(expression: string, principal: Principal): { where: string; params: Record<string, SqlValue> } | undefined {
  const where = bindAuthCalls(expression);
  if (where === undefined) return undefined;
  return {
    where: `(${where}) AND (@offsync_uid IS @offsync_uid) AND (@offsync_claims IS @offsync_claims)`,
    params: { offsync_uid: principal.userId, offsync_claims: JSON.stringify(principal.claims) },
  };
}

/**
 * Keys ({@link keyOf} of the primary-key values) of the live rows of `table` that `expression`
 * (a SELECT policy) lets `principal` see, or undefined when the policy cannot be evaluated in SQL.
 */
export function visibleKeys(engine: SyncEngine, table: string, expression: string, principal: Principal): Set<string> | undefined {
  const ctx = engine.table(table);
  const q = policySql(expression, principal);
  if (ctx === undefined || q === undefined || ctx.schema.pkColumns.length === 0) return undefined;
  const t = quote(ctx.name);
  const sql = `SELECT ${ctx.schema.pkColumns.map((c) => `${t}.${quote(c.name)}`).join(', ')} FROM ${t} AS ${t} WHERE ${q.where}`;
  try {
    const out = new Set<string>();
    // Named parameters: the driver hands its arguments to better-sqlite3 as they are.
    for (const r of engine.driver.prepare(sql).iterateRaw(q.params as unknown as SqlValue)) out.add(keyOf(r));
    return out;
  } catch {
    return undefined;
  }
}

/**
 * RLS change preview (docs/CONTROL-PLANE.md "Previewing an RLS policy"): before a SELECT policy is
 * applied, which users gain and which lose rows, judged over the central database's live rows with
 * the data plane's own evaluator (`data-plane/rls-evaluator.ts`), so the answer is what devices
 * hold once the policy is applied (a policy change renews the table: devices receive the newly
 * visible rows and removals of the hidden ones, docs/ARCHITECTURE.md "RLS model").
 *
 * Users are those the control plane knows for the database: holders of active access tokens
 * (judged with their newest token's claims, exactly as `auth_json()` sees them) and users of its
 * devices (JWT users are judged with `{ sub }` only: their other claims are not stored).
 * INSERT / UPDATE / DELETE policies decide writes, not what devices hold: their preview lists no
 * gains or losses (`changesVisibility: false`).
 */
import type { SqlValue } from '@offsync/core';
import type { SyncEngine } from '../sync/sync-deps.ts';
import type { Principal } from '../sync/sync-deps.ts';
import { RlsEvaluator } from '../sync/data-plane/rls-evaluator.ts';
import { encodeSqlValue } from '../sync/central-log.ts';
import type { EncodedSqlValue } from '../sync/central-log.ts';

export interface PreviewUser {
  userId: string;
  /** How the user was found: `ACCESS_TOKEN` (claims known) or `DEVICE` (a device's user; JWT claims beyond `sub` unknown). */
  source: 'ACCESS_TOKEN' | 'DEVICE';
  rowsBefore: number;
  rowsAfter: number;
  gained: number;
  lost: number;
  /** Primary-key values (column → JSON value) of up to `sampleSize` gained / lost rows, in key order. */
  sampleGained: Record<string, EncodedSqlValue>[];
  sampleLost: Record<string, EncodedSqlValue>[];
  /** Devices of this user (site ids). */
  devices: string[];
}

export interface RlsPreview {
  table: string;
  operation: string;
  /** The expression in force now (null: none). */
  currentExpression: string | null;
  expression: string;
  /** False unless operation is SELECT: other operations decide writes, not what devices hold. */
  changesVisibility: boolean;
  /** False when the database's RLS mode is BYPASS: "before" is then every row and "after" what ENFORCE with this policy would give. */
  enforced: boolean;
  /** Live rows of the table judged. */
  totalRows: number;
  /** Every known user, with counts (also those without change). */
  users: PreviewUser[];
  /** Devices of the users who gain or lose rows. */
  affectedDevices: string[];
}

export interface PreviewSubject { userId: string; principal: Principal; source: PreviewUser['source']; devices: string[] }

const quote = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/**
 * Judges every live row of `table` for each subject under `before` (null = nothing visible,
 * 'ALL' = everything) and `after`. `engine` is open on the central file.
 */
export function previewVisibility(
  engine: SyncEngine,
  input: { table: string; before: string | null | 'ALL'; after: string | 'ALL'; subjects: readonly PreviewSubject[]; sampleSize: number },
): { totalRows: number; users: PreviewUser[] } {
  const ctx = engine.table(input.table);
  const columns = ctx?.schema.columns.map((c) => c.name) ?? [];
  const pkColumns = ctx?.schema.pkColumns.map((c) => c.name) ?? [];
  const order = pkColumns.length > 0 ? pkColumns.map(quote).join(', ') : 'rowid';
  const rows = engine.driver.prepare(`SELECT * FROM ${quote(input.table)} ORDER BY ${order}`).all() as Record<string, SqlValue>[];
  const evaluator = new RlsEvaluator();
  try {
    const sees = (p: Principal, expr: string | null | 'ALL', row: Record<string, SqlValue>): boolean =>
      expr === 'ALL' ? true : expr === null ? false : evaluator.allows(p, input.table, 'SELECT', expr, columns, { row });
    const keyOf = (row: Record<string, SqlValue>): Record<string, EncodedSqlValue> => Object.fromEntries(pkColumns.map((c) => [c, encodeSqlValue(row[c] ?? null)]));
    const users = input.subjects.map((s): PreviewUser => {
      const u: PreviewUser = { userId: s.userId, source: s.source, rowsBefore: 0, rowsAfter: 0, gained: 0, lost: 0, sampleGained: [], sampleLost: [], devices: s.devices };
      for (const row of rows) {
        const b = sees(s.principal, input.before, row);
        const a = sees(s.principal, input.after, row);
        if (b) u.rowsBefore++;
        if (a) u.rowsAfter++;
        if (a && !b) {
          u.gained++;
          if (u.sampleGained.length < input.sampleSize) u.sampleGained.push(keyOf(row));
        } else if (b && !a) {
          u.lost++;
          if (u.sampleLost.length < input.sampleSize) u.sampleLost.push(keyOf(row));
        }
      }
      return u;
    });
    return { totalRows: rows.length, users };
  } finally {
    evaluator.close();
  }
}

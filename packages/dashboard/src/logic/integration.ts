/** Client Integration: which credential cards a workspace type and RLS mode call for, and how PostgreSQL RLS reads. */
import type { DatabaseKind, RlsMode, TableFieldsFragment } from '@offsync/client';

export type CredentialCard = 'API_KEYS' | 'POSTGRES_USER' | 'JWT_PROVIDER' | 'ACCESS_TOKENS';
/** OFFSYNC: the policy editor (SQLite expressions kept by OffSync); POSTGRES: the read-only view of the database's own policies. */
export type PolicyView = 'OFFSYNC' | 'POSTGRES' | null;

export interface IntegrationLayout { credentials: CredentialCard[]; policies: PolicyView }

/**
 * SQLITE: BYPASS → API keys; ENFORCE → JWT provider, access tokens, OffSync's policy editor.
 * POSTGRES: BYPASS → the PostgreSQL username & password card and API keys; ENFORCE → JWT provider
 * and access tokens. POSTGRES always shows the PostgreSQL RLS view (its policies apply in ENFORCE).
 */
export function integrationLayout(kind: DatabaseKind, mode: RlsMode): IntegrationLayout {
  if (kind === 'POSTGRES') {
    return { credentials: mode === 'BYPASS' ? ['POSTGRES_USER', 'API_KEYS'] : ['JWT_PROVIDER', 'ACCESS_TOKENS'], policies: 'POSTGRES' };
  }
  return mode === 'BYPASS' ? { credentials: ['API_KEYS'], policies: null } : { credentials: ['JWT_PROVIDER', 'ACCESS_TOKENS'], policies: 'OFFSYNC' };
}

/** What a device presents in BYPASS mode on a POSTGRES workspace. */
export function postgresCredential(user: string | null | undefined): string {
  return `${user ?? '<db-user>'}:<password>`;
}

export type PostgresRls = NonNullable<TableFieldsFragment['postgresRls']>;

export interface RlsSummary { tone: 'ok' | 'warn' | 'off'; label: string; detail: string }

/** One line about a table's PostgreSQL row-level security, for the mode the database is in. */
export function summarizePostgresRls(rls: PostgresRls | null | undefined, mode: RlsMode): RlsSummary {
  if (rls == null) return { tone: 'off', label: 'Unknown', detail: 'The table was not found in PostgreSQL.' };
  const bypass = mode === 'BYPASS' ? ' Not applied now: RLS mode is bypass.' : '';
  if (!rls.enabled) {
    return { tone: mode === 'ENFORCE' ? 'warn' : 'off', label: 'RLS disabled', detail: `Every user whose role has privileges on the table reads and writes all of its rows.${bypass}` };
  }
  const forced = rls.forced ? ' (forced, also for the owner)' : '';
  if (rls.policies.length === 0) {
    return { tone: mode === 'ENFORCE' ? 'warn' : 'off', label: `RLS enabled${forced}`, detail: `No policy: users see and write nothing (deny by default).${bypass}` };
  }
  const n = rls.policies.length;
  return { tone: 'ok', label: `RLS enabled${forced}`, detail: `${n} ${n === 1 ? 'policy decides' : 'policies decide'} what each user reads and writes.${bypass}` };
}

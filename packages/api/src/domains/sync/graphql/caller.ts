/**
 * Who calls a GraphQL sync field (`pushChanges`, `pullChanges`, `changes`): the admin key (full
 * access, no RLS) or a device credential for that database — API key, access token or JWT —
 * resolved by the same `SyncDeps.authenticate` as the HTTP protocol (through the SyncService), so
 * RLS applies to users exactly as it does over HTTP. Sync errors become ApiErrors (unmasked).
 */
import type { GraphQLContext } from '../../../context.ts';
import { extractBearer } from '../../../context.ts';
import { ApiError } from '../../../errors.ts';
import type { ApiErrorCode } from '../../../errors.ts';
import type { Central } from '../central.ts';
import type { Principal } from '../sync-deps.ts';
import { SyncError, toSyncError } from '../sync-errors.ts';
import type { SyncErrorCode } from '../sync-errors.ts';
import { normaliseSiteId } from '../sync.service.ts';
import type { ResolvedDatabase } from '../sync.service.ts';

/** The admin key acts like an API key: full access, bypasses RLS, and the same site owner (`apiKey`). */
const ADMIN: Principal = { kind: 'apiKey', userId: null, claims: {} };

export interface SyncCaller {
  db: Central;
  /** 32 lower-case hex digits. */
  site: string;
  principal: Principal;
}

function field(obj: unknown, key: string): unknown {
  return typeof obj === 'object' && obj !== null ? Reflect.get(obj, key) : undefined;
}

/**
 * The raw credential of the operation: graphql-ws `connectionParams.authorization` (or
 * `adminKey`), else the HTTP `Authorization` header. Yoga extends the initial context (request /
 * graphql-ws context) with ours, so both are reachable at run time.
 */
export function credentialOf(ctx: GraphQLContext): string | null {
  const params = field(ctx, 'connectionParams');
  if (params !== undefined) return extractBearer(field(params, 'authorization') ?? field(params, 'Authorization')) ?? extractBearer(field(params, 'adminKey'));
  const headers = field(field(ctx, 'request'), 'headers');
  const get = field(headers, 'get');
  if (typeof get !== 'function') return null;
  return extractBearer(Reflect.apply(get, headers, ['authorization']));
}

const API_CODE: Partial<Record<SyncErrorCode, ApiErrorCode>> = {
  unauthorized: 'UNAUTHENTICATED',
  forbidden: 'FORBIDDEN',
  site_forbidden: 'FORBIDDEN',
  sync_disabled: 'FORBIDDEN',
  database_not_found: 'NOT_FOUND',
  not_found: 'NOT_FOUND',
  invalid_site_id: 'VALIDATION_FAILED',
  invalid_request: 'VALIDATION_FAILED',
  invalid_payload: 'VALIDATION_FAILED',
  payload_too_large: 'VALIDATION_FAILED',
  schema_hash_unknown: 'CONFLICT',
  unknown_table: 'CONFLICT',
  unknown_column: 'CONFLICT',
  apply_failed: 'CONFLICT',
  resync_required: 'CONFLICT',
};

/** SyncError (or a core error) → ApiError with `extensions.syncCode`; internal errors stay masked. */
export function toApiError(e: unknown): unknown {
  if (e instanceof ApiError) return e;
  const err = toSyncError(e);
  const code = API_CODE[err.code];
  if (code === undefined) return e;
  const message = err.code === 'unauthorized' ? 'A valid admin key or device credential for this database is required' : (err.detail ?? err.title);
  return new ApiError(code, message, { cause: e, details: { syncCode: err.code } });
}

/**
 * Authenticates (before the database is opened, like HTTP), validates the site id, opens
 * the central database (either kind) and claims / checks the site for the caller (`SyncService.claim`).
 * The database is looked up once: authentication and the open share the resolved target.
 * Throws ApiError (FORBIDDEN with `syncCode: site_forbidden` for another principal's site).
 */
export async function syncCaller(ctx: GraphQLContext, databaseId: string, siteId: string): Promise<SyncCaller> {
  try {
    let principal: Principal | null = ADMIN;
    let resolved: ResolvedDatabase | undefined;
    if (ctx.viewer?.kind !== 'admin') {
      resolved = await ctx.sync.resolve(databaseId);
      principal = await ctx.sync.authenticate(resolved, credentialOf(ctx) ?? undefined);
    }
    if (principal === null) throw new SyncError('unauthorized');
    normaliseSiteId(siteId); // invalid_site_id before database_not_found
    const db = await ctx.sync.open(resolved ?? databaseId);
    // Device identity: every sync field claims / checks the site first (403 site_forbidden).
    const site = await ctx.sync.claim(db, siteId, principal);
    return { db, site, principal };
  } catch (e) {
    throw toApiError(e);
  }
}

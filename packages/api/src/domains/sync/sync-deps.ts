/**
 * Everything the sync service needs from the rest of OffSync, injected as one object so the
 * control plane (API keys, tokens, JWT, devices, metrics, push, RLS) can be wired in without
 * the sync domain importing it. {@link allowAllSyncDeps} is a no-op / allow-all default for tests.
 */
import type { openSyncDatabase } from '@offsync/core/sqlite';
import type { RejectionEntry } from './rejection-log.ts';
import type { PgCentralSettings } from './pg-central.ts';
import type { Policies } from './data-plane/rls-build.ts';

/** The CRDT engine over one central database (`@offsync/core`). */
export type SyncEngine = ReturnType<typeof openSyncDatabase>;
/** RLS SELECT filter of the change feed (`FeedOptions['rowFilter']`). */
export type RowFilter = NonNullable<NonNullable<Parameters<SyncEngine['changes']>[0]>['rowFilter']>;
/** What a user could see as of a server version (`FeedOptions['priorFilter']`). */
export type PriorFilter = NonNullable<NonNullable<Parameters<SyncEngine['changes']>[0]>['priorFilter']>;
/** RLS whole-row judge of the merge (`ApplyOptions['judge']`): a verdict rejects that row only. */
export type RowJudge = NonNullable<NonNullable<Parameters<SyncEngine['applyPayload']>[1]>['judge']>;

/** Who is calling, as resolved from the Bearer credential. */
export interface Principal {
  kind: 'apiKey' | 'accessToken' | 'jwt';
  /** The user id for tokens and JWTs (`sub`); null for API keys. */
  userId: string | null;
  /** Claims exposed to RLS as `auth_json()`. */
  claims: Record<string, unknown>;
  /**
   * Stable id of the credential used (`apiKey:<id>`, `accessToken:<id>`, `jwt:<sub>`): quotas,
   * revocation checks of open subscriptions. Absent only for internal callers (admin key, tests).
   */
  credentialId?: string;
  /** When the credential stops being valid (ms since epoch), if it expires. */
  expiresAt?: number;
}

/**
 * The principal a device's data belongs to: `user:<id>` for access tokens and JWTs, `apiKey` for
 * every API-key holder of a database (one trusted principal). Used for the audience of
 * compensating removals (RLS) and the owner of a site id (site-owners.ts). Undefined for a user
 * credential without a user id (it owns no site and gets no addressed removals).
 */
export function principalKey(p: Principal): string | undefined {
  if (p.kind === 'apiKey') return 'apiKey';
  return typeof p.userId === 'string' && p.userId !== '' ? `user:${p.userId}` : undefined;
}

/**
 * JSON with object keys sorted, so values equal but for key order (a principal's claims) give one
 * text: the keys of shared live pages (graphql/shared-pages.ts) and of prebuilt download pages
 * (prebuilt-pages.ts). `undefined` stays distinct from `null`.
 */
export function stableJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'undefined';
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`)
    .join(',')}}`;
}

export type SchemaHashMode = 'strict' | 'lenient';

/** Where an OffSync database's central data lives (a SQLite file, or a PostgreSQL database) and how it syncs. */
export interface DatabaseTarget {
  /** Absolute path of the central SQLite file ('' for POSTGRES databases). */
  path: string;
  /** POSTGRES databases: how to reach the customer database (its `offsync` schema holds the metadata). */
  postgres?: PgCentralSettings;
  /** POSTGRES databases: ENFORCE runs per-user credentials under the database's own RLS (pg-central.ts). */
  rlsMode?: 'BYPASS' | 'ENFORCE';
  /** False: sync is switched off for this database (403 `sync_disabled`). */
  enabled: boolean;
  /** strict: refuse uploads whose schema hash is unknown; lenient: accept and remember the hash. */
  schemaHashMode: SchemaHashMode;
  /**
   * The id the file must carry in `offsync_identity` (control plane `Database.fileIdentity`);
   * another id → 503 `database_file_missing`. Undefined/null: not checked (the file must still exist).
   */
  identity?: string | null;
  /** `PRAGMA synchronous` of the central connection (default FULL: acknowledged uploads survive power loss). */
  synchronous?: 'FULL' | 'NORMAL';
  /** False: merges do not record lost writes in the conflict log (control plane `Database.conflictLog`; default on). */
  conflictLog?: boolean;
}

/** Protocol generation of a request (docs/PROTOCOL.md §P1). */
export type Generation = 'G1' | 'G2a' | 'G2b' | 'G3';

export interface DeviceSeen {
  /** 32 lowercase hex digits. */
  siteId: string;
  principal: Principal;
  /** `X-CloudSync-Version` when sent (G3), otherwise the generation name. */
  clientVersion: string;
  generation: Generation;
  /** Schema hash (decimal u64) of the device's last upload, or null when unknown. */
  schemaHash: string | null;
}

export interface Traffic {
  uploadBytes: number;
  downloadBytes: number;
}

export interface ChangesMerged {
  /** Site (32 hex) whose upload produced the changes. */
  originSiteId: string;
  /** Tables that received at least one winning change. */
  tables: string[];
  /** Server db_version after the merge. */
  dbVersion: number;
}

export interface PushTokenRegistration {
  expoToken: string;
  deviceId: string;
  siteId: string;
  platform: string;
  principal: Principal;
}

type MaybePromise<T> = T | Promise<T>;

export interface SyncDeps {
  /** Maps an OffSync database id to its central file; undefined = unknown (404 `database_not_found`). */
  resolveDatabase(databaseId: string): MaybePromise<DatabaseTarget | undefined>;
  /**
   * Resolves `Authorization: Bearer <credential>` (undefined when absent); null = 401. `target`:
   * the database as already resolved for this request (`SyncService.resolve`), so it is not looked
   * up a second time; absent, the implementation resolves it (unknown → `database_not_found`).
   */
  authenticate(databaseId: string, credential: string | undefined, target?: DatabaseTarget): Promise<Principal | null>;
  /** RLS on downloads: a row filter for this caller, or undefined to send every row. */
  rowFilterFor(databaseId: string, principal: Principal, engine: SyncEngine, opts?: { bulk?: boolean }): MaybePromise<RowFilter | undefined>;
  /** RLS on downloads: what this caller could see as of a version (removals of rows that left its sight); undefined = no RLS. */
  priorFilterFor?(databaseId: string, principal: Principal, engine: SyncEngine): MaybePromise<PriorFilter | undefined>;
  /** RLS: per table, the columns visibility depends on (a change of one starts a new life of the row); undefined = none. */
  visibilityFor?(databaseId: string, engine: SyncEngine): MaybePromise<ReadonlyMap<string, ReadonlySet<string>> | undefined>;
  /**
   * RLS as data: the database's policies under ENFORCE (null: BYPASS), epoch-checked against the
   * central engine. When present, the sync service runs merges and large downloads in central
   * workers and builds the judge and filters there (data-plane/rls-build.ts) instead of calling
   * `judgeFor` / `rowFilterFor` / `priorFilterFor` / `visibilityFor`.
   */
  policiesOf?(databaseId: string, engine: SyncEngine): MaybePromise<Policies | null>;
  /** RLS on uploads: a whole-row judge for this caller, or undefined to allow every write. */
  judgeFor(databaseId: string, principal: Principal, engine: SyncEngine): MaybePromise<RowJudge | undefined>;
  /** A device made an authenticated request (register on first sight, update afterwards). */
  recordDevice(databaseId: string, device: DeviceSeen): MaybePromise<void>;
  /** Bytes transferred for a device (payload PUTs, inline blobs, downloads). */
  recordTraffic(databaseId: string, siteId: string, traffic: Traffic): MaybePromise<void>;
  /** A merge committed changes other devices may want (push, live subscriptions). */
  onChangesMerged(databaseId: string, event: ChangesMerged): MaybePromise<void>;
  /**
   * Changes refused on their own by a merge that committed (issue 8: RLS denial, primary-key
   * type mismatch, UNIQUE violation), as recorded in the rejection log (rejection-log.ts), after
   * the commit: live `rejections` subscriptions, rejected-changes metrics. Optional.
   */
  onChangesRejected?(databaseId: string, entries: RejectionEntry[]): MaybePromise<void>;
  /** `PUT …/notifications/tokens` (docs/PROTOCOL.md §P2). */
  registerPushToken(databaseId: string, token: PushTokenRegistration): MaybePromise<void>;
  /** Where to report failures of the fire-and-forget hooks above (default: console.error). */
  logError?(message: string, error: unknown): void;
}

/** Allow-all, record-nothing dependencies; `resolveDatabase` and `authenticate` must still be given. */
export function allowAllSyncDeps(base: Pick<SyncDeps, 'resolveDatabase'> & Partial<SyncDeps>): SyncDeps {
  return {
    authenticate: async () => ({ kind: 'apiKey', userId: null, claims: {} }),
    rowFilterFor: () => undefined,
    judgeFor: () => undefined,
    recordDevice: () => undefined,
    recordTraffic: () => undefined,
    onChangesMerged: () => undefined,
    registerPushToken: () => undefined,
    ...base,
  };
}

/** Runs a fire-and-forget hook, reporting (never throwing) its failure. */
export function runHook(deps: SyncDeps, name: string, fn: () => MaybePromise<void>): void {
  const report = (e: unknown): void => (deps.logError ?? ((m, err) => console.error(m, err)))(`sync: ${name} failed`, e);
  try {
    const r = fn();
    if (r instanceof Promise) r.catch(report);
  } catch (e) {
    report(e);
  }
}

/**
 * The context of one HTTP request (docs/CONTROL-PLANE.md "Operating"): its id, route and the
 * sync facts learned while it is handled (database, site, generation, refusal code, changes and
 * bytes). It travels with the request through AsyncLocalStorage, so code deep in the sync
 * domain can add to the request's log line ({@link annotateRequest}) without a parameter.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';

export interface RequestFacts {
  database?: string;
  site?: string;
  generation?: string;
  /** Kind of the credential that authenticated a sync call (`apiKey`, `accessToken`, `jwt`). */
  auth?: string;
  /** Stable code of a refusal (sync error code; G3 `failures.apply` code). */
  code?: string;
  changesUp?: number;
  changesDown?: number;
  bytesUp?: number;
  bytesDown?: number;
  rejected?: number;
  /** `schema_hash_unknown`: the device's hash, the one the server expects, and its synced tables (comma-separated). */
  schemaHash?: string;
  expectedSchemaHash?: string;
  tables?: string;
}

export interface RequestContext extends RequestFacts {
  readonly id: string;
  readonly method: string;
  /** Redacted path (no query, no artifact token). */
  readonly path: string;
  /** Low-cardinality route name (metrics label), e.g. `graphql`, `sync_apply`, `healthz`, `other`. */
  readonly route: string;
  /** `process.hrtime.bigint()` at arrival. */
  readonly startedAt: bigint;
}

const storage = new AsyncLocalStorage<RequestContext>();

/** The request being handled, if any (undefined outside HTTP requests, e.g. graphql-ws). */
export function currentRequest(): RequestContext | undefined {
  return storage.getStore();
}

/** Runs `fn` with `ctx` as the current request (for everything it starts, sync or async). */
export function runInRequest<T>(ctx: RequestContext, fn: () => T): T {
  return storage.run(ctx, fn);
}

/** Adds facts to the current request's log line; a no-op outside a request. */
export function annotateRequest(facts: RequestFacts): void {
  const ctx: RequestFacts | undefined = storage.getStore();
  if (ctx === undefined) return;
  const into = ctx as Record<string, unknown>;
  for (const [k, v] of Object.entries(facts)) {
    if (v === undefined) continue;
    // Counts add up (a G3 batch, several pages); names and codes are replaced.
    into[k] = typeof v === 'number' ? ((into[k] as number | undefined) ?? 0) + v : v;
  }
}

/** Accepted `X-Request-Id` values: 1–128 characters of `[A-Za-z0-9._:@/+=-]`; anything else gets a fresh id. */
const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

export function requestIdOf(header: string | string[] | undefined): string {
  const v = Array.isArray(header) ? header[0] : header;
  return v !== undefined && REQUEST_ID.test(v) ? v : randomUUID();
}

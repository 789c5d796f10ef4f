/**
 * Quotas per credential (docs/PROTOCOL.md "Quotas"), so one tenant cannot deny service to another:
 *
 * - a request rate: a token bucket per credential (`rateLimitPerSecond` refill, `rateLimitBurst`
 *   size) taken by every authenticated API call;
 * - concurrent uploads: artifact `PUT` bodies and `apply`/`upload` POSTs in flight per credential;
 * - pending upload bytes: enforced by the {@link ArtifactStore} (bytes PUT but not yet applied).
 *
 * Over a quota the answer is 429 with `Retry-After` (seconds) and the stable code `rate_limited`
 * or `quota_exceeded`; clients retry 429. The key of a credential is the database id plus
 * `Principal.credentialId`, so the same JWT subject in two databases has two buckets. An API key
 * is one trusted principal that a whole fleet shares (connection strings carry `?apikey=`), so its
 * request rate and concurrent uploads count per device (key + site id; push-token registrations,
 * which name no site in the URL, are not rate-limited for API keys), while its pending upload
 * bytes count for the key as a whole. Internal principals without a credential id have no quotas. State is in memory, per process, and bounded:
 * full buckets are forgotten (a full bucket and no bucket mean the same), and past
 * `maxTrackedCredentials` the least recently used bucket goes first.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal } from '../sync-deps.ts';
import { SyncError } from '../sync-errors.ts';
import type { SyncHttpState } from './context.ts';
import type { SyncRoute } from './routes.ts';

export interface QuotaLimits {
  /** Token-bucket refill per credential, requests per second (0 = no rate limit). */
  rateLimitPerSecond: number;
  /** Token-bucket size: requests a credential may send at once after being idle. */
  rateLimitBurst: number;
  /** Uploads in flight per credential: artifact PUTs plus apply calls (0 = unlimited). */
  maxConcurrentUploadsPerCredential: number;
}

export const DEFAULT_QUOTAS: QuotaLimits = { rateLimitPerSecond: 20, rateLimitBurst: 60, maxConcurrentUploadsPerCredential: 4 };

/** The quota key of a principal in a database (pending upload bytes); undefined = no quotas (internal callers). */
export function quotaKeyOf(databaseId: string, principal: Principal): string | undefined {
  return principal.credentialId === undefined ? undefined : `${databaseId} ${principal.credentialId}`;
}

/**
 * The key of the request-rate bucket and concurrent-upload count: the credential, or for an API
 * key the credential and the device's site (undefined without a site: not counted).
 */
export function rateKeyOf(databaseId: string, principal: Principal, site: string | undefined): string | undefined {
  const key = quotaKeyOf(databaseId, principal);
  if (key === undefined || principal.kind !== 'apiKey') return key;
  return site === undefined ? undefined : `${key} ${site.toLowerCase()}`;
}

interface Bucket {
  tokens: number;
  /** Clock of `tokens`. */
  at: number;
}

export class CredentialQuotas {
  readonly #limits: QuotaLimits;
  readonly #now: () => number;
  readonly #maxTracked: number;
  /** Insertion order = least recently used first. */
  readonly #buckets = new Map<string, Bucket>();
  readonly #uploads = new Map<string, number>();
  #nextSweep = 0;

  constructor(limits: QuotaLimits, now: () => number = Date.now, opts: { maxTrackedCredentials?: number } = {}) {
    for (const [k, v] of Object.entries(limits)) {
      if (!Number.isFinite(v) || v < 0) throw new Error(`${k} must be a non-negative number`);
    }
    if (limits.rateLimitPerSecond > 0 && limits.rateLimitBurst < 1) throw new Error('rateLimitBurst must be at least 1');
    this.#limits = limits;
    this.#now = now;
    this.#maxTracked = opts.maxTrackedCredentials ?? 100_000;
  }

  #refilled(b: Bucket, now: number): number {
    const { rateLimitPerSecond: rate, rateLimitBurst: burst } = this.#limits;
    return Math.min(burst, b.tokens + (Math.max(0, now - b.at) * rate) / 1000);
  }

  /** Takes one request token of `key`, or throws `rate_limited` with the seconds until one is back. */
  takeRequest(key: string): void {
    const rate = this.#limits.rateLimitPerSecond;
    if (rate <= 0) return;
    const now = this.#now();
    this.#sweep(now);
    const old = this.#buckets.get(key);
    const tokens = old === undefined ? this.#limits.rateLimitBurst : this.#refilled(old, now);
    if (tokens < 1) {
      if (old !== undefined) Object.assign(old, { tokens, at: Math.max(now, old.at) });
      throw new SyncError('rate_limited', `more than ${rate} requests per second with this credential`, {
        retryAfterSeconds: Math.max(1, Math.ceil((1 - tokens) / rate)),
      });
    }
    // Re-inserted so the map stays in least-recently-used order.
    this.#buckets.delete(key);
    this.#buckets.set(key, { tokens: tokens - 1, at: Math.max(now, old?.at ?? now) });
    // Past the cap the least recently used bucket goes (O(1); the periodic sweep drops full ones).
    if (this.#buckets.size > this.#maxTracked) this.#buckets.delete(this.#buckets.keys().next().value ?? key);
  }

  /** Holds one upload slot of `key` until the returned release (idempotent) is called. */
  acquireUpload(key: string): () => void {
    const max = this.#limits.maxConcurrentUploadsPerCredential;
    if (max <= 0) return () => {};
    const n = this.#uploads.get(key) ?? 0;
    if (n >= max) throw new SyncError('quota_exceeded', `more than ${max} concurrent uploads with this credential`, { retryAfterSeconds: 1 });
    this.#uploads.set(key, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#uploads.get(key) ?? 1) - 1;
      if (left <= 0) this.#uploads.delete(key);
      else this.#uploads.set(key, left);
    };
  }

  /** Forgets buckets that refilled completely (at most every 10 s of the clock). */
  #sweep(now: number): void {
    if (now < this.#nextSweep) return;
    this.#nextSweep = now + 10_000;
    for (const [k, b] of this.#buckets) if (this.#refilled(b, now) >= this.#limits.rateLimitBurst) this.#buckets.delete(k);
  }

  /** Tracked buckets and uploads in flight (tests, metrics). */
  stats(): { buckets: number; uploadsInFlight: number } {
    let uploads = 0;
    for (const n of this.#uploads.values()) uploads += n;
    return { buckets: this.#buckets.size, uploadsInFlight: uploads };
  }
}

const isUploadCall = (route: Extract<SyncRoute, { kind: 'api' }>, method: string | undefined): boolean =>
  route.action === 'apply' || (route.action === 'upload' && method === 'POST');

/**
 * Quotas of an authenticated API call (right after authentication): one request token, and an
 * upload slot for `apply` / `POST upload`, released when the response closes.
 */
export async function applyRequestQuotas(state: SyncHttpState, route: Exclude<SyncRoute, { kind: 'unknown' | 'artifact' }>, req: IncomingMessage, res: ServerResponse, principal: Principal): Promise<void> {
  const key = rateKeyOf(route.databaseId, principal, route.kind === 'api' ? route.site : undefined);
  if (key === undefined) return;
  // The chunks of an open G3 batch are not charged to the request rate: a client that gets a 429
  // mid-batch re-sends the WHOLE batch under a new batchId, so charging them could keep a large
  // transaction from ever landing. They stay bounded by the batch byte limits and upload slots.
  const continuing = route.kind === 'api' && (route.action === 'apply' || route.action === 'upload') && (await state.batches.peek(route.databaseId, route.site.toLowerCase())) !== undefined;
  if (!continuing) state.quotas.takeRequest(key);
  if (route.kind === 'api' && isUploadCall(route, req.method)) res.once('close', state.quotas.acquireUpload(key));
}

/**
 * Quotas of an artifact PUT (no credential: the slot knows who asked for it): the declared size
 * against the pending-bytes quotas before the body is read, and an upload slot until the
 * response closes.
 */
export async function applyArtifactPutQuotas(state: SyncHttpState, token: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const declared = Number(req.headers['content-length'] ?? Number.NaN);
  const uploader = await state.artifacts.checkUploadFits(token, Number.isFinite(declared) ? declared : 0);
  if (uploader !== undefined) res.once('close', state.quotas.acquireUpload(uploader));
}

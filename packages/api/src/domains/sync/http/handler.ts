/**
 * `createSyncHttpHandler`: the SQLite Sync HTTP protocol of every client generation (G1, G2a,
 * G2b, G3), composable into the API server's router as `(req, res) => Promise<boolean>`
 * (false = not a sync URL). See docs/PROTOCOL.md.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ArtifactStore } from '../artifacts.ts';
import { ChunkBatches } from '../chunk-batches.ts';
import { DEFAULT_PAGE_GROWTH } from '../download-pages.ts';
import type { ChunkBatchOptions } from '../chunk-batches.ts';
import { MemorySharedStore } from '../shared-store.ts';
import type { SharedStore } from '../shared-store.ts';
import type { Generation, SyncDeps } from '../sync-deps.ts';
import { SyncError, toSyncError } from '../sync-errors.ts';
import { createSyncService, SyncService } from '../sync.service.ts';
import type { SyncServiceSetup } from '../sync.service.ts';
import { annotateRequest } from '../../../observability/request-context.ts';
import { applyUpload, check, recordDevice, sendStatus, sendUploadUrl } from './api-calls.ts';
import { getArtifact, putArtifact } from './artifact-calls.ts';
import type { ApiCall, SyncHttpLimits, SyncHttpState } from './context.ts';
import { G3Cursors } from './g3-cursors.ts';
import { PrebuiltPages } from '../prebuilt-pages.ts';
import type { PrebuiltPagesOptions } from '../prebuilt-pages.ts';
import { bearerOf, originOf, parseJsonObject, readBody, sendError, sendJson, sendPreflight } from './io.ts';
import { applyArtifactPutQuotas, applyRequestQuotas, CredentialQuotas, DEFAULT_QUOTAS } from './quotas.ts';
import { parseSyncRoute, requestTarget } from './routes.ts';
import type { SyncRoute } from './routes.ts';

/**
 * Options of the HTTP protocol. The {@link SyncServiceSetup} fields (page size, conflict log,
 * POSTGRES pool, LISTEN, central workers) build the service only when the handler is given deps
 * instead of a service (tests, small embeddings); with a service they are the service's business.
 */
export interface SyncHttpOptions extends Partial<SyncHttpLimits>, SyncServiceSetup {
  /** HMAC key of artifact URLs (≥ 16 bytes; use 32 random bytes). */
  artifactSecret: string | Uint8Array;
  /** Base of artifact URLs, e.g. `https://sync.example.com`; default: the request's own origin. */
  publicUrl?: string;
  /** Lifetime of artifact URLs (default 5 min). */
  artifactTtlMs?: number;
  /** Largest uploaded payload (default 32 MiB). */
  maxUploadBytes?: number;
  /** G3 chunked-batch buffers: per-site / global byte limits and TTL (docs/PROTOCOL.md "Chunked batches"). */
  chunkBatches?: Omit<ChunkBatchOptions, 'now' | 'store'>;
  /**
   * Where artifact nonces and bytes, G3 cursors and chunk buffers live (shared-store.ts): default
   * this process's memory (one node); a Redis store (`REDIS_URL`) lets any node serve any request.
   * Not closed by `dispose` (its owner closes it).
   */
  sharedStore?: SharedStore;
  now?: () => number;
  /**
   * G3 `/check`: build the pages of the request a non-final reply calls for next while that reply
   * travels (prebuilt-pages.ts: TTL, memory caps; SQLite databases only). Default: on with this
   * process's memory as the shared store (one node), off with another store (several nodes: the
   * next request may reach another node, and a page built here would be built twice); options:
   * on; false: off.
   */
  prebuiltPages?: PrebuiltPagesOptions | false;
}

export interface SyncHttpHandler {
  (req: IncomingMessage, res: ServerResponse): Promise<boolean>;
  readonly service: SyncService;
  readonly artifacts: ArtifactStore;
  /** G3 chunked batches being assembled. */
  readonly batches: ChunkBatches;
  /** Request rate and concurrent uploads per credential. */
  readonly quotas: CredentialQuotas;
  /** Pages built ahead for the next `/check` (prebuilt-pages.ts), undefined when off. */
  readonly prebuilt: PrebuiltPages | undefined;
  /** Closes the service when the handler built it (from deps); a service given to it is closed by its owner. */
  dispose(): Promise<void>;
}

/**
 * The handler over `sync`: the server's one {@link SyncService} (built in the composition root,
 * app.ts, and shared with GraphQL and graphql-ws), whose methods are all the handler calls; or
 * deps, from which the handler builds a service of its own (`createSyncService`) and closes it
 * with `dispose`.
 */
export function createSyncHttpHandler(sync: SyncService | SyncDeps, options: SyncHttpOptions): SyncHttpHandler {
  const owned = !(sync instanceof SyncService);
  const service = sync instanceof SyncService ? sync : createSyncService(sync, options);
  const store = options.sharedStore ?? new MemorySharedStore(options.now === undefined ? {} : { now: options.now });
  const artifacts = new ArtifactStore({
    secret: options.artifactSecret,
    store,
    ...(options.artifactTtlMs === undefined ? {} : { ttlMs: options.artifactTtlMs }),
    ...(options.maxUploadBytes === undefined ? {} : { maxUploadBytes: options.maxUploadBytes }),
    ...(options.maxPendingUploadBytesPerCredential === undefined ? {} : { maxPendingBytesPerCredential: options.maxPendingUploadBytesPerCredential }),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  const quotaLimits = {
    rateLimitPerSecond: options.rateLimitPerSecond ?? DEFAULT_QUOTAS.rateLimitPerSecond,
    rateLimitBurst: options.rateLimitBurst ?? DEFAULT_QUOTAS.rateLimitBurst,
    maxConcurrentUploadsPerCredential: options.maxConcurrentUploadsPerCredential ?? DEFAULT_QUOTAS.maxConcurrentUploadsPerCredential,
  };
  const state: SyncHttpState = {
    service,
    artifacts,
    cursors: new G3Cursors({ store }),
    batches: new ChunkBatches({ ...options.chunkBatches, store, ...(options.now === undefined ? {} : { now: options.now }) }),
    publicUrl: options.publicUrl,
    limits: {
      maxJsonBodyBytes: options.maxJsonBodyBytes ?? 1024 * 1024,
      maxInlineBodyBytes: options.maxInlineBodyBytes ?? 48 * 1024 * 1024,
      inlineDownloadBytes: options.inlineDownloadBytes ?? 128 * 1024,
      defaultMaxChunks: options.defaultMaxChunks ?? 16,
      inlineChunksBytes: options.inlineChunksBytes ?? 16 * 1024 * 1024,
      slowStartBytes: options.slowStartBytes ?? 128 * 1024,
      slowStartGrowth: Math.max(1, options.slowStartGrowth ?? DEFAULT_PAGE_GROWTH),
      maxPendingUploadBytesPerCredential: options.maxPendingUploadBytesPerCredential ?? 64 * 1024 * 1024,
      ...quotaLimits,
    },
    quotas: new CredentialQuotas(quotaLimits, options.now),
    prebuilt: prebuiltPagesOf(options, store),
  };
  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const target = requestTarget(req.url);
    const route = target === undefined ? undefined : parseSyncRoute(target.pathname, target.query);
    if (route === undefined) return false;
    try {
      if (req.method === 'OPTIONS') {
        req.resume();
        sendPreflight(res);
        return true;
      }
      if (route.kind === 'unknown') throw new SyncError('not_found', 'no such sync endpoint');
      if (!route.methods.includes(req.method ?? '')) {
        res.setHeader('Allow', [...route.methods, 'OPTIONS'].join(', '));
        throw new SyncError('method_not_allowed');
      }
      await dispatch(state, route, req, res);
    } catch (e) {
      const err = toSyncError(e);
      annotateRequest({ code: err.code }); // the request's log line: a warn with this code (observability/http.ts)
      if (err.status >= 500) service.logError('sync: request failed', e);
      req.resume();
      if (err.retryAfterSeconds !== undefined && !res.headersSent) res.setHeader('Retry-After', String(err.retryAfterSeconds));
      sendError(res, err);
    }
    return true;
  };
  return Object.assign(handler, { service, artifacts, batches: state.batches, quotas: state.quotas, prebuilt: state.prebuilt, dispose: async () => {
    if (owned) await service.dispose();
  } });
}

function prebuiltPagesOf(options: SyncHttpOptions, store: SharedStore): PrebuiltPages | undefined {
  const opts = options.prebuiltPages;
  if (opts === false || (opts === undefined && !(store instanceof MemorySharedStore))) return undefined;
  return new PrebuiltPages({ ...opts, ...(options.now === undefined ? {} : { now: options.now }) });
}

async function dispatch(state: SyncHttpState, route: Exclude<SyncRoute, { kind: 'unknown' }>, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (route.kind === 'artifact') {
    if (req.method === 'PUT') {
      await applyArtifactPutQuotas(state, route.token, req, res); // per-credential pending bytes and concurrent uploads
      return putArtifact(state, route.token, req, res);
    }
    return getArtifact(state, route.token, res);
  }
  // One control-plane look-up per request: authentication and the open share it.
  const resolved = await state.service.resolve(route.databaseId);
  const principal = await state.service.authenticate(resolved, bearerOf(req));
  if (principal === null) throw new SyncError('unauthorized');
  await applyRequestQuotas(state, route, req, res, principal); // per-credential rate limit and concurrent uploads (429)
  const db = await state.service.open(resolved);
  if (route.kind === 'pushTokens') {
    const body = parseJsonObject(await readBody(req, state.limits.maxJsonBodyBytes));
    const str = (k: string): string => {
      const v = body[k];
      if (typeof v !== 'string' || v === '' || v.length > 4096) throw new SyncError('invalid_request', `'${k}' must be a non-empty string`);
      return v;
    };
    // The body's site must belong to the caller too (docs/PROTOCOL.md "Device identity").
    const token = { expoToken: str('expoToken'), deviceId: str('deviceId'), siteId: await state.service.claim(db, str('siteId'), principal), platform: str('platform'), principal };
    await state.service.registerPushToken(db, token);
    sendJson(res, { registered: true });
    return;
  }
  // Device identity: the site belongs to the first principal that used it; others get 403 site_forbidden, nothing changed.
  const site = await state.service.claim(db, route.site, principal);
  const version = req.headers['x-cloudsync-version'];
  const generation: Generation = route.family === 'G2b' && typeof version === 'string' && version !== '' ? 'G3' : route.family;
  const capabilities = String(req.headers['x-cloudsync-capabilities'] ?? '').toLowerCase();
  const call: ApiCall = {
    req,
    res,
    state,
    generation,
    db,
    site,
    principal,
    origin: originOf(req, state.publicUrl),
    chunks: generation === 'G3' && capabilities.split(',').some((c) => c.trim() === 'check-chunks'),
  };
  const isApply = route.action === 'apply' || (route.action === 'upload' && req.method === 'POST');
  if (!isApply) recordDevice(call);
  switch (route.action) {
    case 'upload':
      return req.method === 'POST' ? applyUpload(call) : sendUploadUrl(call);
    case 'apply':
      return applyUpload(call);
    case 'check':
      return check(call, route.g1Cursor);
    case 'status':
      return sendStatus(call);
  }
}

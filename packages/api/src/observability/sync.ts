/**
 * Sync instrumentation: metrics and request-log facts from the sync data plane, without the
 * sync domain knowing about either. {@link observeSyncDeps} wraps the {@link SyncDeps} hooks
 * (devices seen, traffic, rejected changes); {@link instrumentSyncService} wraps the service's
 * `upload` (merge) and `download` (feed) to time them and count changes. Inside an HTTP request
 * the facts go to that request's log line (request-context.ts); outside one (graphql-ws) each
 * operation gets a line of its own in the access log.
 */
import type { Logger } from '../deps.ts';
import type { SyncService } from '../domains/sync/sync.service.ts';
import type { SyncDeps } from '../domains/sync/sync-deps.ts';
import { toSyncError } from '../domains/sync/sync-errors.ts';
import type { Metrics } from './metrics.ts';
import { annotateRequest, currentRequest } from './request-context.ts';

/**
 * Wraps the hooks of `deps` in place (so a later replacement of another member, e.g. a test
 * swapping `authenticate`, still reaches the handler) and returns it.
 */
export function observeSyncDeps(deps: SyncDeps, metrics: Metrics): SyncDeps {
  const { recordDevice, recordTraffic, onChangesRejected } = deps;
  deps.recordDevice = (databaseId, device) => {
    metrics.deviceSeen(databaseId, device.siteId);
    annotateRequest({ database: databaseId, site: device.siteId, generation: device.generation, auth: device.principal.kind });
    return recordDevice.call(deps, databaseId, device);
  };
  deps.recordTraffic = (databaseId, siteId, traffic) => {
    metrics.syncBytes('up', traffic.uploadBytes);
    metrics.syncBytes('down', traffic.downloadBytes);
    annotateRequest({ database: databaseId, site: siteId, ...(traffic.uploadBytes > 0 ? { bytesUp: traffic.uploadBytes } : {}), ...(traffic.downloadBytes > 0 ? { bytesDown: traffic.downloadBytes } : {}) });
    return recordTraffic.call(deps, databaseId, siteId, traffic);
  };
  deps.onChangesRejected = async (databaseId, entries) => {
    const byCode = new Map<string, number>();
    for (const e of entries) byCode.set(e.code, (byCode.get(e.code) ?? 0) + 1);
    for (const [code, n] of byCode) metrics.rejectedChanges(code, n);
    await onChangesRejected?.call(deps, databaseId, entries);
  };
  return deps;
}

/** The site id of shared live pages (graphql/shared-pages.ts). */
const SHARED_SITE = '0'.repeat(32);
const seconds = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;
const ms = (s: number): number => Math.round(s * 10_000) / 10;

/** Times merges and downloads of `service` (its `upload` and `download` are replaced in place). */
export function instrumentSyncService(service: SyncService, metrics: Metrics, logger: Logger | undefined): void {
  const upload = service.upload.bind(service);
  const download = service.download.bind(service);
  const idOf = (db: Parameters<SyncService['upload']>[0]): string => (typeof db === 'string' ? db : db.id);

  service.upload = async (db, siteId, payload, window, principal) => {
    const t0 = process.hrtime.bigint();
    const inRequest = currentRequest() !== undefined;
    const facts = { database: idOf(db), site: siteId.toLowerCase() };
    try {
      const r = await upload(db, siteId, payload, window, principal);
      const s = seconds(t0);
      metrics.mergeSeconds(s);
      metrics.syncChanges('up', r.received);
      annotateRequest({ ...facts, changesUp: r.received, ...(r.rejected.length > 0 ? { rejected: r.rejected.length } : {}) });
      if (!inRequest) logger?.info('sync: upload', { ...facts, changesUp: r.received, applied: r.applied, rejected: r.rejected.length, durationMs: ms(s) });
      return r;
    } catch (e) {
      const s = seconds(t0);
      metrics.mergeSeconds(s);
      const err = toSyncError(e);
      if (!inRequest && err.status < 500) logger?.warn('sync: upload refused', { ...facts, code: err.code, status: err.status, durationMs: ms(s) });
      throw e;
    }
  };

  service.download = async (db, siteId, after, principal, opts) => {
    const t0 = process.hrtime.bigint();
    const inRequest = currentRequest() !== undefined;
    const r = await download(db, siteId, after, principal, opts);
    const s = seconds(t0);
    metrics.downloadSeconds(s);
    let rows = 0;
    for (const p of r.pages) if (p.payload !== undefined) rows += p.rows;
    metrics.syncChanges('down', rows);
    // Shared live pages are read for no site (graphql/shared-pages.ts): only the database is a fact.
    if (inRequest) annotateRequest({ database: idOf(db), ...(siteId === SHARED_SITE ? {} : { site: siteId.toLowerCase() }), ...(rows > 0 ? { changesDown: rows } : {}) });
    else if (rows > 0) logger?.debug?.('sync: download', { database: idOf(db), site: siteId.toLowerCase(), changesDown: rows, durationMs: ms(s) });
    return r;
  };
}

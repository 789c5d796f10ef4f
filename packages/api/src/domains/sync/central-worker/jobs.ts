/**
 * The heavy work on a SQLite central database — merging an upload with its bookkeeping, and
 * building download pages — as plain functions of an engine and plain data, so it runs the same
 * on the main thread (small jobs, tests with custom deps) and in a central worker
 * (central-worker/worker.ts, docs/ARCHITECTURE.md "Work off the event loop").
 */
import type { MergeConflict, PayloadDecodeLimits, RejectedRow } from '@offsync/core';
import { conflictInput, conflictLogOf, dropRejected } from '../conflict-log.ts';
import type { ConflictLogOptions } from '../conflict-log.ts';
import { scanPages } from '../download-pages.ts';
import type { Cursor, ScanOptions, ScanResult } from '../download-pages.ts';
import type { PeerState, SyncStatus, VersionWindow } from '../peer-state.ts';
import { rejectionLogOf } from '../rejection-log.ts';
import type { RejectionEntry, RejectionInput } from '../rejection-log.ts';
import type { PriorFilter, Principal, RowFilter, RowJudge, SyncEngine } from '../sync-deps.ts';
import { SyncError } from '../sync-errors.ts';

export interface UploadJob {
  /** 32 lower-case hex digits. */
  site: string;
  /** One payload, or the chunks of one G3 batch (merged as one). */
  payload: Uint8Array | Uint8Array[];
  window: VersionWindow | undefined;
  principal: Principal;
  /** The principal key removals are addressed to (`principalKey`). */
  audience: string | undefined;
  strict: boolean;
  limits: PayloadDecodeLimits;
  /** Record lost writes (false: the database turned the conflict log off). */
  conflictLog: boolean;
  conflictLogOptions: ConflictLogOptions | undefined;
  now: number;
}

/** RLS of one upload, built by the caller (rls-build.ts). */
export interface UploadRls {
  judge?: RowJudge | undefined;
  canHold?: RowFilter | undefined;
  visibilityColumns?: ReadonlyMap<string, ReadonlySet<string>> | undefined;
}

export interface UploadOutcome {
  status: SyncStatus;
  /** Changes in the payload. */
  received: number;
  /** Changes that won and were written. */
  applied: number;
  tables: string[];
  schemaHash: bigint;
  /** Server db_version after the merge. */
  dbVersion: number;
  /** Changes rejected on their own and compensated, as recorded in the rejection log. */
  rejected: RejectionEntry[];
}

/** Largest device db_version a window may announce (2^48, well inside the safe-integer range). */
export const MAX_WINDOW_VERSION = 2 ** 48;

/**
 * Refuses (invalid_request) an upload window that is not sane (min ≤ max ≤ 2^48) or that the
 * payload contradicts: a change beyond `dbVersionMax` (payloads are in ascending db_version
 * order, so the last change is the highest). docs/PROTOCOL.md "Device identity".
 */
export function checkWindow(window: VersionWindow, last: { dbVersion: number } | undefined): void {
  const { dbVersionMin: min, dbVersionMax: max } = window;
  if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min < 0 || min > max || max > MAX_WINDOW_VERSION) {
    throw new SyncError('invalid_request', `upload window [${min}, ${max}] is invalid: need 0 ≤ dbVersionMin ≤ dbVersionMax ≤ 2^48`);
  }
  if (last !== undefined && last.dbVersion > max) {
    throw new SyncError('invalid_request', `the payload holds db_version ${last.dbVersion}, beyond the window's dbVersionMax ${max}`);
  }
}

export function rejectionInput(r: RejectedRow, siteId: string, principal: Principal): RejectionInput {
  return {
    siteId,
    userId: principal.userId,
    credentialKind: principal.kind,
    credentialId: principal.credentialId ?? null,
    table: r.table,
    pk: r.pk,
    pkValues: r.pkValues,
    operation: r.operation,
    code: r.code,
    policy: r.policy,
    reason: r.reason,
    values: r.values,
  };
}

/**
 * Merges the upload and records the site's window, the rejections and the lost writes in ONE
 * transaction: everything or nothing; a refused payload is never acknowledged.
 */
export function mergeUpload(engine: SyncEngine, peers: PeerState, job: UploadJob, rls: UploadRls): UploadOutcome {
  const { site, principal, window, strict, payload } = job;
  const conflicts: MergeConflict[] | undefined = job.conflictLog ? [] : undefined;
  return engine.driver.transaction(() => {
    const apply = Array.isArray(payload) ? engine.applyPayloads.bind(engine, payload) : engine.applyPayload.bind(engine, payload);
    const r = apply({
      strictSchemaHash: strict,
      limits: job.limits,
      // Authoritative merge: a row that may not be written is rejected and compensated on
      // its own (RLS verdict, key type, constraint), the rest lands (docs/ARCHITECTURE.md "RLS model").
      rejectRows: true,
      ...(job.audience === undefined ? {} : { audience: job.audience }),
      ...(rls.judge === undefined ? {} : { judge: rls.judge }),
      ...(rls.canHold === undefined ? {} : { canHold: rls.canHold }),
      ...(rls.visibilityColumns === undefined || rls.visibilityColumns.size === 0 ? {} : { visibilityColumns: rls.visibilityColumns }),
      ...(conflicts === undefined ? {} : { onConflict: (c: MergeConflict) => conflicts.push(c) }),
    });
    if (window !== undefined) checkWindow(window, r.last);
    if (!strict && r.schemaHash !== 0n && !engine.isKnownSchemaHash(r.schemaHash)) engine.rememberSchemaHash(r.schemaHash, 'peer');
    const rejected = r.rejected.length === 0 ? [] : rejectionLogOf(engine).record(r.rejected.map((x) => rejectionInput(x, site, principal)), job.now);
    if (conflicts !== undefined && conflicts.length > 0) {
      conflictLogOf(engine, job.conflictLogOptions).record(dropRejected(conflicts, r.rejected).map((c) => conflictInput(c, site, principal.userId)), job.now);
    }
    const status = peers.recordUpload(site, window, r.schemaHash);
    return { status, received: r.received, applied: r.applied, tables: r.tables, schemaHash: r.schemaHash, dbVersion: r.dbVersion, rejected };
  });
}

export interface ScanJob {
  site: string;
  after: Cursor;
  opts: ScanOptions;
  /** The caller's principal key: removals addressed to it join the feed (with a row filter). */
  audience: string | undefined;
  /** The site never downloaded (cursor 0) nor uploaded: it holds nothing that could have left its sight. */
  holdsNothing?: boolean;
}

/** The feed after the cursor without the site's own changes, filtered, cut into pages (synchronous). */
export function scanDownload(engine: SyncEngine, job: ScanJob, rls: { rowFilter?: RowFilter | undefined; priorFilter?: PriorFilter | undefined }): ScanResult {
  return scanPages(
    {
      engine,
      excludeSiteId: new Uint8Array(Buffer.from(job.site, 'hex')),
      rowFilter: rls.rowFilter,
      ...(rls.rowFilter === undefined ? {} : { audience: job.audience, priorFilter: rls.priorFilter }),
      ...(job.holdsNothing === true ? { holdsNothing: true } : {}),
    },
    job.after,
    job.opts,
  );
}

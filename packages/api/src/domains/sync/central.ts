/**
 * The one interface of a central database (docs/ARCHITECTURE.md "Central databases"): what the
 * sync service needs from the place a database's central data lives — a SQLite file
 * (sqlite-central.ts) or the customer's PostgreSQL database (pg-central.ts). `SyncService` calls
 * these members only; it never asks which back-end it holds. What differs between back-ends is a
 * member of its own here (`synchronous`), not a name to test.
 *
 * A `Central` is resolved once per request (`CentralDatabases.open`): it carries the target as
 * resolved then (enabled, schema-hash mode, RLS mode).
 */
import type { PayloadDecodeLimits } from '@offsync/core';
import type { ConflictLogOptions } from './conflict-log.ts';
import type { Cursor, ScanOptions, ScanResult } from './download-pages.ts';
import type { UploadOutcome } from './central-worker/jobs.ts';
import type { CentralWorkers } from './central-worker/pool.ts';
import type { PeerRecord, SyncStatus, VersionWindow } from './peer-state.ts';
import type { DatabaseTarget, Generation, Principal, SyncDeps, SyncEngine } from './sync-deps.ts';

/** What the sync service lends a central database for one operation (its deps and settings). */
export interface CentralEnv {
  deps: SyncDeps;
  /** Central worker threads (SQLite merges and long downloads off the event loop), when enabled. */
  workers: CentralWorkers | undefined;
  limits: PayloadDecodeLimits;
  conflictLog: ConflictLogOptions | undefined;
  now: () => number;
}

/** One upload: `site` normalised; an array is the chunks of one G3 batch (merged as one payload). */
export interface CentralUpload {
  site: string;
  payload: Uint8Array | Uint8Array[];
  window: VersionWindow | undefined;
  principal: Principal;
}

/** One download scan: the feed after `after` without `site`'s own changes, cut into pages. */
export interface CentralScan {
  site: string;
  after: Cursor;
  principal: Principal;
  /** Page cutting, with the schema hash to stamp already chosen (`stamp`). */
  opts: ScanOptions;
}

export interface Central {
  readonly id: string;
  /** The target as resolved for the current request. */
  readonly target: DatabaseTarget;
  /**
   * Claims `site` for `owner` unless someone already has it; returns the owner after the claim
   * (another owner: the caller refuses with `site_forbidden`).
   */
  claimSite(site: string, owner: string): Promise<string>;
  /** Upload bookkeeping of a site (SyncStatus). */
  status(site: string): Promise<SyncStatus>;
  /** The upload record of a site, if it uploaded. */
  peer(site: string): Promise<PeerRecord | undefined>;
  /**
   * Merges the upload together with the site's bookkeeping (window, rejections, lost writes) in
   * one transaction: everything or nothing. Throws (CoreError / SyncError) with nothing changed.
   */
  upload(req: CentralUpload, env: CentralEnv): Promise<UploadOutcome>;
  /** The schema hash to stamp into a site's downloads when the request names none (docs/PROTOCOL.md §P6). */
  stamp(site: string, generation: Generation | undefined): Promise<bigint>;
  /** The change feed after the cursor for the site (RLS applied as the back-end does), in pages. */
  download(req: CentralScan, env: CentralEnv): Promise<ScanResult>;
  /** The server's db_version now. */
  dbVersion(): Promise<number>;
  /**
   * Capability: the change feed can be read synchronously (no merge interleaves within one turn
   * of the event loop), so the live `changes` subscription shares one page among the subscribers
   * an event wakes (graphql/shared-pages.ts). Undefined: each subscriber reads its own page.
   */
  readonly synchronous: SynchronousCentral | undefined;
}

/** A central database with a synchronous engine (the SQLite central file). */
export interface SynchronousCentral extends Central {
  readonly engine: SyncEngine;
  /** `stamp`, synchronously. */
  stampNow(site: string, generation: Generation | undefined): bigint;
}

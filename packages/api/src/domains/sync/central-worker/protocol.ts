/**
 * Messages between the main thread and a central worker (structured-clone data only: payload
 * bytes, principals, policies as Maps, cursors). Errors travel as their name, code, message and
 * details and are rebuilt on the main thread, so `toSyncError` maps them exactly as if the work
 * had run there.
 */
import { CoreError } from '@offsync/core';
import type { ScanResult } from '../download-pages.ts';
import type { Principal } from '../sync-deps.ts';
import { SyncError } from '../sync-errors.ts';
import type { SyncErrorCode } from '../sync-errors.ts';
import type { Policies } from '../data-plane/rls-build.ts';
import type { ScanJob, UploadJob, UploadOutcome } from './jobs.ts';

/** Which central file, and how to open it (as CentralDatabases does). */
export interface CentralRef {
  path: string;
  synchronous: 'FULL' | 'NORMAL';
  /**
   * The owner's schema generation (central-databases.ts `withSchemaChange`): a worker whose
   * connection loaded an older one reloads the tables before the job. Worker connections do not
   * poll `PRAGMA schema_version`; this is how they learn of deploys.
   */
  schemaGeneration: number;
}

export type WorkerRequest =
  | { id: number; kind: 'upload'; db: CentralRef; job: UploadJob; policies: Policies | null }
  | { id: number; kind: 'scan'; db: CentralRef; job: ScanJob; principal: Principal; policies: Policies | null; bulk: boolean }
  /** A PASSIVE checkpoint of the file's WAL on this worker's connection (the main connection never checkpoints). */
  | { id: number; kind: 'checkpoint'; db: CentralRef }
  | { id: number; kind: 'close'; path: string };

export type WorkerReply =
  | { id: number; ok: true; value: UploadOutcome | ScanResult | null }
  | { id: number; ok: false; error: WireError };

export interface WireError {
  name: string;
  message: string;
  code?: string;
  details?: unknown;
  syncCode?: SyncErrorCode;
  detail?: string;
}

export function toWire(e: unknown): WireError {
  if (e instanceof SyncError) return { name: 'SyncError', message: e.message, syncCode: e.code, ...(e.detail === undefined ? {} : { detail: e.detail }) };
  if (e instanceof Error) {
    const code: unknown = Reflect.get(e, 'code');
    const details: unknown = Reflect.get(e, 'details');
    return { name: e.name, message: e.message, ...(typeof code === 'string' ? { code } : {}), ...(details === undefined ? {} : { details }) };
  }
  return { name: 'Error', message: String(e) };
}

export function fromWire(w: WireError): Error {
  if (w.name === 'SyncError' && w.syncCode !== undefined) return new SyncError(w.syncCode, w.detail);
  if (w.name === 'CoreError' && w.code !== undefined) return new CoreError(w.code as never, w.message, w.details === undefined ? undefined : { details: w.details as Record<string, unknown> });
  return Object.assign(new Error(w.message), { name: w.name, ...(w.code === undefined ? {} : { code: w.code }) });
}

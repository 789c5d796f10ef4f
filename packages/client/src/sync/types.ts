/** Shapes of the G3 protocol as the client sees them (docs/PROTOCOL.md §P1). */

import type { Cursor, SyncStatus as WireSyncStatus } from '@offsync/core';

// Wire shapes shared with the server (core protocol/wire.ts).
export type { Cursor };

/**
 * SyncStatus: the reply of `status`, `apply` and a 202 `check` (lastOptimisticVersion -1 = unknown,
 * client side); `failures` as received, unvalidated (only what the session reads is relied on).
 */
export interface SyncStatus extends WireSyncStatus {
  failures?: { apply?: Record<string, unknown>; check?: Record<string, unknown> };
}

/** One upload: a payload covering the own versions `[dbVersionMin, dbVersionMax]`. */
export interface PushChunk {
  payload: Uint8Array;
  dbVersionMin: number;
  dbVersionMax: number;
}

export interface PullRequest extends Cursor {
  /** In-memory page cursor of the server; 0 for a fresh drain. */
  cursor: number;
  maxChunks?: number;
}

/** One page of a download: inline bytes or a URL to GET without credentials. */
export type PageRef = ({ payload: Uint8Array } | { url: string }) & { cursor?: number; watermark?: number };

export type PullBatch =
  | { kind: 'empty' }
  | { kind: 'notReady'; status: SyncStatus }
  | { kind: 'pages'; pages: PageRef[]; final: boolean; nextCursor?: number; watermark?: number };

/** `cloudsync_network_send_changes()` result block. */
export interface SendResult {
  status: 'synced' | 'syncing' | 'out-of-sync' | 'error';
  localVersion: number;
  serverVersion: number;
  lastFailure?: Record<string, unknown>;
}

/** `cloudsync_network_check_changes()` / `receive_changes()` result block. */
export interface ReceiveResult {
  rows: number;
  tables: string[];
  chunks: number;
  bytes: number;
  complete: boolean;
  /** The server answered "not ready yet" (202). */
  notReady?: boolean;
  error?: string;
  lastFailure?: Record<string, unknown>;
}

export interface SyncResult {
  send: SendResult;
  receive: ReceiveResult;
}

/** Where and as whom to sync. */
export interface NetworkConfig {
  /** Base address without trailing slash, e.g. `http://127.0.0.1:4000`. */
  address: string;
  databaseId: string;
  /** Bearer credential (API key or token); both are sent the same way. */
  credential?: string;
}

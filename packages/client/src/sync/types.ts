/** Shapes of the G3 protocol as the client sees them (docs/PROTOCOL.md §P1). */

/** SyncStatus: the reply of `status`, `apply` and a 202 `check`. */
export interface SyncStatus {
  /** Highest own db_version the server has accepted (every window covering 1..v); -1 = unknown. */
  lastOptimisticVersion: number;
  lastConfirmedVersion: number;
  /** Only the length matters: non-empty means "out-of-sync". */
  gaps: unknown[];
  failures?: { apply?: Record<string, unknown>; check?: Record<string, unknown> };
}

/** One upload: a payload covering the own versions `[dbVersionMin, dbVersionMax]`. */
export interface PushChunk {
  payload: Uint8Array;
  dbVersionMin: number;
  dbVersionMax: number;
}

/** Durable download cursor in the server's version space. */
export interface Cursor {
  dbVersion: number;
  seq: number;
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

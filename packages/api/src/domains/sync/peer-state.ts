/**
 * Per-site upload bookkeeping, stored IN the central database (table `offsync_peers`) and
 * written in the same transaction as the merge it describes, so it never claims more than is
 * durably stored (docs/PROTOCOL.md §P1 "Client bookkeeping" and "Bookkeeping").
 *
 * Windows are `[dbVersionMin, dbVersionMax]` in the DEVICE's version space, kept as received
 * (G2a sends min = previous send_dbversion, G2b/G3 send send_dbversion + 1) and unioned. A
 * window extends coverage when `min <= covered + 1`. `lastOptimisticVersion` = highest v with
 * 1..v covered; `lastConfirmedVersion` equals it because merges are synchronous.
 */
import type { SyncEngine } from './sync-deps.ts';

import type { SyncStatus, VersionWindow } from '@offsync/core';

// Wire shapes (core protocol/wire.ts), shared with OffSync's client.
export type { SyncStatus, VersionWindow };

export interface PeerRecord {
  siteId: string;
  windows: VersionWindow[];
  lastOptimisticVersion: number;
  lastConfirmedVersion: number;
  /** Decimal u64 of the schema hash of the device's last non-zero-hash upload. */
  lastSchemaHash: string | null;
  uploads: number;
}

const DDL = `CREATE TABLE IF NOT EXISTS offsync_peers (
  site_id BLOB PRIMARY KEY NOT NULL,
  windows TEXT NOT NULL DEFAULT '[]',
  last_optimistic INTEGER NOT NULL DEFAULT 0,
  last_confirmed INTEGER NOT NULL DEFAULT 0,
  last_schema_hash TEXT,
  uploads INTEGER NOT NULL DEFAULT 0,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL
) WITHOUT ROWID`;

/** Unions overlapping or adjacent windows (sorted by min). */
export function unionWindows(windows: readonly VersionWindow[]): VersionWindow[] {
  const sorted = windows.filter((w) => w.dbVersionMax >= w.dbVersionMin).sort((a, b) => a.dbVersionMin - b.dbVersionMin || a.dbVersionMax - b.dbVersionMax);
  const out: VersionWindow[] = [];
  for (const w of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && w.dbVersionMin <= last.dbVersionMax + 1) last.dbVersionMax = Math.max(last.dbVersionMax, w.dbVersionMax);
    else out.push({ ...w });
  }
  return out;
}

/** Highest v such that 1..v is covered, and the windows lying beyond it. */
export function coverage(windows: readonly VersionWindow[]): { covered: number; gaps: VersionWindow[] } {
  let covered = 0;
  const gaps: VersionWindow[] = [];
  for (const w of unionWindows(windows)) {
    if (w.dbVersionMin <= covered + 1) covered = Math.max(covered, w.dbVersionMax);
    else gaps.push({ dbVersionMin: covered + 1, dbVersionMax: w.dbVersionMin - 1 });
  }
  // A gap only matters while something beyond it is waiting.
  return { covered, gaps: gaps.filter((g) => g.dbVersionMin <= g.dbVersionMax) };
}

function hexToBytes(siteId: string): Uint8Array {
  return new Uint8Array(Buffer.from(siteId, 'hex'));
}

export function parseWindows(text: unknown): VersionWindow[] {
  try {
    const v: unknown = JSON.parse(String(text));
    if (!Array.isArray(v)) return [];
    return v.flatMap((w: unknown) =>
      Array.isArray(w) && typeof w[0] === 'number' && typeof w[1] === 'number' ? [{ dbVersionMin: w[0], dbVersionMax: w[1] }] : [],
    );
  } catch {
    return [];
  }
}

/**
 * The bookkeeping after an accepted upload (pure; every central engine stores its result in the
 * merge's transaction): the windows unioned, the covered prefix, the gaps, the schema hash kept
 * (0 = not stated keeps the previous one).
 */
export function nextPeerState(prev: PeerRecord | undefined, window: VersionWindow | undefined, schemaHash: bigint): { windows: VersionWindow[]; covered: number; gaps: VersionWindow[]; hash: string | null } {
  const windows = unionWindows(window === undefined ? (prev?.windows ?? []) : [...(prev?.windows ?? []), window]);
  const { covered, gaps } = coverage(windows);
  const hash = schemaHash === 0n ? (prev?.lastSchemaHash ?? null) : schemaHash.toString();
  return { windows, covered, gaps, hash };
}

/** The SyncStatus of a peer record (none yet: all zero). */
export function statusOf(p: PeerRecord | undefined): SyncStatus {
  if (p === undefined) return { lastOptimisticVersion: 0, lastConfirmedVersion: 0, gaps: [] };
  return { lastOptimisticVersion: p.lastOptimisticVersion, lastConfirmedVersion: p.lastConfirmedVersion, gaps: coverage(p.windows).gaps };
}

export class PeerState {
  readonly #engine: SyncEngine;

  constructor(engine: SyncEngine) {
    this.#engine = engine;
    engine.driver.exec(DDL);
  }

  get(siteId: string): PeerRecord | undefined {
    const r = this.#engine.driver
      .prepare('SELECT windows, last_optimistic, last_confirmed, last_schema_hash, uploads FROM offsync_peers WHERE site_id = ?')
      .getRaw(hexToBytes(siteId));
    if (r === undefined) return undefined;
    return {
      siteId,
      windows: parseWindows(r[0]),
      lastOptimisticVersion: Number(r[1]),
      lastConfirmedVersion: Number(r[2]),
      lastSchemaHash: r[3] === null || r[3] === undefined ? null : String(r[3]),
      uploads: Number(r[4]),
    };
  }

  status(siteId: string): SyncStatus {
    return statusOf(this.get(siteId));
  }

  /**
   * Records an accepted upload. MUST run inside the transaction that merged the payload.
   * `window` is undefined for G1 uploads (no window on the wire); `schemaHash` 0 is not remembered.
   */
  recordUpload(siteId: string, window: VersionWindow | undefined, schemaHash: bigint, now = Date.now()): SyncStatus {
    const { windows, covered, gaps, hash } = nextPeerState(this.get(siteId), window, schemaHash);
    this.#engine.driver
      .prepare(
        `INSERT INTO offsync_peers (site_id, windows, last_optimistic, last_confirmed, last_schema_hash, uploads, first_seen, last_seen)
         VALUES (?, ?, ?, ?, ?, 1, ?, ?)
         ON CONFLICT(site_id) DO UPDATE SET windows = excluded.windows, last_optimistic = excluded.last_optimistic,
           last_confirmed = excluded.last_confirmed, last_schema_hash = excluded.last_schema_hash,
           uploads = uploads + 1, last_seen = excluded.last_seen`,
      )
      .run(hexToBytes(siteId), JSON.stringify(windows.map((w) => [w.dbVersionMin, w.dbVersionMax])), BigInt(covered), BigInt(covered), hash, BigInt(now), BigInt(now));
    return { lastOptimisticVersion: covered, lastConfirmedVersion: covered, gaps };
  }
}

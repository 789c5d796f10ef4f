/**
 * Write-behind of the per-request control-plane counters (docs/ARCHITECTURE.md "Devices and
 * traffic"): traffic samples are summed in memory per (database, site, minute bucket), and the
 * throttled `lastSyncAt` of devices (devices.service.ts) waits here too; {@link TrafficBuffer.flush}
 * writes everything pending in one short transaction of multi-row statements (traffic-sql.ts), at
 * most `flushMs` after the first sample (default 1 s), before every read of metrics or devices on
 * this node, and on close.
 *
 * - Nothing counted is lost on a clean shutdown (`close` flushes); a crash loses at most the
 *   samples of one flush window (and leaves `lastSyncAt` up to the device throttle window old).
 * - A flush that fails is kept pending (merged back) and retried on the next one; after
 *   {@link MAX_FLUSH_ATTEMPTS} failed attempts in a row its counters are dropped (logged), so one
 *   batch that cannot be written never stops the counting, or the reads that flush first, for
 *   every database of the node. Counters of a database deleted meanwhile are dropped with it.
 * - Reads that flush first ({@link TrafficBuffer.settle}) answer from what is committed when the
 *   flush fails (it is logged), instead of failing.
 * - Several nodes over one control plane each flush their own increments: the writes are atomic
 *   increments (`requests + n`), so the sums stay exact; a `lastSyncAt` only ever moves forward.
 * - Events: one `metricsChanged` per database per flush (not per request), and `deviceEvent`
 *   SYNCED per device whose byte totals grew, both after the flush committed.
 */
import type { ServiceDeps } from '../../deps.ts';
import { dialectOf } from '../../db/prisma.ts';
import { bucketIncrements, deviceIncrements } from './traffic-sql.ts';
import type { BucketIncrement, DeviceIncrement } from './traffic-sql.ts';

/** Pending traffic is written at most this long after its first sample. */
export const TRAFFIC_FLUSH_MS = 1000;
/** Failed flushes of the same counters before they are dropped. */
export const MAX_FLUSH_ATTEMPTS = 3;

interface Bucket { siteId: string; bucketStart: number; up: bigint; down: bigint; requests: number }
interface Pending {
  /** databaseId → `${site}/${bucketStart}` → sums. */
  traffic: Map<string, Map<string, Bucket>>;
  /** databaseId → site → latest lastSyncAt not yet written (ms). */
  lastSync: Map<string, Map<string, number>>;
  /** databaseId → latest sample time (ms), for the events. */
  latest: Map<string, number>;
  /** Failed flushes the oldest counters here have been through. */
  attempts: number;
}

const empty = (): Pending => ({ traffic: new Map(), lastSync: new Map(), latest: new Map(), attempts: 0 });
const inner = <K, V>(m: Map<string, Map<K, V>>, k: string): Map<K, V> => {
  let v = m.get(k);
  if (v === undefined) m.set(k, (v = new Map()));
  return v;
};

export interface TrafficBuffer {
  /** Counts one request of `siteId` (normalised) with its bytes, at `at` (ms). */
  addTraffic(databaseId: string, siteId: string, up: bigint, down: bigint, at: number): void;
  /** Remembers a `lastSyncAt` to write with the next flush (a device seen within its throttle window). */
  touchDevice(databaseId: string, siteId: string, at: number): void;
  /** Writes everything pending (waits for a flush in progress first); resolves when committed. */
  flush(): Promise<void>;
  /** {@link flush} for a read that follows it: never rejects (a failed flush is logged and kept). */
  settle(): Promise<void>;
  /** Stops the timer and flushes; later samples are flushed at once. */
  close(): Promise<void>;
}

export function createTrafficBuffer(deps: ServiceDeps, flushMs: number = deps.trafficFlushMs ?? TRAFFIC_FLUSH_MS): TrafficBuffer {
  const { prisma, pubsub } = deps;
  let pending = empty();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  let tail: Promise<void> = Promise.resolve();
  /** The flush queued and not started yet, if any. */
  let next: Promise<void> | null = null;

  const isEmpty = (p: Pending): boolean => p.traffic.size === 0 && p.lastSync.size === 0;
  // Errors of a flush nobody awaits are logged by writeOut.
  const schedule = (): void => {
    if (closed) {
      void buffer.settle();
      return;
    }
    if (timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      void buffer.settle();
    }, flushMs);
    timer.unref?.();
  };
  const note = (databaseId: string, at: number): void => {
    pending.latest.set(databaseId, Math.max(pending.latest.get(databaseId) ?? 0, at));
  };
  /** Adds `b`'s sums into the pending bucket of its (site, minute) (taken as it is when there is none). */
  const addBucket = (databaseId: string, key: string, b: Bucket): void => {
    const into = inner(pending.traffic, databaseId);
    const c = into.get(key);
    if (c === undefined) into.set(key, b);
    else { c.up += b.up; c.down += b.down; c.requests += b.requests; }
  };
  /** A pending `lastSyncAt`: the latest one wins. */
  const touch = (databaseId: string, siteId: string, at: number): void => {
    const sites = inner(pending.lastSync, databaseId);
    sites.set(siteId, Math.max(sites.get(siteId) ?? 0, at));
  };

  /** Puts a batch that failed to commit back in front of what came since (sums add up, latest times win). */
  const restore = (p: Pending): void => {
    for (const [db, buckets] of p.traffic) for (const [k, b] of buckets) addBucket(db, k, b);
    for (const [db, sites] of p.lastSync) for (const [s, at] of sites) touch(db, s, at);
    for (const [db, at] of p.latest) note(db, at);
    pending.attempts = Math.max(pending.attempts, p.attempts);
  };

  const writeOut = async (): Promise<void> => {
    if (isEmpty(pending)) return;
    const batch = pending;
    pending = empty();
    if (timer !== undefined) { clearTimeout(timer); timer = undefined; }
    const synced: Array<{ databaseId: string; siteId: string }> = [];
    const buckets: BucketIncrement[] = [];
    const devices = new Map<string, DeviceIncrement>();
    const deviceKey = (databaseId: string, siteId: string): string => `${databaseId}\u0000${siteId}`;
    const deviceOf = (databaseId: string, siteId: string): DeviceIncrement => {
      const k = deviceKey(databaseId, siteId);
      let d = devices.get(k);
      if (d === undefined) devices.set(k, (d = { databaseId, siteId, uploadBytes: 0n, downloadBytes: 0n, lastSyncAt: null }));
      return d;
    };
    for (const [databaseId, m] of batch.traffic) {
      for (const b of m.values()) {
        buckets.push({ databaseId, siteId: b.siteId, bucketStart: new Date(b.bucketStart), uploadBytes: b.up, downloadBytes: b.down, requests: b.requests, rejectedChanges: 0 });
        const d = deviceOf(databaseId, b.siteId);
        d.uploadBytes += b.up;
        d.downloadBytes += b.down;
      }
    }
    for (const [databaseId, sites] of batch.lastSync) for (const [siteId, at] of sites) deviceOf(databaseId, siteId).lastSyncAt = new Date(at);
    try {
      // Two multi-row statements per 500 rows, in one short transaction (traffic-sql.ts, which
      // also fixes the row order): every other control-plane statement of the node waits while
      // it is open (db/prisma.ts).
      const dialect = dialectOf(prisma);
      const bucketWrites = bucketIncrements(prisma, dialect, buckets);
      const results = await prisma.$transaction([...bucketWrites, ...deviceIncrements(prisma, dialect, [...devices.values()])]);
      for (const rows of results.slice(bucketWrites.length) as Array<Array<{ databaseId: string; siteId: string }>>) {
        for (const { databaseId, siteId } of rows) {
          const d = devices.get(deviceKey(databaseId, siteId));
          if (d !== undefined && d.uploadBytes + d.downloadBytes > 0n) synced.push({ databaseId, siteId });
        }
      }
    } catch (e) {
      synced.length = 0;
      const error = e instanceof Error ? e.message : String(e);
      if (batch.attempts + 1 >= MAX_FLUSH_ATTEMPTS) {
        let requests = 0;
        for (const m of batch.traffic.values()) for (const b of m.values()) requests += b.requests;
        deps.logger.error(`metrics: traffic flush failed ${MAX_FLUSH_ATTEMPTS} times; its counters are dropped`, { error, databases: batch.traffic.size, requests });
      } else {
        restore({ ...batch, attempts: batch.attempts + 1 });
        if (!closed) schedule();
        deps.logger.error('metrics: traffic flush failed (kept for the next one)', { error });
      }
      throw e;
    }
    for (const { databaseId, siteId } of synced) {
      // The device's totals changed: it synced something (devices.service publishes the other changes).
      pubsub.publish('deviceEvent', databaseId, { kind: 'SYNCED', databaseId, siteId, at: new Date(batch.latest.get(databaseId) ?? deps.clock.now()).toISOString() });
    }
    for (const databaseId of batch.traffic.keys()) {
      pubsub.publish('metricsChanged', databaseId, { databaseId, at: new Date(batch.latest.get(databaseId) ?? deps.clock.now()).toISOString() });
    }
  };

  const buffer: TrafficBuffer = {
    addTraffic(databaseId, siteId, up, down, at) {
      const bucketStart = Math.floor(at / 60_000) * 60_000;
      addBucket(databaseId, `${siteId}/${bucketStart}`, { siteId, bucketStart, up, down, requests: 1 });
      note(databaseId, at);
      schedule();
    },
    touchDevice(databaseId, siteId, at) {
      touch(databaseId, siteId, at);
      schedule();
    },
    flush() {
      // Callers that come while a flush runs share the one queued behind it: it has not started,
      // so it takes what each of them counted (a dashboard polling four reads a second asks for
      // one flush at a time, not a queue of them).
      if (next !== null) return next;
      const run = tail.then(() => {
        next = null;
        return writeOut();
      });
      next = run;
      tail = run.catch(() => undefined);
      return run;
    },
    settle() {
      return buffer.flush().catch(() => undefined);
    },
    async close() {
      closed = true;
      if (timer !== undefined) { clearTimeout(timer); timer = undefined; }
      await buffer.flush();
    },
  };
  return buffer;
}

/**
 * Where a device's download time goes (bench only): `splitApply` replaces the engine's
 * `applyPayload` on one device by its two halves timed apart — core's `decodePayload`, then
 * core's `applyChanges` (the merge and its SQLite writes) — with the same result (the schema-hash
 * check is left out: the bench's hash is always known). Both are measured in wall time and in
 * process CPU time (`process.cpuUsage`: every thread of the process, so only meaningful when the
 * server is not in this process or runs no work meanwhile). Each payload's shape and times are
 * kept too (`pages`). `gcWatch` sums the collector's pauses.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { decodePayload } from '@offsync/core';
import type { SyncEngine } from '@offsync/core';

export interface ApplySplit {
  decodeMs: number;
  mergeMs: number;
  decodeCpuMs: number;
  mergeCpuMs: number;
  /** performance.now() when the first payload arrived to be applied (undefined before). */
  firstAt: number | undefined;
  /** Per payload, in order (`pages: true`): its shape and its decode / merge wall time. */
  pages: PageSplit[];
}

/**
 * One payload's shape: `splitRow` when its first change continues the row the previous payload
 * ended with (same table and key: a page cut between two changes of one row), so that row is
 * already known to the target when this page is merged.
 */
export interface PageSplit {
  changes: number;
  splitRow: boolean;
  decodeMs: number;
  mergeMs: number;
  /** When its decode started and its merge ended (ms after `origin()`). */
  startMs: number;
  endMs: number;
}

function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export const cpuNowMs = (): number => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};

export function splitApply(engine: SyncEngine, origin: () => number = () => 0): ApplySplit {
  const s: ApplySplit = { decodeMs: 0, mergeMs: 0, decodeCpuMs: 0, mergeCpuMs: 0, firstAt: undefined, pages: [] };
  let lastRow: { tbl: string; pk: Uint8Array } | undefined;
  engine.applyPayload = (payload, opts = {}) => {
    let t = performance.now();
    let c = cpuNowMs();
    s.firstAt ??= t;
    const { header, changes } = decodePayload(payload, opts.limits);
    let t2 = performance.now();
    let c2 = cpuNowMs();
    const decodeMs = t2 - t;
    s.decodeMs += decodeMs;
    s.decodeCpuMs += c2 - c;
    t = t2;
    c = c2;
    const r = engine.applyChanges(changes, opts);
    t2 = performance.now();
    c2 = cpuNowMs();
    s.mergeMs += t2 - t;
    s.mergeCpuMs += c2 - c;
    const first = changes[0];
    const last = changes[changes.length - 1];
    const splitRow = first !== undefined && lastRow !== undefined && first.tbl === lastRow.tbl && sameKey(first.pk, lastRow.pk);
    if (last !== undefined) lastRow = { tbl: last.tbl, pk: last.pk.slice() };
    s.pages.push({ changes: changes.length, splitRow, decodeMs, mergeMs: t2 - t, startMs: t - decodeMs - origin(), endMs: t2 - origin() });
    return { ...r, schemaHash: header.schemaHash };
  };
  return s;
}

/** Sums GC pause durations from now until `stop()` (which waits one turn for the last entries). */
export function gcWatch(): { stop(): Promise<number> } {
  let ms = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) ms += e.duration;
  });
  obs.observe({ entryTypes: ['gc'] });
  return {
    async stop() {
      await new Promise((ok) => setImmediate(ok));
      obs.disconnect();
      return ms;
    },
  };
}

/**
 * The main thread's side of the central workers (docs/ARCHITECTURE.md "Work off the event loop"):
 * a small pool of worker threads (worker.ts), started on first use. A central file's merges are
 * pinned to one worker (so one database's merges run in order); downloads, which only read, go to
 * the least busy worker. A worker that dies — a crash, an
 * out-of-memory under its heap limit — fails only its jobs in flight (503 `server_busy`,
 * retryable; nothing was committed that the device was told about) and is replaced on the next
 * job; the server process keeps serving.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { SyncError } from '../sync-errors.ts';
import { fromWire } from './protocol.ts';
import type { WorkerReply, WorkerRequest } from './protocol.ts';

export interface CentralWorkersOptions {
  /** Worker threads (default min(2, available parallelism)). */
  size?: number;
  /** Heap limit of each worker in MiB (default 1024): a runaway job ends its worker, not the server. */
  maxHeapMb?: number;
}

type Job = WorkerRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

interface Slot {
  worker: Worker;
  pending: Map<number, { ok: (v: unknown) => void; fail: (e: Error) => void }>;
}

/** tsx's ESM API, resolved from this package (its `import` entry: the `require` one cannot register ESM hooks). */
function tsxApiUrl(): string {
  try {
    return import.meta.resolve('tsx/esm/api');
  } catch {
    return pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
  }
}

/**
 * Starts `worker.ts` in a thread. Under tsx (`npm start`) the thread inherits the loader; elsewhere
 * (vitest) the bootstrap registers tsx's loader in the thread first.
 */
function spawn(maxHeapMb: number): Worker {
  const entry = new URL('./worker.ts', import.meta.url).href;
  // Resolved from this package, not from the process's working directory (the CLI, tests in temp dirs).
  const tsx = tsxApiUrl();
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); }).catch((e) => { console.error('central worker failed to start', e); process.exit(1); });`;
  return new Worker(boot, { eval: true, resourceLimits: { maxOldGenerationSizeMb: maxHeapMb } });
}

export class CentralWorkers {
  readonly #size: number;
  readonly #maxHeapMb: number;
  readonly #slots: Array<Slot | undefined>;
  #next = 1;
  #disposed = false;

  constructor(opts: CentralWorkersOptions = {}) {
    this.#size = Math.max(1, opts.size ?? Math.min(2, availableParallelism()));
    this.#maxHeapMb = opts.maxHeapMb ?? 1024;
    this.#slots = new Array<Slot | undefined>(this.#size).fill(undefined);
  }

  #indexOf(path: string): number {
    let h = 0;
    for (let i = 0; i < path.length; i++) h = (h * 31 + path.charCodeAt(i)) | 0;
    return Math.abs(h) % this.#size;
  }

  /** A download may run on any worker (it only reads): the least busy one, started if need be. */
  #leastBusy(): number {
    let best = 0;
    for (let i = 0; i < this.#size; i++) {
      const n = this.#slots[i]?.pending.size ?? -1;
      if (n < (this.#slots[best]?.pending.size ?? -1)) best = i;
      if (n === -1) return i;
    }
    return best;
  }

  #slotFor(path: string, any = false): Slot {
    const i = any ? this.#leastBusy() : this.#indexOf(path);
    let slot = this.#slots[i];
    if (slot === undefined) {
      const worker = spawn(this.#maxHeapMb);
      worker.unref();
      const s: Slot = { worker, pending: new Map() };
      const lost = (why: string): void => {
        if (this.#slots[i] === s) this.#slots[i] = undefined;
        for (const p of s.pending.values()) p.fail(new SyncError('server_busy', `the central worker stopped (${why}); retry`));
        s.pending.clear();
      };
      worker.on('message', (m: WorkerReply) => {
        const p = s.pending.get(m.id);
        if (p === undefined) return;
        s.pending.delete(m.id);
        if (s.pending.size === 0) worker.unref();
        if (m.ok) p.ok(m.value);
        else p.fail(fromWire(m.error));
      });
      worker.on('error', (e) => lost(e.message));
      worker.on('exit', (code) => lost(`exit ${code}`));
      this.#slots[i] = s;
      slot = s;
    }
    return slot;
  }

  /** Runs a job on the worker of its central file. */
  run<T>(job: Job): Promise<T> {
    if (this.#disposed) return Promise.reject(new SyncError('server_busy', 'the sync service is shutting down'));
    const path = job.kind === 'close' ? job.path : job.db.path;
    // Merges of one file run in order on its own worker; downloads only read, on whichever is free.
    return this.#post<T>(this.#slotFor(path, job.kind === 'scan'), job);
  }

  #post<T>(slot: Slot, job: Job): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((ok, fail) => {
      slot.pending.set(id, { ok: ok as (v: unknown) => void, fail });
      slot.worker.ref(); // a job in flight keeps the process alive
      slot.worker.postMessage({ ...job, id });
    });
  }

  /** Jobs sent and not yet answered (all workers). */
  inFlight(): number {
    return this.#slots.reduce((n, s) => n + (s?.pending.size ?? 0), 0);
  }

  /** The worker threads running now (operations: health and diagnostics; tests). */
  threads(): Worker[] {
    return this.#slots.filter((s): s is Slot => s !== undefined).map((s) => s.worker);
  }

  /** Closes a central file in every worker that may hold it (it vanished, was replaced, or its database is closed). */
  close(path: string): void {
    if (this.#disposed) return;
    for (const s of this.#slots) if (s !== undefined) this.#post(s, { kind: 'close', path }).catch(() => undefined);
  }

  /** Stops every worker; jobs in flight fail with `server_busy`. */
  async dispose(): Promise<void> {
    this.#disposed = true;
    const slots = this.#slots.filter((s): s is Slot => s !== undefined);
    this.#slots.fill(undefined);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}

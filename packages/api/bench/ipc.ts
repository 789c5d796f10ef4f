/** Messages between the benchmark and its server process (bench/server.ts). */
import { fork } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { SyncService } from '../src/domains/sync/index.ts';

export interface ServerReady {
  type: 'ready';
  port: number;
  databaseId: string;
  apiKey: string;
  adminKey: string;
}

/** What a bench server's `handle` answers. */
export type BenchRequest =
  | { id: number; type: 'memory' }
  | { id: number; type: 'head' }
  | { id: number; type: 'download'; pageBytes: number }
  | { id: number; type: 'exit' };

/** Every request, including those {@link serveBenchRequests} answers itself (for any bench server). */
export type IpcRequest =
  | BenchRequest
  | { id: number; type: 'cpu' }
  /** Starts / stops (writing `file`) a CPU profile of the server's main thread (node:inspector, 100 µs samples). */
  | { id: number; type: 'profile'; action: 'start' | 'stop'; file?: string };

export type BenchReply =
  | { id: number; type: 'memory'; rss: number; heapUsed: number; external: number }
  | { id: number; type: 'head'; dbVersion: number; listeners: number }
  /** process.cpuUsage() of the server process (µs, user + system), to measure its CPU per round whatever the machine's load. */
  | { id: number; type: 'cpu'; user: number; system: number }
  | { id: number; type: 'profile' }
  | { id: number; type: 'download'; changes: number; bytes: number; pages: number; ms: number }
  | { id: number; type: 'exit' }
  | { id: number; type: 'error'; message: string };

type Without<T, K extends string> = T extends unknown ? Omit<T, K> : never;
type ReplyOf<T extends IpcRequest['type']> = Extract<BenchReply, { type: T }>;

export interface BenchServer extends ServerReady {
  origin: string;
  wsUrl: string;
  request<const R extends Without<IpcRequest, 'id'>>(req: R): Promise<ReplyOf<R['type']>>;
  stop(): Promise<void>;
}

/**
 * Forks the bench server (`script`, default bench/server.ts) with extra environment variables.
 * BENCH_SERVER_PROF=<dir>: the server runs with `--cpu-prof` and writes its profile there on exit
 * (the whole run, workers included; bench/live.ts's BENCH_LIVE_PROF profiles the rounds alone).
 */
export async function startBenchServer(opts: { script?: URL; env?: Record<string, string> } = {}): Promise<BenchServer> {
  const child: ChildProcess = fork(fileURLToPath(opts.script ?? new URL('./server.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx', '--expose-gc', ...(process.env['BENCH_SERVER_PROF'] ? ['--cpu-prof', '--cpu-prof-dir', process.env['BENCH_SERVER_PROF']] : [])],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    ...(opts.env === undefined ? {} : { env: { ...process.env, ...opts.env } }),
  });
  const pending = new Map<number, (r: BenchReply) => void>();
  let nextId = 1;
  const ready = await new Promise<ServerReady>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`bench server exited (${code})`)));
    child.on('message', (m: ServerReady | BenchReply) => {
      if (m.type === 'ready') resolve(m);
      else pending.get(m.id)?.(m);
    });
  });
  child.removeAllListeners('exit');
  return {
    ...ready,
    origin: `http://127.0.0.1:${ready.port}`,
    wsUrl: `ws://127.0.0.1:${ready.port}/graphql`,
    request<const R extends Without<IpcRequest, 'id'>>(req: R): Promise<ReplyOf<R['type']>> {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, (r) => {
          pending.delete(id);
          if (r.type === 'error') reject(new Error(r.message));
          else resolve(r as ReplyOf<R['type']>);
        });
        child.send({ ...req, id });
      });
    },
    async stop() {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      const id = nextId++;
      child.send({ type: 'exit', id });
      await Promise.race([exited, new Promise<void>((resolve) => setTimeout(resolve, 5000))]);
      if (child.exitCode === null) child.kill();
    },
  };
}

/**
 * The server side of a `download` request (both bench servers): a fresh site's whole initial sync
 * of `databaseId` through the sync service, page by page (either kind of central database).
 */
export async function downloadAll(sync: SyncService, databaseId: string, pageBytes: number, site: string): Promise<{ changes: number; bytes: number; pages: number; ms: number }> {
  const db = await sync.databases.open(databaseId);
  const principal = { kind: 'apiKey' as const, userId: null, claims: {} };
  const t0 = performance.now();
  let cursor = { dbVersion: 0, seq: 0 };
  let changes = 0;
  let bytes = 0;
  let pages = 0;
  for (;;) {
    const r = await sync.download(db, site, cursor, principal, { pageBytes, maxPages: 16 });
    for (const p of r.pages) {
      changes += p.rows;
      bytes += p.payload?.byteLength ?? 0;
      pages++;
      cursor = p.to;
    }
    if (r.complete) break;
  }
  return { changes, bytes, pages, ms: performance.now() - t0 };
}

/** A bench server's side of the IPC: answers each request with `handle` (`cpu` and `profile` itself), then announces `ready`. */
export function serveBenchRequests(handle: (m: BenchRequest) => Promise<BenchReply>, ready: ServerReady): void {
  let session: Session | undefined;
  const profile = async (m: Extract<IpcRequest, { type: 'profile' }>): Promise<BenchReply> => {
    const post = (method: string, params: object = {}): Promise<unknown> => new Promise((resolve, reject) => session?.post(method, params, (err, r) => (err ? reject(err) : resolve(r))));
    if (m.action === 'start') {
      session = new Session();
      session.connect();
      await post('Profiler.enable');
      await post('Profiler.setSamplingInterval', { interval: 100 }); // µs
      await post('Profiler.start');
    } else if (session !== undefined) {
      const { profile: p } = (await post('Profiler.stop')) as { profile: unknown };
      session.disconnect();
      session = undefined;
      if (m.file !== undefined) writeFileSync(m.file, JSON.stringify(p));
    }
    return { id: m.id, type: 'profile' };
  };
  process.on('message', (m: IpcRequest) => {
    if (m.type === 'cpu') return void process.send?.({ id: m.id, type: 'cpu', ...process.cpuUsage() } satisfies BenchReply);
    (m.type === 'profile' ? profile(m) : handle(m)).then(
      (reply) => process.send?.(reply),
      (e: unknown) => process.send?.({ id: m.id, type: 'error', message: e instanceof Error ? e.message : String(e) } satisfies BenchReply),
    );
  });
  process.send?.(ready);
}

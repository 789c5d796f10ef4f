/** Messages between the load benchmark (bench/load.ts) and its server process (bench/load-server.ts). */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const STORM_DDL = "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, user_id TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT '')";

export interface LoadSetup { seedRows: number; tokens: number; stormRows: number; stormUsers: number }

export interface LoadReady {
  type: 'ready';
  port: number;
  adminKey: string;
  quotas: string;
  mix: { databaseId: string; apiKey: string; tokens: string[] };
  storm: { databaseId: string; tokens: string[] };
}

export type LoadRequest = { id: number; type: 'lag-start' } | { id: number; type: 'lag' } | { id: number; type: 'exit' };

export interface LagReply {
  id: number;
  type: 'lag';
  /** Event-loop delay percentiles over the window, ms (resolution 10 ms). */
  p50: number;
  p99: number;
  max: number;
  /** RSS at the start of the window, its peak, and now (bytes). */
  rssStart: number;
  rssPeak: number;
  rss: number;
}

export type LoadReply = LagReply | { id: number; type: 'ok' } | { id: number; type: 'error'; message: string };

export interface LoadServer extends LoadReady {
  origin: string;
  lagStart(): Promise<void>;
  lag(): Promise<LagReply>;
  stop(): Promise<void>;
}

/** Forks bench/load-server.ts (its own process: its event loop, RSS and core are measured alone). */
export async function startLoadServer(setup: LoadSetup, syncOptions: Record<string, unknown> = {}): Promise<LoadServer> {
  const child = fork(fileURLToPath(new URL('./load-server.ts', import.meta.url)), [], {
    // LOAD_SERVER_NODE_ARGS: extra node flags for the server, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`.
    execArgv: ['--import', 'tsx', ...(process.env['LOAD_SERVER_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '')],
    env: { ...process.env, LOAD_SETUP: JSON.stringify(setup), LOAD_SYNC_OPTIONS: JSON.stringify(syncOptions) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pending = new Map<number, (r: LoadReply) => void>();
  let nextId = 1;
  const ready = await new Promise<LoadReady>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`load server exited (${code})`)));
    child.on('message', (m: LoadReady | LoadReply) => {
      if (m.type === 'ready') resolve(m);
      else pending.get(m.id)?.(m);
    });
  });
  child.removeAllListeners('exit');
  const request = (type: LoadRequest['type']): Promise<LoadReply> => {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, (r) => {
        pending.delete(id);
        if (r.type === 'error') reject(new Error(r.message));
        else resolve(r);
      });
      child.send({ id, type });
    });
  };
  return {
    ...ready,
    origin: `http://127.0.0.1:${ready.port}`,
    lagStart: async () => { await request('lag-start'); },
    lag: async () => (await request('lag')) as LagReply,
    async stop() {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.send({ id: nextId++, type: 'exit' });
      await Promise.race([exited, new Promise<void>((resolve) => setTimeout(resolve, 5000))]);
      if (child.exitCode === null) child.kill();
    },
  };
}

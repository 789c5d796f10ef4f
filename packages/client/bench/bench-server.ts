/**
 * The client bench's sync server in its own thread (core's `startServerInWorker`): the test
 * fixture's real sync HTTP handler, plus control messages to profile the worker's own thread
 * (`{type:'profile-start'}` / `{type:'profile-stop', path}` write a `.cpuprofile`) and to read
 * the central rows (`{type:'rows'}`), and to read the worker thread's event-loop utilization
 * (`{type:'elu'}`: `{ activeMs, idleMs }` since the thread started; two readings apart give the
 * server's busy time over a run), and `{type:'requests'}` the requests served since the last such call
 * (path tail, absolute arrival and finish ms), `{type:'prebuilt'}` the prebuilt-page counters.
 */
import { writeFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';
import { createSyncServer } from '../test/fixtures/sync-server.ts';
import type { SyncServerOptions } from '../test/fixtures/sync-server.ts';

export function startBenchServer(options: SyncServerOptions): { server: Server; control: (m: unknown) => Promise<unknown> } {
  const s = createSyncServer(options);
  let session: Session | undefined;
  // Every request's arrival and finish on this thread (absolute ms: performance.timeOrigin + now).
  const log: Array<{ path: string; inMs: number; outMs: number }> = [];
  const abs = (): number => performance.timeOrigin + performance.now();
  s.server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const inMs = abs();
    res.on('finish', () => log.push({ path: String(req.url).split('/').pop() ?? '', inMs, outMs: abs() }));
  });
  return {
    server: s.server,
    async control(message: unknown) {
      const type = typeof message === 'object' && message !== null ? Reflect.get(message, 'type') : undefined;
      if (type === 'rows') return s.central('SELECT count(*) AS n FROM todos');
      if (type === 'requests') return log.splice(0);
      if (type === 'prebuilt') return { ...s.handler.prebuilt?.stats };
      if (type === 'elu') {
        const u = performance.eventLoopUtilization();
        return { activeMs: u.active, idleMs: u.idle };
      }
      if (type === 'profile-start') {
        session = new Session();
        session.connect();
        await session.post('Profiler.enable');
        await session.post('Profiler.start');
        return true;
      }
      if (type === 'profile-stop' && session !== undefined) {
        const { profile } = await session.post('Profiler.stop');
        writeFileSync(String(Reflect.get(message as object, 'path')), JSON.stringify(profile));
        session.disconnect();
        session = undefined;
        return true;
      }
      throw new Error(`unknown control message ${JSON.stringify(message)}`);
    },
  };
}

/**
 * Live mode on top of {@link SyncTransport.subscribe}: on every notice, apply the pushed payload
 * (or pull from the durable cursor), then push pending local writes. Runs through the database's
 * exclusive queue so it never interleaves with `sync()`. Polls are silent in the state machine
 * while live; a failure moves to offline/error and the next success back to live.
 */
import { runAsync } from './session.ts';
import type { SyncSession } from './session.ts';
import type { ConnectionMachine } from './state-machine.ts';
import type { Subscription, SyncTransport } from './transport.ts';

export interface LiveDeps {
  transport: SyncTransport;
  session: SyncSession;
  signal: AbortSignal;
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  machine: ConnectionMachine;
  reportError(error: unknown, attempt: number): Error;
}

export function liveLoop(d: LiveDeps): Subscription {
  let failures = 0;
  return d.transport.subscribe({
    cursor: () => d.session.settings.cursor(),
    signal: d.signal,
    onChanges: (notice) =>
      d.exclusive(async () => {
        if (d.signal.aborted) return;
        if (d.machine.state === 'offline' || d.machine.state === 'error') d.machine.send('start');
        if (notice.payload !== undefined) d.session.applyNotice(notice.payload, notice.watermark);
        else await runAsync(d.session.receive(), d.transport);
        if (d.session.hasPendingLocal()) await runAsync(d.session.send(), d.transport);
        failures = 0;
        d.machine.send('connected');
        d.machine.send('caughtUp');
      }),
    onError: (e) => void d.reportError(e, failures++),
  });
}

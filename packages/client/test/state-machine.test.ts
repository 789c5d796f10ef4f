/** The connection state machine (table-driven), backoff and the typed emitter. */
import { expect, test } from 'vitest';
import { backoffDelay, CONNECTION_EVENTS, CONNECTION_STATES, ConnectionMachine, nextState, TRANSITIONS, TypedEmitter } from '../src/sync/index.ts';
import type { ConnectionEvent, ConnectionState } from '../src/sync/index.ts';

// Every (state, event) pair: the expected next state, or null = not valid there (ignored).
const EXPECTED: Array<[ConnectionState, ConnectionEvent, ConnectionState | null]> = [
  ['offline', 'start', 'connecting'], ['offline', 'syncStart', 'connecting'], ['offline', 'connected', null], ['offline', 'caughtUp', null],
  ['offline', 'done', null], ['offline', 'networkError', null], ['offline', 'fatalError', 'error'], ['offline', 'stop', null],
  ['connecting', 'start', null], ['connecting', 'syncStart', null], ['connecting', 'connected', 'syncing'], ['connecting', 'caughtUp', null],
  ['connecting', 'done', null], ['connecting', 'networkError', 'offline'], ['connecting', 'fatalError', 'error'], ['connecting', 'stop', 'offline'],
  ['syncing', 'start', null], ['syncing', 'syncStart', null], ['syncing', 'connected', null], ['syncing', 'caughtUp', 'live'],
  ['syncing', 'done', 'offline'], ['syncing', 'networkError', 'offline'], ['syncing', 'fatalError', 'error'], ['syncing', 'stop', 'offline'],
  ['live', 'start', null], ['live', 'syncStart', 'syncing'], ['live', 'connected', null], ['live', 'caughtUp', null],
  ['live', 'done', 'offline'], ['live', 'networkError', 'offline'], ['live', 'fatalError', 'error'], ['live', 'stop', 'offline'],
  ['error', 'start', 'connecting'], ['error', 'syncStart', 'connecting'], ['error', 'connected', null], ['error', 'caughtUp', null],
  ['error', 'done', null], ['error', 'networkError', null], ['error', 'fatalError', null], ['error', 'stop', 'offline'],
];

test('the transition table covers every state × event and matches the spec', () => {
  expect(EXPECTED).toHaveLength(CONNECTION_STATES.length * CONNECTION_EVENTS.length);
  for (const [s, e, next] of EXPECTED) expect(nextState(s, e), `${s} --${e}-->`).toBe(next);
  expect(Object.keys(TRANSITIONS).sort()).toEqual([...CONNECTION_STATES].sort());
});

test.each(EXPECTED)('machine in %s on %s goes to %s', (s, e, next) => {
  const seen: ConnectionState[] = [];
  const m = new ConnectionMachine((st) => seen.push(st));
  // Drive the machine into `s` along valid transitions.
  const path: Record<ConnectionState, ConnectionEvent[]> = {
    offline: [], connecting: ['start'], syncing: ['start', 'connected'], live: ['start', 'connected', 'caughtUp'], error: ['fatalError'],
  };
  for (const ev of path[s]) expect(m.send(ev)).toBe(true);
  expect(m.state).toBe(s);
  seen.length = 0;
  expect(m.send(e)).toBe(next !== null);
  expect(m.state).toBe(next ?? s);
  expect(seen).toEqual(next !== null && next !== s ? [next] : []);
});

test('backoff: exponential, capped, half fixed and half random', () => {
  const at = (n: number, r: number) => backoffDelay(n, { baseMs: 100, maxMs: 1000, random: () => r });
  expect([0, 1, 2, 3, 4, 5].map((n) => at(n, 0))).toEqual([50, 100, 200, 400, 500, 500]);
  expect([0, 1, 2, 3, 4, 5].map((n) => at(n, 0.999999))).toEqual([100, 200, 400, 800, 1000, 1000]);
  expect(backoffDelay(3)).toBeGreaterThanOrEqual(1000);
  expect(backoffDelay(3)).toBeLessThanOrEqual(2000);
});

test('typed emitter: on/once/off, a throwing listener does not stop the others', async () => {
  const e = new TypedEmitter<{ a: number; b: string }>();
  const got: unknown[] = [];
  const off = e.on('a', (n) => got.push(n));
  e.once('b', (s) => got.push(s));
  e.on('a', () => {
    throw new Error('listener bug');
  });
  const errors: unknown[] = [];
  const onErr = (err: unknown) => errors.push(err);
  process.on('uncaughtException', onErr);
  e.emit('a', 1);
  e.emit('b', 'x');
  e.emit('b', 'y');
  off();
  e.emit('a', 2);
  await new Promise((r) => setTimeout(r, 5));
  process.off('uncaughtException', onErr);
  expect(got).toEqual([1, 'x']);
  expect(errors).toHaveLength(2);
});

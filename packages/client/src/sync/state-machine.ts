/**
 * The connection state machine, as a table: `TRANSITIONS[state][event]` is the next state, or
 * null when the event is not valid in that state (it is then ignored).
 *
 * - offline: no connection held (initial state, stopped, or waiting to retry after a network error)
 * - connecting: first exchange with the server in progress
 * - syncing: exchanging changes
 * - live: caught up and listening for changes (subscription; polling today)
 * - error: a failure retrying cannot fix (credentials, schema); `start`/`syncStart` try again
 */
export type ConnectionState = 'offline' | 'connecting' | 'syncing' | 'live' | 'error';
export type ConnectionEvent = 'start' | 'syncStart' | 'connected' | 'caughtUp' | 'done' | 'networkError' | 'fatalError' | 'stop';

export const CONNECTION_STATES: readonly ConnectionState[] = ['offline', 'connecting', 'syncing', 'live', 'error'];
export const CONNECTION_EVENTS: readonly ConnectionEvent[] = ['start', 'syncStart', 'connected', 'caughtUp', 'done', 'networkError', 'fatalError', 'stop'];

export const TRANSITIONS: Record<ConnectionState, Record<ConnectionEvent, ConnectionState | null>> = {
  offline: { start: 'connecting', syncStart: 'connecting', connected: null, caughtUp: null, done: null, networkError: null, fatalError: 'error', stop: null },
  connecting: { start: null, syncStart: null, connected: 'syncing', caughtUp: null, done: null, networkError: 'offline', fatalError: 'error', stop: 'offline' },
  syncing: { start: null, syncStart: null, connected: null, caughtUp: 'live', done: 'offline', networkError: 'offline', fatalError: 'error', stop: 'offline' },
  live: { start: null, syncStart: 'syncing', connected: null, caughtUp: null, done: 'offline', networkError: 'offline', fatalError: 'error', stop: 'offline' },
  error: { start: 'connecting', syncStart: 'connecting', connected: null, caughtUp: null, done: null, networkError: null, fatalError: null, stop: 'offline' },
};

export function nextState(state: ConnectionState, event: ConnectionEvent): ConnectionState | null {
  return TRANSITIONS[state][event];
}

/** Holds the current state and reports changes. */
export class ConnectionMachine {
  #state: ConnectionState = 'offline';
  readonly #onChange: (state: ConnectionState, prev: ConnectionState, event: ConnectionEvent) => void;
  constructor(onChange: (state: ConnectionState, prev: ConnectionState, event: ConnectionEvent) => void) {
    this.#onChange = onChange;
  }
  get state(): ConnectionState {
    return this.#state;
  }
  /** Applies an event; returns false (and stays put) when it is not valid in the current state. */
  send(event: ConnectionEvent): boolean {
    const next = nextState(this.#state, event);
    if (next === null) return false;
    const prev = this.#state;
    this.#state = next;
    if (next !== prev) this.#onChange(next, prev, event);
    return true;
  }
}

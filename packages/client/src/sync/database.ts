/**
 * `openDatabase(path, options)`: a better-sqlite3 connection for the app (`db`) with the SQLite
 * Sync SQL functions registered on it, plus the async API (`sync`, `send`, `receive`, `status`,
 * live mode with `start`/`stop`) and typed events (`state`, `progress`, `changes`, `error`).
 */
import Database from 'better-sqlite3';
import { toHex } from '@offsync/core';
import type { SyncEngine } from '@offsync/core';
import { createSyncEngine, openSyncDatabase } from '@offsync/core/sqlite';
import { backoffDelay, wait } from './backoff.ts';
import { createBlockingHttp } from './blocking-http.ts';
import type { BlockingHttp } from './blocking-http.ts';
import { TypedEmitter } from './emitter.ts';
import { createFetchHttp, SyncError } from './http.ts';
import type { ProtocolContext } from './protocol.ts';
import { runAsync, SyncSession } from './session.ts';
import type { Step } from './session.ts';
import { isResyncRequired, resyncPending } from './resync.ts';
import { ClientSettings } from './settings.ts';
import { registerSqlFunctions } from './sql-functions.ts';
import type { SqlHost } from './sql-functions.ts';
import { ConnectionMachine } from './state-machine.ts';
import type { ConnectionState } from './state-machine.ts';
import { BlockingHttpTransport, HttpSyncTransport, NO_NETWORK_CONTEXT } from './transport.ts';
import type { BlockingSyncTransport, SyncTransport } from './transport.ts';
import type { NetworkConfig, ReceiveResult, SendResult, SyncResult } from './types.ts';
import { GraphqlSyncTransport, liveModeOf } from './graphql-transport.ts';
import { liveLoop } from './live.ts';
import type { LiveHandle } from './live.ts';
import { DEFAULT_SERVER_URL } from './database-types.ts';
import type { ClientStatus, OffSyncEvents, OpenDatabaseOptions } from './database-types.ts';

export { DEFAULT_SERVER_URL } from './database-types.ts';
export type { ClientStatus, ErrorEvent, OffSyncEvents, OpenDatabaseOptions, StateEvent } from './database-types.ts';

/** What a call on a closing or closed database rejects with. */
function closedError(): SyncError {
  return new SyncError('closed', 'the database is closed', false);
}

export class OffSyncDatabase extends TypedEmitter<OffSyncEvents> {
  /** The connection the app uses (better-sqlite3). */
  readonly db: Database.Database;
  /** The sync engine (on an internal connection for file databases, on `db` for `:memory:`). */
  readonly engine: SyncEngine;
  readonly settings: ClientSettings;
  readonly session: SyncSession;
  readonly #opts: OpenDatabaseOptions;
  readonly #machine: ConnectionMachine;
  readonly #transport: SyncTransport;
  #ctx: ProtocolContext | undefined;
  #credential: string | undefined;
  #blockingHttp: BlockingHttp | undefined;
  #blocking: BlockingSyncTransport | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #live: { ctl: AbortController; sub: LiveHandle | undefined } | undefined;
  /** Set by `close()`: no new request starts, no retry waits; the run in progress ends at its next request. */
  #closing = false;
  readonly #closeCtl = new AbortController();
  #closed: Promise<void> | undefined;
  readonly #memory: boolean;

  constructor(path: string, opts: OpenDatabaseOptions = {}) {
    super();
    this.#opts = opts;
    const memory = path === ':memory:' || path === '';
    this.#memory = memory;
    if (memory) {
      this.db = new Database(':memory:');
      this.engine = createSyncEngine(this.db);
    } else {
      // The engine's connection first: it creates the metadata and switches the file to WAL.
      this.engine = openSyncDatabase(path);
      this.db = new Database(path);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('busy_timeout = 5000');
    }
    this.settings = new ClientSettings(this.engine.driver);
    this.session = new SyncSession(this.engine, this.settings, {
      ...(opts.maxChunkBytes === undefined ? {} : { maxChunkBytes: opts.maxChunkBytes }),
      ...(opts.maxChunks === undefined ? {} : { maxChunks: opts.maxChunks }),
      onProgress: (p) => this.emit('progress', p),
      onChanges: (c) => this.emit('changes', c),
      onResync: (r) => this.emit('resync', r),
      onSiteId: () => {
        if (this.#ctx !== undefined) this.#ctx = { net: this.#ctx.net, siteHex: this.siteId };
      },
    });
    this.#machine = new ConnectionMachine((state, previous, event) => this.emit('state', { state, previous, event }));
    this.#credential = opts.apiKey ?? opts.token;
    if (opts.databaseId !== undefined) this.#initNetwork(opts.serverUrl ?? DEFAULT_SERVER_URL, opts.databaseId);
    const retryWait = opts.retryWait;
    const http = (): HttpSyncTransport =>
      new HttpSyncTransport(() => this.#context(), opts.fetch ?? createFetchHttp(opts.httpTimeoutMs === undefined ? {} : { timeoutMs: opts.httpTimeoutMs }), {
        ...opts,
        ...(retryWait === undefined ? {} : { retryWait }),
      });
    this.#transport =
      opts.transport ?? (liveModeOf(opts) === 'graphql' ? new GraphqlSyncTransport({ ...opts, http: http(), context: () => this.#context() }) : http());
    registerSqlFunctions(this.#sqlHost(memory));
  }

  get state(): ConnectionState {
    return this.#machine.state;
  }

  /** 32 lowercase hex digits. */
  get siteId(): string {
    return toHex(this.engine.siteId);
  }

  /** Sends own changes, then receives everything new. Retries retryable failures with backoff. */
  sync(): Promise<SyncResult> {
    return this.#run(function* (s): Step<SyncResult> {
      const send = yield* s.send();
      const receive = yield* s.receive();
      return { send, receive };
    });
  }

  send(): Promise<SendResult> {
    return this.#run((s) => s.send());
  }

  receive(): Promise<ReceiveResult> {
    return this.#run((s) => s.receive());
  }

  /** Asks the server whether own changes are still unacknowledged. */
  hasUnsentChanges(): Promise<boolean> {
    return this.#run((s) => s.hasUnsent());
  }

  /** Local status (no request). */
  async status(): Promise<ClientStatus> {
    if (this.#closing) throw closedError();
    await this.#queue.catch(() => undefined);
    const net = this.#ctx?.net;
    return {
      state: this.state,
      siteId: this.siteId,
      dbVersion: this.engine.dbVersion(),
      pendingLocal: this.session.hasPendingLocal(),
      sendVersion: this.settings.get('send_dbversion'),
      cursor: this.settings.cursor(),
      network: net === undefined ? null : { address: net.address, databaseId: net.databaseId },
    };
  }

  /**
   * Live mode: listen through the transport's `subscribe` (graphql-ws `changes` subscription, or
   * polling) and push local writes shortly after they are committed.
   */
  start(): void {
    if (this.#live !== undefined || this.#closing) return;
    this.#machine.send('start');
    const live = { ctl: new AbortController(), sub: undefined as LiveHandle | undefined };
    this.#live = live;
    live.sub = liveLoop({
      transport: this.#transport,
      session: this.session,
      signal: live.ctl.signal,
      exclusive: (fn) => this.#exclusive(fn),
      machine: this.#machine,
      reportError: (error, attempt) => this.#reportError(error, attempt),
      backoff: this.#opts,
      ...(this.#opts.pushDebounceMs === undefined ? {} : { pushDebounceMs: this.#opts.pushDebounceMs }),
      ...(this.#opts.watchMs === undefined ? {} : { watchMs: this.#opts.watchMs }),
    });
  }

  /** Live mode: push pending local writes now-ish (they are also detected by polling the connection). */
  notifyLocalWrite(): void {
    this.#live?.sub?.notifyLocalWrite();
  }

  async stop(): Promise<void> {
    const live = this.#live;
    this.#live = undefined;
    if (live === undefined) return;
    live.ctl.abort();
    live.sub?.close();
    await this.#queue.catch(() => undefined);
    this.#machine.send('stop');
  }

  /**
   * Stops live mode, lets a run in progress end (it stops before its next request: what it
   * applied so far is committed and its cursor saved, so the next open resumes there), then closes
   * the connections. Calls made meanwhile or afterwards reject with SyncError `closed`.
   * Idempotent: every call returns the same promise.
   */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    this.#closing = true;
    this.#closeCtl.abort();
    await this.stop();
    await this.#queue.catch(() => undefined);
    await this.#blockingHttp?.close();
    if (!this.#memory) this.engine.close();
    if (this.db.open) this.db.close();
    this.removeAll();
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.catch(() => undefined).then(fn);
    this.#queue = next;
    return next;
  }

  #run<T>(make: (s: SyncSession) => Step<T>): Promise<T> {
    return this.#exclusive(async () => {
      if (this.#closing) throw closedError();
      const live = this.#live !== undefined;
      const max = this.#opts.maxAttempts ?? 5;
      const sleep = this.#opts.retryWait ?? wait;
      // `resync_required` (docs/PROTOCOL.md "Compaction and the resync horizon"): resync once, then run again.
      let resynced = false;
      for (let attempt = 0; ; attempt++) {
        this.#machine.send('syncStart');
        try {
          if (resyncPending(this.settings)) await runAsync(this.session.resync(), this.#connectedTransport()); // an interrupted one
          let out = await runAsync(make(this.session), this.#connectedTransport());
          if (!resynced && asksResync(out)) {
            resynced = true;
            await runAsync(this.session.resync(), this.#connectedTransport());
            out = await runAsync(make(this.session), this.#connectedTransport());
          }
          this.#machine.send('connected');
          this.#machine.send(live ? 'caughtUp' : 'done');
          this.#reportRefusal(out, attempt);
          return out;
        } catch (e) {
          if (this.#closing) throw closedError();
          if (!resynced && isResyncRequired(e)) {
            resynced = true;
            attempt--; // (not a failed attempt: the run starts again after the resync)
            try {
              await runAsync(this.session.resync(), this.#connectedTransport());
              continue;
            } catch (again) {
              e = again;
            }
          }
          const error = this.#reportError(e, attempt);
          if (!(e instanceof SyncError && e.retryable) || attempt + 1 >= max) throw error;
          await sleep(backoffDelay(attempt, this.#opts), this.#closeCtl.signal);
          if (this.#closing) throw closedError();
        }
      }
    });
  }

  /** The transport, reporting the first answer of a run as `connected`. */
  #connectedTransport(): SyncTransport {
    const t = this.#transport;
    const m = this.#machine;
    // No request starts once close() was called: the run stops between two requests.
    const seen = <T>(f: () => Promise<T>): Promise<T> => (this.#closing ? Promise.reject(closedError()) : f().then((v) => (m.send('connected'), v)));
    return {
      push: (c) => seen(() => t.push(c)),
      pull: (r) => seen(() => t.pull(r)),
      download: (u) => seen(() => t.download(u)),
      status: () => seen(() => t.status()),
      subscribe: (o) => t.subscribe(o),
    };
  }

  /**
   * A refusal the server reports inside a 200 (G3 `failures.apply` / `failures.check`, e.g. a
   * schema mismatch): the run itself succeeded and the result carries `lastFailure`, but the app
   * must hear of it — an `error` event with the server's code, message and retryability.
   */
  #reportRefusal(out: unknown, attempt: number): void {
    const failureOf = (r: unknown): Record<string, unknown> | undefined =>
      typeof r === 'object' && r !== null && 'lastFailure' in r ? ((r as { lastFailure?: Record<string, unknown> }).lastFailure ?? undefined) : undefined;
    const parts = typeof out === 'object' && out !== null ? [out, (out as { send?: unknown }).send, (out as { receive?: unknown }).receive] : [];
    for (const f of parts.map(failureOf)) {
      if (f === undefined) continue;
      const retryable = f['retryable'] === true;
      const error = new SyncError(typeof f['code'] === 'string' ? f['code'] : 'refused', typeof f['message'] === 'string' ? f['message'] : 'the server refused the request', retryable);
      this.emit('error', { error, retryable, attempt });
      return;
    }
  }

  #reportError(e: unknown, attempt: number): Error {
    const error = e instanceof Error ? e : new Error(String(e));
    const retryable = e instanceof SyncError && e.retryable;
    this.#machine.send(retryable ? 'networkError' : 'fatalError');
    this.emit('error', { error, retryable, attempt });
    return error;
  }

  #context(): ProtocolContext {
    if (this.#ctx === undefined) throw new SyncError('no_network', NO_NETWORK_CONTEXT, false);
    return this.#ctx;
  }

  #initNetwork(address: string, databaseId: string): void {
    const net: NetworkConfig = { address: address.replace(/\/+$/, ''), databaseId };
    if (this.#credential !== undefined) net.credential = this.#credential;
    this.#ctx = { net, siteHex: this.siteId };
  }

  #sqlHost(memory: boolean): SqlHost {
    const engine = this.engine;
    return {
      db: this.db,
      sqlEngine: memory ? undefined : this.engine,
      get siteId() {
        return engine.siteId; // (renewed by a resync)
      },
      settings: this.settings,
      session: this.session,
      defaultServerUrl: this.#opts.serverUrl ?? DEFAULT_SERVER_URL,
      blocking: () => {
        this.#blockingHttp ??= createBlockingHttp(this.#opts.httpTimeoutMs === undefined ? {} : { timeoutMs: this.#opts.httpTimeoutMs });
        this.#blocking ??= new BlockingHttpTransport(() => this.#context(), this.#blockingHttp.fetch);
        return this.#blocking;
      },
      initNetwork: (address, id) => this.#initNetwork(address, id),
      setCredential: (c) => {
        this.#credential = c;
        if (this.#ctx !== undefined) {
          this.#ctx.net.credential = c;
          delete this.#ctx.ticket;
        }
      },
      terminate: () => (this.#ctx = undefined),
      logout: () => this.#logout(),
    };
  }

  /** `cloudsync_network_logout()`: forget the credential and network, delete local rows of synced tables, start over. */
  #logout(): void {
    this.#credential = undefined;
    this.#ctx = undefined;
    const e = this.engine;
    e.driver.transaction(() => {
      for (const t of e.syncedTables()) {
        e.cleanup(t.name);
        e.driver.exec(`DELETE FROM "${t.name.replace(/"/g, '""')}"`);
        e.init(t.name, t.algorithm, 0b11);
      }
      this.settings.reset();
      this.settings.set('own_max', 0);
    });
  }
}

/** A run's result carries a G3 refusal asking for a resync (an upload refused with `resync_required`). */
function asksResync(out: unknown): boolean {
  if (typeof out !== 'object' || out === null) return false;
  const o = out as { lastFailure?: unknown; send?: { lastFailure?: unknown }; receive?: { lastFailure?: unknown } };
  return [o.lastFailure, o.send?.lastFailure, o.receive?.lastFailure].some((f) => f !== undefined && isResyncRequired(f));
}

/** Opens (creating if needed) a database file, or `:memory:` (async API only), for syncing. */
export function openDatabase(path: string, options: OpenDatabaseOptions = {}): OffSyncDatabase {
  return new OffSyncDatabase(path, options);
}

/**
 * Live sessions: the in-process registry of open `changes` subscriptions and of graphql-ws
 * sockets authenticated by a device credential, so that they end with their credential
 * (docs/PROTOCOL.md "Live subscriptions end with their credential").
 *
 * Two paths end a session, whichever comes first:
 *
 * - **Events** (`syncAccessEnded` on the typed pub/sub, so across processes with Redis): the
 *   control plane publishes one when it revokes an API key or access token, removes a device,
 *   disables OffSync (or deletes the database) or changes the RLS mode. Matching sessions end at
 *   once (in-process: within the microtasks of the publish, before any later request is handled).
 * - **Re-validation** every `intervalMs` (default 1 s): expiry (`Principal.expiresAt` against the
 *   injected clock), the database (gone / disabled / RLS mode other than at the first check), each
 *   distinct credential (API key / access token still valid, JWT provider still configured) and each
 *   site (a device registered at an earlier check and gone now). A missed event (Redis reconnect,
 *   a write outside the services) still ends the stream within about one interval.
 *
 * Which sessions a reason ends: CREDENTIAL_REVOKED / CREDENTIAL_EXPIRED — every session of that
 * credential (subscriptions and sockets); DEVICE_REMOVED — the subscriptions of that site;
 * SYNC_DISABLED — every subscription of the database; RLS_MODE_CHANGED — the subscriptions of
 * users (access tokens, JWTs: what they may receive depends on the mode; API keys and the admin
 * key bypass RLS and keep streaming). A transient failure of a check ends nothing (it is logged).
 */
import { ApiError, isApiError } from '../../../errors.ts';
import type { ApiPubSub, SyncAccessEndedPayload } from '../../../pubsub.ts';
import type { Services } from '../../../services.ts';
import type { Principal } from '../sync-deps.ts';

export const LiveEndCode = {
  CREDENTIAL_REVOKED: 'CREDENTIAL_REVOKED',
  CREDENTIAL_EXPIRED: 'CREDENTIAL_EXPIRED',
  DEVICE_REMOVED: 'DEVICE_REMOVED',
  SYNC_DISABLED: 'SYNC_DISABLED',
  RLS_MODE_CHANGED: 'RLS_MODE_CHANGED',
} as const;
export type LiveEndCode = (typeof LiveEndCode)[keyof typeof LiveEndCode];

/** graphql-ws close code of a socket whose own device credential was revoked or expired (reason = the LiveEndCode). */
export const CREDENTIAL_CLOSE_CODE = 4401;

const MESSAGES: Record<LiveEndCode, string> = {
  CREDENTIAL_REVOKED: 'The credential of this subscription was revoked',
  CREDENTIAL_EXPIRED: 'The credential of this subscription expired',
  DEVICE_REMOVED: 'The device of this subscription was removed',
  SYNC_DISABLED: 'OffSync was disabled for this database',
  RLS_MODE_CHANGED: 'The row-level security mode of this database changed',
};

/** The error a `changes` subscription ends with (`extensions.code` = the LiveEndCode). */
export function liveEndError(code: LiveEndCode): ApiError {
  return new ApiError(code, MESSAGES[code]);
}

export interface LiveSessionInit {
  databaseId: string;
  /** `subscription`: one `changes` stream of a site; `socket`: a graphql-ws connection authenticated by a device credential. */
  scope: 'subscription' | 'socket';
  /** The subscription's site (32 lower-case hex digits). */
  siteId?: string;
  principal: Principal;
  /** Called once, when the session ends for `code` (not when it is unregistered). */
  end(code: LiveEndCode): void;
}

/** What the re-validation reads (the control plane; tests inject fakes). */
export interface LiveSessionChecks {
  /** The database's sync state; null when it no longer exists. */
  database(databaseId: string): Promise<{ enabled: boolean; rlsMode: string } | null>;
  /** Which of these credential ids (`apiKey:…`, `accessToken:…`, `jwt:…`) are still valid. */
  credentials(databaseId: string, credentialIds: readonly string[]): Promise<Set<string>>;
  /** Which of these sites are registered devices. */
  devices(databaseId: string, siteIds: readonly string[]): Promise<Set<string>>;
}

export interface LiveSessionsOptions {
  checks: LiveSessionChecks;
  /** Clock of the expiry check (default Date.now). */
  now?: () => number;
  /** Re-validation interval (default 1000 ms). */
  intervalMs?: number;
  /** Starts the periodic timer; returns its cancel function (default setInterval, unref'd). */
  every?: (ms: number, fn: () => void) => () => void;
  onError?: (error: unknown) => void;
}

interface Session extends LiveSessionInit {
  ended: boolean;
  /** RLS mode at the first check that saw the session. */
  rlsMode?: string;
  /** A check found the site registered. */
  deviceSeen: boolean;
}

interface DatabaseEntry {
  sessions: Set<Session>;
  stop(): void;
}

const isUser = (p: Principal): boolean => p.kind === 'accessToken' || p.kind === 'jwt';

/**
 * Ids (credentials, sites) one control-plane query of a re-validation round checks at most. The
 * control plane's client runs a query synchronously on the event loop (better-sqlite3): one query
 * for the 1,000 sites of 1,000 live subscribers stalled every live fan-out of that moment for
 * 5–20 ms (its 1,000 parameters), once per interval; a chunk is about a millisecond.
 */
export const CHECK_CHUNK = 250;

/**
 * `check` over `ids` in chunks of {@link CHECK_CHUNK}, one turn of the event loop apart (live
 * events and requests are served between the queries); the union of what they return. Every id
 * is still checked in the round.
 */
async function inChunks(ids: readonly string[], check: (chunk: readonly string[]) => Promise<Set<string>>): Promise<Set<string>> {
  if (ids.length <= CHECK_CHUNK) return check(ids);
  const out = new Set<string>();
  for (let i = 0; i < ids.length; i += CHECK_CHUNK) {
    if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    for (const id of await check(ids.slice(i, i + CHECK_CHUNK))) out.add(id);
  }
  return out;
}

const defaultEvery = (ms: number, fn: () => void): (() => void) => {
  const t = setInterval(fn, ms);
  t.unref();
  return () => clearInterval(t);
};

export class LiveSessions {
  readonly #pubsub: ApiPubSub;
  readonly #checks: LiveSessionChecks;
  readonly #now: () => number;
  readonly #intervalMs: number;
  readonly #every: (ms: number, fn: () => void) => () => void;
  readonly #onError: (error: unknown) => void;
  readonly #dbs = new Map<string, DatabaseEntry>();
  #cancelTimer: (() => void) | undefined;
  #round: Promise<void> | undefined;

  constructor(pubsub: ApiPubSub, options: LiveSessionsOptions) {
    this.#pubsub = pubsub;
    this.#checks = options.checks;
    this.#now = options.now ?? (() => Date.now());
    this.#intervalMs = options.intervalMs ?? 1000;
    this.#every = options.every ?? defaultEvery;
    this.#onError = options.onError ?? ((e) => console.error('sync: live sessions', e));
  }

  /**
   * Registers a session: every `syncAccessEnded` event published after this call returns reaches
   * it (the pub/sub listener is attached synchronously). Returns the function that unregisters it.
   */
  register(init: LiveSessionInit): () => void {
    const s: Session = { ...init, ended: false, deviceSeen: false };
    let entry = this.#dbs.get(init.databaseId);
    if (entry === undefined) entry = this.#open(init.databaseId);
    entry.sessions.add(s);
    this.#cancelTimer ??= this.#every(this.#intervalMs, () => void this.check());
    return () => this.#remove(s);
  }

  /** True when the principal's credential has expired by this registry's clock (checked before every batch). */
  expired(principal: Principal): boolean {
    return principal.expiresAt !== undefined && this.#now() >= principal.expiresAt;
  }

  /** Open sessions (all, or of one database). */
  size(databaseId?: string): number {
    if (databaseId !== undefined) return this.#dbs.get(databaseId)?.sessions.size ?? 0;
    let n = 0;
    for (const e of this.#dbs.values()) n += e.sessions.size;
    return n;
  }

  /** Ends the sessions an event names (the pub/sub listener; exposed for tests). */
  apply(event: SyncAccessEndedPayload): void {
    const entry = this.#dbs.get(event.databaseId);
    if (entry === undefined) return;
    for (const s of [...entry.sessions]) {
      const sub = s.scope === 'subscription';
      switch (event.reason) {
        case 'CREDENTIAL_REVOKED':
          if (event.credentialId !== undefined && s.principal.credentialId === event.credentialId) this.#end(s, 'CREDENTIAL_REVOKED');
          break;
        case 'DEVICE_REMOVED':
          if (sub && event.siteId !== undefined && s.siteId === event.siteId) this.#end(s, 'DEVICE_REMOVED');
          break;
        case 'SYNC_DISABLED':
          if (sub) this.#end(s, 'SYNC_DISABLED');
          break;
        case 'RLS_MODE_CHANGED':
          if (sub && isUser(s.principal)) this.#end(s, 'RLS_MODE_CHANGED');
          break;
      }
    }
  }

  /** One re-validation round (the timer runs it every `intervalMs`; a round never overlaps another). */
  check(): Promise<void> {
    this.#round ??= this.#checkAll().finally(() => {
      this.#round = undefined;
    });
    return this.#round;
  }

  async #checkAll(): Promise<void> {
    for (const [databaseId, entry] of [...this.#dbs]) {
      try {
        await this.#checkDatabase(databaseId, entry);
      } catch (e) {
        this.#onError(e);
      }
    }
  }

  async #checkDatabase(databaseId: string, entry: DatabaseEntry): Promise<void> {
    const now = this.#now();
    const open = (): Session[] => [...entry.sessions].filter((s) => !s.ended);
    for (const s of open()) if (s.principal.expiresAt !== undefined && now >= s.principal.expiresAt) this.#end(s, 'CREDENTIAL_EXPIRED');
    if (open().length === 0) return;

    const db = await this.#checks.database(databaseId);
    for (const s of open()) {
      if (s.scope !== 'subscription') continue;
      if (db === null || !db.enabled) this.#end(s, 'SYNC_DISABLED');
      else if (isUser(s.principal)) {
        if (s.rlsMode === undefined) s.rlsMode = db.rlsMode;
        else if (s.rlsMode !== db.rlsMode) this.#end(s, 'RLS_MODE_CHANGED');
      }
    }

    const ids = [...new Set(open().flatMap((s) => (s.principal.credentialId === undefined ? [] : [s.principal.credentialId])))];
    if (ids.length > 0) {
      const valid = await inChunks(ids, (chunk) => this.#checks.credentials(databaseId, chunk));
      for (const s of open()) {
        const id = s.principal.credentialId;
        if (id !== undefined && !valid.has(id)) this.#end(s, 'CREDENTIAL_REVOKED');
      }
    }

    const sites = [...new Set(open().flatMap((s) => (s.scope === 'subscription' && s.siteId !== undefined ? [s.siteId] : [])))];
    if (sites.length > 0) {
      const present = await inChunks(sites, (chunk) => this.#checks.devices(databaseId, chunk));
      for (const s of open()) {
        if (s.scope !== 'subscription' || s.siteId === undefined) continue;
        if (present.has(s.siteId)) s.deviceSeen = true;
        else if (s.deviceSeen) this.#end(s, 'DEVICE_REMOVED');
      }
    }
  }

  #end(s: Session, code: LiveEndCode): void {
    if (s.ended) return;
    s.ended = true;
    this.#remove(s);
    try {
      s.end(code);
    } catch (e) {
      this.#onError(e);
    }
  }

  #remove(s: Session): void {
    const entry = this.#dbs.get(s.databaseId);
    if (entry === undefined || !entry.sessions.delete(s)) return;
    if (entry.sessions.size === 0) {
      this.#dbs.delete(s.databaseId);
      entry.stop();
    }
    if (this.#dbs.size === 0) {
      this.#cancelTimer?.();
      this.#cancelTimer = undefined;
    }
  }

  #open(databaseId: string): DatabaseEntry {
    const iterator = this.#pubsub.subscribe('syncAccessEnded', databaseId)[Symbol.asyncIterator]();
    const entry: DatabaseEntry = { sessions: new Set(), stop: () => void iterator.return?.() };
    this.#dbs.set(databaseId, entry);
    // The first next() runs the pub/sub repeater's executor synchronously: the listener is attached now.
    const pump = async (): Promise<void> => {
      for (;;) {
        const r = await iterator.next();
        if (r.done === true) return;
        this.apply(r.value);
      }
    };
    pump().catch((e: unknown) => this.#onError(e));
    return entry;
  }
}

/** The re-validation over the control-plane services. */
export function serviceChecks(services: Services): LiveSessionChecks {
  return {
    async database(databaseId) {
      try {
        const db = await services.databases.getDatabase(databaseId);
        return { enabled: db.offSyncEnabled, rlsMode: db.rlsMode === 'ENFORCE' ? 'ENFORCE' : 'BYPASS' };
      } catch (e) {
        if (isApiError(e, 'NOT_FOUND')) return null;
        throw e;
      }
    },
    async credentials(databaseId, credentialIds) {
      const apiKeys: string[] = [];
      const accessTokens: string[] = [];
      let jwt = false;
      for (const id of credentialIds) {
        if (id.startsWith('apiKey:')) apiKeys.push(id.slice('apiKey:'.length));
        else if (id.startsWith('accessToken:')) accessTokens.push(id.slice('accessToken:'.length));
        else if (id.startsWith('jwt:')) jwt = true;
      }
      const ids = await services.auth.validCredentialIds(databaseId, { apiKeys, accessTokens });
      // A JWT cannot be revoked on its own: it ends at `exp` (expiresAt) or with its provider.
      const provider = jwt && (await services.auth.getJwtVerificationConfig(databaseId)) !== null;
      const out = new Set<string>();
      for (const id of credentialIds) {
        const [kind, rest] = [id.slice(0, id.indexOf(':')), id.slice(id.indexOf(':') + 1)];
        if ((kind === 'apiKey' || kind === 'accessToken') && ids.has(rest)) out.add(id);
        else if (kind === 'jwt' && provider) out.add(id);
      }
      return out;
    },
    async devices(databaseId, siteIds) {
      const rows = await services.prisma.device.findMany({ where: { databaseId, siteId: { in: [...siteIds] } }, select: { siteId: true } });
      return new Set(rows.map((r) => r.siteId));
    },
  };
}

const registries = new WeakMap<Services, LiveSessions>();

/** The registry of a server (one per Services instance), re-validating against its services and clock. */
export function liveSessionsOf(services: Services): LiveSessions {
  let r = registries.get(services);
  if (r === undefined) {
    r = new LiveSessions(services.pubsub, {
      checks: serviceChecks(services),
      now: () => services.deps.clock.now(),
      onError: (e) => services.deps.logger.error('sync: live session check failed', { error: e instanceof Error ? e.message : String(e) }),
    });
    registries.set(services, r);
  }
  return r;
}

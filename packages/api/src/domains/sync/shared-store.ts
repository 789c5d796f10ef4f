/**
 * The state sync requests leave behind for later requests — upload bytes and single-use nonces of
 * artifact URLs (artifacts.ts), G3 continuation cursors (http/g3-cursors.ts), chunks of G3 batches
 * being assembled (chunk-batches.ts) — behind one small interface with two implementations
 * (docs/ARCHITECTURE.md "Scaling out"):
 *
 * - {@link MemorySharedStore} (default): this process's memory; one node.
 * - {@link RedisSharedStore} (`REDIS_URL`): one Redis shared by every node, so any node serves any
 *   request: a URL issued by one node is used on another, the chunks of one batch land on
 *   different nodes.
 *
 * Every value has a TTL. Single use holds across nodes because the operations callers build on are
 * atomic in Redis: `setIfAbsent` (SET NX) and `take` (GETDEL). Byte accounting (pending uploads,
 * buffered chunks) uses ledgers: a hash of member → bytes with an expiry per member, summed by the
 * callers against their limits. A check-then-add against a ledger is not atomic across nodes, so
 * concurrent requests may overshoot a limit by what they add together (bounded by the
 * concurrent-upload quota); the memory store also refuses writes beyond `maxBytes` (503).
 */
import { Redis } from 'ioredis';
import { SyncError } from './sync-errors.ts';

export interface LedgerSummary {
  /** Bytes of the live members. */
  bytes: number;
  /** Live members. */
  members: number;
  /** Earliest expiry (ms since epoch) among live members, if any. */
  oldestExpiry: number | undefined;
}

export interface SharedStore {
  readonly kind: 'memory' | 'redis';
  /** Sets `key` (overwriting) for `ttlMs`. */
  set(key: string, value: Uint8Array | string, ttlMs: number): Promise<void>;
  /** Sets `key` only when absent (atomic); true when this call set it. */
  setIfAbsent(key: string, value: Uint8Array | string, ttlMs: number): Promise<boolean>;
  get(key: string): Promise<Buffer | undefined>;
  /** Gets and deletes `key` atomically: of concurrent callers, at most one gets the value. */
  take(key: string): Promise<Buffer | undefined>;
  delete(...keys: string[]): Promise<void>;
  /** Appends to the list at `key` and sets its TTL; returns the list's new length. */
  append(key: string, value: Uint8Array, ttlMs: number): Promise<number>;
  /** The list at `key` (empty when absent). */
  list(key: string): Promise<Buffer[]>;
  /** Item `index` of the list at `key`. */
  item(key: string, index: number): Promise<Buffer | undefined>;
  /** Length of the list at `key` (0 when absent). */
  length(key: string): Promise<number>;
  /** Renews the TTL of `key` (no-op when absent). */
  touch(key: string, ttlMs: number): Promise<void>;
  /** Sets (overwrites) `member` of the ledger at `key`: `bytes` held until `expiresAt` (ms since epoch). */
  ledgerSet(key: string, member: string, bytes: number, expiresAt: number): Promise<void>;
  ledgerRemove(key: string, member: string): Promise<void>;
  /** Sums the live members of a ledger (expired ones are dropped). */
  ledgerRead(key: string, now: number): Promise<LedgerSummary>;
  /** Releases connections (the memory store forgets everything). */
  close(): Promise<void>;
}

const asBuffer = (v: Uint8Array | string): Buffer => (typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v.buffer, v.byteOffset, v.byteLength));

function summarize(entries: Iterable<{ bytes: number; exp: number }>, now: number, drop: (i: number) => void): LedgerSummary {
  let bytes = 0;
  let members = 0;
  let oldest: number | undefined;
  let i = 0;
  for (const e of entries) {
    if (e.exp <= now) drop(i);
    else {
      bytes += e.bytes;
      members++;
      oldest = oldest === undefined ? e.exp : Math.min(oldest, e.exp);
    }
    i++;
  }
  return { bytes, members, oldestExpiry: oldest };
}

export interface MemorySharedStoreOptions {
  /** Bytes all values may hold together (default 2 GiB); beyond it writes are refused (503 `server_busy`). */
  maxBytes?: number;
  now?: () => number;
}

interface MemoryEntry {
  value: Buffer | Buffer[];
  bytes: number;
  exp: number;
}

/** The single-node store: this process's memory, with TTLs and a byte cap. */
export class MemorySharedStore implements SharedStore {
  readonly kind = 'memory' as const;
  readonly maxBytes: number;
  readonly #now: () => number;
  readonly #values = new Map<string, MemoryEntry>();
  readonly #ledgers = new Map<string, Map<string, { bytes: number; exp: number }>>();
  #bytes = 0;
  #nextSweep = 0;

  constructor(opts: MemorySharedStoreOptions = {}) {
    this.maxBytes = opts.maxBytes ?? 2 * 1024 * 1024 * 1024;
    this.#now = opts.now ?? Date.now;
  }

  /** Bytes held and keys (tests, diagnostics). */
  stats(): { bytes: number; keys: number } {
    this.#sweep(true);
    return { bytes: this.#bytes, keys: this.#values.size };
  }

  #live(key: string): MemoryEntry | undefined {
    const e = this.#values.get(key);
    if (e === undefined) return undefined;
    if (e.exp <= this.#now()) {
      this.#drop(key, e);
      return undefined;
    }
    return e;
  }

  #drop(key: string, e: MemoryEntry): void {
    this.#values.delete(key);
    this.#bytes -= e.bytes;
  }

  #sweep(force = false): void {
    const now = this.#now();
    if (!force && now < this.#nextSweep) return;
    this.#nextSweep = now + 10_000;
    for (const [k, e] of this.#values) if (e.exp <= now) this.#drop(k, e);
    for (const [k, l] of this.#ledgers) {
      for (const [m, e] of l) if (e.exp <= now) l.delete(m);
      if (l.size === 0) this.#ledgers.delete(k);
    }
  }

  #put(key: string, value: Buffer | Buffer[], bytes: number, ttlMs: number, replacing: MemoryEntry | undefined): void {
    this.#sweep();
    const growth = bytes - (replacing?.bytes ?? 0);
    if (growth > 0 && this.#bytes + growth > this.maxBytes) {
      this.#sweep(true);
      if (this.#bytes + growth > this.maxBytes) throw new SyncError('server_busy', 'the shared sync state of this server is full, retry later', { retryAfterSeconds: 5 });
    }
    if (replacing !== undefined) this.#drop(key, replacing);
    this.#values.set(key, { value, bytes, exp: this.#now() + ttlMs });
    this.#bytes += bytes;
  }

  set(key: string, value: Uint8Array | string, ttlMs: number): Promise<void> {
    const b = asBuffer(value);
    this.#put(key, b, b.byteLength, ttlMs, this.#live(key));
    return Promise.resolve();
  }

  setIfAbsent(key: string, value: Uint8Array | string, ttlMs: number): Promise<boolean> {
    if (this.#live(key) !== undefined) return Promise.resolve(false);
    const b = asBuffer(value);
    this.#put(key, b, b.byteLength, ttlMs, undefined);
    return Promise.resolve(true);
  }

  get(key: string): Promise<Buffer | undefined> {
    const v = this.#live(key)?.value;
    return Promise.resolve(Buffer.isBuffer(v) ? v : undefined);
  }

  take(key: string): Promise<Buffer | undefined> {
    const e = this.#live(key);
    if (e === undefined || !Buffer.isBuffer(e.value)) return Promise.resolve(undefined);
    this.#drop(key, e);
    return Promise.resolve(e.value);
  }

  delete(...keys: string[]): Promise<void> {
    for (const k of keys) {
      const e = this.#values.get(k);
      if (e !== undefined) this.#drop(k, e);
    }
    return Promise.resolve();
  }

  append(key: string, value: Uint8Array, ttlMs: number): Promise<number> {
    const e = this.#live(key);
    const list = e !== undefined && Array.isArray(e.value) ? e.value : [];
    const b = asBuffer(value);
    this.#put(key, [...list, b], (e?.bytes ?? 0) + b.byteLength, ttlMs, e);
    return Promise.resolve(list.length + 1);
  }

  list(key: string): Promise<Buffer[]> {
    const v = this.#live(key)?.value;
    return Promise.resolve(Array.isArray(v) ? [...v] : []);
  }

  item(key: string, index: number): Promise<Buffer | undefined> {
    const v = this.#live(key)?.value;
    return Promise.resolve(Array.isArray(v) ? v[index] : undefined);
  }

  length(key: string): Promise<number> {
    const v = this.#live(key)?.value;
    return Promise.resolve(Array.isArray(v) ? v.length : 0);
  }

  touch(key: string, ttlMs: number): Promise<void> {
    const e = this.#live(key);
    if (e !== undefined) e.exp = this.#now() + ttlMs;
    return Promise.resolve();
  }

  ledgerSet(key: string, member: string, bytes: number, expiresAt: number): Promise<void> {
    let l = this.#ledgers.get(key);
    if (l === undefined) this.#ledgers.set(key, (l = new Map()));
    l.set(member, { bytes, exp: expiresAt });
    return Promise.resolve();
  }

  ledgerRemove(key: string, member: string): Promise<void> {
    const l = this.#ledgers.get(key);
    l?.delete(member);
    if (l?.size === 0) this.#ledgers.delete(key);
    return Promise.resolve();
  }

  ledgerRead(key: string, now: number): Promise<LedgerSummary> {
    const l = this.#ledgers.get(key);
    if (l === undefined) return Promise.resolve({ bytes: 0, members: 0, oldestExpiry: undefined });
    const members = [...l.keys()];
    const expired: string[] = [];
    const s = summarize(l.values(), now, (i) => expired.push(members[i] as string));
    for (const m of expired) l.delete(m);
    if (l.size === 0) this.#ledgers.delete(key);
    return Promise.resolve(s);
  }

  close(): Promise<void> {
    this.#values.clear();
    this.#ledgers.clear();
    this.#bytes = 0;
    return Promise.resolve();
  }
}

/**
 * The subset of an ioredis client the Redis store uses (an ioredis `Redis` satisfies it; tests
 * without a Redis server pass an in-process fake). GETDEL needs Redis ≥ 6.2.
 */
export interface RedisKvClient {
  set(key: string, value: string | Buffer, px: 'PX', ms: number): Promise<unknown>;
  set(key: string, value: string | Buffer, px: 'PX', ms: number, nx: 'NX'): Promise<'OK' | null>;
  getBuffer(key: string): Promise<Buffer | null>;
  getdelBuffer(key: string): Promise<Buffer | null>;
  del(...keys: string[]): Promise<number>;
  rpush(key: string, value: Buffer): Promise<number>;
  lrangeBuffer(key: string, start: number, stop: number): Promise<Buffer[]>;
  lindexBuffer(key: string, index: number): Promise<Buffer | null>;
  llen(key: string): Promise<number>;
  pexpire(key: string, ms: number): Promise<number>;
  pexpireat(key: string, msSinceEpoch: number): Promise<number>;
  hset(key: string, field: string, value: string): Promise<number>;
  hdel(key: string, ...fields: string[]): Promise<number>;
  hgetall(key: string): Promise<Record<string, string>>;
}

const ttl = (ms: number): number => Math.max(1, Math.ceil(ms));

/**
 * The store of N nodes: one Redis, every key under `prefix` (default `offsync:sync:`). Ledgers are
 * hashes (member → `bytes:expiresAt`) whose key expires with their latest member.
 */
export class RedisSharedStore implements SharedStore {
  readonly kind = 'redis' as const;
  readonly #client: RedisKvClient;
  readonly #prefix: string;
  readonly #onClose: () => Promise<void>;

  constructor(client: RedisKvClient, opts: { prefix?: string; onClose?: () => Promise<void> } = {}) {
    this.#client = client;
    this.#prefix = opts.prefix ?? 'offsync:sync:';
    this.#onClose = opts.onClose ?? (() => Promise.resolve());
  }

  #k(key: string): string {
    return this.#prefix + key;
  }

  async set(key: string, value: Uint8Array | string, ttlMs: number): Promise<void> {
    await this.#client.set(this.#k(key), asBuffer(value), 'PX', ttl(ttlMs));
  }

  async setIfAbsent(key: string, value: Uint8Array | string, ttlMs: number): Promise<boolean> {
    return (await this.#client.set(this.#k(key), asBuffer(value), 'PX', ttl(ttlMs), 'NX')) === 'OK';
  }

  async get(key: string): Promise<Buffer | undefined> {
    return (await this.#client.getBuffer(this.#k(key))) ?? undefined;
  }

  async take(key: string): Promise<Buffer | undefined> {
    return (await this.#client.getdelBuffer(this.#k(key))) ?? undefined;
  }

  async delete(...keys: string[]): Promise<void> {
    if (keys.length > 0) await this.#client.del(...keys.map((k) => this.#k(k)));
  }

  async append(key: string, value: Uint8Array, ttlMs: number): Promise<number> {
    const n = await this.#client.rpush(this.#k(key), asBuffer(value));
    await this.#client.pexpire(this.#k(key), ttl(ttlMs));
    return n;
  }

  list(key: string): Promise<Buffer[]> {
    return this.#client.lrangeBuffer(this.#k(key), 0, -1);
  }

  async item(key: string, index: number): Promise<Buffer | undefined> {
    return (await this.#client.lindexBuffer(this.#k(key), index)) ?? undefined;
  }

  length(key: string): Promise<number> {
    return this.#client.llen(this.#k(key));
  }

  async touch(key: string, ttlMs: number): Promise<void> {
    await this.#client.pexpire(this.#k(key), ttl(ttlMs));
  }

  async ledgerSet(key: string, member: string, bytes: number, expiresAt: number): Promise<void> {
    await this.#client.hset(this.#k(key), member, `${bytes}:${expiresAt}`);
    // Members of one ledger share one lifetime, so the latest member expires last.
    await this.#client.pexpireat(this.#k(key), Math.ceil(expiresAt) + 1000);
  }

  async ledgerRemove(key: string, member: string): Promise<void> {
    await this.#client.hdel(this.#k(key), member);
  }

  async ledgerRead(key: string, now: number): Promise<LedgerSummary> {
    const all = await this.#client.hgetall(this.#k(key));
    const members = Object.keys(all);
    const entries = members.map((m) => {
      const [b, e] = String(all[m]).split(':');
      return { bytes: Number(b) || 0, exp: Number(e) || 0 };
    });
    const expired: string[] = [];
    const s = summarize(entries, now, (i) => expired.push(members[i] as string));
    if (expired.length > 0) await this.#client.hdel(this.#k(key), ...expired);
    return s;
  }

  close(): Promise<void> {
    return this.#onClose();
  }
}

/**
 * Connects a Redis store to `url` (its own connection, same settings as the pub/sub's, pubsub.ts).
 * Rejects when Redis cannot be reached at start (`connectTimeoutMs`, default 5 s).
 */
export async function createRedisSharedStore(options: { url: string; prefix?: string; onError?: (error: unknown) => void; connectTimeoutMs?: number }): Promise<RedisSharedStore> {
  const client = new Redis(options.url, { lazyConnect: true, connectTimeout: options.connectTimeoutMs ?? 5000, maxRetriesPerRequest: 3, connectionName: 'offsync-sync-state' });
  client.on('error', options.onError ?? ((e: unknown) => console.error('sync state: redis failed', e)));
  try {
    await client.connect();
  } catch (e) {
    client.disconnect();
    throw new Error(`cannot connect to Redis: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return new RedisSharedStore(client, {
    prefix: `${options.prefix ?? 'offsync:'}sync:`,
    onClose: async () => {
      await client.quit().catch(() => {});
      client.disconnect();
    },
  });
}

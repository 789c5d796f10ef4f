/**
 * An in-process stand-in for one Redis server, for tests without Redis: the ioredis subset the
 * pub/sub event target uses (PUBLISH / SUBSCRIBE / UNSUBSCRIBE, 'message' events; pubsub.ts) and
 * the one the shared sync store uses (SET PX [NX], GET, GETDEL, DEL, lists, hashes, PEXPIRE[AT];
 * domains/sync/shared-store.ts). Every client of one broker sees the same keys and channels;
 * replies are asynchronous, as over a socket, so interleavings between "nodes" happen as with a
 * real server. Each command runs atomically, as in Redis.
 */
import { EventEmitter } from 'node:events';
import type { RedisKvClient } from '../src/domains/sync/index.ts';
import type { RedisPubSubClient } from '../src/index.ts';

type Value = Buffer | Buffer[] | Map<string, string>;

export class FakeRedisBroker {
  readonly subscribers = new Map<string, Set<FakeRedisClient>>();
  readonly #keys = new Map<string, { value: Value; exp: number | undefined }>();
  /** Commands run (tests may count round trips). */
  commands = 0;

  client(): FakeRedisClient {
    return new FakeRedisClient(this);
  }

  /** Live keys (expired ones dropped). */
  keys(prefix = ''): string[] {
    return [...this.#keys.keys()].filter((k) => k.startsWith(prefix) && this.read(k) !== undefined);
  }

  read(key: string): Value | undefined {
    const e = this.#keys.get(key);
    if (e === undefined) return undefined;
    if (e.exp !== undefined && e.exp <= Date.now()) {
      this.#keys.delete(key);
      return undefined;
    }
    return e.value;
  }

  write(key: string, value: Value, exp?: number): void {
    this.#keys.set(key, { value, exp });
  }

  expire(key: string, at: number): number {
    const e = this.#keys.get(key);
    if (e === undefined || this.read(key) === undefined) return 0;
    e.exp = at;
    return 1;
  }

  remove(key: string): number {
    const had = this.read(key) !== undefined;
    this.#keys.delete(key);
    return had ? 1 : 0;
  }
}

const reply = <T>(f: () => T): Promise<T> =>
  new Promise((resolve, reject) => setImmediate(() => {
    try {
      resolve(f());
    } catch (e) {
      reject(e as Error);
    }
  }));

const wrongType = (): never => {
  throw new Error('WRONGTYPE Operation against a key holding the wrong kind of value');
};

export class FakeRedisClient extends EventEmitter implements RedisPubSubClient, RedisKvClient {
  readonly #broker: FakeRedisBroker;
  readonly #channels = new Set<string>();
  constructor(broker: FakeRedisBroker) {
    super();
    this.#broker = broker;
  }

  // --- pub/sub -------------------------------------------------------------------------------
  publish(channel: string, message: string): Promise<number> {
    // Receivers are those subscribed when the server processes the PUBLISH.
    const receivers = [...(this.#broker.subscribers.get(channel) ?? [])];
    setImmediate(() => { for (const r of receivers) r.emit('message', channel, message); });
    return Promise.resolve(receivers.length);
  }
  subscribe(...channels: string[]): Promise<number> {
    return reply(() => {
      for (const c of channels) {
        this.#channels.add(c);
        let set = this.#broker.subscribers.get(c);
        if (set === undefined) this.#broker.subscribers.set(c, (set = new Set()));
        set.add(this);
      }
      return this.#channels.size;
    });
  }
  unsubscribe(...channels: string[]): Promise<number> {
    return reply(() => {
      for (const c of channels) {
        this.#channels.delete(c);
        const set = this.#broker.subscribers.get(c);
        set?.delete(this);
        if (set?.size === 0) this.#broker.subscribers.delete(c);
      }
      return this.#channels.size;
    });
  }

  // --- keys ----------------------------------------------------------------------------------
  #cmd<T>(f: (b: FakeRedisBroker) => T): Promise<T> {
    return reply(() => {
      this.#broker.commands++;
      return f(this.#broker);
    });
  }

  set(key: string, value: string | Buffer, px: 'PX', ms: number): Promise<unknown>;
  set(key: string, value: string | Buffer, px: 'PX', ms: number, nx: 'NX'): Promise<'OK' | null>;
  set(key: string, value: string | Buffer, _px: 'PX', ms: number, nx?: 'NX'): Promise<'OK' | null> {
    return this.#cmd((b) => {
      if (nx === 'NX' && b.read(key) !== undefined) return null;
      b.write(key, Buffer.from(value), Date.now() + ms);
      return 'OK';
    });
  }
  getBuffer(key: string): Promise<Buffer | null> {
    return this.#cmd((b) => {
      const v = b.read(key);
      if (v === undefined) return null;
      return Buffer.isBuffer(v) ? Buffer.from(v) : wrongType();
    });
  }
  getdelBuffer(key: string): Promise<Buffer | null> {
    return this.#cmd((b) => {
      const v = b.read(key);
      if (v === undefined) return null;
      if (!Buffer.isBuffer(v)) return wrongType();
      b.remove(key);
      return v;
    });
  }
  del(...keys: string[]): Promise<number> {
    return this.#cmd((b) => keys.reduce((n, k) => n + b.remove(k), 0));
  }
  #list(b: FakeRedisBroker, key: string): Buffer[] | undefined {
    const v = b.read(key);
    if (v === undefined) return undefined;
    return Array.isArray(v) ? v : wrongType();
  }
  rpush(key: string, value: Buffer): Promise<number> {
    return this.#cmd((b) => {
      const l = this.#list(b, key);
      if (l === undefined) {
        b.write(key, [Buffer.from(value)]);
        return 1;
      }
      l.push(Buffer.from(value));
      return l.length;
    });
  }
  lrangeBuffer(key: string, start: number, stop: number): Promise<Buffer[]> {
    return this.#cmd((b) => {
      const l = this.#list(b, key) ?? [];
      return l.slice(start, stop < 0 ? l.length + stop + 1 : stop + 1).map((x) => Buffer.from(x));
    });
  }
  lindexBuffer(key: string, index: number): Promise<Buffer | null> {
    return this.#cmd((b) => {
      const x = this.#list(b, key)?.[index];
      return x === undefined ? null : Buffer.from(x);
    });
  }
  llen(key: string): Promise<number> {
    return this.#cmd((b) => this.#list(b, key)?.length ?? 0);
  }
  pexpire(key: string, ms: number): Promise<number> {
    return this.#cmd((b) => b.expire(key, Date.now() + ms));
  }
  pexpireat(key: string, msSinceEpoch: number): Promise<number> {
    return this.#cmd((b) => b.expire(key, msSinceEpoch));
  }
  #hash(b: FakeRedisBroker, key: string): Map<string, string> | undefined {
    const v = b.read(key);
    if (v === undefined) return undefined;
    return v instanceof Map ? v : wrongType();
  }
  hset(key: string, field: string, value: string): Promise<number> {
    return this.#cmd((b) => {
      let h = this.#hash(b, key);
      if (h === undefined) b.write(key, (h = new Map()));
      const added = h.has(field) ? 0 : 1;
      h.set(field, value);
      return added;
    });
  }
  hdel(key: string, ...fields: string[]): Promise<number> {
    return this.#cmd((b) => {
      const h = this.#hash(b, key);
      if (h === undefined) return 0;
      const n = fields.reduce((c, f) => c + (h.delete(f) ? 1 : 0), 0);
      if (h.size === 0) b.remove(key);
      return n;
    });
  }
  hgetall(key: string): Promise<Record<string, string>> {
    return this.#cmd((b) => Object.fromEntries(this.#hash(b, key) ?? []));
  }
}

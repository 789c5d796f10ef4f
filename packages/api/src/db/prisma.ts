/**
 * Creates the control-plane Prisma client for a DATABASE_URL. The provider is fixed at generate
 * time, so there are two generated clients with the same datamodel; the rest of the code uses the
 * SQLite client's type for both (the PostgreSQL client has the same model API).
 *
 * SQLite busy timeout without freezing the event loop: better-sqlite3 waits for a lock
 * synchronously (its `timeout`), which stalls every request of the process while another
 * connection or process holds the write lock. The connection is opened with `timeout: 0`, and a
 * statement refused with SQLITE_BUSY is retried asynchronously (short backoff) until
 * `busyTimeoutMs` has passed (default 5000 ms), then fails as before. Readers never wait (WAL).
 *
 * One transaction at a time, and nothing else inside it: the adapter runs every statement on one
 * connection and serialises transactions only against each other, so a plain statement issued by
 * another request while an interactive (or batch) transaction is open would run *inside* it and
 * vanish with its rollback. Statements outside a transaction therefore wait until the open one
 * ends (`gateOutsideTransactions`). Code inside `$transaction(async (tx) => …)` must use `tx`, never
 * the client: a statement on the client would wait for the transaction that waits for it (Prisma's
 * transaction timeout then rolls it back with an error).
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import { PrismaPg } from '@prisma/adapter-pg';
import { quotePgIdent } from './migrate.ts';
import { PrismaClient as SqlitePrismaClient } from '../generated/sqlite/client.ts';
import { PrismaClient as PostgresPrismaClient } from '../generated/postgresql/client.ts';

export type PrismaClient = InstanceType<typeof SqlitePrismaClient>;

export interface PrismaClientOptions {
  /** SQLite only: how long a statement waits for a lock (asynchronously), default 5000 ms. */
  busyTimeoutMs?: number;
}

export const DEFAULT_BUSY_TIMEOUT_MS = 5000;
export type ControlPlaneProvider = 'sqlite' | 'postgresql';

/** Parsed DATABASE_URL. */
export type DatabaseTarget =
  | { provider: 'sqlite'; file: string }
  | { provider: 'postgresql'; url: string; schema: string | null };

export function parseDatabaseUrl(url: string | undefined, dataDir: string): DatabaseTarget {
  if (url === undefined || url === '') return { provider: 'sqlite', file: resolve(dataDir, 'offsync.db') };
  if (url.startsWith('file:')) return { provider: 'sqlite', file: resolve(url.slice('file:'.length)) };
  if (/^postgres(ql)?:\/\//.test(url)) {
    const parsed = new URL(url);
    const schema = parsed.searchParams.get('schema');
    parsed.searchParams.delete('schema');
    return { provider: 'postgresql', url: parsed.toString(), schema };
  }
  throw new Error('DATABASE_URL must start with file:, postgres:// or postgresql://');
}

export function createPrismaClient(target: DatabaseTarget, options: PrismaClientOptions = {}): PrismaClient {
  let client: PrismaClient;
  if (target.provider === 'sqlite') {
    mkdirSync(dirname(target.file), { recursive: true });
    const factory = new PrismaBetterSqlite3({ url: target.file, timeout: 0 });
    client = new SqlitePrismaClient({ adapter: withAsyncBusyTimeout(factory, options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS) });
  } else {
    const adapter = new PrismaPg({ connectionString: target.url }, target.schema === null ? {} : { schema: target.schema });
    // Same datamodel, same model API: see the file comment.
    client = new PostgresPrismaClient({ adapter }) as unknown as PrismaClient;
  }
  dialects.set(client, { provider: target.provider, schema: target.provider === 'postgresql' ? target.schema : null });
  return client;
}

/**
 * What a raw statement on a client must know of its control plane: the SQL dialect, and the
 * PostgreSQL schema its tables live in (the model API qualifies them itself; raw SQL does not).
 */
export interface ControlPlaneDialect {
  provider: ControlPlaneProvider;
  /** `?schema=` of DATABASE_URL; null: the connection's search path. */
  schema: string | null;
}

const dialects = new WeakMap<PrismaClient, ControlPlaneDialect>();

/** The dialect of a client made by {@link createPrismaClient}. */
export function dialectOf(prisma: PrismaClient): ControlPlaneDialect {
  const d = dialects.get(prisma);
  if (d === undefined) throw new Error('dialectOf: this Prisma client was not made by createPrismaClient');
  return d;
}

/** A control-plane table's name for raw SQL, schema-qualified on PostgreSQL when DATABASE_URL names one. */
export function rawTable(dialect: ControlPlaneDialect, name: string): string {
  return dialect.provider === 'postgresql' && dialect.schema !== null ? `${quotePgIdent(dialect.schema)}.${quotePgIdent(name)}` : quotePgIdent(name);
}

type SqliteAdapter = Awaited<ReturnType<PrismaBetterSqlite3['connect']>>;
type Queryable = Pick<SqliteAdapter, 'queryRaw' | 'executeRaw'>;

/** SQLITE_BUSY as the adapter reports it (a DriverAdapterError); BUSY_SNAPSHOT cannot succeed on retry. */
export function isSqliteBusy(e: unknown): boolean {
  if (!(e instanceof Error) || e.name !== 'DriverAdapterError') return false;
  const code: unknown = (e.cause as { originalCode?: unknown } | undefined)?.originalCode;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_RECOVERY';
}

/**
 * Runs `run` until it does not fail with SQLITE_BUSY (`isBusy`: the Prisma adapter's form by
 * default) or `timeoutMs` has passed, waiting between tries (1 → 50 ms) without blocking.
 */
export async function retryWhileBusy<T>(run: () => T | Promise<T>, timeoutMs: number, isBusy: (e: unknown) => boolean = isSqliteBusy): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    try {
      return await run();
    } catch (e) {
      if (!isBusy(e) || performance.now() + delay > deadline) throw e;
    }
    await new Promise((ok) => setTimeout(ok, delay));
  }
}

function retryQueries(q: Queryable, timeoutMs: number): void {
  const query = q.queryRaw.bind(q);
  const execute = q.executeRaw.bind(q);
  q.queryRaw = (params) => retryWhileBusy(() => query(params), timeoutMs);
  q.executeRaw = (params) => retryWhileBusy(() => execute(params), timeoutMs);
}

/**
 * Statements of `adapter` outside a transaction wait while one of its transactions is open (see
 * the file comment). The adapter itself lets one transaction in at a time; its commit/rollback
 * (called after Prisma's COMMIT/ROLLBACK statement) ends the wait.
 */
function gateOutsideTransactions(adapter: SqliteAdapter): void {
  /** Transactions started and not ended (open, or queued on the adapter's lock), and the wait for none. */
  let inFlight = 0;
  let idle: Promise<void> | null = null;
  let wake = (): void => undefined;
  const outside = <A extends unknown[], R>(run: (...a: A) => Promise<R>) => async (...a: A): Promise<R> => {
    while (idle !== null) await idle;
    return run(...a);
  };
  adapter.queryRaw = outside(adapter.queryRaw.bind(adapter));
  adapter.executeRaw = outside(adapter.executeRaw.bind(adapter));
  adapter.executeScript = outside(adapter.executeScript.bind(adapter));
  const start = adapter.startTransaction.bind(adapter);
  adapter.startTransaction = async (isolationLevel) => {
    // Counted before the adapter's BEGIN, which runs microtasks before `start` resolves here.
    if (inFlight++ === 0) idle = new Promise<void>((ok) => (wake = ok));
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      if (--inFlight === 0) {
        idle = null;
        wake();
      }
    };
    let tx: Awaited<ReturnType<typeof start>>;
    try {
      tx = await start(isolationLevel);
    } catch (e) {
      end();
      throw e;
    }
    const commit = tx.commit.bind(tx);
    const rollback = tx.rollback.bind(tx);
    tx.commit = () => commit().finally(end);
    tx.rollback = () => rollback().finally(end);
    return tx;
  };
}

/** Distinct SQL texts whose prepared statements a control-plane connection keeps (least recently used dropped first). */
export const STATEMENT_CACHE_SIZE = 256;

/** What the adapter (7.x) uses of a better-sqlite3 statement: `reader`, `run()`, `bind(args)` then `columns()`, `raw().all()` or `run()`. */
interface AdapterStatement {
  readonly reader: boolean;
  run(): unknown;
  bind(args: unknown[]): AdapterBound;
}
interface AdapterBound {
  readonly reader: boolean;
  columns(): unknown[];
  raw(): { all(): unknown[] };
  run(): unknown;
}
interface Better {
  reader: boolean;
  columns(): unknown[];
  raw(on?: boolean): Better;
  all(...args: unknown[]): unknown[];
  run(...args: unknown[]): unknown;
}

/**
 * A statement's last `LIMIT ?` / `LIMIT ? OFFSET ?` with no parameter after it: Prisma ends every
 * findUnique, findFirst and paged findMany with one, and its counts end with one in their
 * subquery (`… LIMIT ? OFFSET ?) AS sub`).
 */
const LAST_LIMIT = / LIMIT \?( OFFSET \?)?(?=[^?]*$)/;

/** Largest LIMIT written into a statement's text (with OFFSET 0 only: every other pair keeps its parameters). */
export const INLINED_LIMIT_MAX = 1000;

/** Where a statement's {@link LAST_LIMIT} is, and how many parameters the text has. */
interface LimitSite {
  head: string;
  tail: string;
  take: 1 | 2;
  params: number;
}

function limitSiteOf(sql: string): LimitSite | undefined {
  const m = LAST_LIMIT.exec(sql);
  if (m === null) return undefined;
  let params = 0;
  for (let i = sql.indexOf('?'); i !== -1; i = sql.indexOf('?', i + 1)) params++;
  return { head: sql.slice(0, m.index), tail: sql.slice(m.index + m[0].length), take: m[1] === undefined ? 1 : 2, params };
}

/**
 * The text with its last LIMIT (and OFFSET) parameters written as the integers bound to them, and
 * the arguments left; undefined unless they are a LIMIT of -1 (none) to {@link INLINED_LIMIT_MAX}
 * and an OFFSET of 0, and the text's `?`s are exactly its parameters (a `?` inside a quoted
 * literal would make the count differ: such a text keeps its parameters).
 */
function inlineLimit(site: LimitSite, args: readonly unknown[]): { sql: string; args: unknown[] } | undefined {
  const { take } = site;
  if (args.length !== site.params) return undefined;
  const limit = asInteger(args[args.length - take]);
  const offset = take === 2 ? asInteger(args[args.length - 1]) : 0;
  if (limit === undefined || limit < -1 || limit > INLINED_LIMIT_MAX || offset !== 0) return undefined;
  return { sql: `${site.head} LIMIT ${limit}${take === 2 ? ' OFFSET 0' : ''}${site.tail}`, args: args.slice(0, args.length - take) };
}

function asInteger(v: unknown): number | undefined {
  if (typeof v === 'bigint') return v >= -(2n ** 53n) && v <= 2n ** 53n ? Number(v) : undefined;
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : undefined;
}

/**
 * The adapter prepares every statement anew (`client.prepare(sql).bind(args)`: a bound
 * better-sqlite3 statement cannot be bound again), which under bench/load.ts was ~0.13 ms of
 * main-thread CPU per control-plane query (0.7 s in a 25 s mixed load). Here its connection's
 * `prepare` returns a cached statement per SQL text, and `bind` returns a view that passes the
 * arguments at each call instead of binding them. The adapter runs each statement to completion
 * synchronously (`all`, `run`), so no two uses of one statement overlap.
 *
 * The last `LIMIT ? OFFSET ?` bound to small integers (`LIMIT 1 OFFSET 0` for every findUnique)
 * runs as a statement with the integers in its text. SQLite (3.53) plans a LIMIT with the value
 * bound to it and marks the statement to be compiled again whenever that parameter is bound:
 * with the parameters, every call recompiled the statement (a `Database` lookup by id measured
 * 37–53 µs in SQLite, 7.5 µs with the integers in the text).
 */
export function cacheStatements(adapter: SqliteAdapter): void {
  const db = (adapter as unknown as { client?: { prepare(sql: string): unknown } }).client;
  if (db === undefined || typeof db.prepare !== 'function') return;
  const prepare = db.prepare.bind(db) as (sql: string) => Better;
  const cache = new Map<string, AdapterStatement>();
  const cached = (sql: string): AdapterStatement => {
    const hit = cache.get(sql);
    if (hit !== undefined) {
      cache.delete(sql);
      cache.set(sql, hit);
      return hit;
    }
    const stmt = prepare(sql);
    const site = limitSiteOf(sql);
    let columns: unknown[] | undefined;
    const out: AdapterStatement = {
      reader: stmt.reader,
      run: () => stmt.run(),
      bind: (args) => {
        const inlined = site === undefined ? undefined : inlineLimit(site, args);
        if (inlined !== undefined) return cached(inlined.sql).bind(inlined.args);
        return {
          reader: stmt.reader,
          columns: () => (columns ??= stmt.columns()),
          raw: () => ({ all: () => stmt.raw(true).all(...args) }),
          run: () => stmt.run(...args),
        };
      },
    };
    cache.set(sql, out);
    if (cache.size > STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
    return out;
  };
  db.prepare = cached;
}

/** The better-sqlite3 adapter factory with statements retried asynchronously on SQLITE_BUSY, and prepared once per SQL text. */
function withAsyncBusyTimeout(factory: PrismaBetterSqlite3, timeoutMs: number): PrismaBetterSqlite3 {
  const wrap = (adapter: SqliteAdapter): SqliteAdapter => {
    cacheStatements(adapter);
    retryQueries(adapter, timeoutMs);
    const script = adapter.executeScript.bind(adapter);
    adapter.executeScript = (sql) => retryWhileBusy(() => script(sql), timeoutMs);
    const start = adapter.startTransaction.bind(adapter);
    adapter.startTransaction = async (isolationLevel) => {
      const tx = await start(isolationLevel);
      retryQueries(tx, timeoutMs);
      return tx;
    };
    gateOutsideTransactions(adapter);
    return adapter;
  };
  const connect = factory.connect.bind(factory);
  const shadow = factory.connectToShadowDb.bind(factory);
  return Object.assign(factory, { connect: async () => wrap(await connect()), connectToShadowDb: async () => wrap(await shadow()) });
}

/**
 * Engine conformance suite (PowerSync storage-test style): the production engine contract
 * (`SyncEngineContract`, engine/contract.ts) plus three test hooks, two factories built on the
 * production implementations — `asyncSqliteEngine` over the SQLite `SyncEngine` and the
 * PostgreSQL `PgSyncEngine` itself — and `registerEngineTests(name, factory)` registering the
 * vitest tests every engine must pass: §P6 init checks and the alter flow, §P5 local-write clocks,
 * the change feed, the §P5 merge rules (docs/PROTOCOL.md §P5, §P6, "Limits"), atomic batches,
 * schema-hash refusals, clock bounds and a seeded random convergence property over three replicas
 * (of one engine or mixed).
 *
 * Expected values are written from the protocol, not read from one engine, so a rule both engines
 * get wrong fails too. Tests only: never import from production code.
 */
import fc from 'fast-check';
import type { Pool } from 'pg';
import { describe, expect, test as vitestTest } from 'vitest';
import { asyncSqliteEngine, openSyncDatabase } from '../adapters/sqlite/index.ts';
import { encodePayload } from '../codec/payload.ts';
import { encodePk } from '../codec/pk.ts';
import type { ContractFeedRequest, SyncEngineContract } from '../engine/contract.ts';
import type { Cursor } from '../engine/extract.ts';
import { isCoreError } from '../errors.ts';
import { CoreErrorCode } from '../errors.ts';
import { compareForMerge } from '../merge/compare.ts';
import { columnListSchemaHash } from '../schema/schema-hash.ts';
import type { Change, SqlValue } from '../types.ts';
import { RIP_SENTINEL } from '../types.ts';

/** Feed request both engines understand (the production contract's). */
export type ConformanceFeedRequest = ContractFeedRequest;

/** The production engine contract plus the test hooks the suite drives it with. */
export interface ConformanceEngine extends SyncEngineContract {
  /**
   * One statement in its own transaction (inside an open alter: in the alter's), `?`
   * placeholders; rows as arrays. Write portable SQL and CAST results to TEXT when comparing
   * engines (value classes differ on the way out).
   */
  sql(text: string, params?: readonly (string | number | null)[]): Promise<unknown[][]>;
  /** Several statements (no parameters) in ONE transaction. */
  transaction(statements: readonly string[]): Promise<void>;
  /** Test hook: overwrites the local db_version (simulates a damaged clock). */
  setLocalClock(v: bigint): Promise<void>;
}

/** The contract's methods of `e` as plain functions (a class instance keeps its private state). */
function contractOf(e: SyncEngineContract): SyncEngineContract {
  return {
    kind: e.kind,
    siteId: e.siteId,
    init: (t, a, f) => e.init(t, a, f),
    cleanup: (t) => e.cleanup(t),
    beginAlter: (t) => e.beginAlter(t),
    commitAlter: (t) => e.commitAlter(t),
    schemaHash: () => e.schemaHash(),
    ddlSchemaHash: () => e.ddlSchemaHash(),
    knownSchemaHashes: () => e.knownSchemaHashes(),
    rememberSchemaHash: (h, k) => e.rememberSchemaHash(h, k),
    dbVersion: () => e.dbVersion(),
    changes: (req) => e.changes(req),
    applyPayload: (p, o) => e.applyPayload(p, o),
    applyChanges: (c, o) => e.applyChanges(c, o),
    close: () => e.close(),
  };
}

/** Opens a fresh engine: runs `ddl` (`;`-separated, portable SQL), then initialises `tables`. */
export type EngineFactory = (ddl: string, tables: readonly string[], flags?: number) => Promise<ConformanceEngine>;

/** SQLite engine on an in-memory better-sqlite3 database, through the production adapter `asyncSqliteEngine`. */
export function sqliteEngineFactory(): EngineFactory {
  return async (ddl, tables, flags = 0) => {
    const e = openSyncDatabase(':memory:');
    e.driver.exec(ddl);
    const contract = asyncSqliteEngine(e);
    for (const t of tables) await contract.init(t, undefined, flags);
    const run = <T>(fn: () => T): Promise<T> => {
      try {
        return Promise.resolve(fn());
      } catch (err) {
        return Promise.reject(err as Error);
      }
    };
    return {
      ...contractOf(contract),
      sql: (text, params = []) =>
        run(() => {
          const st = e.driver.prepare(text);
          const bound = params.map((p) => (typeof p === 'number' && Number.isInteger(p) ? BigInt(p) : p));
          if (/^\s*(select|with)\b/i.test(text) || /\breturning\b/i.test(text)) return st.all(...bound).map((r) => Object.values(r));
          st.run(...bound);
          return [];
        }),
      transaction: (stmts) => run(() => e.driver.transaction(() => stmts.forEach((s) => e.driver.exec(s)))),
      setLocalClock: (v) => run(() => void e.driver.prepare('UPDATE offsync_clock SET v = ? WHERE id = 1').run(v)),
    };
  };
}

/** `?` → `$1`, `$2`, … outside quotes. */
function pgPlaceholders(text: string): string {
  let n = 0;
  let out = '';
  let quote: string | null = null;
  for (const ch of text) {
    if (quote !== null) {
      if (ch === quote) quote = null;
    } else if (ch === "'" || ch === '"') quote = ch;
    else if (ch === '?') {
      out += `$${++n}`;
      continue;
    }
    out += ch;
  }
  return out;
}

/**
 * PostgreSQL engine over `openPgContext` (a fresh table schema and metadata schema per engine,
 * dropped by `close()`), on `pool` (`openTestPool()`: TEST_DATABASE_URL or an embedded PGlite).
 */
export function postgresEngineFactory(pool: Pool): EngineFactory {
  return async (ddl, tables, flags = 0) => {
    const { openPgContext } = await import('../adapters/postgres/testing.ts');
    const ctx = await openPgContext(pool, ddl, tables, flags);
    const e = ctx.engine;
    const meta = `"${e.meta.replace(/"/g, '""')}"`;
    const nsp = `"${ctx.nsp.replace(/"/g, '""')}"`;
    // Through the engine's connections, so that statements inside an open alter join its transaction.
    return {
      ...contractOf(e),
      sql: (text, params = []) =>
        e.withConnection(async (c) => {
          await c.q(`SET search_path TO ${nsp}`);
          try {
            return await c.q(pgPlaceholders(text), [...params]);
          } finally {
            // Fails only when the statement aborted a transaction, whose end undoes the SET too.
            await c.q('RESET search_path').catch(() => undefined);
          }
        }),
      transaction: (stmts) =>
        e.transaction(async (c) => {
          await c.q(`SET LOCAL search_path TO ${nsp}`);
          for (const s of stmts) await c.q(s);
        }),
      setLocalClock: async (v) => void (await e.withConnection((c) => c.q(`UPDATE ${meta}.clock SET v = $1::int8 WHERE id = 1`, [v.toString()]))),
      close: async () => {
        await e.close();
        await ctx.drop();
      },
    };
  };
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** Portable test schema: TEXT key, NOT NULL columns with defaults, a nullable one. */
export const CONFORMANCE_DDL =
  "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, note TEXT)";

/** A remote site id (not any engine's). */
export const REMOTE_SITE = new Uint8Array([0x01, 0x90, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x42]);
export const REMOTE_SITE_2 = new Uint8Array([0x01, 0x90, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x43]);

export async function collectChanges(it: AsyncIterable<Change>): Promise<Change[]> {
  const out: Change[] = [];
  for await (const c of it) out.push(c);
  return out;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** A change with its byte fields as hex (Buffer and Uint8Array compare equal). */
export function plain(c: Change): Record<string, unknown> {
  return { ...c, pk: hex(c.pk), siteId: hex(c.siteId), val: c.val instanceof Uint8Array ? `x${hex(c.val)}` : c.val };
}

function valText(v: SqlValue): string {
  if (v === null) return 'null';
  if (typeof v === 'bigint') return `i${v}`;
  if (typeof v === 'number') return `r${v}`;
  if (typeof v === 'string') return `'${v}'`;
  return `x${hex(v)}`;
}

/** Clock line independent of local version numbers: `tbl:pk/col=val cv@cl`, sorted. */
export async function clockLines(e: ConformanceEngine, table?: string, withOrigin = false): Promise<string[]> {
  const feed = await collectChanges(e.changes(table === undefined ? {} : { tables: [table] }));
  return feed
    .map((c) => `${c.tbl}:${hex(c.pk)}/${c.col}=${valText(c.val)} ${c.colVersion}@${c.cl}${withOrigin ? ` ${hex(c.siteId)}#${c.seq}` : ''}`)
    .sort();
}

/** The todos rows, every column CAST to TEXT (portable comparison), ordered by id. */
export async function todoRows(e: ConformanceEngine): Promise<(string | null)[][]> {
  const rows = await e.sql('SELECT id, title, CAST(done AS TEXT), note FROM todos ORDER BY id');
  return rows.map((r) => r.map((v) => (v === null ? null : String(v))));
}

const pkOf = (...values: SqlValue[]): Uint8Array => encodePk(values);
const pkHex = (id: string): string => hex(pkOf(id));

/** A change from a remote site. */
export function remoteChange(tbl: string, id: string, col: string, val: SqlValue, colVersion: number, cl: number, dbVersion: number, seq = 0, siteId = REMOTE_SITE): Change {
  return { tbl, pk: pkOf(id), col, val, colVersion, dbVersion, siteId, cl, seq };
}

async function errorOf(p: Promise<unknown>): Promise<{ code: string; message: string } | undefined> {
  try {
    await p;
  } catch (e) {
    return { code: isCoreError(e) ? e.code : `not a CoreError (${(e as { code?: string }).code ?? ''})`, message: e instanceof Error ? e.message : String(e) };
  }
  return undefined;
}

/** Everything observable that a refused batch must leave untouched. */
async function state(e: ConformanceEngine): Promise<unknown> {
  return { rows: await todoRows(e), clocks: await clockLines(e, undefined, true), v: await e.dbVersion() };
}

async function withEngine(factory: EngineFactory, ddl: string, tables: readonly string[], fn: (e: ConformanceEngine) => Promise<void>, flags = 0): Promise<void> {
  const e = await factory(ddl, tables, flags);
  try {
    await fn(e);
  } finally {
    await e.close();
  }
}

/** Sends to `to` what `from` has after `cursor` (excluding `to`'s own changes); returns the new cursor. */
export async function sendChanges(from: ConformanceEngine, to: ConformanceEngine, cursor?: Cursor): Promise<Cursor | undefined> {
  const changes = await collectChanges(from.changes({ excludeSiteId: to.siteId, ...(cursor !== undefined ? { after: cursor } : {}) }));
  // The cursor moves to the producer's clock even when everything was excluded.
  const all = await collectChanges(from.changes(cursor !== undefined ? { after: cursor } : {}));
  const last = all.at(-1);
  const next = last === undefined ? cursor : { dbVersion: last.dbVersion, seq: last.seq };
  if (changes.length === 0) return next;
  const payload = encodePayload(changes, { schemaHash: await from.schemaHash() });
  if (payload !== null) await to.applyPayload(payload);
  return next;
}

// ---------------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------------

export interface EngineTestOptions {
  /** Engines the convergence property mixes with this one (default: this one only). */
  peers?: readonly EngineFactory[];
  /** Runs of the convergence property (default 6). */
  convergenceRuns?: number;
  /** Seed of the convergence property (default 0x0ff5c). */
  seed?: number;
  /**
   * Titles of tests NOT registered for this engine because it diverges from the protocol there
   * (each one reported, with a repro, to the engine's owner). Remove an entry once the engine is
   * fixed; an entry matching no test fails registration, so the list cannot go stale silently.
   */
  divergences?: readonly string[];
}

/** Registers the tests every storage engine must pass (inside a `describe(name)`). */
export function registerEngineTests(name: string, factory: EngineFactory, options: EngineTestOptions = {}): void {
  const todos = (fn: (e: ConformanceEngine) => Promise<void>): Promise<void> => withEngine(factory, CONFORMANCE_DDL, ['todos'], fn);
  const left = new Set(options.divergences ?? []);
  const test = (title: string, fn: () => Promise<void>): void => {
    if (left.delete(title)) return;
    vitestTest(title, fn);
  };

  describe(`engine conformance: ${name}`, () => {
    describe('init (§P6)', () => {
      test('D.1 refusals: same codes and messages', async () => {
        const ddl = `CREATE TABLE ip (id INTEGER PRIMARY KEY NOT NULL, t TEXT);
          CREATE TABLE nd (id TEXT PRIMARY KEY NOT NULL, t TEXT NOT NULL);
          CREATE TABLE nopk (t TEXT);
          CREATE TABLE ok (id TEXT PRIMARY KEY NOT NULL, t TEXT NOT NULL DEFAULT 'x')`;
        await withEngine(factory, ddl, [], async (e) => {
          expect(await errorOf(e.init('nope'))).toEqual({ code: CoreErrorCode.SCHEMA_INVALID, message: 'Table nope does not exist' });
          const ip = await errorOf(e.init('ip'));
          expect(ip?.code).toBe(CoreErrorCode.SCHEMA_INVALID);
          expect(ip?.message).toMatch(/^Table ip uses a single-column INTEGER primary key/);
          expect(await errorOf(e.init('nd'))).toEqual({ code: CoreErrorCode.SCHEMA_INVALID, message: 'All non-primary key columns declared as NOT NULL must have a DEFAULT value. (table nd)' });
          expect(await errorOf(e.init('nd', undefined, 2))).toBeUndefined();
          const nopk = await errorOf(e.init('nopk'));
          expect(nopk?.code).toBe(CoreErrorCode.SCHEMA_INVALID);
          expect(nopk?.message).toMatch(/^Rowid only tables are not supported/);
          expect(await errorOf(e.init('ok', 'dws'))).toEqual({ code: CoreErrorCode.ALGORITHM_UNSUPPORTED, message: 'CRDT algorithm dws is not yet supported' });
          expect(await errorOf(e.init('ok', 'nonsense'))).toEqual({ code: CoreErrorCode.ALGORITHM_UNSUPPORTED, message: 'Unknown CRDT algorithm name nonsense' });
          expect(await errorOf(e.init('ip', undefined, 1))).toBeUndefined();
          expect(await errorOf(e.cleanup('ok'))).toMatchObject({ code: CoreErrorCode.UNKNOWN_TABLE });
          // Nothing of the refusals was recorded: only ip and nd are synced, without rows.
          expect(await clockLines(e)).toEqual([]);
        });
      });

      test('idempotent for the same algorithm; an algorithm change is refused until cleanup', async () => {
        await todos(async (e) => {
          await e.sql("INSERT INTO todos (id, title) VALUES ('a', 'A')");
          const before = await state(e);
          const hashes = await e.knownSchemaHashes();
          await e.init('todos');
          await e.init('todos', 'CausalLengthSet');
          expect(await state(e)).toEqual(before);
          expect(await e.knownSchemaHashes()).toEqual(hashes);
          expect(await errorOf(e.init('todos', 'gos'))).toEqual({
            code: CoreErrorCode.ALGORITHM_CHANGE,
            message: 'The function cloudsync_cleanup(table) must be called before changing a table algorithm',
          });
          expect(await state(e)).toEqual(before);
          await e.cleanup('todos');
          expect(await clockLines(e)).toEqual([]);
          await e.sql("UPDATE todos SET title = 'untracked' WHERE id = 'a'");
          expect(await clockLines(e)).toEqual([]);
          await e.init('todos', 'gos');
          // Re-initialising back-fills the existing row as one new local version.
          expect(await clockLines(e)).toEqual([`todos:${pkHex('a')}/done=i0 1@1`, `todos:${pkHex('a')}/note=null 1@1`, `todos:${pkHex('a')}/title='untracked' 1@1`]);
        });
      });

      test('back-fill: existing rows become local changes at ONE new version, cells at col_version 1, no sentinel', async () => {
        const ddl = `${CONFORMANCE_DDL}; INSERT INTO todos (id, title, done) VALUES ('p1', 'x', 1); INSERT INTO todos (id, note) VALUES ('p2', 'y')`;
        await withEngine(factory, ddl, [], async (e) => {
          const v0 = await e.dbVersion();
          await e.init('todos');
          const feed = await collectChanges(e.changes());
          expect(feed.map((c) => `${hex(c.pk)}/${c.col}=${valText(c.val)} ${c.colVersion}@${c.cl} v+${c.dbVersion - v0}`).sort()).toEqual(
            [
              `${pkHex('p1')}/done=i1 1@1 v+1`,
              `${pkHex('p1')}/note=null 1@1 v+1`,
              `${pkHex('p1')}/title='x' 1@1 v+1`,
              `${pkHex('p2')}/done=i0 1@1 v+1`,
              `${pkHex('p2')}/note='y' 1@1 v+1`,
              `${pkHex('p2')}/title='' 1@1 v+1`,
            ].sort(),
          );
          expect(feed.every((c) => Buffer.from(c.siteId).equals(Buffer.from(e.siteId)))).toBe(true);
          expect(await e.dbVersion()).toBe(v0 + 1);
          expect(await e.knownSchemaHashes()).toContain(await e.schemaHash());
        });
      });
    });

    describe('alter (§P6 "Alteration")', () => {
      /** Runs `statements` between beginAlter and commitAlter; resolves to commitAlter's error, if any. */
      const alter = async (e: ConformanceEngine, statements: readonly string[]): Promise<{ code: string; message: string } | undefined> => {
        await e.beginAlter('todos');
        for (const st of statements) await e.sql(st);
        return errorOf(e.commitAlter('todos'));
      };
      const feedLines = async (e: ConformanceEngine, v0: number): Promise<string[]> =>
        (await collectChanges(e.changes())).map((c) => `${hex(c.pk)}/${c.col}=${valText(c.val)} ${c.colVersion}@${c.cl} v+${c.dbVersion - v0}`).sort();
      const todosHash = (extra: { name: string; type: string }[], drop: readonly string[] = []): bigint =>
        columnListSchemaHash([
          {
            name: 'todos',
            columns: [
              { name: 'id', type: 'TEXT', pk: true },
              ...[
                { name: 'title', type: 'TEXT' },
                { name: 'done', type: 'INTEGER' },
                { name: 'note', type: 'TEXT' },
                ...extra,
              ]
                .filter((c) => !drop.includes(c.name))
                .map((c) => ({ ...c, pk: false })),
            ],
          },
        ]);

      test('add a column with a default: existing rows back-filled at ONE version, writes tracked after, both hashes change, old ones stay known and accepted', async () => {
        await todos(async (e) => {
          const a = pkHex('a');
          await e.sql("INSERT INTO todos (id, title) VALUES ('a', 'A')");
          const [h0, d0] = [await e.schemaHash(), await e.ddlSchemaHash()];
          expect(h0).toBe(todosHash([]));
          expect(await e.knownSchemaHashes()).toEqual(expect.arrayContaining([h0, d0]));
          const v0 = await e.dbVersion();
          expect(await alter(e, ['ALTER TABLE todos ADD COLUMN prio INTEGER NOT NULL DEFAULT 3'])).toBeUndefined();
          const [h1, d1] = [await e.schemaHash(), await e.ddlSchemaHash()];
          expect(h1).toBe(todosHash([{ name: 'prio', type: 'INTEGER' }]));
          expect(d1).not.toBe(d0);
          expect(await e.knownSchemaHashes()).toEqual(expect.arrayContaining([h0, d0, h1, d1]));
          // The new column of the existing row is a local change at one new version; the rest is untouched.
          expect(await feedLines(e, v0)).toEqual([`${a}/done=i0 1@1 v+0`, `${a}/note=null 1@1 v+0`, `${a}/prio=i3 1@1 v+1`, `${a}/title='A' 1@1 v+0`]);
          expect(await e.dbVersion()).toBe(v0 + 1);
          // Writes after the alter are tracked, the new column included.
          await e.sql("UPDATE todos SET prio = 5 WHERE id = 'a'");
          await e.sql("INSERT INTO todos (id, title, prio) VALUES ('b', 'B', 1)");
          const b = pkHex('b');
          expect((await feedLines(e, v0)).filter((l) => l.includes('/prio='))).toEqual([`${a}/prio=i5 2@1 v+2`, `${b}/prio=i1 1@1 v+3`]);
          // A device still on the old schema (either hash variant) is accepted; a change of the new column merges.
          const old = encodePayload([remoteChange('todos', 'c', 'title', 'C', 1, 1, 9, 1)], { schemaHash: h0 }) as Uint8Array;
          expect((await e.applyPayload(old)).applied).toBe(1);
          const oldDdl = encodePayload([remoteChange('todos', 'd', 'title', 'D', 1, 1, 10, 1)], { schemaHash: d0 }) as Uint8Array;
          expect((await e.applyPayload(oldDdl)).applied).toBe(1);
          const fresh = encodePayload([remoteChange('todos', 'c', 'prio', 7n, 1, 1, 11, 1)], { schemaHash: h1 }) as Uint8Array;
          expect((await e.applyPayload(fresh)).applied).toBe(1);
          const rows = await e.sql('SELECT id, title, CAST(prio AS TEXT) FROM todos ORDER BY id');
          expect(rows.map((r) => r.map(String))).toEqual([
            ['a', 'A', '5'],
            ['b', 'B', '1'],
            ['c', 'C', '7'],
            ['d', 'D', '3'],
          ]);
        });
      });

      test('drop a column: its clocks are gone, the other clocks and the rows stay, writes tracked after', async () => {
        await todos(async (e) => {
          const a = pkHex('a');
          await e.sql("INSERT INTO todos (id, title, note) VALUES ('a', 'A', 'n')");
          const [h0, d0] = [await e.schemaHash(), await e.ddlSchemaHash()];
          const v0 = await e.dbVersion();
          expect(await alter(e, ['ALTER TABLE todos DROP COLUMN note'])).toBeUndefined();
          expect(await feedLines(e, v0)).toEqual([`${a}/done=i0 1@1 v+0`, `${a}/title='A' 1@1 v+0`]);
          expect(await e.dbVersion()).toBe(v0);
          expect(await e.schemaHash()).toBe(todosHash([], ['note']));
          expect(await e.ddlSchemaHash()).not.toBe(d0);
          expect(await e.knownSchemaHashes()).toEqual(expect.arrayContaining([h0, d0, await e.schemaHash(), await e.ddlSchemaHash()]));
          await e.sql("UPDATE todos SET title = 'B' WHERE id = 'a'");
          expect(await feedLines(e, v0)).toEqual([`${a}/done=i0 1@1 v+0`, `${a}/title='B' 2@1 v+1`]);
          // A change naming the dropped column is refused like any unknown column, and changes nothing.
          const before = await clockLines(e);
          expect((await errorOf(e.applyChanges([remoteChange('todos', 'a', 'note', 'x', 5, 1, 3, 1)])))?.code).toBe(CoreErrorCode.UNKNOWN_COLUMN);
          expect(await clockLines(e)).toEqual(before);
        });
      });

      test('a primary-key change is refused (SCHEMA_INVALID) and rolled back: the table stays synced as before', async () => {
        await todos(async (e) => {
          await e.sql("INSERT INTO todos (id, title, note) VALUES ('a', 'A', 'n')");
          const before = await state(e);
          const hashes = await e.knownSchemaHashes();
          const current = [await e.schemaHash(), await e.ddlSchemaHash()];
          const err = await alter(e, [
            "CREATE TABLE todos2 (id TEXT NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, note TEXT, PRIMARY KEY (id, title))",
            'INSERT INTO todos2 (id, title, done, note) SELECT id, title, done, note FROM todos',
            'DROP TABLE todos',
            'ALTER TABLE todos2 RENAME TO todos',
          ]);
          expect(err?.code).toBe(CoreErrorCode.SCHEMA_INVALID);
          expect(err?.message).toBe('OffSync: the primary key of synced table todos cannot change (id -> id, title); the alter was rolled back. Create a new table and copy the rows instead');
          expect(await state(e)).toEqual(before);
          expect(await e.knownSchemaHashes()).toEqual(hashes);
          expect([await e.schemaHash(), await e.ddlSchemaHash()]).toEqual(current);
          // Tracking is back: a write is recorded; a new alter can start.
          await e.sql("UPDATE todos SET title = 'B' WHERE id = 'a'");
          expect((await clockLines(e)).filter((l) => l.includes('/title='))).toEqual([`todos:${pkHex('a')}/title='B' 2@1`]);
          expect(await alter(e, ['ALTER TABLE todos ADD COLUMN extra TEXT'])).toBeUndefined();
        });
      });

      test('misuse: commit without begin, begin twice, unknown table (INVALID_STATE, UNKNOWN_TABLE); nothing changes', async () => {
        await todos(async (e) => {
          await e.sql("INSERT INTO todos (id, title) VALUES ('a', 'A')");
          const before = await state(e);
          expect(await errorOf(e.commitAlter('todos'))).toEqual({ code: CoreErrorCode.INVALID_STATE, message: 'cloudsync_begin_alter must be called before cloudsync_commit_alter (table todos)' });
          expect((await errorOf(e.beginAlter('nope')))?.code).toBe(CoreErrorCode.UNKNOWN_TABLE);
          await e.beginAlter('todos');
          expect(await errorOf(e.beginAlter('todos'))).toEqual({ code: CoreErrorCode.INVALID_STATE, message: 'cloudsync_begin_alter was already called for table todos' });
          // A failing statement inside the alter is undone alone; the alter goes on.
          expect(await errorOf(e.sql('ALTER TABLE todos ADD COLUMN'))).toBeDefined();
          await e.commitAlter('todos');
          expect(await state(e)).toEqual(before);
          await e.sql("UPDATE todos SET done = 1 WHERE id = 'a'");
          expect((await clockLines(e)).filter((l) => l.includes('/done='))).toEqual([`todos:${pkHex('a')}/done=i1 2@1`]);
        });
      });
    });

    describe('local writes (§P5 clocks)', () => {
      test('insert, update of one column, same-value update, delete, re-insert, primary-key change', async () => {
        await todos(async (e) => {
          const a = pkHex('a');
          const b = pkHex('b');
          const v0 = await e.dbVersion();
          const step = async (sql: string, want: string[], dv: number): Promise<void> => {
            await e.sql(sql);
            const feed = await collectChanges(e.changes());
            expect(feed.map((c) => `${hex(c.pk)}/${c.col}=${valText(c.val)} ${c.colVersion}@${c.cl} v+${c.dbVersion - v0}`).sort(), sql).toEqual([...want].sort());
            expect(await e.dbVersion(), sql).toBe(v0 + dv);
          };
          await step("INSERT INTO todos (id, title) VALUES ('a', 'A')", [`${a}/title='A' 1@1 v+1`, `${a}/done=i0 1@1 v+1`, `${a}/note=null 1@1 v+1`], 1);
          await step("UPDATE todos SET title = 'B' WHERE id = 'a'", [`${a}/title='B' 2@1 v+2`, `${a}/done=i0 1@1 v+1`, `${a}/note=null 1@1 v+1`], 2);
          // An update that changes nothing records nothing.
          await step("UPDATE todos SET title = 'B' WHERE id = 'a'", [`${a}/title='B' 2@1 v+2`, `${a}/done=i0 1@1 v+1`, `${a}/note=null 1@1 v+1`], 2);
          await step("UPDATE todos SET note = 'n', done = 1 WHERE id = 'a'", [`${a}/title='B' 2@1 v+2`, `${a}/done=i1 2@1 v+3`, `${a}/note='n' 2@1 v+3`], 3);
          await step("DELETE FROM todos WHERE id = 'a'", [`${a}/${RIP_SENTINEL}=null 2@2 v+4`], 4);
          await step("INSERT INTO todos (id, title) VALUES ('a', 'C')", [`${a}/${RIP_SENTINEL}=null 3@3 v+5`, `${a}/title='C' 1@3 v+5`, `${a}/done=i0 1@3 v+5`, `${a}/note=null 1@3 v+5`], 5);
          await step(
            "UPDATE todos SET id = 'b' WHERE id = 'a'",
            [`${a}/${RIP_SENTINEL}=null 4@4 v+6`, `${b}/${RIP_SENTINEL}=null 1@1 v+6`, `${b}/title='C' 1@1 v+6`, `${b}/done=i0 1@1 v+6`, `${b}/note=null 1@1 v+6`],
            6,
          );
          expect(await todoRows(e)).toEqual([['b', 'C', '0', null]]);
        });
      });

      test('one db_version per transaction, seqs distinct and increasing inside it', async () => {
        await todos(async (e) => {
          const v0 = await e.dbVersion();
          await e.transaction(["INSERT INTO todos (id, title) VALUES ('a', 'x')", "INSERT INTO todos (id, title) VALUES ('b', 'y')", "UPDATE todos SET done = 1 WHERE id = 'a'", "DELETE FROM todos WHERE id = 'b'"]);
          await e.sql("UPDATE todos SET note = 'z' WHERE id = 'a'");
          const feed = await collectChanges(e.changes());
          expect([...new Set(feed.map((c) => c.dbVersion))]).toEqual([v0 + 1, v0 + 2]);
          const first = feed.filter((c) => c.dbVersion === v0 + 1).map((c) => c.seq);
          expect(new Set(first).size).toBe(first.length);
          expect(await clockLines(e)).toEqual(
            [`todos:${pkHex('a')}/title='x' 1@1`, `todos:${pkHex('a')}/done=i1 2@1`, `todos:${pkHex('a')}/note='z' 2@1`, `todos:${pkHex('b')}/${RIP_SENTINEL}=null 2@2`].sort(),
          );
        });
      });

      test('one db_version per statement that writes several rows', async () => {
        await todos(async (e) => {
          const v0 = await e.dbVersion();
          await e.sql("INSERT INTO todos (id, title) VALUES ('a', 'A'), ('b', 'B')");
          await e.sql('UPDATE todos SET done = 1');
          const feed = await collectChanges(e.changes());
          expect(feed.map((c) => `${hex(c.pk)}/${c.col} v+${c.dbVersion - v0}`).sort()).toEqual(
            [
              `${pkHex('a')}/title v+1`,
              `${pkHex('a')}/note v+1`,
              `${pkHex('a')}/done v+2`,
              `${pkHex('b')}/title v+1`,
              `${pkHex('b')}/note v+1`,
              `${pkHex('b')}/done v+2`,
            ].sort(),
          );
          expect(new Set(feed.map((c) => `${c.dbVersion}:${c.seq}`)).size).toBe(feed.length);
          expect(await e.dbVersion()).toBe(v0 + 2);
        });
      });

      test('gos: local UPDATE and DELETE are refused, INSERT is tracked', async () => {
        const ddl = 'CREATE TABLE logs (id TEXT PRIMARY KEY NOT NULL, msg TEXT)';
        await withEngine(factory, ddl, [], async (e) => {
          await e.init('logs', 'gos');
          await e.sql("INSERT INTO logs (id, msg) VALUES ('l1', 'm')");
          expect((await errorOf(e.sql("UPDATE logs SET msg = 'n'")))?.message).toBe('UPDATE operation is not allowed on table logs');
          expect((await errorOf(e.sql('DELETE FROM logs')))?.message).toBe('DELETE operation is not allowed on table logs');
          expect(await clockLines(e)).toEqual([`logs:${pkHex('l1')}/msg='m' 1@1`]);
          expect(await e.sql('SELECT id, msg FROM logs')).toEqual([['l1', 'm']]);
        });
      });
    });

    describe('change feed (§P5)', () => {
      test('(db_version, seq) order, exclusive cursor, tables filter', async () => {
        const ddl = `${CONFORMANCE_DDL}; CREATE TABLE tags (id TEXT PRIMARY KEY NOT NULL, label TEXT)`;
        await withEngine(factory, ddl, ['todos', 'tags'], async (e) => {
          await e.transaction(["INSERT INTO todos (id, title) VALUES ('a', '1'), ('b', '2')", "INSERT INTO tags (id, label) VALUES ('t', 'x')"]);
          await e.sql("UPDATE todos SET done = 1 WHERE id = 'b'");
          await e.sql("INSERT INTO tags (id, label) VALUES ('u', 'y')");
          await e.sql("DELETE FROM todos WHERE id = 'a'");
          const all = await collectChanges(e.changes());
          const keys = all.map((c) => [c.dbVersion, c.seq] as const);
          const sorted = [...keys].sort((x, y) => x[0] - y[0] || x[1] - y[1]);
          expect(keys).toEqual(sorted);
          expect(new Set(keys.map((k) => k.join(':'))).size).toBe(keys.length);
          for (let i = 0; i < all.length; i++) {
            const c = all[i] as Change;
            expect(await collectChanges(e.changes({ after: { dbVersion: c.dbVersion, seq: c.seq } }))).toEqual(all.slice(i + 1));
          }
          // A cursor between two seqs of one version.
          const tagsOnly = await collectChanges(e.changes({ tables: ['tags'] }));
          expect(tagsOnly).toEqual(all.filter((c) => c.tbl === 'tags'));
          expect(tagsOnly.length).toBe(2);
          expect(await collectChanges(e.changes({ tables: ['TODOS'] }))).toEqual(all.filter((c) => c.tbl === 'todos'));
        });
      });

      test('excludeSiteId and localOnly separate own changes from merged ones', async () => {
        await todos(async (e) => {
          await e.sql("INSERT INTO todos (id, title) VALUES ('own', 'o')");
          await e.applyChanges([remoteChange('todos', 'r1', 'title', 'r', 1, 1, 7, 1), remoteChange('todos', 'r2', 'title', 's', 1, 1, 3, 1, REMOTE_SITE_2)]);
          const all = await collectChanges(e.changes());
          const own = all.filter((c) => hex(c.siteId) === hex(e.siteId));
          expect(own.length).toBe(3);
          expect((await collectChanges(e.changes({ localOnly: true }))).map(plain)).toEqual(own.map(plain));
          expect((await collectChanges(e.changes({ excludeSiteId: e.siteId }))).map(plain)).toEqual(all.filter((c) => !own.includes(c)).map(plain));
          expect((await collectChanges(e.changes({ excludeSiteId: REMOTE_SITE }))).map((c) => hex(c.pk)).sort()).toEqual(
            [...own.map((c) => hex(c.pk)), pkHex('r2')].sort(),
          );
          // A site never seen excludes nothing.
          expect((await collectChanges(e.changes({ excludeSiteId: new Uint8Array(16).fill(9) }))).map(plain)).toEqual(all.map(plain));
          // Merged changes keep origin and seq, get a local version after the existing ones.
          const r1 = all.find((c) => hex(c.pk) === pkHex('r1'));
          expect(r1).toMatchObject({ seq: 1, colVersion: 1, cl: 1 });
          expect(hex((r1 as Change).siteId)).toBe(hex(REMOTE_SITE));
        });
      });

      test('row filter: a row it refuses loses every change, deleted rows are judged with row undefined', async () => {
        await todos(async (e) => {
          await e.sql("INSERT INTO todos (id, title, done) VALUES ('a', 'keep', 0), ('b', 'hide', 1), ('c', 'gone', 0)");
          await e.sql("DELETE FROM todos WHERE id = 'c'");
          const all = await collectChanges(e.changes());
          const seen: string[] = [];
          const filtered = await collectChanges(
            e.changes({
              rowFilter: (t, pk, row) => {
                seen.push(`${t}:${String(pk[0])}:${row === undefined ? 'deleted' : String(row['title'])}`);
                return row === undefined ? false : row['done'] !== 1n && row['done'] !== 1;
              },
            }),
          );
          expect(filtered).toEqual(all.filter((c) => hex(c.pk) === pkHex('a')));
          expect(new Set(seen)).toEqual(new Set(['todos:a:keep', 'todos:b:hide', 'todos:c:deleted']));
          const withDeleted = await collectChanges(e.changes({ rowFilter: (_t, pk) => pk[0] !== 'a' }));
          expect(withDeleted).toEqual(all.filter((c) => hex(c.pk) !== pkHex('a')));
        });
      });
    });

    describe('merge (§P5)', () => {
      test('higher col_version wins whatever the value; lower loses', async () => {
        await todos(async (e) => {
          await e.sql("INSERT INTO todos (id, title) VALUES ('a', 'm'), ('b', 'm')");
          await e.sql("UPDATE todos SET title = 'n' WHERE id = 'b'"); // b.title cv2
          const r = await e.applyChanges([remoteChange('todos', 'a', 'title', 'a', 2, 1, 5, 1), remoteChange('todos', 'b', 'title', 'z', 1, 1, 5, 2)]);
          expect(r.applied).toBe(1);
          expect(await todoRows(e)).toEqual([['a', 'a', '0', null], ['b', 'n', '0', null]]);
          const lines = await clockLines(e, 'todos', true);
          expect(lines).toContain(`todos:${pkHex('a')}/title='a' 2@1 ${hex(REMOTE_SITE)}#1`);
          expect(lines).toContain(`todos:${pkHex('b')}/title='n' 2@1 ${hex(e.siteId)}#${(await collectChanges(e.changes())).find((c) => hex(c.pk) === pkHex('b') && c.col === 'title')?.seq}`);
        });
      });

      test('equal col_version: the greater value wins (compareForMerge), NULL always loses, equal values change nothing', async () => {
        const pairs: [SqlValue, SqlValue][] = [
          ['m', 'n'],
          ['m', 'a'],
          ['abc', 'abd'],
          ['abc', 'ab'],
          ['Z', 'a'],
          ['é', 'z'],
          ['日本', 'éa'],
          ['🙂', '日'],
          ['x', 'x'],
        ];
        await todos(async (e) => {
          const stmts = pairs.map(([local], i) => `INSERT INTO todos (id, title) VALUES ('p${i}', '${String(local)}')`);
          await e.transaction([...stmts, "INSERT INTO todos (id, note) VALUES ('n1', 'x')", "INSERT INTO todos (id) VALUES ('n2')"]);
          const before = await collectChanges(e.changes());
          const incoming = pairs.map(([, remote], i) => remoteChange('todos', `p${i}`, 'title', remote, 1, 1, 9, i));
          incoming.push(remoteChange('todos', 'n1', 'note', null, 1, 1, 9, 50), remoteChange('todos', 'n2', 'note', 'y', 1, 1, 9, 51));
          const r = await e.applyChanges(incoming);
          const rows = new Map((await todoRows(e)).map((row) => [row[0], row]));
          let wins = 0;
          pairs.forEach(([local, remote], i) => {
            const remoteWins = compareForMerge(remote, local) > 0;
            if (remoteWins) wins++;
            expect(rows.get(`p${i}`)?.[1], `${String(local)} vs ${String(remote)}`).toBe(remoteWins ? remote : local);
          });
          expect(rows.get('n1')?.[3]).toBe('x');
          expect(rows.get('n2')?.[3]).toBe('y');
          expect(r.applied).toBe(wins + 1);
          // Losers and equal values keep the local clock (origin, seq, version).
          const after = await collectChanges(e.changes());
          for (const c of before) {
            const loses = c.col === 'title' ? compareForMerge(pairs[Number(new TextDecoder().decode(c.pk.slice(3)).slice(1))]?.[1] ?? null, c.val) <= 0 : !(hex(c.pk) === pkHex('n2') && c.col === 'note');
            if (loses) expect(after, `${hex(c.pk)}/${c.col}`).toContainEqual(c);
          }
        });
      });

      test('causal length: delete beats an update of the same life; an older life is ignored; equal delete ignored', async () => {
        await todos(async (e) => {
          await e.sql("INSERT INTO todos (id, title) VALUES ('a', 'A')");
          await e.sql("UPDATE todos SET title = 'B' WHERE id = 'a'");
          await e.sql("UPDATE todos SET title = 'C' WHERE id = 'a'"); // title cv3, life 1
          const del = await e.applyChanges([remoteChange('todos', 'a', RIP_SENTINEL, null, 2, 2, 4)]);
          expect(del.applied).toBe(1);
          expect(await todoRows(e)).toEqual([]);
          expect(await clockLines(e, 'todos', true)).toEqual([`todos:${pkHex('a')}/${RIP_SENTINEL}=null 2@2 ${hex(REMOTE_SITE)}#0`]);
          // Writes of the first life (cl 1), however high their col_version, are ignored.
          const old = await e.applyChanges([remoteChange('todos', 'a', 'title', 'late', 9, 1, 5, 1, REMOTE_SITE_2)]);
          expect(old.applied).toBe(0);
          // The same delete again, or another site's delete of the same life: nothing.
          expect((await e.applyChanges([remoteChange('todos', 'a', RIP_SENTINEL, null, 2, 2, 6, 0, REMOTE_SITE_2)])).applied).toBe(0);
          expect(await todoRows(e)).toEqual([]);
          expect(await clockLines(e, 'todos', true)).toEqual([`todos:${pkHex('a')}/${RIP_SENTINEL}=null 2@2 ${hex(REMOTE_SITE)}#0`]);
          // A delete of an unknown row is remembered (tombstone), a later write of its first life ignored.
          expect((await e.applyChanges([remoteChange('todos', 'u', RIP_SENTINEL, null, 2, 2, 7)])).applied).toBe(1);
          expect((await e.applyChanges([remoteChange('todos', 'u', 'title', 'zombie', 1, 1, 8, 1)])).applied).toBe(0);
          expect(await todoRows(e)).toEqual([]);
        });
      });

      test('causal length: resurrection by sentinel and by a cell of a newer life; a local delete of a resurrected row', async () => {
        await todos(async (e) => {
          await e.sql("INSERT INTO todos (id, title, done, note) VALUES ('a', 'A', 1, 'n'), ('b', 'B', 1, 'n')");
          await e.sql("DELETE FROM todos WHERE id IN ('a', 'b')"); // cl 2
          // a: sentinel cl 3 + one cell → the row is back, other columns take their DEFAULT.
          const r = await e.applyChanges([remoteChange('todos', 'a', RIP_SENTINEL, null, 3, 3, 10, 0), remoteChange('todos', 'a', 'title', 'back', 1, 3, 10, 1)]);
          expect(r.applied).toBe(2);
          // b: only a cell of life 3 (no sentinel): resurrected first, the cell wins outright.
          const r2 = await e.applyChanges([remoteChange('todos', 'b', 'note', 'alive', 1, 3, 11, 2)]);
          expect(r2.applied).toBe(1);
          expect(await todoRows(e)).toEqual([
            ['a', 'back', '0', null],
            ['b', '', '0', 'alive'],
          ]);
          const lines = await clockLines(e, 'todos');
          expect(lines).toContain(`todos:${pkHex('a')}/${RIP_SENTINEL}=null 3@3`);
          expect(lines).toContain(`todos:${pkHex('a')}/title='back' 1@3`);
          expect(lines).toContain(`todos:${pkHex('b')}/note='alive' 1@3`);
          expect(lines.filter((l) => l.startsWith(`todos:${pkHex('b')}/`) && l.endsWith('@2'))).toEqual([]);
          // A life-2 write after the resurrection is an older life.
          expect((await e.applyChanges([remoteChange('todos', 'a', 'title', 'old', 5, 2, 12, 3)])).applied).toBe(0);
          // A local delete now moves the sentinel to 4.
          await e.sql("DELETE FROM todos WHERE id = 'a'");
          expect((await clockLines(e, 'todos')).filter((l) => l.startsWith(`todos:${pkHex('a')}/`))).toEqual([`todos:${pkHex('a')}/${RIP_SENTINEL}=null 4@4`]);
        });
      });

      test('gos: merges write incoming values over existing ones without clock checks', async () => {
        const ddl = 'CREATE TABLE logs (id TEXT PRIMARY KEY NOT NULL, msg TEXT)';
        await withEngine(factory, ddl, [], async (e) => {
          await e.init('logs', 'gos');
          await e.sql("INSERT INTO logs (id, msg) VALUES ('l1', 'z')");
          // Equal col_version and a smaller value: under cls it would lose; gos upserts it.
          await e.applyChanges([remoteChange('logs', 'l1', 'msg', 'a', 1, 1, 3, 1)]);
          expect(await e.sql('SELECT msg FROM logs')).toEqual([['a']]);
          expect(await clockLines(e, 'logs', true)).toEqual([`logs:${pkHex('l1')}/msg='a' 1@1 ${hex(REMOTE_SITE)}#1`]);
        });
      });

      test('gos: merges upsert without clock checks and never delete', async () => {
        const ddl = 'CREATE TABLE logs (id TEXT PRIMARY KEY NOT NULL, msg TEXT)';
        await withEngine(factory, ddl, [], async (e) => {
          await e.init('logs', 'gos');
          await e.sql("INSERT INTO logs (id, msg) VALUES ('l1', 'z')");
          await e.applyChanges([remoteChange('logs', 'l2', 'msg', 'new', 1, 1, 3, 1)]);
          await e.applyChanges([remoteChange('logs', 'l1', RIP_SENTINEL, null, 2, 2, 4)]);
          const rows = await e.sql('SELECT id, msg FROM logs ORDER BY id');
          expect(rows.map((r) => r[0])).toEqual(['l1', 'l2']);
          expect(rows[1]).toEqual(['l2', 'new']);
        });
      });

      test('merged groups: one local db_version per incoming (site, db_version) group, max(clock + 1, incoming); origin and seq kept', async () => {
        await todos(async (e) => {
          await e.sql("INSERT INTO todos (id, title) VALUES ('z', 'Z')");
          const v0 = await e.dbVersion();
          const r = await e.applyChanges([
            remoteChange('todos', 'a', 'title', 'x', 1, 1, v0 + 9, 4),
            remoteChange('todos', 'b', 'title', 'x', 1, 1, v0 + 9, 5),
            remoteChange('todos', 'c', 'title', 'x', 1, 1, 1, 1, REMOTE_SITE_2),
            remoteChange('todos', 'd', 'title', 'x', 1, 1, v0 + 9, 6),
          ]);
          expect(r).toMatchObject({ received: 4, applied: 4, tables: ['todos'], rejected: [], dbVersion: v0 + 11 });
          const merged = (await collectChanges(e.changes({ excludeSiteId: e.siteId }))).map((c) => `${hex(c.pk)} v+${c.dbVersion - v0} #${c.seq} ${hex(c.siteId)}`);
          expect(merged).toEqual([
            `${pkHex('a')} v+9 #4 ${hex(REMOTE_SITE)}`,
            `${pkHex('b')} v+9 #5 ${hex(REMOTE_SITE)}`,
            `${pkHex('c')} v+10 #1 ${hex(REMOTE_SITE_2)}`,
            `${pkHex('d')} v+11 #6 ${hex(REMOTE_SITE)}`,
          ]);
          expect(await e.dbVersion()).toBe(v0 + 11);
        });
      });

      test('several changes of one row in one batch: merged in batch order (fast path and general merge alike)', async () => {
        await todos(async (e) => {
          await e.sql("INSERT INTO todos (id, title) VALUES ('d', 'D')");
          const batch = [
            // a (unknown): the higher col_version first, a lower one after it loses.
            remoteChange('todos', 'a', 'title', 'hi', 3, 1, 5, 1),
            remoteChange('todos', 'a', 'title', 'lo', 2, 1, 5, 2),
            // b (unknown): cells then a delete of that life → tombstone only.
            remoteChange('todos', 'b', 'title', 'B', 1, 1, 5, 3),
            remoteChange('todos', 'b', 'done', 1n, 1, 1, 5, 4),
            remoteChange('todos', 'b', RIP_SENTINEL, null, 2, 2, 6, 0),
            // d (alive locally): deleted then resurrected with one cell, in one batch.
            remoteChange('todos', 'd', RIP_SENTINEL, null, 2, 2, 6, 1),
            remoteChange('todos', 'd', RIP_SENTINEL, null, 3, 3, 7, 0),
            remoteChange('todos', 'd', 'note', 'again', 1, 3, 7, 1),
          ];
          await e.applyChanges(batch);
          expect(await todoRows(e)).toEqual([
            ['a', 'hi', '0', null],
            ['d', '', '0', 'again'],
          ]);
          expect(await clockLines(e)).toEqual(
            [
              `todos:${pkHex('a')}/title='hi' 3@1`,
              `todos:${pkHex('b')}/${RIP_SENTINEL}=null 2@2`,
              `todos:${pkHex('d')}/${RIP_SENTINEL}=null 3@3`,
              `todos:${pkHex('d')}/note='again' 1@3`,
            ].sort(),
          );
        });
      });

      test('resurrection over a live row of an older life: existing cells reset to col_version 0, values kept until written', async () => {
        await todos(async (e) => {
          await e.sql("INSERT INTO todos (id, title, done, note) VALUES ('a', 'A', 1, 'n')");
          await e.sql("UPDATE todos SET title = 'B', done = 2 WHERE id = 'a'");
          const r = await e.applyChanges([remoteChange('todos', 'a', RIP_SENTINEL, null, 3, 3, 5, 0), remoteChange('todos', 'a', 'title', 'C', 1, 3, 5, 1)]);
          expect(r.applied).toBe(2);
          expect(await todoRows(e)).toEqual([['a', 'C', '2', 'n']]);
          expect(await clockLines(e)).toEqual(
            [`todos:${pkHex('a')}/${RIP_SENTINEL}=null 3@3`, `todos:${pkHex('a')}/title='C' 1@3`, `todos:${pkHex('a')}/done=i2 0@3`, `todos:${pkHex('a')}/note='n' 0@3`].sort(),
          );
          // A reset cell loses to any write of the new life, even an equal value's clock.
          expect((await e.applyChanges([remoteChange('todos', 'a', 'done', 0n, 1, 3, 6, 2)])).applied).toBe(1);
          expect(await todoRows(e)).toEqual([['a', 'C', '0', 'n']]);
        });
      });

      test('a constraint violation refuses the whole batch (device merge): nothing written', async () => {
        await todos(async (e) => {
          await e.sql("INSERT INTO todos (id, title) VALUES ('a', 'A')");
          const s = await state(e);
          const err = await errorOf(e.applyChanges([remoteChange('todos', 'a', 'title', 'Z', 5, 1, 4, 1), remoteChange('todos', 'b', 'title', null, 1, 1, 4, 2)]));
          expect(err).toBeDefined();
          expect(await state(e)).toEqual(s);
        });
      });

      test('authoritative merge (rejectRows): a row violating a constraint is rejected alone and compensated', async () => {
        await todos(async (e) => {
          await e.sql("INSERT INTO todos (id, title) VALUES ('a', 'A'), ('u', 'U')");
          const r = await e.applyChanges(
            [
              remoteChange('todos', 'a', 'title', 'Z', 2, 1, 5, 1),
              remoteChange('todos', 'b', 'title', null, 1, 1, 5, 2), // absent centrally: rejected INSERT
              remoteChange('todos', 'c', 'title', 'C', 1, 1, 5, 3),
              remoteChange('todos', 'u', 'title', null, 2, 1, 5, 4), // alive centrally: rejected UPDATE
            ],
            { rejectRows: true },
          );
          expect(r.rejected.map((x) => `${x.table}:${x.operation}:${x.code}:${String(x.pkValues[0])}`).sort()).toEqual(['todos:INSERT:constraint_violation:b', 'todos:UPDATE:constraint_violation:u']);
          expect(r.applied).toBe(2);
          expect(await todoRows(e)).toEqual([
            ['a', 'Z', '0', null],
            ['c', 'C', '0', null],
            ['u', 'U', '0', null],
          ]);
          // Compensation (docs/PROTOCOL.md "Rejected changes and compensation"): the cells the
          // device wrote get col_version max(local, incoming) + 1 with the central values, and
          // nothing else of the row is re-stamped; an absent row gets a tombstone with an even
          // causal length above both sides — both as this database's own writes.
          const own = (await collectChanges(e.changes({ localOnly: true, tables: ['todos'] }))).map((c) => `${hex(c.pk)}/${c.col}=${valText(c.val)} ${c.colVersion}@${c.cl}`);
          expect(own.sort()).toEqual(
            [
              `${pkHex('a')}/done=i0 1@1`,
              `${pkHex('a')}/note=null 1@1`,
              `${pkHex('b')}/${RIP_SENTINEL}=null 2@2`,
              `${pkHex('u')}/title='U' 3@1`,
              `${pkHex('u')}/done=i0 1@1`,
              `${pkHex('u')}/note=null 1@1`,
            ].sort(),
          );
        });
      });

      test('re-applying a batch is idempotent', async () => {
        await todos(async (e) => {
          await e.sql("INSERT INTO todos (id, title) VALUES ('a', 'A')");
          const batch = [
            remoteChange('todos', 'a', 'title', 'Z', 2, 1, 4, 1),
            remoteChange('todos', 'b', 'title', 'B', 1, 1, 4, 2),
            remoteChange('todos', 'b', 'done', 1n, 1, 1, 4, 3),
            remoteChange('todos', 'c', RIP_SENTINEL, null, 2, 2, 4, 4),
          ];
          const first = await e.applyChanges(batch);
          expect(first.applied).toBe(4);
          const s = await state(e);
          const again = await e.applyChanges(batch);
          expect(again.applied).toBe(0);
          expect(await state(e)).toEqual(s);
          const p = encodePayload(batch, { schemaHash: await e.schemaHash() }) as Uint8Array;
          expect((await e.applyPayload(p)).applied).toBe(0);
          expect(await state(e)).toEqual(s);
          expect(await todoRows(e)).toEqual([['a', 'Z', '0', null], ['b', 'B', '1', null]]);
        });
      });

      test('a batch that fails (unknown column, unknown table, bad primary key) changes nothing', async () => {
        await todos(async (e) => {
          await e.sql("INSERT INTO todos (id, title) VALUES ('a', 'A')");
          const s = await state(e);
          const good = [remoteChange('todos', 'a', 'title', 'Z', 5, 1, 4, 1), remoteChange('todos', 'b', 'title', 'B', 1, 1, 4, 2)];
          const cases: [string, Change, string][] = [
            ['unknown column', remoteChange('todos', 'b', 'nope', 'x', 1, 1, 4, 3), CoreErrorCode.UNKNOWN_COLUMN],
            ['unknown table', remoteChange('ghosts', 'b', 'title', 'x', 1, 1, 4, 3), CoreErrorCode.UNKNOWN_TABLE],
            ['bad primary key', { ...remoteChange('todos', 'x', 'title', 'x', 1, 1, 4, 3), pk: new Uint8Array([0xff, 0x01]) }, CoreErrorCode.PK_INVALID],
            ['bad site id', { ...remoteChange('todos', 'c', 'title', 'x', 1, 1, 4, 3), siteId: new Uint8Array([1, 2, 3]) }, CoreErrorCode.SITE_ID_INVALID],
          ];
          for (const [label, bad, code] of cases) {
            expect((await errorOf(e.applyChanges([...good, bad])))?.code, label).toBe(code);
            expect(await state(e), label).toEqual(s);
            // The same through a payload (a bad site id cannot even be encoded).
            if (bad.siteId.length === 16) {
              const p = encodePayload([...good, bad], { schemaHash: 0n }) as Uint8Array;
              expect((await errorOf(e.applyPayload(p)))?.code, `${label} (payload)`).toBe(code);
              expect(await state(e), `${label} (payload)`).toEqual(s);
            }
          }
          expect((await e.applyChanges(good)).applied).toBe(2);
        });
      });

      test('schema hash: unknown refused (strict), 0 and known hashes accepted, lenient mode, remembered hashes', async () => {
        await todos(async (e) => {
          const batch = [remoteChange('todos', 'a', 'title', 'A', 1, 1, 4, 1)];
          const current = await e.schemaHash();
          expect(await e.knownSchemaHashes()).toContain(current);
          const stranger = 0x1234_5678_9abc_def0n;
          const s = await state(e);
          const p = encodePayload(batch, { schemaHash: stranger }) as Uint8Array;
          const err = await errorOf(e.applyPayload(p));
          expect(err).toEqual({ code: CoreErrorCode.SCHEMA_HASH_UNKNOWN, message: `Cannot apply the received payload because the schema hash is unknown ${stranger}.` });
          expect(await state(e)).toEqual(s);
          const lenient = await e.applyPayload(p, { strictSchemaHash: false });
          expect(lenient).toMatchObject({ applied: 1, schemaHash: stranger });
          await e.rememberSchemaHash(stranger);
          await e.rememberSchemaHash(stranger);
          const known = await e.knownSchemaHashes();
          expect(known.filter((h) => h === stranger)).toEqual([stranger]);
          const p2 = encodePayload([remoteChange('todos', 'b', 'title', 'B', 1, 1, 5, 1)], { schemaHash: stranger }) as Uint8Array;
          expect((await e.applyPayload(p2)).applied).toBe(1);
          const p0 = encodePayload([remoteChange('todos', 'c', 'title', 'C', 1, 1, 6, 1)], { schemaHash: 0n }) as Uint8Array;
          expect(await e.applyPayload(p0)).toMatchObject({ applied: 1, schemaHash: 0n });
          const big = 0xfedc_ba98_7654_3210n; // ≥ 2^63: stored signed
          await e.rememberSchemaHash(big);
          expect(await e.knownSchemaHashes()).toContain(big);
          const pBig = encodePayload([remoteChange('todos', 'd', 'title', 'D', 1, 1, 7, 1)], { schemaHash: big }) as Uint8Array;
          expect((await e.applyPayload(pBig)).applied).toBe(1);
        });
      });

      test('clock bounds: a poisoned db_version is refused; a merge taking a damaged clock past 2^53 is refused; nothing written', async () => {
        await todos(async (e) => {
          const v0 = await e.dbVersion();
          const poisoned = encodePayload([remoteChange('todos', 'a', 'title', 'A', 1, 1, Number.MAX_SAFE_INTEGER, 1)], { schemaHash: 0n }) as Uint8Array;
          expect((await errorOf(e.applyPayload(poisoned)))?.code).toBe(CoreErrorCode.CLOCK_OUT_OF_RANGE);
          // Past the decoder (an in-process caller): the merge itself must not adopt it.
          expect((await errorOf(e.applyChanges([remoteChange('todos', 'a', 'title', 'A', 1, 1, 2 ** 53, 1)])))?.code).toBe(CoreErrorCode.CLOCK_OUT_OF_RANGE);
          expect(await todoRows(e)).toEqual([]);
          expect(await e.dbVersion()).toBe(v0);
          await e.setLocalClock(2n ** 53n);
          const honest = encodePayload([remoteChange('todos', 'a', 'title', 'A', 1, 1, 3, 1)], { schemaHash: 0n }) as Uint8Array;
          expect((await errorOf(e.applyPayload(honest)))?.code).toBe(CoreErrorCode.CLOCK_OUT_OF_RANGE);
          expect(await todoRows(e)).toEqual([]);
          await e.setLocalClock(5n);
          expect((await e.applyPayload(honest)).applied).toBe(1);
          expect(await e.dbVersion()).toBe(6);
          expect(await todoRows(e)).toEqual([['a', 'A', '0', null]]);
        });
      });
    });

    describe('convergence', () => {
      // Collected after the groups above (vitest collects describe blocks in order).
      if (left.size > 0) throw new Error(`registerEngineTests(${name}): divergences name no test: ${[...left].join(', ')}`);
      registerConvergence(`3 replicas (${[factory, ...(options.peers ?? [])].length > 1 ? 'mixed' : name})`, [factory, ...(options.peers ?? [])], options);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Convergence property
// ---------------------------------------------------------------------------------------------

type Op =
  | { kind: 'insert'; at: number; id: string; title: string; done: number }
  | { kind: 'update'; at: number; id: string; col: 'title' | 'note' | 'done'; value: string | number | null }
  | { kind: 'delete'; at: number; id: string }
  | { kind: 'rekey'; at: number; id: string; to: string }
  | { kind: 'sync'; from: number; to: number };

const IDS = ['a', 'b', 'c', 'd'];
const TEXTS = ['', 'a', 'b', 'Z', 'é', '日本', 'ab'];

function opArb(n: number): fc.Arbitrary<Op> {
  const at = fc.integer({ min: 0, max: n - 1 });
  const id = fc.constantFrom(...IDS);
  return fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('insert' as const), at, id, title: fc.constantFrom(...TEXTS), done: fc.integer({ min: 0, max: 2 }) }) },
    {
      weight: 4,
      arbitrary: fc.oneof(
        fc.record({ kind: fc.constant('update' as const), at, id, col: fc.constant('title' as const), value: fc.constantFrom(...TEXTS) }),
        fc.record({ kind: fc.constant('update' as const), at, id, col: fc.constant('note' as const), value: fc.constantFrom<string | null>(null, ...TEXTS) }),
        fc.record({ kind: fc.constant('update' as const), at, id, col: fc.constant('done' as const), value: fc.integer({ min: 0, max: 2 }) }),
      ),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), at, id }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('rekey' as const), at, id, to: id }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('sync' as const), from: at, to: at }) },
  );
}

async function runOp(e: ConformanceEngine, op: Exclude<Op, { kind: 'sync' }>): Promise<void> {
  switch (op.kind) {
    case 'insert':
      return void (await e.sql('INSERT INTO todos (id, title, done) VALUES (?, ?, ?) ON CONFLICT DO NOTHING', [op.id, op.title, op.done]));
    case 'update':
      return void (await e.sql(`UPDATE todos SET ${op.col} = ? WHERE id = ?`, [op.value, op.id]));
    case 'delete':
      return void (await e.sql('DELETE FROM todos WHERE id = ?', [op.id]));
    case 'rekey':
      if (op.to === op.id) return;
      return void (await e.sql('UPDATE todos SET id = ? WHERE id = ? AND NOT EXISTS (SELECT 1 FROM todos WHERE id = ?)', [op.to, op.id, op.to]));
  }
}

/**
 * Clocks comparable across replicas. Origins and seqs are left out: equal values written at equal
 * col_version keep each replica's own clock (§P5 "equal values change nothing"). A first-life
 * sentinel (cl 1, written by a local primary-key change) is left out too: an incoming sentinel
 * equal to the local causal length is ignored (§P5 step 3), so only some replicas hold it.
 */
async function convergedClocks(e: ConformanceEngine): Promise<string[]> {
  return (await clockLines(e, 'todos')).filter((l) => !l.endsWith(`/${RIP_SENTINEL}=null 1@1`));
}

/**
 * Seeded property: three replicas (factories cycled), random local writes and one-way exchanges
 * (with per-pair cursors, as devices keep them) in random order, then full exchange: every replica
 * holds the same rows and the same clocks (value, col_version, cl).
 */
export function registerConvergence(label: string, factories: readonly EngineFactory[], options: EngineTestOptions = {}): void {
  vitestTest(`converge: ${label}`, async () => {
    const n = 3;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb(n), { minLength: 5, maxLength: 30 }), async (ops) => {
        const replicas: ConformanceEngine[] = [];
        try {
          for (let i = 0; i < n; i++) replicas.push(await (factories[i % factories.length] as EngineFactory)(CONFORMANCE_DDL, ['todos']));
          const cursors = new Map<string, Cursor | undefined>();
          const send = async (from: number, to: number): Promise<void> => {
            if (from === to) return;
            const key = `${from}>${to}`;
            cursors.set(key, await sendChanges(replicas[from] as ConformanceEngine, replicas[to] as ConformanceEngine, cursors.get(key)));
          };
          for (const op of ops) {
            if (op.kind === 'sync') await send(op.from, op.to);
            else await runOp(replicas[op.at] as ConformanceEngine, op);
          }
          for (let round = 0; round < 2; round++) for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) await send(a, b);
          const rows = await todoRows(replicas[0] as ConformanceEngine);
          const clocks = await convergedClocks(replicas[0] as ConformanceEngine);
          for (let i = 1; i < n; i++) {
            const r = replicas[i] as ConformanceEngine;
            expect(await todoRows(r), `rows of replica ${i} (${r.kind}) vs replica 0 (${replicas[0]?.kind})`).toEqual(rows);
            expect(await convergedClocks(r), `clocks of replica ${i} (${r.kind})`).toEqual(clocks);
          }
        } finally {
          for (const r of replicas) await r.close();
        }
      }),
      { seed: options.seed ?? 0x0ff5c, numRuns: options.convergenceRuns ?? 6, endOnFailure: true },
    );
  });
}

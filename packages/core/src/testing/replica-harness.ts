/**
 * A seeded N-replica simulator over the real engine, for convergence properties (docs/PROTOCOL.md
 * §P5). TEST USE ONLY.
 *
 * Every replica is an in-memory {@link SyncEngine} with the same two tables (a TEXT primary key
 * and a composite key), written by random local operations over a small key space so that rows
 * collide. Replicas exchange messages (encoded payloads or raw change arrays) that can be
 * reordered, duplicated, delayed and dropped by partitions; after healing, full anti-entropy
 * rounds must bring every replica to the same table contents (exact storage classes) and the
 * same clocks.
 *
 * Scenarios are plain data (`Scenario`), so fast-check can generate and shrink them
 * ({@link scenarioArb}); {@link randomScenario} derives one from a seed without a property.
 */
import fc from 'fast-check';
import Database from 'better-sqlite3';
import { createSyncEngine, openSyncDatabase } from '../adapters/sqlite/index.ts';
import type { SyncEngine } from '../engine/engine.ts';
import type { Change, SqlValue } from '../types.ts';
import { clockRows, tableRows } from './replica.ts';

// ---------------------------------------------------------------------------------------------
// Schema and value domain

/** TEXT-keyed table: `a` has no affinity (any storage class), `b` TEXT affinity, `c` NOT NULL with DEFAULT. */
export const HARNESS_T_DDL = 'CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, a, b TEXT, c INTEGER NOT NULL DEFAULT 0)';
/** Composite-key table. */
export const HARNESS_K_DDL = 'CREATE TABLE k (a TEXT NOT NULL, b INTEGER NOT NULL, v, w TEXT, PRIMARY KEY (a, b))';
export const HARNESS_DDL = `${HARNESS_T_DDL}; ${HARNESS_K_DDL}`;
export const HARNESS_TABLES = ['t', 'k'] as const;

/** Keys of `t` and of `k` (small, so operations on different replicas collide). */
export const T_KEYS = ['p', 'q', 'r'] as const;
export const K_KEYS: readonly (readonly [string, bigint])[] = [
  ['x', 0n],
  ['x', 1n],
  ['y', 0n],
];

/** Values of every storage class, with look-alikes across classes (1, 1.0, '1', x'01'). */
export const VALUE_POOL: readonly SqlValue[] = [
  null,
  0n,
  1n,
  -1n,
  2n ** 62n,
  1.0,
  1.5,
  -0.5,
  '',
  '1',
  'a',
  'b',
  'ü',
  new Uint8Array([]),
  new Uint8Array([1]),
  new Uint8Array([1, 0]),
];

/** Columns each table's operations may write, and whether NULL is allowed. */
const T_COLS = [
  { name: 'a', nullable: true },
  { name: 'b', nullable: true },
  { name: 'c', nullable: false },
] as const;
const K_COLS = [
  { name: 'v', nullable: true },
  { name: 'w', nullable: true },
] as const;

// ---------------------------------------------------------------------------------------------
// Scenario model

export type TableName = (typeof HARNESS_TABLES)[number];

/** A local write on one replica. `key`/`newKey` index T_KEYS or K_KEYS; `vals` index VALUE_POOL. */
export type LocalOp =
  | { kind: 'insert'; table: TableName; key: number; vals: number[] }
  | { kind: 'replace'; table: TableName; key: number; vals: number[] }
  | { kind: 'upsert'; table: TableName; key: number; vals: number[] }
  | { kind: 'update'; table: TableName; key: number; cols: number[]; vals: number[] }
  | { kind: 'delete'; table: TableName; key: number }
  | { kind: 'pkChange'; table: TableName; key: number; newKey: number }
  /** Several writes in one transaction (one db_version). */
  | { kind: 'tx'; ops: LocalOp[] };

/** How a message is built: everything the sender has for the target, or a delta after its per-target cursor. */
export type SendMode = 'full' | 'delta';

export type Step =
  | { kind: 'op'; replica: number; op: LocalOp }
  /** Builds a message now (a snapshot) and queues it. `raw` sends Change[] instead of a payload. */
  | { kind: 'send'; from: number; to: number; mode: SendMode; raw: boolean }
  /** Delivers the queued message at `index % queue.length`; `keep` leaves it queued (duplicate). */
  | { kind: 'deliver'; index: number; keep: boolean }
  /** Splits replicas into groups (`group[i]` of replica i); messages across groups are dropped. */
  | { kind: 'partition'; groups: number[] }
  | { kind: 'heal' };

export interface Scenario {
  replicas: number;
  steps: Step[];
}

interface Message {
  from: number;
  to: number;
  payload: Uint8Array | null;
  raw: Change[] | null;
}

// ---------------------------------------------------------------------------------------------
// Deterministic replicas

/** A tiny seeded PRNG (mulberry32), for site ids and helpers that need randomness. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const templates = new Map<string, Buffer | null>();

function siteIdFor(seed: number): Uint8Array {
  const rnd = prng(seed * 7919 + 17);
  const id = Uint8Array.from({ length: 16 }, () => Math.floor(rnd() * 256));
  // UUIDv7 shape (version 7, variant 10), like the engine's own ids.
  id[6] = 0x70 | ((id[6] ?? 0) & 0x0f);
  id[8] = 0x80 | ((id[8] ?? 0) & 0x3f);
  return id;
}

/**
 * An in-memory engine with the harness tables and a site id derived from `seed`.
 *
 * Initialising tables costs several milliseconds, so the first replica of a schema is kept as a
 * serialized template and later ones are byte copies of it with their own site id written into
 * the engine's site table before the engine opens (falls back to a fresh init if that fails).
 */
export function openHarnessReplica(seed: number, ddl = HARNESS_DDL, tables: readonly string[] = HARNESS_TABLES): SyncEngine {
  const key = `${ddl}\u0000${tables.join(',')}`;
  const siteId = siteIdFor(seed);
  const opts = { now: () => 1_700_000_000_000 + seed, randomBytes: (n: number) => siteId.slice(0, n) };
  let tpl = templates.get(key);
  if (tpl === undefined) {
    tpl = null;
    try {
      const db = new Database(':memory:');
      const e = createSyncEngine(db, opts);
      e.driver.exec(ddl);
      for (const t of tables) e.init(t, undefined, 1);
      tpl = db.serialize();
      e.close();
    } catch {
      tpl = null;
    }
    templates.set(key, tpl);
  }
  if (tpl !== null) {
    const db = new Database(tpl);
    try {
      if (db.prepare('UPDATE offsync_sites SET site_id = ? WHERE id = 0').run(siteId).changes === 1) {
        const e = createSyncEngine(db, opts);
        if (Buffer.from(e.siteId).equals(Buffer.from(siteId))) return e;
      }
    } catch {
      // fall through to a fresh database
    }
    db.close();
  }
  const e = openSyncDatabase(':memory:', opts);
  e.driver.exec(ddl);
  for (const t of tables) e.init(t, undefined, 1);
  return e;
}

// ---------------------------------------------------------------------------------------------
// Replica pool: property runs reuse engines instead of building thousands of them

interface PoolEntry {
  engine: SyncEngine;
  busy: boolean;
}

const pool = new Map<string, PoolEntry>();
/** Per schema: the content of every engine-owned table right after initialisation. */
const freshState = new Map<string, { tables: Map<string, SqlValue[][]>; dbVersion: number }>();

function quote(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Engine-owned tables (everything but the user tables and SQLite's own), with their columns. */
function engineTables(e: SyncEngine, userTables: readonly string[]): { name: string; cols: string[] }[] {
  const user = new Set(userTables.map((t) => t.toLowerCase()));
  return e.driver
    .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
    .all()
    .map((r) => String(r['name']))
    .filter((n) => !user.has(n.toLowerCase()))
    .map((name) => ({ name, cols: e.driver.prepare(`SELECT name FROM pragma_table_info(?)`).all(name).map((r) => String(r['name'])) }));
}

function captureFresh(key: string, e: SyncEngine, userTables: readonly string[]): void {
  if (freshState.has(key)) return;
  const tables = new Map<string, SqlValue[][]>();
  for (const t of engineTables(e, userTables)) {
    tables.set(t.name, e.driver.prepare(`SELECT * FROM ${quote(t.name)}`).all().map((r) => t.cols.map((c) => r[c] ?? null)));
  }
  freshState.set(key, { tables, dbVersion: e.dbVersion() });
}

/**
 * Puts a used replica back into its freshly initialised state, in SQL: empties the user tables,
 * then restores every engine-owned table to its captured fresh content, except the site-id
 * registry (a table with a `site_id` column), which is kept so that the engine's cached site
 * references stay valid (a pooled replica only ever meets the same peers). Returns false (the
 * caller then builds a new replica) when the result does not look fresh.
 */
function resetReplica(key: string, e: SyncEngine, userTables: readonly string[], siteId: Uint8Array): boolean {
  const fresh = freshState.get(key);
  if (fresh === undefined || e.driver.inTransaction) return false;
  try {
    e.driver.transaction(() => {
      for (const t of userTables) e.driver.exec(`DELETE FROM ${quote(t)}`);
      for (const t of engineTables(e, userTables)) {
        if (t.cols.includes('site_id')) continue;
        const rows = fresh.tables.get(t.name);
        if (rows === undefined) throw new Error(`table ${t.name} appeared after init`);
        e.driver.exec(`DELETE FROM ${quote(t.name)}`);
        if (rows.length === 0) continue;
        const ins = e.driver.prepare(`INSERT INTO ${quote(t.name)} (${t.cols.map(quote).join(', ')}) VALUES (${t.cols.map(() => '?').join(', ')})`);
        for (const r of rows) ins.run(...r);
      }
    });
  } catch {
    return false;
  }
  return (
    Buffer.from(e.siteId).equals(Buffer.from(siteId)) &&
    e.dbVersion() === fresh.dbVersion &&
    e.changes().next().done === true &&
    userTables.every((t) => e.driver.prepare(`SELECT 1 FROM ${quote(t)} LIMIT 1`).getRaw() === undefined)
  );
}

/**
 * Like {@link openHarnessReplica}, but reuses an idle pooled engine of the same seed and schema
 * (reset to its fresh state). Give it back with {@link releaseReplica}.
 */
export function acquireReplica(seed: number, ddl = HARNESS_DDL, tables: readonly string[] = HARNESS_TABLES): SyncEngine {
  const schemaKey = `${ddl}\u0000${tables.join(',')}`;
  const key = `${schemaKey}\u0000${seed}`;
  const entry = pool.get(key);
  if (entry !== undefined && !entry.busy) {
    if (resetReplica(schemaKey, entry.engine, tables, siteIdFor(seed))) {
      entry.busy = true;
      return entry.engine;
    }
    entry.engine.close();
    pool.delete(key);
  }
  const e = openHarnessReplica(seed, ddl, tables);
  captureFresh(schemaKey, e, tables);
  if (!pool.has(key)) pool.set(key, { engine: e, busy: true });
  return e;
}

/** Returns a replica from {@link acquireReplica} to the pool (closes it if it is not pooled). */
export function releaseReplica(e: SyncEngine): void {
  for (const entry of pool.values()) {
    if (entry.engine === e) {
      entry.busy = false;
      return;
    }
  }
  e.close();
}

/** Closes every pooled replica. */
export function drainReplicaPool(): void {
  for (const entry of pool.values()) entry.engine.close();
  pool.clear();
}

function keyValues(table: TableName, key: number): SqlValue[] {
  if (table === 't') return [T_KEYS[key % T_KEYS.length] ?? 'p'];
  const k = K_KEYS[key % K_KEYS.length] ?? K_KEYS[0]!;
  return [k[0], k[1]];
}

function pkWhere(table: TableName): string {
  return table === 't' ? 'id = ?' : 'a = ? AND b = ?';
}

function colsOf(table: TableName): readonly { name: string; nullable: boolean }[] {
  return table === 't' ? T_COLS : K_COLS;
}

/** A pool value, replacing NULL by 0 for NOT NULL columns. */
function valueFor(col: { nullable: boolean }, idx: number): SqlValue {
  const v = VALUE_POOL[idx % VALUE_POOL.length] ?? null;
  return v === null && !col.nullable ? 0n : v;
}

function isConstraintError(e: unknown): boolean {
  return typeof e === 'object' && e !== null && 'code' in e && String((e as { code: unknown }).code).startsWith('SQLITE_CONSTRAINT');
}

/** SQL and parameters of one local write (not a transaction). */
export function opSql(op: Exclude<LocalOp, { kind: 'tx' }>): { sql: string; params: SqlValue[] } {
  const table = op.table;
  const pkNames = table === 't' ? ['id'] : ['a', 'b'];
  const pk = keyValues(table, op.key);
  const cols = colsOf(table);
  switch (op.kind) {
    case 'insert':
    case 'replace':
    case 'upsert': {
      // vals[i] for column i; a missing entry leaves the column to its DEFAULT.
      const used = cols.filter((_, i) => op.vals[i] !== undefined);
      const names = [...pkNames, ...used.map((c) => c.name)];
      const params = [...pk, ...used.map((c) => valueFor(c, op.vals[cols.indexOf(c)] ?? 0))];
      const verb = op.kind === 'replace' ? 'INSERT OR REPLACE' : 'INSERT';
      let sql = `${verb} INTO ${table} (${names.join(', ')}) VALUES (${names.map(() => '?').join(', ')})`;
      if (op.kind === 'upsert') {
        sql += used.length === 0
          ? ' ON CONFLICT DO NOTHING'
          : ` ON CONFLICT (${pkNames.join(', ')}) DO UPDATE SET ${used.map((c) => `${c.name} = excluded.${c.name}`).join(', ')}`;
      }
      return { sql, params };
    }
    case 'update': {
      const chosen = [...new Set(op.cols.map((c) => c % cols.length))];
      if (chosen.length === 0) chosen.push(0);
      const sets = chosen.map((c) => `${cols[c]!.name} = ?`);
      const params = chosen.map((c, i) => valueFor(cols[c]!, op.vals[i] ?? 0));
      return { sql: `UPDATE ${table} SET ${sets.join(', ')} WHERE ${pkWhere(table)}`, params: [...params, ...pk] };
    }
    case 'delete':
      return { sql: `DELETE FROM ${table} WHERE ${pkWhere(table)}`, params: pk };
    case 'pkChange': {
      const next = keyValues(table, op.newKey);
      const sets = pkNames.map((n) => `${n} = ?`).join(', ');
      return { sql: `UPDATE ${table} SET ${sets} WHERE ${pkWhere(table)}`, params: [...next, ...pk] };
    }
  }
}

/** Runs a local write; constraint failures (duplicate key, …) are part of the game and ignored. Returns true if it ran. */
export function applyLocalOp(e: SyncEngine, op: LocalOp): boolean {
  try {
    if (op.kind === 'tx') {
      e.driver.transaction(() => {
        for (const o of op.ops) applyLocalOp(e, o);
      });
    } else {
      const { sql, params } = opSql(op);
      e.driver.prepare(sql).run(...params);
    }
    return true;
  } catch (err) {
    if (isConstraintError(err)) return false;
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Snapshots and convergence

/** Type-tagged rendering of a value: two values render equal iff same storage class and bytes. */
export function tagValue(v: SqlValue): string {
  if (v === null) return 'null';
  if (typeof v === 'bigint') return `int:${v}`;
  if (typeof v === 'number') return `real:${Object.is(v, -0) ? '-0' : String(v)}`;
  if (typeof v === 'string') return `text:${JSON.stringify(v)}`;
  return `blob:${Buffer.from(v).toString('hex')}`;
}

/** Table rows with type-tagged values, in primary-key order. */
export function typedRows(e: SyncEngine, table: string): string[] {
  return tableRows(e, table).map((r) =>
    Object.entries(r)
      .map(([k, v]) => `${k}=${tagValue(v)}`)
      .join(' '),
  );
}

/**
 * `clockRows` with explicit `__[RIP]__=1` sentinels removed. §P5: "no sentinel means 1", and
 * §P5 merge step 3 ignores an incoming cl-1 sentinel when the row is already known, so a replica
 * that learnt a row's cells first never stores the cl-1 sentinel another one stores (the
 * extension behaves the same). Both states are equivalent for every later merge and write.
 */
export function normalisedClockRows(e: SyncEngine, table: string): string[] {
  // Formats: `pk/col=col_version` (older replica.ts) and `pk/col=col_version@cl`.
  return clockRows(e, table).filter((r) => !/\/__\[RIP\]__=1(@1)?$/.test(r));
}

/** Contents and clocks (normalised, see {@link normalisedClockRows}) of every harness table. */
export function snapshot(e: SyncEngine, tables: readonly string[] = HARNESS_TABLES): { rows: Record<string, string[]>; clocks: Record<string, string[]> } {
  const rows: Record<string, string[]> = {};
  const clocks: Record<string, string[]> = {};
  for (const t of tables) {
    rows[t] = typedRows(e, t);
    clocks[t] = normalisedClockRows(e, t);
  }
  return { rows, clocks };
}

export class ConvergenceError extends Error {
  constructor(
    message: string,
    readonly details: unknown,
  ) {
    super(message);
    this.name = 'ConvergenceError';
  }
}

/** Throws a {@link ConvergenceError} unless every replica has identical rows (typed) and clocks. */
export function assertConverged(replicas: readonly SyncEngine[], tables: readonly string[] = HARNESS_TABLES): void {
  const first = replicas[0];
  if (first === undefined) return;
  const ref = snapshot(first, tables);
  const refJson = JSON.stringify(ref);
  replicas.forEach((r, i) => {
    if (i === 0) return;
    const s = snapshot(r, tables);
    if (JSON.stringify(s) !== refJson) {
      throw new ConvergenceError(
        `replica ${i} diverges from replica 0:\n` +
          `replica 0: ${JSON.stringify(ref, null, 1)}\nreplica ${i}: ${JSON.stringify(s, null, 1)}`,
        { ref, other: s, index: i },
      );
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Mesh cluster

export interface ClusterOptions {
  /** Seed of the replicas' site ids (default 1). */
  seed?: number;
  ddl?: string;
  tables?: readonly string[];
  /** Reuse pooled replicas ({@link acquireReplica}); default true. */
  reuse?: boolean;
}

/** N replicas exchanging messages over an unreliable network. */
export class ReplicaCluster {
  readonly replicas: SyncEngine[];
  readonly tables: readonly string[];
  /** Messages in flight. */
  readonly queue: Message[] = [];
  /** Partition group of each replica (all 0 when healed). */
  groups: number[];
  /** Per (from,to) delta cursor in the sender's version space. */
  readonly #cursors = new Map<string, { dbVersion: number; seq: number }>();
  readonly #reuse: boolean;
  /** Statistics, for test output. */
  readonly stats = { ops: 0, opsFailed: 0, sent: 0, delivered: 0, dropped: 0, applied: 0, antiEntropyRounds: 0 };

  constructor(n: number, opts: ClusterOptions = {}) {
    const seed = opts.seed ?? 1;
    this.tables = opts.tables ?? HARNESS_TABLES;
    this.#reuse = opts.reuse ?? true;
    const open = this.#reuse ? acquireReplica : openHarnessReplica;
    this.replicas = Array.from({ length: n }, (_, i) => open(seed * 100 + i, opts.ddl, this.tables));
    this.groups = this.replicas.map(() => 0);
  }

  #connected(a: number, b: number): boolean {
    return this.groups[a] === this.groups[b];
  }

  op(replica: number, op: LocalOp): void {
    const e = this.#replica(replica);
    this.stats.ops++;
    if (!applyLocalOp(e, op)) this.stats.opsFailed++;
  }

  /** Builds and queues a message from `from` to `to`. */
  send(from: number, to: number, mode: SendMode = 'full', raw = false): void {
    const src = this.#replica(from);
    const dst = this.#replica(to);
    if (from === to) return;
    const key = `${from}>${to}`;
    const after = mode === 'delta' ? this.#cursors.get(key) : undefined;
    const changes = [...src.changes({ excludeSiteId: dst.siteId, ...(after ? { after } : {}) })];
    const last = changes.at(-1);
    if (mode === 'delta' && last !== undefined) this.#cursors.set(key, { dbVersion: last.dbVersion, seq: last.seq });
    if (changes.length === 0) return;
    this.stats.sent++;
    this.queue.push(raw ? { from, to, payload: null, raw: changes } : { from, to, payload: src.encodeChanges(changes), raw: null });
  }

  /** Delivers (or, across a partition, drops) a queued message. */
  deliver(index: number, keep = false): void {
    if (this.queue.length === 0) return;
    const i = ((index % this.queue.length) + this.queue.length) % this.queue.length;
    const m = this.queue[i]!;
    if (!keep) this.queue.splice(i, 1);
    if (!this.#connected(m.from, m.to)) {
      this.stats.dropped++;
      if (keep) this.queue.splice(i, 1);
      return;
    }
    this.stats.delivered++;
    this.stats.applied += this.#applyMessage(m);
  }

  #applyMessage(m: Message): number {
    const dst = this.#replica(m.to);
    if (m.raw !== null) return dst.applyChanges(m.raw).applied;
    if (m.payload === null) return 0;
    return dst.applyPayload(m.payload).applied;
  }

  partition(groups: readonly number[]): void {
    this.groups = this.replicas.map((_, i) => groups[i] ?? 0);
  }

  heal(): void {
    this.groups = this.replicas.map(() => 0);
  }

  /** Delivers every queued message in order (those across a partition are dropped). */
  flush(): void {
    while (this.queue.length > 0) this.deliver(0);
  }

  /**
   * Heals, flushes, then runs full anti-entropy rounds (every replica sends everything to every
   * other, applied immediately) until a whole round applies nothing. Throws after `maxRounds`.
   */
  antiEntropy(maxRounds = 10): number {
    this.heal();
    this.flush();
    for (let round = 1; round <= maxRounds; round++) {
      this.stats.antiEntropyRounds++;
      let applied = 0;
      for (let i = 0; i < this.replicas.length; i++) {
        for (let j = 0; j < this.replicas.length; j++) {
          if (i === j) continue;
          const src = this.replicas[i]!;
          const dst = this.replicas[j]!;
          const changes = [...src.changes({ excludeSiteId: dst.siteId })];
          if (changes.length === 0) continue;
          const payload = src.encodeChanges(changes);
          if (payload !== null) applied += dst.applyPayload(payload).applied;
        }
      }
      if (applied === 0) return round;
    }
    throw new ConvergenceError(`anti-entropy did not quiesce within ${maxRounds} rounds`, { maxRounds });
  }

  assertConverged(): void {
    assertConverged(this.replicas, this.tables);
  }

  run(step: Step): void {
    const n = this.replicas.length;
    switch (step.kind) {
      case 'op':
        return this.op(step.replica % n, step.op);
      case 'send': {
        const from = step.from % n;
        const to = step.to % n === from ? (from + 1) % n : step.to % n;
        return this.send(from, to, step.mode, step.raw);
      }
      case 'deliver':
        return this.deliver(step.index, step.keep);
      case 'partition':
        return this.partition(step.groups);
      case 'heal':
        return this.heal();
    }
  }

  close(): void {
    for (const r of this.replicas) (this.#reuse ? releaseReplica : (x: SyncEngine) => x.close())(r);
  }

  #replica(i: number): SyncEngine {
    const r = this.replicas[i];
    if (r === undefined) throw new RangeError(`no replica ${i}`);
    return r;
  }
}

export type ScenarioResult = ReplicaCluster['stats'] & {
  /** The converged state (typed rows and normalised clocks) as JSON. */
  state: string;
};

/** Runs a mesh scenario to the end, heals, runs anti-entropy and asserts convergence. */
export function runScenario(s: Scenario, opts: ClusterOptions = {}): ScenarioResult {
  const c = new ReplicaCluster(s.replicas, opts);
  try {
    for (const step of s.steps) c.run(step);
    c.antiEntropy();
    c.assertConverged();
    return { ...c.stats, state: JSON.stringify(snapshot(c.replicas[0]!, c.tables)) };
  } finally {
    c.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Star topology with cursors

/**
 * One server replica and N clients. A client uploads its own changes after its upload cursor
 * (its own version space) and downloads the server's changes after its download cursor (the
 * server's version space), excluding its own site. Cursors only move to the last change actually
 * received, so a skipped change would show as divergence after the final rounds.
 */
export class StarCluster {
  readonly server: SyncEngine;
  readonly clients: SyncEngine[];
  readonly #up: ({ dbVersion: number; seq: number } | undefined)[];
  readonly #down: ({ dbVersion: number; seq: number } | undefined)[];
  readonly stats = { ops: 0, uploads: 0, downloads: 0, applied: 0 };
  readonly #reuse: boolean;

  constructor(clients: number, opts: ClusterOptions = {}) {
    const seed = opts.seed ?? 1;
    const tables = opts.tables ?? HARNESS_TABLES;
    this.#reuse = opts.reuse ?? true;
    const open = this.#reuse ? acquireReplica : openHarnessReplica;
    this.server = open(seed * 100 + 99, opts.ddl, tables);
    this.clients = Array.from({ length: clients }, (_, i) => open(seed * 100 + i, opts.ddl, tables));
    this.#up = this.clients.map(() => undefined);
    this.#down = this.clients.map(() => undefined);
  }

  op(client: number, op: LocalOp): void {
    this.stats.ops++;
    applyLocalOp(this.#client(client), op);
  }

  /** Client → server: local changes after the upload cursor. `raw` skips the payload codec. */
  upload(client: number, raw = false): number {
    const c = this.#client(client);
    const after = this.#up[client];
    const changes = [...c.changes({ localOnly: true, ...(after ? { after } : {}) })];
    const last = changes.at(-1);
    if (last === undefined) return 0;
    this.stats.uploads++;
    const applied = raw ? this.server.applyChanges(changes).applied : this.server.applyPayload(c.encodeChanges(changes)!).applied;
    this.#up[client] = { dbVersion: last.dbVersion, seq: last.seq };
    this.stats.applied += applied;
    return applied;
  }

  /** Server → client: changes after the download cursor, excluding the client's own. */
  download(client: number, raw = false): number {
    const c = this.#client(client);
    const after = this.#down[client];
    const changes = [...this.server.changes({ excludeSiteId: c.siteId, ...(after ? { after } : {}) })];
    const last = changes.at(-1);
    if (last === undefined) return 0;
    this.stats.downloads++;
    const applied = raw ? c.applyChanges(changes).applied : c.applyPayload(this.server.encodeChanges(changes)!).applied;
    this.#down[client] = { dbVersion: last.dbVersion, seq: last.seq };
    this.stats.applied += applied;
    return applied;
  }

  /** Upload + download rounds for every client until nothing moves. */
  settle(maxRounds = 10): number {
    for (let round = 1; round <= maxRounds; round++) {
      let moved = 0;
      for (let i = 0; i < this.clients.length; i++) moved += this.upload(i);
      for (let i = 0; i < this.clients.length; i++) moved += this.download(i);
      if (moved === 0) return round;
    }
    throw new ConvergenceError(`star sync did not quiesce within ${maxRounds} rounds`, { maxRounds });
  }

  /**
   * Converged rows and clocks everywhere, and nothing left behind by the cursors: a full
   * (cursor-less) exchange in both directions applies nothing.
   */
  assertConverged(): void {
    assertConverged([this.server, ...this.clients]);
    for (const c of this.clients) {
      const down = [...this.server.changes({ excludeSiteId: c.siteId })];
      const up = [...c.changes({ excludeSiteId: this.server.siteId })];
      const a = down.length === 0 ? 0 : c.applyChanges(down).applied;
      const b = up.length === 0 ? 0 : this.server.applyChanges(up).applied;
      if (a + b !== 0) throw new ConvergenceError(`cursors skipped changes: a full exchange still applied ${a} down, ${b} up`, { a, b });
    }
  }

  close(): void {
    for (const r of [this.server, ...this.clients]) (this.#reuse ? releaseReplica : (x: SyncEngine) => x.close())(r);
  }

  #client(i: number): SyncEngine {
    const c = this.clients[i % this.clients.length];
    if (c === undefined) throw new RangeError(`no client ${i}`);
    return c;
  }
}

export type StarStep =
  | { kind: 'op'; client: number; op: LocalOp }
  | { kind: 'upload'; client: number; raw: boolean }
  | { kind: 'download'; client: number; raw: boolean };

export interface StarScenario {
  clients: number;
  steps: StarStep[];
}

export function runStarScenario(s: StarScenario, opts: ClusterOptions = {}): StarCluster['stats'] {
  const c = new StarCluster(s.clients, opts);
  try {
    for (const step of s.steps) {
      if (step.kind === 'op') c.op(step.client % s.clients, step.op);
      else if (step.kind === 'upload') c.upload(step.client % s.clients, step.raw);
      else c.download(step.client % s.clients, step.raw);
    }
    c.settle();
    c.assertConverged();
    return { ...c.stats };
  } finally {
    c.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Generators

const tableArb = fc.constantFrom<TableName>('t', 'k');
const keyArb = fc.nat({ max: 2 });
const valArb = fc.nat({ max: VALUE_POOL.length - 1 });
/** Values for up to 3 columns; `undefined` entries use the column DEFAULT (inserts only). */
const rowValsArb = fc.array(valArb, { minLength: 0, maxLength: 3 });

const simpleOpArb: fc.Arbitrary<Exclude<LocalOp, { kind: 'tx' }>> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('insert' as const), table: tableArb, key: keyArb, vals: rowValsArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('replace' as const), table: tableArb, key: keyArb, vals: rowValsArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('upsert' as const), table: tableArb, key: keyArb, vals: rowValsArb }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('update' as const),
      table: tableArb,
      key: keyArb,
      cols: fc.array(fc.nat({ max: 2 }), { minLength: 1, maxLength: 3 }),
      vals: fc.array(valArb, { minLength: 3, maxLength: 3 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), table: tableArb, key: keyArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('pkChange' as const), table: tableArb, key: keyArb, newKey: keyArb }) },
);

export const localOpArb: fc.Arbitrary<LocalOp> = fc.oneof(
  { weight: 9, arbitrary: simpleOpArb },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('tx' as const), ops: fc.array(simpleOpArb, { minLength: 2, maxLength: 3 }) }) },
);

export interface ScenarioArbOptions {
  minReplicas?: number;
  maxReplicas?: number;
  minSteps?: number;
  maxSteps?: number;
}

/** A mesh scenario: local ops interleaved with sends, deliveries (reordered, duplicated), partitions and heals. */
export function scenarioArb(o: ScenarioArbOptions = {}): fc.Arbitrary<Scenario> {
  const minR = o.minReplicas ?? 3;
  const maxR = o.maxReplicas ?? 5;
  return fc.integer({ min: minR, max: maxR }).chain((replicas) => {
    const rep = fc.nat({ max: replicas - 1 });
    const step: fc.Arbitrary<Step> = fc.oneof(
      { weight: 10, arbitrary: fc.record({ kind: fc.constant('op' as const), replica: rep, op: localOpArb }) },
      {
        weight: 5,
        arbitrary: fc.record({
          kind: fc.constant('send' as const),
          from: rep,
          to: rep, // from === to is remapped to the next replica
          mode: fc.constantFrom<SendMode>('full', 'delta'),
          raw: fc.nat({ max: 4 }).map((n) => n === 0), // ~20% raw Change[] via applyChanges
        }),
      },
      { weight: 5, arbitrary: fc.record({ kind: fc.constant('deliver' as const), index: fc.nat({ max: 20 }), keep: fc.boolean() }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('partition' as const), groups: fc.array(fc.nat({ max: 1 }), { minLength: replicas, maxLength: replicas }) }) },
      { weight: 1, arbitrary: fc.constant({ kind: 'heal' as const }) },
    );
    return fc.record({
      replicas: fc.constant(replicas),
      steps: fc.array(step, { minLength: o.minSteps ?? 5, maxLength: o.maxSteps ?? 40, size: 'max' }),
    });
  });
}

/** A star scenario: client ops interleaved with uploads and downloads. */
export function starScenarioArb(o: ScenarioArbOptions = {}): fc.Arbitrary<StarScenario> {
  const minR = o.minReplicas ?? 2;
  const maxR = o.maxReplicas ?? 4;
  return fc.integer({ min: minR, max: maxR }).chain((clients) => {
    const cl = fc.nat({ max: clients - 1 });
    const step: fc.Arbitrary<StarStep> = fc.oneof(
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('op' as const), client: cl, op: localOpArb }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('upload' as const), client: cl, raw: fc.boolean() }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('download' as const), client: cl, raw: fc.boolean() }) },
    );
    return fc.record({ clients: fc.constant(clients), steps: fc.array(step, { minLength: o.minSteps ?? 5, maxLength: o.maxSteps ?? 40, size: 'max' }) });
  });
}

/** A mesh scenario derived deterministically from `seed` (no property runner needed). */
export function randomScenario(seed: number, o: ScenarioArbOptions = {}): Scenario {
  const [s] = fc.sample(scenarioArb(o), { seed, numRuns: 1 });
  if (s === undefined) throw new Error('no scenario generated');
  return s;
}

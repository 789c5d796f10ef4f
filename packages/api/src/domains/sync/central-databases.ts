/**
 * Registry of central databases: each OffSync database's central SQLite file is opened once
 * (`openSyncDatabase`) and kept open; every merge of that database runs on this one
 * synchronous engine, so server versions are assigned and committed in one order.
 *
 * The file is never created here, and every use checks it is still the file that was opened
 * (docs/ARCHITECTURE.md "Central files"): on open, the id inside (`offsync_identity`) must equal
 * the target's `identity`; before each use, the path must still name the same inode (dev/ino). A
 * missing or replaced file closes the connection and refuses sync with 503
 * `database_file_missing` until the control plane gives another identity (`restoreConnection`).
 * Connections use `PRAGMA synchronous = FULL` unless the target says NORMAL.
 */
import { renameSync, rmSync, statSync } from 'node:fs';
import { openSyncDatabase } from '@offsync/core/sqlite';
import { readFileIdentity } from './central-file.ts';
import { flushDeviceCursors } from './device-cursors.ts';
import { afterMainWrites } from './main-connection.ts';
import { PeerState } from './peer-state.ts';
import { PgCentral, PgCentralDatabase } from './pg-central.ts';
import type { Central } from './central.ts';
import { SchemaGate, SqliteCentral } from './sqlite-central.ts';
import type { SqliteFile } from './sqlite-central.ts';
import type { CentralWorkers } from './central-worker/pool.ts';
import type { CentralRef } from './central-worker/protocol.ts';
import type { PgCentralSettings } from './pg-central.ts';
import type { DatabaseTarget, SyncDeps, SyncEngine } from './sync-deps.ts';
import { SyncError } from './sync-errors.ts';

/** A SQLite central database as resolved for one request (sqlite-central.ts). */
export type CentralDatabase = SqliteCentral;
export type { Central } from './central.ts';
export { PgCentralDatabase } from './pg-central.ts';

interface Open extends SqliteFile {
  /** The identity expected when opened (the target's; '' when unchecked). */
  identity: string;
  dev: number;
  ino: number;
  /** dev/ino of the -wal and -shm files this connection created (undefined: none seen). */
  sidecars: Record<'-wal' | '-shm', { dev: number; ino: number } | undefined>;
  /** When dev/ino were last compared (ms, `now()`). */
  checkedAt: number;
  /** The worker checkpoint scheduled or running after main-connection writes (see {@link CentralDatabases.checkpointing}). */
  checkpoint: { timer: ReturnType<typeof setTimeout> | undefined; done: Promise<void>; end: () => void; again: boolean } | undefined;
}

export interface CentralDatabasesOptions {
  /**
   * Opens a central file, which must exist (default `openSyncDatabase(path, { mustExist: true,
   * synchronous })`).
   */
  open?: (path: string, target: DatabaseTarget) => SyncEngine;
  /**
   * The central workers that also open these files (central-worker/pool.ts): told to close a file
   * this registry closes; with them, the main connection waits at most `mainBusyTimeoutMs` (default
   * 100) for the write lock — its writes (site claims, device sync state) are small, and a worker's
   * long merge must not freeze the event loop (an answer of 503 `server_busy` instead).
   */
  workers?: CentralWorkers;
  mainBusyTimeoutMs?: number;
  /** LISTEN for writes of other programs to POSTGRES databases (default true; one more connection per database and node). */
  listenPostgres?: boolean;
  /** Opens a POSTGRES central (default `PgCentral.open(settings)`). */
  openPostgres?: (settings: PgCentralSettings) => Promise<PgCentral>;
  /** Skip the dev/ino check of an open file when the last one is younger than this (default 0: every use). */
  checkIntervalMs?: number;
  /**
   * With workers: how long after a write on the main connection the file's worker checkpoints
   * the WAL (default 1000 ms; one checkpoint for all the writes of that window).
   */
  checkpointDelayMs?: number;
  now?: () => number;
}

/** Database ids are path segments: printable, no slashes, at most 128 characters. */
const DATABASE_ID = /^[A-Za-z0-9._~-]{1,128}$/;

export function isValidDatabaseId(id: string): boolean {
  return DATABASE_ID.test(id);
}

export class CentralDatabases {
  readonly #resolve: SyncDeps['resolveDatabase'];
  readonly #open: (path: string, target: DatabaseTarget) => SyncEngine;
  readonly #dbs = new Map<string, Open>();
  readonly #openPostgres: (settings: PgCentralSettings) => Promise<PgCentral>;
  /** POSTGRES centrals by database id, with the settings they were opened with. */
  readonly #pgs = new Map<string, { key: string; central: Promise<PgCentral> }>();
  #onExternalWrite: ((databaseId: string, central: PgCentral, tables: string[]) => void) | undefined;
  readonly #listenPostgres: boolean;
  readonly #workers: CentralWorkers | undefined;
  readonly #mainBusyTimeoutMs: number;
  /** Databases whose file vanished or was replaced while open → the identity then expected. */
  readonly #refused = new Map<string, string>();
  readonly #checkIntervalMs: number;
  readonly #checkpointDelayMs: number;
  readonly #now: () => number;
  /** Per database: schema changes wait for its merges and scans, and hold new ones (sqlite-central.ts). */
  readonly #gates = new Map<string, SchemaGate>();
  /** Schema generation: bumped by every schema change made through this owner. */
  #generation = 0;
  #disposed = false;

  constructor(resolve: SyncDeps['resolveDatabase'], opts: CentralDatabasesOptions = {}) {
    this.#resolve = resolve;
    // Schema changes reach this connection through the owner (`withSchemaChange`): no polling.
    this.#open = opts.open ?? ((path, target) => openSyncDatabase(path, { mustExist: true, synchronous: target.synchronous ?? 'FULL', schemaWatch: false }));
    this.#openPostgres = opts.openPostgres ?? ((settings) => PgCentral.open(settings));
    this.#listenPostgres = opts.listenPostgres ?? true;
    this.#workers = opts.workers;
    this.#mainBusyTimeoutMs = opts.mainBusyTimeoutMs ?? 100;
    this.#checkIntervalMs = opts.checkIntervalMs ?? 0;
    this.#checkpointDelayMs = opts.checkpointDelayMs ?? 1000;
    this.#now = opts.now ?? (() => Date.now());
  }

  /**
   * Resolves and opens a SQLite central database; throws SyncError database_not_found /
   * sync_disabled, and not_supported for a POSTGRES database (callers that serve both use `open`).
   */
  async get(databaseId: string): Promise<CentralDatabase> {
    const db = await this.open(databaseId);
    if (!(db instanceof SqliteCentral)) throw new SyncError('not_supported', `Database ${databaseId} is a POSTGRES database; this operation is available for SQLite databases only`);
    return db;
  }

  /** Resolves and opens `databaseId`, of either kind; throws SyncError database_not_found / sync_disabled / database_unavailable. */
  async open(databaseId: string): Promise<Central> {
    return this.openTarget(databaseId, await this.resolve(databaseId));
  }

  /** One look-up of `databaseId` (the control plane's answer); throws SyncError database_not_found. */
  async resolve(databaseId: string): Promise<DatabaseTarget> {
    if (this.#disposed) throw new SyncError('server_busy', 'the sync service is shutting down');
    if (!isValidDatabaseId(databaseId)) throw new SyncError('database_not_found', `No database ${JSON.stringify(databaseId)}`);
    const target = await this.#resolve(databaseId);
    if (target === undefined) throw new SyncError('database_not_found', `No database ${databaseId}`);
    return target;
  }

  /** Opens `databaseId` as `target` (from {@link resolve}, once per request); throws SyncError sync_disabled / database_unavailable. */
  async openTarget(databaseId: string, target: DatabaseTarget): Promise<Central> {
    if (this.#disposed) throw new SyncError('server_busy', 'the sync service is shutting down');
    if (!target.enabled) throw new SyncError('sync_disabled', `Sync is disabled for database ${databaseId}`);
    if (target.postgres !== undefined) return new PgCentralDatabase(databaseId, target, await this.#openedPg(databaseId, target.postgres));
    return new SqliteCentral(databaseId, target, this.#opened(databaseId, target));
  }

  /** Who hears of writes made by other programs to a POSTGRES database (the sync service announces them). */
  onExternalWrite(fn: (databaseId: string, central: PgCentral, tables: string[]) => void): void {
    this.#onExternalWrite = fn;
  }

  /** One pool per POSTGRES database and node; reopened when its settings change; a failed open is not kept. */
  async #openedPg(id: string, settings: PgCentralSettings): Promise<PgCentral> {
    const key = JSON.stringify([settings.host, settings.port, settings.database, settings.user, settings.password, settings.ssl]);
    const cur = this.#pgs.get(id);
    if (cur !== undefined && cur.key === key) return cur.central;
    if (cur !== undefined) {
      this.#pgs.delete(id);
      void cur.central.then((c) => c.close(), () => undefined);
    }
    const central = this.#openPostgres(settings).then((c) => {
      if (this.#listenPostgres) c.listen((tables) => this.#onExternalWrite?.(id, c, tables));
      return c;
    });
    this.#pgs.set(id, { key, central });
    try {
      return await central;
    } catch (e) {
      if (this.#pgs.get(id)?.central === central) this.#pgs.delete(id);
      throw new SyncError('database_unavailable', `The PostgreSQL database of ${id} cannot be reached; retry later`, { cause: e });
    }
  }

  /**
   * True when this process refuses the database because its file vanished or was replaced while
   * open, and `identity` (the control plane's) is still the one expected then.
   */
  isRefused(databaseId: string, identity: string | null | undefined): boolean {
    return this.#refused.get(databaseId) === (identity ?? '');
  }

  /**
   * Runs a schema change (`fn`: deploy, cleanup, block columns, visibility renewal) of a SQLite
   * database on the owner's connection: after the merges and scans in flight for it, before any
   * new one. Then the owner's engine reloads its tables and the central workers see a new schema
   * generation with their next job, so no connection owned here polls `PRAGMA schema_version`.
   * When the file is not open here (no device synced since the start), `fn` runs on the file
   * itself, and the next open reads the new schema. `fn` is synchronous: nothing interleaves.
   */
  withSchemaChange<T>(databaseId: string, path: string, fn: (engine: SyncEngine) => T): Promise<T> {
    return this.#gateOf(databaseId).exclusive(() => {
      const cur = this.#owned(databaseId, path);
      if (cur === undefined) {
        this.#generation++;
        return onFile(path, fn);
      }
      try {
        return fn(cur.engine);
      } finally {
        cur.engine.reloadSchema();
        cur.schemaGeneration = ++this.#generation;
      }
    });
  }

  /** Reads a SQLite database's schema (tables, schema history) on the owner's connection, or on the file when it is not open here. */
  readSchema<T>(databaseId: string, path: string, fn: (engine: SyncEngine) => T): Promise<T> {
    const cur = this.#owned(databaseId, path);
    return Promise.resolve(cur === undefined ? onFile(path, fn) : fn(cur.engine));
  }

  /** The open connection of `databaseId` when it is still the file at `path`. */
  #owned(databaseId: string, path: string): Open | undefined {
    const cur = this.#dbs.get(databaseId);
    if (cur === undefined || cur.path !== path) return undefined;
    const st = statSync(path, { throwIfNoEntry: false });
    return st !== undefined && st.dev === cur.dev && st.ino === cur.ino ? cur : undefined;
  }

  #gateOf(databaseId: string): SchemaGate {
    let g = this.#gates.get(databaseId);
    if (g === undefined) {
      g = new SchemaGate();
      this.#gates.set(databaseId, g);
    }
    return g;
  }

  /** The already-open engine of a database, if any (no resolution). */
  peek(databaseId: string): SyncEngine | undefined {
    return this.#dbs.get(databaseId)?.engine;
  }

  #opened(id: string, target: DatabaseTarget): Open {
    const { path } = target;
    const identity = target.identity ?? '';
    const cur = this.#dbs.get(id);
    if (cur !== undefined && cur.path === path && cur.identity === identity) {
      const now = this.#now();
      if (now - cur.checkedAt < this.#checkIntervalMs) return cur;
      const st = statSync(path, { throwIfNoEntry: false });
      if (st !== undefined && st.dev === cur.dev && st.ino === cur.ino) {
        cur.checkedAt = now;
        return cur;
      }
      // Deleted, or another file put in its place: what was acknowledged is in the old inode.
      this.#close(id, cur);
      setAsideSidecars(cur);
      this.#refused.set(id, identity);
      throw fileMissing(id, st === undefined ? 'was deleted' : 'was replaced');
    }
    if (cur !== undefined) this.#close(id, cur);
    if (this.#refused.get(id) === identity) throw fileMissing(id, 'vanished or was replaced while in use');
    this.#refused.delete(id);
    let engine: SyncEngine;
    try {
      engine = this.#open(path, target);
    } catch (e) {
      if (isCantOpen(e)) throw fileMissing(id, 'does not exist');
      if (e instanceof Error && Reflect.get(e, 'code') === 'SQLITE_NOTADB') throw fileMissing(id, 'is not a database', e);
      throw e;
    }
    try {
      const st = statSync(path);
      let found: string | null;
      try {
        found = readFileIdentity(engine.driver);
      } catch (e) {
        // Not a SQLite database (SQLITE_NOTADB …): not our file either.
        throw fileMissing(id, 'is not a database', e);
      }
      if (identity !== '' && found !== identity) throw fileMissing(id, found === null ? 'carries no identity' : 'carries another identity');
      // Deletions are judged by RLS on the row's last values: keep them (docs/ARCHITECTURE.md "RLS model").
      engine.setKeepTombstoneValues(true);
      if (this.#workers !== undefined) {
        engine.driver.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.trunc(this.#mainBusyTimeoutMs))}`);
        // The event loop never checkpoints (a commit that crosses SQLite's 1000-page mark would
        // copy the whole WAL into the file right there, after a merge: bench/load.ts saw a site
        // claim block the loop 671 ms). The file's worker does: its merges' commits, and a
        // passive checkpoint shortly after the main connection writes (claims, cursors).
        engine.driver.exec('PRAGMA wal_autocheckpoint = 0');
      }
      const open: Open = {
        path,
        engine,
        peers: new PeerState(engine),
        gate: this.#gateOf(id),
        schemaGeneration: this.#generation,
        identity,
        dev: st.dev,
        ino: st.ino,
        sidecars: { '-wal': fileId(`${path}-wal`), '-shm': fileId(`${path}-shm`) },
        checkedAt: this.#now(),
        checkpoint: undefined,
      };
      if (this.#workers !== undefined) {
        const synchronous = target.synchronous ?? 'FULL';
        afterMainWrites(engine, () => this.#checkpointSoon(id, open, synchronous));
      }
      this.#dbs.set(id, open);
      return open;
    } catch (e) {
      engine.close();
      throw e;
    }
  }

  /**
   * The worker checkpoint of `databaseId` scheduled or running after writes on its main
   * connection, if any: resolves when it is done (or was given up: the file closed, the worker
   * died). Operations and tests.
   */
  checkpointing(databaseId: string): Promise<void> | undefined {
    return this.#dbs.get(databaseId)?.checkpoint?.done;
  }

  /** Schedules one passive checkpoint of `file` on its worker (pinned: after the merges before it). */
  #checkpointSoon(id: string, file: Open, synchronous: 'FULL' | 'NORMAL'): void {
    const workers = this.#workers;
    if (workers === undefined || this.#disposed || this.#dbs.get(id) !== file) return;
    if (file.checkpoint !== undefined) {
      // Written while the checkpoint runs: one more after it (what it copied may predate this write).
      if (file.checkpoint.timer === undefined) file.checkpoint.again = true;
      return;
    }
    let finish = (): void => undefined;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const cp: NonNullable<Open['checkpoint']> = {
      timer: undefined,
      done,
      again: false,
      end: () => {
        if (cp.timer !== undefined) clearTimeout(cp.timer);
        cp.timer = undefined;
        if (file.checkpoint !== cp) return;
        file.checkpoint = undefined;
        finish();
        if (cp.again && !this.#disposed && this.#dbs.get(id) === file) this.#checkpointSoon(id, file, synchronous);
      },
    };
    cp.timer = setTimeout(() => {
      cp.timer = undefined;
      // Still this file at its path (a vanished or replaced one is closed by its next use, not checkpointed).
      const st = statSync(file.path, { throwIfNoEntry: false });
      if (this.#disposed || this.#dbs.get(id) !== file || st === undefined || st.dev !== file.dev || st.ino !== file.ino) return cp.end();
      const db: CentralRef = { path: file.path, synchronous, schemaGeneration: file.schemaGeneration };
      // A worker that died or a busy file: the next write on the main connection schedules another.
      workers.run({ kind: 'checkpoint', db }).then(cp.end, cp.end);
    }, this.#checkpointDelayMs);
    cp.timer.unref();
    file.checkpoint = cp;
  }

  #close(id: string, cur: Open): void {
    this.#dbs.delete(id);
    cur.checkpoint?.end();
    this.#workers?.close(cur.path);
    closeFile(cur.engine);
  }

  /** Closes every open database; resolves when the POSTGRES pools have ended. */
  dispose(): Promise<void> {
    this.#disposed = true;
    const closing = [...this.#pgs.values()].map(({ central }) => central.then((c) => c.close(), () => undefined));
    this.#pgs.clear();
    const open = [...this.#dbs.values()];
    this.#dbs.clear();
    for (const db of open) {
      db.checkpoint?.end();
      closeFile(db.engine);
    }
    return Promise.all(closing).then(() => undefined);
  }
}

/** Closes a registry's connection, its pending device cursors written first (device-cursors.ts). */
function closeFile(engine: SyncEngine): void {
  try {
    flushDeviceCursors(engine);
  } catch {
    // busy or closed: those cursors stay older (compaction only gets more conservative)
  }
  try {
    engine.close();
  } catch {
    // already closed
  }
}

/** `fn` on a connection of its own to the file at `path` (which must exist), closed after. */
function onFile<T>(path: string, fn: (engine: SyncEngine) => T): T {
  const engine = openSyncDatabase(path, { mustExist: true });
  try {
    return fn(engine);
  } finally {
    engine.close();
  }
}

function fileMissing(id: string, what: string, cause?: unknown): SyncError {
  return new SyncError(
    'database_file_missing',
    `The central database file of ${id} ${what}; sync is refused until an operator runs restoreConnection`,
    cause === undefined ? undefined : { cause },
  );
}

function isCantOpen(e: unknown): boolean {
  const code = e instanceof Error ? Reflect.get(e, 'code') : undefined;
  return code === 'SQLITE_CANTOPEN' || (e instanceof TypeError && /directory does not exist/.test(e.message));
}

function fileId(path: string): { dev: number; ino: number } | undefined {
  const st = statSync(path, { throwIfNoEntry: false });
  return st === undefined ? undefined : { dev: st.dev, ino: st.ino };
}

/**
 * After the database file vanished or was replaced, the -wal/-shm at its path still belong to
 * the old inode (SQLite does not checkpoint into an unlinked file): a file put there later would
 * replay them and break. Ours (same dev/ino as when opened) are moved away: the WAL, which may
 * hold committed transactions, is kept as `<file>-wal.orphaned-<ms>`; the -shm index is removed.
 */
function setAsideSidecars(cur: Open): void {
  for (const suffix of ['-wal', '-shm'] as const) {
    const mine = cur.sidecars[suffix];
    const now = fileId(cur.path + suffix);
    if (mine === undefined || now === undefined || now.dev !== mine.dev || now.ino !== mine.ino) continue;
    try {
      if (suffix === '-wal') renameSync(cur.path + suffix, `${cur.path}-wal.orphaned-${Date.now()}`);
      else rmSync(cur.path + suffix, { force: true });
    } catch {
      // Best effort: the refusal stands either way.
    }
  }
}

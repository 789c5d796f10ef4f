/**
 * The SQLite Sync SQL API on a better-sqlite3 connection, with the extension's names, arities,
 * results and error texts (0.9.99 for the local functions; 1.1.4 for block columns and row
 * filters, docs/PROTOCOL.md "Block columns" and "Row filters"; G3 JSON strings for the network ones).
 *
 * better-sqlite3 forbids running statements on a connection while one of its functions runs, so
 * the functions drive the engine on a second, internal connection to the same file (WAL): the
 * app's statement holds at most a read snapshot and the engine can write. Network functions block
 * the calling thread (blocking-http.ts).
 */
import type Database from 'better-sqlite3';
import { CoreError, encodePk, toHex } from '@offsync/core';
import type { SqlValue, SyncEngine } from '@offsync/core';
import { sleepBlocking } from './blocking-http.ts';
import { CLOUDSYNC_COMPAT_VERSION } from './protocol.ts';
import { receiveJson, runBlocking, sendJson } from './session.ts';
import type { SyncSession } from './session.ts';
import type { ClientSettings } from './settings.ts';
import type { BlockingSyncTransport } from './transport.ts';
import { uuidv7Text } from './uuid.ts';

/** What the SQL functions need from the database object. */
export interface SqlHost {
  readonly db: Database.Database;
  /** The engine on the internal connection; undefined for `:memory:` (functions that need it throw). */
  readonly sqlEngine: SyncEngine | undefined;
  readonly siteId: Uint8Array;
  readonly settings: ClientSettings;
  readonly session: SyncSession;
  readonly defaultServerUrl: string;
  blocking(): BlockingSyncTransport;
  initNetwork(address: string, databaseId: string): void;
  setCredential(credential: string): void;
  terminate(): void;
  logout(): void;
}

export const NEEDS_FILE = 'OffSync: this cloudsync SQL function needs a file database (the engine runs on a second connection); with :memory: use the async API';
export const IN_TRANSACTION = 'OffSync: cloudsync SQL functions cannot run inside an open transaction of the app connection (the engine writes through a second connection)';

type Fn = (...args: unknown[]) => unknown;

function text(v: unknown): string {
  return v === null || v === undefined ? '' : typeof v === 'string' ? v : String(v);
}

/** Texts of the extension (0.9.99, observed) where core words a §P6 rule differently. */
const EXTENSION_TEXT: Record<string, (table: string) => string> = {
  'D1.4-integer-pk': (t) =>
    `Table ${t} uses a single-column INTEGER primary key. For CRDT replication, primary keys must be globally unique. ` +
    'Consider using a TEXT primary key with UUIDs or ULID to avoid conflicts across nodes. If you understand the risk and still want to use ' +
    'this INTEGER primary key, set the third argument of the cloudsync_init function to 1 to skip this check.',
};

/** The first §P6 issue only, as the extension reports it. */
function sqlError(e: unknown): Error {
  if (e instanceof CoreError) {
    const issues = e.details['issues'];
    if (Array.isArray(issues) && issues.length > 0) {
      const first: unknown = issues[0];
      const msg = typeof first === 'object' && first !== null ? Reflect.get(first, 'message') : undefined;
      const rule = typeof first === 'object' && first !== null ? Reflect.get(first, 'rule') : undefined;
      const table = e.details['table'];
      const alt = typeof rule === 'string' ? EXTENSION_TEXT[rule] : undefined;
      if (alt !== undefined && typeof table === 'string') return new Error(alt(table));
      if (typeof msg === 'string') return new Error(msg);
    }
    return new Error(e.message);
  }
  return e instanceof Error ? e : new Error(String(e));
}

export function registerSqlFunctions(host: SqlHost): void {
  const { db } = host;
  const alters = new Set<string>();
  const engine = (write = true): SyncEngine => {
    if (host.sqlEngine === undefined) throw new Error(NEEDS_FILE);
    if (write && db.inTransaction) throw new Error(IN_TRANSACTION);
    return host.sqlEngine;
  };
  const initialised = (): boolean => host.settings.get('initialised') === 1;
  const def = (name: string, fn: Fn, arities: number[]): void => {
    for (const n of arities) {
      const wrapped = (...args: unknown[]): unknown => {
        try {
          return fn(...args);
        } catch (e) {
          throw sqlError(e);
        }
      };
      Object.defineProperty(wrapped, 'length', { value: n });
      db.function(name, { deterministic: false, varargs: false }, wrapped);
    }
  };
  const synced = (t: string): boolean => engine(false).table(t) !== undefined;

  def('cloudsync_version', () => CLOUDSYNC_COMPAT_VERSION, [0]);
  def('cloudsync_uuid', () => uuidv7Text(), [0]);
  def('cloudsync_siteid', () => (host.sqlEngine === undefined || initialised() ? Buffer.from(host.siteId) : Buffer.alloc(16)), [0]);
  def(
    'cloudsync_db_version',
    () => {
      const e = engine(false);
      if (!initialised()) throw new Error('Unable to retrieve db_version (not an error).');
      return BigInt(e.dbVersion());
    },
    [0],
  );
  def(
    'cloudsync_init',
    (table: unknown, algo?: unknown, flags?: unknown) => {
      const e = engine();
      const name = text(table);
      const a = algo === undefined || algo === null ? undefined : text(algo);
      const f = flags === undefined || flags === null ? 0 : Number(flags);
      const names = name === '*' ? e.listTables().map((t) => t.name) : [name];
      e.driver.transaction(() => {
        for (const n of names) e.init(n, a, f);
        host.settings.set('initialised', 1);
      });
      return toHex(host.siteId);
    },
    [1, 2, 3],
  );
  const ifSynced = (t: unknown, action: (e: SyncEngine, name: string) => void): null => {
    const name = text(t);
    if (synced(name)) action(engine(), name);
    return null;
  };
  def('cloudsync_enable', (t: unknown) => ifSynced(t, (e, n) => e.setEnabled(n, true)), [1]);
  def('cloudsync_disable', (t: unknown) => ifSynced(t, (e, n) => e.setEnabled(n, false)), [1]);
  def('cloudsync_is_enabled', (t: unknown) => (engine(false).isEnabled(text(t)) ? 1 : 0), [1]);
  def('cloudsync_cleanup', (t: unknown) => ifSynced(t, (e, n) => e.cleanup(n)), [1]);
  def('cloudsync_terminate', () => (host.terminate(), 1), [0]);
  def(
    'cloudsync_begin_alter',
    (t: unknown) => {
      const name = text(t);
      const e = engine();
      if (e.table(name) === undefined) throw new Error(`Unable to find table ${name}`);
      // The engine's savepoint would hold the write lock and block the app's ALTER TABLE on the
      // other connection: release it at once (triggers stay dropped until commit_alter).
      e.beginAlter(name);
      e.driver.exec('RELEASE offsync_alter');
      alters.add(name.toLowerCase());
      return null;
    },
    [1],
  );
  def(
    'cloudsync_commit_alter',
    (t: unknown) => {
      const name = text(t);
      const e = engine();
      if (!alters.delete(name.toLowerCase())) throw new Error('no such savepoint: cloudsync_alter');
      e.driver.exec('SAVEPOINT offsync_alter');
      e.commitAlter(name);
      return null;
    },
    [1],
  );

  // --- block columns and row filters (1.1.x; docs/PROTOCOL.md "Block columns", "Row filters") ----
  def(
    'cloudsync_set_column',
    (t: unknown, c: unknown, key: unknown, value: unknown) => {
      // 1.1.4 stores any other key/value without effect; only `algo` = `block` (lower case) acts.
      if (key === 'delimiter' && value !== '\n') throw new Error('OffSync: block columns split at \\n only; another delimiter is not supported');
      if (key !== 'algo' || value !== 'block') return null;
      const e = engine();
      const ctx = e.table(text(t));
      if (ctx === undefined) throw new Error('cloudsync_setup_block_column: table not found');
      const name = c === null || c === undefined ? '(null)' : text(c);
      if (!ctx.schema.valueColumns.some((v) => v.name.toLowerCase() === name.toLowerCase())) {
        throw new Error(`cloudsync_setup_block_column: column '${name}' not found in table '${text(t)}'`);
      }
      e.setBlockColumn(ctx.name, name);
      return null;
    },
    [4],
  );
  const materialize = (...args: unknown[]): number => {
    if (args.length < 3) throw new Error('cloudsync_text_materialize requires at least 3 arguments: table, column, pk...');
    const [t, c, ...pk] = args;
    const e = engine();
    const ctx = e.table(text(t));
    if (ctx === undefined) throw new Error(`Unable to retrieve table name ${t === null ? '(null)' : text(t)} in cloudsync_text_materialize.`);
    const col = e.blockColumns(ctx.name).find((b) => b.toLowerCase() === text(c).toLowerCase());
    if (col === undefined) throw new Error(`Column ${text(c)} in table ${text(t)} is not configured as block-level.`);
    if (pk.length !== ctx.schema.pkColumns.length) throw new Error('Wrong number of primary key values for cloudsync_text_materialize.');
    if (pk.some((v) => v === null || v === undefined || (typeof v === 'number' && !Number.isInteger(v)))) throw new Error('Failed to encode primary key(s).');
    materializeText(e, ctx.name, col, pk as SqlValue[]);
    return 1;
  };
  db.function('cloudsync_text_materialize', { deterministic: false, varargs: true, safeIntegers: true }, (...args: unknown[]) => {
    try {
      return materialize(...args);
    } catch (e) {
      throw sqlError(e);
    }
  });
  const filterTable = (fn: string, t: unknown): string => {
    const name = text(t);
    const ctx = engine().table(name);
    if (ctx === undefined) throw new Error(`${fn}: table '${name}' is not configured for sync. Call SELECT cloudsync_init('${name}') first.`);
    return ctx.name;
  };
  def(
    'cloudsync_set_filter',
    (t: unknown, expr: unknown) => {
      if (t === null || expr === null) throw new Error('cloudsync_set_filter: table and filter expression required');
      const name = filterTable('cloudsync_set_filter', t);
      try {
        engine().setRowFilter(name, text(expr));
      } catch (e) {
        throw new Error(`cloudsync_set_filter: ${e instanceof Error ? e.message : String(e)}`);
      }
      return 1;
    },
    [2],
  );
  def('cloudsync_clear_filter', (t: unknown) => (engine().setRowFilter(filterTable('cloudsync_clear_filter', t), null), 1), [1]);

  // --- network ---------------------------------------------------------------------------------
  def('cloudsync_network_init', (id: unknown) => (host.initNetwork(host.defaultServerUrl, text(id)), 0), [1]);
  def(
    'cloudsync_network_init_custom',
    (address: unknown, id: unknown) => {
      const a = text(address).replace(/\/+$/, '');
      try {
        new URL(a);
      } catch {
        throw new Error('URL parse error');
      }
      host.initNetwork(a, text(id));
      return 0;
    },
    [2],
  );
  def('cloudsync_network_set_token', (v: unknown) => (host.setCredential(text(v)), 0), [1]);
  def('cloudsync_network_set_apikey', (v: unknown) => (host.setCredential(text(v)), 0), [1]);
  def('cloudsync_network_has_unsent_changes', () => (runBlocking(session().hasUnsent(), host.blocking()) ? 1 : 0), [0]);
  def('cloudsync_network_send_changes', () => JSON.stringify({ send: sendJson(runBlocking(session().send(), host.blocking())) }), [0]);
  const receive = (max?: unknown): string => {
    const n = max === undefined || max === null ? undefined : Number(max);
    return JSON.stringify({ receive: receiveJson(runBlocking(session().receive(n !== undefined && n > 0 ? n : undefined), host.blocking())) });
  };
  def('cloudsync_network_check_changes', receive, [0]);
  def('cloudsync_network_receive_changes', receive, [0, 1]);
  def(
    'cloudsync_network_sync',
    (waitMs?: unknown, maxRetries?: unknown) => {
      const t = host.blocking();
      const s = session();
      const send = runBlocking(s.send(), t);
      const tries = Math.max(1, maxRetries === undefined || maxRetries === null ? 1 : Number(maxRetries));
      let receive = runBlocking(s.receive(), t);
      for (let i = 1; i < tries && receive.notReady === true; i++) {
        sleepBlocking(waitMs === undefined || waitMs === null ? 100 : Number(waitMs));
        receive = runBlocking(s.receive(), t);
      }
      return JSON.stringify({ send: sendJson(send), receive: receiveJson(receive) });
    },
    [0, 1, 2],
  );
  def('cloudsync_network_reset_sync_version', () => (engine(), host.settings.reset(), null), [0]);
  def('cloudsync_network_logout', () => (engine(), host.logout(), 0), [0]);

  function session(): SyncSession {
    engine();
    return host.session;
  }
}

/**
 * `cloudsync_text_materialize(t, c, pk…)`: writes the text of block column `c` of one row from
 * its live blocks (docs/PROTOCOL.md "Block columns"), as 1.1.4 does — not tracked as a local
 * change (the blocks already are). Own text writes are folded into blocks first, so an unsynced
 * local edit is kept. A missing row is inserted with that text (NULL without blocks), as 1.1.4
 * does; a constraint failure is reported with 1.1.4's text.
 */
function materializeText(e: SyncEngine, table: string, column: string, pkValues: SqlValue[]): void {
  // Reading the full feed folds this database's own text writes into block cells (engine.changes).
  e.changes({ after: { dbVersion: Number.MAX_SAFE_INTEGER, seq: 0 } }).return(undefined);
  const ctx = e.table(table);
  if (ctx === undefined) return;
  const pk = encodePk(pkValues);
  const live = e.driver
    .prepare('SELECT val FROM offsync_blocks WHERE tbl = ? AND pk = ? AND col = ? AND val IS NOT NULL ORDER BY pos')
    .all(ctx.name, pk, column)
    .map((r) => String(r['val']));
  const q = (n: string): string => `"${n.replace(/"/g, '""')}"`;
  const where = ctx.schema.pkColumns.map((k) => `${q(k.name)} = ?`).join(' AND ');
  const current = e.driver.prepare(`SELECT ${q(column)} FROM ${q(ctx.name)} WHERE ${where}`).getRaw(...pkValues);
  const textValue = live.length > 0 || current !== undefined ? live.join('\n') : null;
  if (current !== undefined && current[0] === textValue) return;
  try {
    e.driver.transaction(() => {
      // Merge mode: the change-tracking triggers stand aside for this write.
      e.driver.exec('UPDATE offsync_clock SET applying = 1 WHERE id = 1');
      if (current !== undefined) e.driver.prepare(`UPDATE ${q(ctx.name)} SET ${q(column)} = ? WHERE ${where}`).run(textValue, ...pkValues);
      else {
        const cols = [...ctx.schema.pkColumns.map((k) => k.name), column];
        e.driver.prepare(`INSERT INTO ${q(ctx.name)} (${cols.map(q).join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`).run(...pkValues, textValue);
      }
      e.driver.exec('UPDATE offsync_clock SET applying = 0 WHERE id = 1');
    });
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(`Unable to write the blocks of column "${column}" of table "${table}" (${msg})`, { cause: err });
  }
}

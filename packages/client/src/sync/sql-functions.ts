/**
 * The SQLite Sync SQL API on a better-sqlite3 connection, with the extension's names, arities,
 * results and error texts (0.9.99 for the local functions; G3 JSON strings for the network ones).
 *
 * better-sqlite3 forbids running statements on a connection while one of its functions runs, so
 * the functions drive the engine on a second, internal connection to the same file (WAL): the
 * app's statement holds at most a read snapshot and the engine can write. Network functions block
 * the calling thread (blocking-http.ts).
 */
import type Database from 'better-sqlite3';
import { CoreError, toHex } from '@offsync/core';
import type { SyncEngine } from '@offsync/core';
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

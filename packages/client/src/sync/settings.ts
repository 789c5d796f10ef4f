/**
 * The client's own settings table, `offsync_client_settings`, in the synced database itself (so
 * cursors move in the same transaction as the data they describe). Keys: `send_dbversion` (own
 * versions the server has accepted), `own_max` (highest own db_version seen), `check_dbversion` /
 * `check_seq` (durable download cursor, server version space), `check_resume` /
 * `check_resume_dbversion` / `check_resume_seq` (the continuation cursor after the last applied
 * page of an unfinished download and the durable cursor it was issued for), `initialised` (a
 * table was ever initialised: `cloudsync_siteid()`/`cloudsync_db_version()` answer like the
 * extension before), `resync_pending` (1 while a resync after `resync_required` has cleared the
 * synced tables and not yet restored the saved own writes: resync.ts).
 */
import type { SqlDriver } from '@offsync/core';
import type { Cursor } from './types.ts';

export type SettingKey = 'send_dbversion' | 'own_max' | 'check_dbversion' | 'check_seq' | 'check_resume' | 'check_resume_dbversion' | 'check_resume_seq' | 'initialised' | 'resync_pending';

export class ClientSettings {
  readonly #driver: SqlDriver;
  constructor(driver: SqlDriver) {
    this.#driver = driver;
    driver.exec('CREATE TABLE IF NOT EXISTS offsync_client_settings (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL)');
  }

  get(key: SettingKey): number {
    const r = this.#driver.prepare('SELECT value FROM offsync_client_settings WHERE key = ?').getRaw(key);
    return r === undefined ? 0 : Number(r[0]);
  }

  set(key: SettingKey, value: number): void {
    this.#driver.prepare('INSERT INTO offsync_client_settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, BigInt(value));
  }

  cursor(): Cursor {
    return { dbVersion: this.get('check_dbversion'), seq: this.get('check_seq') };
  }

  /** Moves the durable download cursor, never backwards. */
  advanceCursor(to: Cursor): void {
    const cur = this.cursor();
    // seq 0 is a watermark ("all of dbVersion seen"), i.e. past every row cursor of that version.
    const eff = (c: Cursor): number => (c.seq === 0 ? Number.POSITIVE_INFINITY : c.seq);
    if (to.dbVersion < cur.dbVersion || (to.dbVersion === cur.dbVersion && eff(to) <= eff(cur))) return;
    this.set('check_dbversion', to.dbVersion);
    this.set('check_seq', to.seq);
  }

  /**
   * The continuation cursor to resume an unfinished download with: 0 (start at the durable
   * cursor) unless one was stored for the durable cursor as it is now.
   */
  resumeCursor(): number {
    const cur = this.cursor();
    if (this.get('check_resume_dbversion') !== cur.dbVersion || this.get('check_resume_seq') !== cur.seq) return 0;
    return this.get('check_resume');
  }

  /** Stores (in the caller's transaction) where an unfinished download resumes; 0 forgets it. */
  setResumeCursor(cursor: number): void {
    const cur = this.cursor();
    this.set('check_resume', cursor);
    this.set('check_resume_dbversion', cur.dbVersion);
    this.set('check_resume_seq', cur.seq);
  }

  /** `cloudsync_network_reset_sync_version()`: start sending and receiving from scratch. */
  reset(): void {
    this.#driver.exec(`DELETE FROM offsync_client_settings WHERE key IN ('send_dbversion', 'check_dbversion', 'check_seq', 'check_resume', 'check_resume_dbversion', 'check_resume_seq')`);
  }
}

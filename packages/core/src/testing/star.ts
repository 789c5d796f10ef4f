/**
 * A star of replicas for compaction tests (docs/PROTOCOL.md "Compaction and the resync horizon"):
 * devices upload their own changes to a central server and download the others' after a cursor;
 * the server compacts at the smallest version every device has acknowledged. Tests only.
 */
import type { ApplyOptions } from '../engine/apply.ts';
import { acknowledgedBy } from '../engine/compaction.ts';
import type { CompactionResult } from '../engine/compaction.ts';
import type { SyncEngine } from '../engine/engine.ts';
import type { Cursor } from '../engine/extract.ts';
import type { SqlValue } from '../types.ts';
import { openReplica, tableRows } from './replica.ts';

const WATERMARK = Number.MAX_SAFE_INTEGER;

export interface StarDevice {
  e: SyncEngine;
  /** Local version uploaded through. */
  sent: number;
  /** Server cursor downloaded through (the watermark form after a complete download). */
  recv: Cursor;
}

export class Star {
  readonly server = openReplica();
  readonly devices: StarDevice[] = [];
  readonly serverOpts: ApplyOptions;

  constructor(serverOpts: ApplyOptions = {}) {
    this.serverOpts = serverOpts;
  }

  /** A new device with nothing synced yet. */
  add(): StarDevice {
    const d: StarDevice = { e: openReplica(), sent: 0, recv: { dbVersion: 0, seq: 0 } };
    this.devices.push(d);
    return d;
  }

  upload(d: StarDevice): void {
    const local = [...d.e.changes({ localOnly: true, after: { dbVersion: d.sent, seq: WATERMARK } })];
    d.sent = d.e.dbVersion();
    if (local.length > 0) this.server.applyChanges(local, this.serverOpts);
  }

  download(d: StarDevice): void {
    const at = this.server.dbVersion();
    const changes = [...this.server.changes({ excludeSiteId: d.e.siteId, after: d.recv })];
    if (changes.length > 0) d.e.applyChanges(changes);
    d.recv = { dbVersion: at, seq: WATERMARK };
  }

  sync(d: StarDevice): void {
    this.upload(d);
    this.download(d);
  }

  /** Everyone uploads, then everyone downloads: every replica has everything. */
  settle(): void {
    for (const d of this.devices) this.upload(d);
    for (const d of this.devices) this.download(d);
  }

  /** Compaction at the smallest version every one of `devices` has acknowledged (downloaded). */
  compact(devices: readonly StarDevice[] = this.devices): CompactionResult {
    return this.server.compact({ upTo: Math.min(...devices.map((d) => Math.max(0, acknowledgedBy(d.recv)))) });
  }

  /** The `todos` rows of the server, then of each device. */
  rows(): Record<string, SqlValue>[][] {
    return [tableRows(this.server, 'todos'), ...this.devices.map((d) => tableRows(d.e, 'todos'))];
  }

  close(): void {
    this.server.close();
    for (const d of this.devices) d.e.close();
  }
}

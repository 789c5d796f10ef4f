/**
 * (a) Changes merged per second through HTTP uploads: N simulated devices (the real engine on
 * :memory:) each send B batches as G3 inline `apply` calls (`{blob, dbVersionMin, dbVersionMax}`
 * with `X-CloudSync-Version`) to the server over loopback, all devices concurrently. Payloads are
 * encoded before the clock starts (device-side cost excluded). Baseline: raw better-sqlite3
 * inserting the same rows into the same table shape, one transaction per batch.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openReplica, TODOS_DDL } from '@offsync/core/testing';
import type { BenchServer } from './ipc.ts';

export interface MergeOptions {
  devices: number;
  batches: number;
  rowsPerBatch: number;
}

export interface MergeResult {
  /** Changes of the uploads the server merged (a failed upload's changes are not counted). */
  changes: number;
  /** Changes offered, failed uploads included. */
  offered: number;
  rows: number;
  ms: number;
  failures: number;
  /** HTTP status (and `failures` of a 200) → count, for the failed uploads. */
  failureKinds: Record<string, number>;
  baselineRowsMs: number;
}

interface Upload {
  site: string;
  body: string;
  changes: number;
}

function prepare(o: MergeOptions): { uploads: Upload[][]; changes: number; rows: Array<[string, string]> } {
  const uploads: Upload[][] = [];
  const rows: Array<[string, string]> = [];
  let changes = 0;
  for (let d = 0; d < o.devices; d++) {
    const e = openReplica(TODOS_DDL);
    const site = Buffer.from(e.siteId).toString('hex');
    const mine: Upload[] = [];
    let sent = 0;
    for (let b = 0; b < o.batches; b++) {
      e.driver.transaction(() => {
        const st = e.driver.prepare('INSERT INTO todos (id, title, done) VALUES (?, ?, 0)');
        for (let i = 0; i < o.rowsPerBatch; i++) {
          const id = `d${d}-b${b}-r${i}`;
          const title = `todo ${i} of batch ${b} on device ${d}`;
          st.run(id, title);
          rows.push([id, title]);
        }
      });
      const list = [...e.changes({ localOnly: true, after: { dbVersion: sent, seq: Number.MAX_SAFE_INTEGER } })];
      const payload = e.encodeChanges(list);
      if (payload === null) continue;
      const max = e.dbVersion();
      mine.push({ site, body: JSON.stringify({ blob: Buffer.from(payload).toString('base64'), dbVersionMin: sent + 1, dbVersionMax: max }), changes: list.length });
      changes += list.length;
      sent = max;
    }
    e.close();
    uploads.push(mine);
  }
  return { uploads, changes, rows };
}

/** Raw better-sqlite3 inserting the same rows in batches (the baseline of merge figures), in ms. */
export function baseline(rows: Array<[string, string]>, batchSize: number): number {
  const dir = mkdtempSync(join(tmpdir(), 'offsync-bench-raw-'));
  try {
    const db = new Database(join(dir, 'raw.sqlite'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec(TODOS_DDL);
    const st = db.prepare('INSERT INTO todos (id, title, done) VALUES (?, ?, 0)');
    const batch = db.transaction((slice: Array<[string, string]>) => {
      for (const [id, title] of slice) st.run(id, title);
    });
    const t0 = performance.now();
    for (let i = 0; i < rows.length; i += batchSize) batch(rows.slice(i, i + batchSize));
    const ms = performance.now() - t0;
    db.close();
    return ms;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function mergeThroughput(server: BenchServer, o: MergeOptions): Promise<MergeResult> {
  const { uploads, changes, rows } = prepare(o);
  let failures = 0;
  let merged = 0;
  const failureKinds: Record<string, number> = {};
  const headers = { authorization: `Bearer ${server.apiKey}`, 'content-type': 'application/json', 'x-cloudsync-version': '1.1.4' };
  const device = async (mine: Upload[]): Promise<void> => {
    for (const u of mine) {
      const r = await fetch(`${server.origin}/v2/cloudsync/databases/${server.databaseId}/${u.site}/apply`, { method: 'POST', headers, body: u.body });
      const status = (await r.json()) as { failures?: unknown; code?: unknown };
      if (!r.ok || status.failures !== undefined) {
        failures++;
        const kind = `${r.status} ${JSON.stringify(status.failures ?? status.code ?? '').slice(0, 80)}`;
        failureKinds[kind] = (failureKinds[kind] ?? 0) + 1;
      } else merged += u.changes;
    }
  };
  const t0 = performance.now();
  await Promise.all(uploads.map(device));
  const ms = performance.now() - t0;
  return { changes: merged, offered: changes, rows: rows.length, ms, failures, failureKinds, baselineRowsMs: baseline(rows, o.rowsPerBatch) };
}

/**
 * Group commit in a central worker (worker.ts `uploadGroup`): uploads of one file queued
 * together are merged in one transaction, each in its own savepoint: one commit for all, an
 * upload that fails fails alone, and every one that succeeded is in the file.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSyncDatabase } from '@offsync/core/sqlite';
import { openReplica } from '@offsync/core/testing';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { createCentralFile } from '../central-file.ts';
import { CentralWorkers } from './pool.ts';
import type { UploadJob, UploadOutcome } from './jobs.ts';

const DDL = "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '')";
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'offsync-group-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Commit frames in a WAL file (a frame header's bytes 4–7: the database size after a commit, else 0). */
function commitsIn(wal: string): number {
  const b = readFileSync(wal);
  const page = b.readUInt32BE(8);
  let n = 0;
  for (let at = 32; at + 24 + page <= b.length; at += 24 + page) if (b.readUInt32BE(at + 4) !== 0) n++;
  return n;
}

function job(site: string, payload: Uint8Array): UploadJob {
  return { site, payload, window: undefined, principal: { kind: 'apiKey', userId: null, claims: {} }, audience: undefined, strict: false, limits: {}, conflictLog: false, conflictLogOptions: undefined, now: 0 };
}

test('uploads queued behind another share one commit; a refused one fails alone and the rest land', async () => {
  const path = join(dir, 'c.sqlite');
  createCentralFile(path);
  const owner = openSyncDatabase(path);
  owner.driver.exec(DDL);
  owner.init('todos');
  owner.driver.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  const device = (prefix: string, rows: number): { site: string; payload: Uint8Array } => {
    const e = openReplica(DDL);
    const ins = e.driver.prepare('INSERT INTO todos (id, title) VALUES (?, ?)');
    e.driver.transaction(() => {
      for (let i = 0; i < rows; i++) ins.run(`${prefix}-${i}`, `${prefix} row ${i}`);
    });
    return { site: Buffer.from(e.siteId).toString('hex'), payload: e.encodeChanges(e.changes()) ?? new Uint8Array() };
  };
  const workers = new CentralWorkers({ size: 1 });
  try {
    const db = { path, synchronous: 'FULL' as const, schemaGeneration: 0 };
    const run = (j: UploadJob): Promise<UploadOutcome> => workers.run<UploadOutcome>({ kind: 'upload', db, job: j, policies: null });
    const opener = device('open', 1);
    await run(job(opener.site, opener.payload));
    const before = commitsIn(`${path}-wal`);
    // Four uploads, the third garbage, all posted while this connection holds the write lock: the
    // worker cannot finish the first before the others are queued behind it.
    const head = device('head', 50);
    const [a, b] = [device('a', 2), device('b', 2)];
    owner.driver.exec('BEGIN IMMEDIATE');
    const pending = [
      run(job(head.site, head.payload)),
      run(job(a.site, a.payload)),
      run(job(Buffer.from(openReplica(DDL).siteId).toString('hex'), new Uint8Array([9, 9, 9]))),
      run(job(b.site, b.payload)),
    ];
    owner.driver.exec('COMMIT');
    const settled = await Promise.allSettled(pending);
    expect(settled.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(settled[2]).toMatchObject({ status: 'rejected', reason: expect.objectContaining({ message: expect.any(String) }) });
    // One by one that is three commits (the garbage commits nothing); grouped, the uploads queued
    // behind the first share one (the first may have led the group or gone alone).
    expect(commitsIn(`${path}-wal`) - before).toBeLessThanOrEqual(2);
    expect(owner.driver.prepare('SELECT count(*) FROM todos').getRaw()).toEqual([55n]);
    expect(owner.driver.prepare("SELECT id FROM todos WHERE id GLOB '[ab]-*' ORDER BY id").all().map((r) => r['id'])).toEqual(['a-0', 'a-1', 'b-0', 'b-1']);
  } finally {
    await workers.dispose();
    owner.close();
  }
});

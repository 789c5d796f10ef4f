/**
 * A central worker thread (docs/ARCHITECTURE.md "Work off the event loop"): it opens its own
 * connection to each SQLite central file it is given and runs the merge of uploads and the build
 * of download pages there, so decoding, merging, RLS evaluation and feed scans never block the
 * main thread's event loop. SQLite orders its writes with the main thread's connection (WAL: the
 * main thread keeps reading while a merge runs). One job at a time: a worker's jobs are its queue.
 */
import { parentPort, receiveMessageOnPort } from 'node:worker_threads';
import { openSyncDatabase } from '@offsync/core/sqlite';
import { PeerState } from '../peer-state.ts';
import type { SyncEngine } from '../sync-deps.ts';
import { buildJudge, buildPriorFilter, buildRowFilter, buildVisibility } from '../data-plane/rls-build.ts';
import { RlsEvaluator } from '../data-plane/rls-evaluator.ts';
import { mergeUpload, scanDownload } from './jobs.ts';
import type { UploadOutcome } from './jobs.ts';
import { toWire } from './protocol.ts';
import type { CentralRef, WorkerReply, WorkerRequest } from './protocol.ts';

const port = parentPort;
if (port === null) throw new Error('central worker: not started as a worker thread');

const open = new Map<string, { engine: SyncEngine; peers: PeerState; schemaGeneration: number }>();
const evaluator = new RlsEvaluator();

function central(ref: CentralRef): { engine: SyncEngine; peers: PeerState } {
  let c = open.get(ref.path);
  if (c === undefined) {
    // The main thread checked the file's identity before sending the job; it never creates it.
    // Schema changes come from the owner, announced by the job's schema generation: no polling.
    const engine = openSyncDatabase(ref.path, { mustExist: true, synchronous: ref.synchronous, schemaWatch: false });
    engine.setKeepTombstoneValues(true);
    c = { engine, peers: new PeerState(engine), schemaGeneration: ref.schemaGeneration };
    open.set(ref.path, c);
  } else if (c.schemaGeneration !== ref.schemaGeneration) {
    c.engine.reloadSchema();
    c.schemaGeneration = ref.schemaGeneration;
  }
  return c;
}

type UploadRequest = Extract<WorkerRequest, { kind: 'upload' }>;

/** The merge of one upload (its own transaction, or a savepoint inside a group's). */
function upload(m: UploadRequest, engine: SyncEngine, peers: PeerState): UploadOutcome {
  const p = m.job.principal;
  const judge = buildJudge(m.policies, p, engine, evaluator);
  return mergeUpload(engine, peers, m.job, {
    judge,
    canHold: judge === undefined ? undefined : buildRowFilter(m.policies, p, engine, evaluator),
    visibilityColumns: buildVisibility(m.policies, engine),
  });
}

/** Uploads of one file merged in one transaction at most, and their payload bytes (see {@link uploadGroup}): a device's reply waits for the merges grouped with it. */
const GROUP_COMMIT_MAX = 16;
const GROUP_COMMIT_MAX_BYTES = 1 << 20;

const payloadBytes = (m: UploadRequest): number => (Array.isArray(m.job.payload) ? m.job.payload.reduce((n, p) => n + p.byteLength, 0) : m.job.payload.byteLength);

/**
 * Group commit: uploads of one file already queued together are merged in ONE transaction, each
 * in its own savepoint (mergeUpload's transaction nests), so one commit and one fsync serve them
 * all. An upload that fails rolls back alone, as it would on its own; the others' replies go out
 * only after the commit, so nothing is acknowledged before it is durable. When SQLite ends the
 * whole transaction (I/O error, full disk) or the commit fails, no upload of the group is
 * acknowledged: each fails as a merge that did not commit (the devices send again).
 */
function uploadGroup(ms: readonly UploadRequest[], reply: (r: WorkerReply) => void): void {
  const first = ms[0] as UploadRequest;
  let replies: WorkerReply[] = [];
  try {
    const { engine, peers } = central(first.db);
    engine.driver.transaction(() => {
      for (const m of ms) {
        try {
          replies.push({ id: m.id, ok: true, value: upload(m, engine, peers) });
        } catch (e) {
          if (!engine.driver.inTransaction) throw e;
          replies.push({ id: m.id, ok: false, error: toWire(e) });
        }
      }
    });
  } catch (e) {
    replies = ms.map((m) => ({ id: m.id, ok: false, error: toWire(e) }));
  }
  for (const r of replies) reply(r);
}

/** Whether `m` may join a group of uploads led by `lead` (same file, opened alike, same schema generation). */
function joins(lead: UploadRequest, m: WorkerRequest): m is UploadRequest {
  return m.kind === 'upload' && m.db.path === lead.db.path && m.db.schemaGeneration === lead.db.schemaGeneration && m.db.synchronous === lead.db.synchronous;
}

function run(m: WorkerRequest): unknown {
  switch (m.kind) {
    case 'close': {
      const c = open.get(m.path);
      open.delete(m.path);
      c?.engine.close();
      return null;
    }
    case 'checkpoint': {
      // PASSIVE: never waits for readers or writers; copies what no reader still needs.
      central(m.db).engine.driver.exec('PRAGMA wal_checkpoint(PASSIVE)');
      return null;
    }
    case 'upload': {
      const { engine, peers } = central(m.db);
      return upload(m, engine, peers);
    }
    case 'scan': {
      const { engine } = central(m.db);
      const rowFilter = buildRowFilter(m.policies, m.principal, engine, evaluator, { bulk: m.bulk });
      const priorFilter = rowFilter === undefined ? undefined : buildPriorFilter(m.policies, m.principal, engine, evaluator);
      return scanDownload(engine, m.job, { rowFilter, priorFilter });
    }
  }
}

function runOne(m: WorkerRequest): WorkerReply {
  try {
    return { id: m.id, ok: true, value: run(m) as never };
  } catch (e) {
    return { id: m.id, ok: false, error: toWire(e) };
  }
}

port.on('message', (m: WorkerRequest) => {
  // Everything queued behind this job, in order (the jobs stay one at a time, in arrival order).
  const queue: WorkerRequest[] = [m];
  for (let next = receiveMessageOnPort(port); next !== undefined; next = receiveMessageOnPort(port)) queue.push(next.message as WorkerRequest);
  const reply = (r: WorkerReply): void => port.postMessage(r);
  for (let i = 0; i < queue.length; ) {
    const lead = queue[i] as WorkerRequest;
    let end = i + 1;
    if (lead.kind === 'upload') {
      let bytes = payloadBytes(lead);
      while (end - i < GROUP_COMMIT_MAX) {
        const next = queue[end];
        if (next === undefined || !joins(lead, next)) break;
        bytes += payloadBytes(next);
        if (bytes > GROUP_COMMIT_MAX_BYTES) break;
        end++;
      }
    }
    if (end - i > 1) uploadGroup(queue.slice(i, end) as UploadRequest[], reply);
    else reply(runOne(lead));
    i = end;
  }
});

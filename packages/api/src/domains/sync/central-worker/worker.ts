/**
 * A central worker thread (docs/ARCHITECTURE.md "Work off the event loop"): it opens its own
 * connection to each SQLite central file it is given and runs the merge of uploads and the build
 * of download pages there, so decoding, merging, RLS evaluation and feed scans never block the
 * main thread's event loop. SQLite orders its writes with the main thread's connection (WAL: the
 * main thread keeps reading while a merge runs). One job at a time: a worker's jobs are its queue.
 */
import { parentPort } from 'node:worker_threads';
import { openSyncDatabase } from '@offsync/core/sqlite';
import { PeerState } from '../peer-state.ts';
import type { SyncEngine } from '../sync-deps.ts';
import { buildJudge, buildPriorFilter, buildRowFilter, buildVisibility } from '../data-plane/rls-build.ts';
import { RlsEvaluator } from '../data-plane/rls-evaluator.ts';
import { mergeUpload, scanDownload } from './jobs.ts';
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
      const p = m.job.principal;
      const judge = buildJudge(m.policies, p, engine, evaluator);
      return mergeUpload(engine, peers, m.job, {
        judge,
        canHold: judge === undefined ? undefined : buildRowFilter(m.policies, p, engine, evaluator),
        visibilityColumns: buildVisibility(m.policies, engine),
      });
    }
    case 'scan': {
      const { engine } = central(m.db);
      const rowFilter = buildRowFilter(m.policies, m.principal, engine, evaluator, { bulk: m.bulk });
      const priorFilter = rowFilter === undefined ? undefined : buildPriorFilter(m.policies, m.principal, engine, evaluator);
      return scanDownload(engine, m.job, { rowFilter, priorFilter });
    }
  }
}

port.on('message', (m: WorkerRequest) => {
  let reply: WorkerReply;
  try {
    reply = { id: m.id, ok: true, value: run(m) as never };
  } catch (e) {
    reply = { id: m.id, ok: false, error: toWire(e) };
  }
  port.postMessage(reply);
});

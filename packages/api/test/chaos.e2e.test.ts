/**
 * Chaos: the real server (`src/main.ts`, as `npm start` runs it) in a child process is killed
 * with SIGKILL again and again while several devices upload batches and the server merges them,
 * then restarted on the same DATA_DIR. After every restart (before any device talks to it) and at
 * the end (docs/ARCHITECTURE.md "Failure behaviour"):
 *
 * - `PRAGMA integrity_check` is `ok` on the central database and on the control plane;
 * - nothing acknowledged was lost: every batch of an upload answered 200 with its window covered
 *   (`lastOptimisticVersion ≥ dbVersionMax`) is in the central database, and the server still
 *   reports at least that version for the device;
 * - nothing half-applied: every batch writes BATCH_ROWS rows tagged with its batch id, and every
 *   batch is either entirely present or entirely absent; each base row has its clock record;
 * - every device resumes: after the last restart all devices sync until quiet and then hold
 *   exactly the central database's rows (every batch they wrote included).
 *
 * The kill lands while an upload is in flight (the moment an upload starts, plus 0–8 ms), after a
 * random number of acknowledged uploads in that run. Bounded: KILLS restarts, every wait has a
 * deadline, every fetch a timeout. The request-rate quota is switched off for this server
 * (OFFSYNC_RATE_LIMIT_PER_SECOND=0): devices upload back to back, and quotas are not under test.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, expect, test } from 'vitest';
import { openReplica, prng } from '@offsync/core/testing';
import type { SyncEngine } from '@offsync/core';
import { sqliteDatabasePath } from '../src/domains/databases/index.ts';

const KILLS = 8;
const DEVICES = 4;
const BATCH_ROWS = 120;
const DDL = "CREATE TABLE items (id TEXT PRIMARY KEY NOT NULL, batch TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT '')";
const G3 = { 'x-cloudsync-version': '1.1.4', 'x-cloudsync-capabilities': 'check-status-response, check-chunks' };
const API_DIR = fileURLToPath(new URL('..', import.meta.url));
const random = prng(0xc4a05);
const randInt = (n: number): number => Math.floor(random() * n);

const root = mkdtempSync(join(tmpdir(), 'offsync-chaos-'));
const dataDir = join(root, 'data');
/** The server of the moment, killed by afterAll whatever happened. */
let current: Server | undefined;
afterAll(async () => {
  if (current !== undefined) await kill9(current);
  rmSync(root, { recursive: true, force: true });
});

/** One run of `src/main.ts`; `origin` once it printed its URL. */
interface Server {
  child: ChildProcess;
  origin: string;
  adminKey: string | null;
  stderr: () => string;
}

/** Starts `src/main.ts`; resolves once it printed its URL (and, on the first start, the admin key). */
async function startServer(first: boolean): Promise<Server> {
  // `node --import tsx` rather than the tsx CLI: the CLI runs the script in a grandchild, and
  // SIGKILL cannot be relayed, so the kill must reach the server process itself.
  const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', OFFSYNC_RATE_LIMIT_PER_SECOND: '0' };
  for (const k of ['INIT_CWD', 'OFFSYNC_ADMIN_KEY', 'DATABASE_URL', 'REDIS_URL']) delete env[k];
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: API_DIR, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (b: Buffer) => { err = (err + b.toString()).slice(-4000); });
  const lines = createInterface({ input: child.stdout! });
  let origin: string | null = null;
  let adminKey: string | null = null;
  await new Promise<void>((resolve, reject) => {
    const fail = (code: number | null): void => { clearTimeout(timer); reject(new Error(`server exited (${code}) before it was ready:\n${err}`)); };
    const timer = setTimeout(() => { child.off('exit', fail); reject(new Error(`server not ready in 30 s:\n${err}`)); }, 30_000);
    child.once('exit', fail);
    lines.on('line', (line) => {
      const url = /^OffSync listening on (http:\/\/[^/]+)\/graphql$/.exec(line);
      if (url) origin = url[1] ?? null;
      const key = /^Admin key \(shown once\): (\S+)$/.exec(line);
      if (key) adminKey = key[1] ?? null;
      if (origin !== null && (!first || adminKey !== null)) {
        clearTimeout(timer);
        child.off('exit', fail);
        resolve();
      }
    });
  });
  current = { child, origin: origin!, adminKey, stderr: () => err };
  return current;
}

async function kill9(s: Server): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => s.child.once('exit', () => resolve()));
  s.child.kill('SIGKILL');
  await Promise.race([exited, new Promise<void>((_, reject) => setTimeout(() => reject(new Error('server did not die')), 10_000))]);
}

async function stopGracefully(s: Server): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => s.child.once('exit', (code) => resolve(code)));
  s.child.kill('SIGTERM');
  const code = await Promise.race([exited, new Promise<null>((resolve) => setTimeout(() => resolve(null), 15_000))]);
  if (code === null) await kill9(s);
  return code;
}

interface Reply { status: number; body: Record<string, unknown> }

async function call(method: string, url: string, credential: string | null, json?: unknown, extra: Record<string, string> = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...extra };
  if (credential !== null) headers['authorization'] = `Bearer ${credential}`;
  if (json !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(url, { method, headers, body: json === undefined ? null : JSON.stringify(json), signal: AbortSignal.timeout(30_000) });
  const text = await r.text();
  let body: Record<string, unknown> = {};
  try {
    body = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
  } catch {
    body = { text };
  }
  return { status: r.status, body };
}

async function gql<T>(s: Server, adminKey: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const r = await call('POST', `${s.origin}/graphql`, adminKey, { query, variables });
  const errors = r.body['errors'] as Array<{ message: string }> | undefined;
  if (r.status !== 200 || errors?.length) throw new Error(`GraphQL ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body['data'] as T;
}

/** What the test observed of the sync traffic, for the final assertions. */
const stats = { acked: 0, interrupted: 0, refused: [] as string[], uploadsInFlight: 0 };

/** A device: an in-memory replica on the real engine speaking G3 (inline apply, chunked check). */
class Device {
  readonly engine: SyncEngine = openReplica(DDL, ['items']);
  readonly site = Buffer.from(this.engine.siteId).toString('hex');
  /** Highest local db_version the server acknowledged (window covered). */
  sent = 0;
  cursor = { dbVersion: 0, seq: 0 };
  /** Batches written here, with the local db_version that ends each. */
  readonly batches: Array<{ id: string; version: number }> = [];
  readonly acked = new Set<string>();
  #n = 0;

  constructor(readonly name: string, readonly credential: string, readonly databaseId: string) {}

  url(origin: string, route: string): string {
    return `${origin}/v2/cloudsync/databases/${this.databaseId}/${this.site}/${route}`;
  }

  /** One local transaction: BATCH_ROWS new rows tagged with the batch id, and a few edits of rows received from others. */
  writeBatch(): void {
    const id = `${this.name}-${++this.#n}`;
    const others = this.engine.driver.prepare('SELECT id FROM items WHERE batch NOT LIKE ? ORDER BY random() LIMIT 3').all(`${this.name}-%`) as Array<{ id: string }>;
    this.engine.driver.transaction(() => {
      const insert = this.engine.driver.prepare('INSERT INTO items (id, batch, title) VALUES (?, ?, ?)');
      for (let i = 0; i < BATCH_ROWS; i++) insert.run(`${id}-${i}`, id, `row ${i} of ${id}`);
      const edit = this.engine.driver.prepare('UPDATE items SET title = ? WHERE id = ?');
      for (const o of others) edit.run(`edited by ${id}`, o.id);
    });
    this.batches.push({ id, version: this.engine.dbVersion() });
  }

  hasUnsent(): boolean {
    return this.engine.dbVersion() > this.sent && this.engine.encodeChanges(this.engine.changes({ localOnly: true, after: { dbVersion: this.sent, seq: Number.MAX_SAFE_INTEGER } })) !== null;
  }

  /** Uploads everything after the acknowledged version. Throws when the connection dies. */
  async upload(origin: string, onStart?: () => void): Promise<void> {
    const max = this.engine.dbVersion();
    const payload = this.engine.encodeChanges(this.engine.changes({ localOnly: true, after: { dbVersion: this.sent, seq: Number.MAX_SAFE_INTEGER } }));
    if (payload === null) return;
    stats.uploadsInFlight++;
    let r: Reply;
    try {
      const sending = call('POST', this.url(origin, 'apply'), this.credential, { blob: Buffer.from(payload).toString('base64'), dbVersionMin: this.sent + 1, dbVersionMax: max }, G3);
      onStart?.();
      r = await sending;
    } catch (e) {
      stats.interrupted++;
      throw e;
    } finally {
      stats.uploadsInFlight--;
    }
    const failure = (r.body['failures'] as { apply?: { code: string; retryable: boolean } } | undefined)?.apply;
    if (r.status !== 200 || failure !== undefined) {
      stats.refused.push(`${this.name} apply ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
      return;
    }
    // A 200 without failures.apply is an acknowledgement: the window must be covered.
    expect(r.body['lastOptimisticVersion'], `${this.name}: 200 without the window covered`).toBeGreaterThanOrEqual(max);
    this.sent = max;
    for (const b of this.batches) if (b.version <= max) this.acked.add(b.id);
    stats.acked++;
  }

  /** Downloads until final (inline payloads or chunk URLs); the cursor moves only at the watermark. Returns changes applied. */
  async download(origin: string): Promise<number> {
    let cursor = 0;
    let applied = 0;
    for (let round = 0; round < 1000; round++) {
      const r = await call('POST', this.url(origin, 'check'), this.credential, { dbVersion: this.cursor.dbVersion, seq: this.cursor.seq, cursor }, G3);
      if (r.status !== 200) {
        stats.refused.push(`${this.name} check ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
        return applied;
      }
      const data = r.body['data'] as { payload?: string; chunks?: Array<{ payload?: string; url?: string }>; final?: boolean; nextCursor?: number; watermark?: number } | undefined;
      if (data === undefined) return applied; // nothing new
      const payloads: Uint8Array[] = [];
      if (data.payload !== undefined) payloads.push(new Uint8Array(Buffer.from(data.payload, 'base64')));
      for (const c of data.chunks ?? []) {
        if (c.payload !== undefined) payloads.push(new Uint8Array(Buffer.from(c.payload, 'base64')));
        else if (c.url !== undefined) {
          const a = await fetch(c.url, { signal: AbortSignal.timeout(30_000) });
          expect(a.status, `${this.name}: chunk download`).toBe(200);
          payloads.push(new Uint8Array(await a.arrayBuffer()));
        }
      }
      for (const p of payloads) applied += this.engine.applyPayload(p).applied;
      if (data.final !== false) {
        if (data.watermark !== undefined) this.cursor = { dbVersion: data.watermark, seq: 0 };
        return applied;
      }
      cursor = data.nextCursor ?? 0;
    }
    throw new Error(`${this.name}: download did not end in 1000 rounds`);
  }

  rows(): unknown[] {
    return this.engine.driver.prepare('SELECT id, batch, title FROM items ORDER BY id').all();
  }
}

function integrity(file: string): string {
  const db = new Database(file, { fileMustExist: true });
  try {
    return (db.pragma('integrity_check') as Array<{ integrity_check: string }>).map((r) => r.integrity_check).join('; ');
  } finally {
    db.close();
  }
}

interface CentralState { integrity: string; batches: Map<string, number>; rows: unknown[]; rowRecords: number }

function readCentral(file: string): CentralState {
  const db = new Database(file, { fileMustExist: true });
  try {
    const check = (db.pragma('integrity_check') as Array<{ integrity_check: string }>).map((r) => r.integrity_check).join('; ');
    const batches = new Map((db.prepare('SELECT batch, count(*) AS n FROM items GROUP BY batch').all() as Array<{ batch: string; n: number }>).map((r) => [r.batch, r.n]));
    const rows = db.prepare('SELECT id, batch, title FROM items ORDER BY id').all();
    const rowRecords = (db.prepare('SELECT count(*) AS n FROM "items__crdt_rows" WHERE cl % 2 = 1').get() as { n: number }).n;
    return { integrity: check, batches, rows, rowRecords };
  } finally {
    db.close();
  }
}

/** The invariants that must hold whenever the server has just (re)started, before devices resume. */
async function checkAfterRestart(s: Server, devices: Device[], centralFile: string, label: string): Promise<CentralState> {
  expect(integrity(join(dataDir, 'offsync.db')), `${label}: control plane`).toBe('ok');
  const c = readCentral(centralFile);
  expect(c.integrity, `${label}: central database`).toBe('ok');
  // Nothing half-applied: each batch is entirely present or entirely absent, and every live row has its clock record.
  const partial = [...c.batches].filter(([, n]) => n !== BATCH_ROWS);
  expect(partial, `${label}: half-applied batches`).toEqual([]);
  expect(c.rowRecords, `${label}: row records vs rows`).toBe(c.rows.length);
  for (const d of devices) {
    // Nothing acknowledged lost: the rows and the server's bookkeeping of the device.
    const lost = [...d.acked].filter((b) => !c.batches.has(b));
    expect(lost, `${label}: acknowledged batches of ${d.name} missing`).toEqual([]);
    const st = await call('GET', d.url(s.origin, 'status'), d.credential, undefined, G3);
    expect(st.status, `${label}: status of ${d.name}`).toBe(200);
    expect(st.body['lastOptimisticVersion'], `${label}: acknowledged version of ${d.name}`).toBeGreaterThanOrEqual(d.sent);
  }
  return c;
}

test(`chaos: ${KILLS} × kill -9 during uploads and merges; integrity ok, nothing acknowledged lost or half-applied, devices converge`, async () => {
  let server = await startServer(true);
  const adminKey = server.adminKey;
  expect(adminKey, 'the first start prints an admin key').toMatch(/^osa_/);
  if (adminKey === null) return;

  // Control plane through GraphQL: project → database → table (in its file) → deploy → OffSync → credentials.
  const p = await gql<{ createProject: { id: string } }>(server, adminKey, 'mutation { createProject(name: "chaos", kind: SQLITE) { id } }');
  const d = await gql<{ createDatabase: { id: string } }>(server, adminKey, 'mutation($p: ID!) { createDatabase(projectId: $p, name: "chaos") { id } }', { p: p.createProject.id });
  const databaseId = d.createDatabase.id;
  const centralFile = sqliteDatabasePath(dataDir, databaseId);
  const file = new Database(centralFile, { fileMustExist: true });
  file.exec(DDL);
  file.close();
  await gql(server, adminKey, 'mutation($d: ID!) { deployTables(databaseId: $d, tables: ["items"]) { added } }', { d: databaseId });
  await gql(server, adminKey, 'mutation($d: ID!) { enableOffSync(databaseId: $d) { id } }', { d: databaseId });
  const key = await gql<{ createApiKey: { secret: string } }>(server, adminKey, 'mutation($d: ID!) { createApiKey(databaseId: $d, name: "fleet") { secret } }', { d: databaseId });
  const token = await gql<{ createAccessToken: { token: string } }>(server, adminKey, 'mutation($d: ID!) { createAccessToken(databaseId: $d, userId: "carol", name: "t") { token } }', { d: databaseId });
  // Three API-key devices and one access-token device (RLS BYPASS: every device sees every row).
  const devices = Array.from({ length: DEVICES }, (_, i) => new Device(`dev${i}`, i === DEVICES - 1 ? token.createAccessToken.token : key.createApiKey.secret, databaseId));

  const killsDuringUpload: number[] = [];
  for (let run = 0; run < KILLS; run++) {
    await checkAfterRestart(server, devices, centralFile, `start ${run}`);
    const origin = server.origin;
    const ackTarget = stats.acked + 2 + randInt(5);
    let stop = false;
    let armed = false;
    let triggered = false;
    let fired: () => void = () => undefined;
    const killed = new Promise<void>((resolve) => { fired = resolve; });
    const trigger = (): void => {
      if (!armed || triggered) return;
      triggered = true;
      setTimeout(() => {
        killsDuringUpload.push(stats.uploadsInFlight);
        stop = true;
        void kill9(server).then(fired, fired);
      }, randInt(9));
    };
    const loop = async (dev: Device): Promise<void> => {
      for (let i = 0; i < 200 && !stop; i++) {
        dev.writeBatch();
        try {
          await dev.upload(origin, trigger);
          if (stats.acked >= ackTarget && !armed && !stop) armed = true;
          if (!stop && randInt(2) === 0) await dev.download(origin);
        } catch (e) {
          if (e instanceof TypeError) return; // fetch failed: the server died under this request
          throw e;
        }
      }
    };
    const loops = devices.map(loop);
    // Bounded: if the devices never reach the trigger (200 batches each), kill after they stop.
    await Promise.race([killed, Promise.all(loops).then(() => { stop = true; return kill9(server); })]);
    await kill9(server);
    await Promise.all(loops);
    server = await startServer(false);
  }

  // After the chaos: every device resumes and the fleet converges (bounded rounds until quiet).
  await checkAfterRestart(server, devices, centralFile, 'after the chaos');
  let quiet = false;
  for (let round = 0; round < 20 && !quiet; round++) {
    quiet = true;
    for (const dev of devices) {
      if (dev.hasUnsent()) {
        quiet = false;
        await dev.upload(server.origin);
      }
    }
    for (const dev of devices) if ((await dev.download(server.origin)) > 0) quiet = false;
  }
  expect(quiet, 'the fleet went quiet within 20 rounds').toBe(true);
  expect(stats.refused, 'refusals seen by devices').toEqual([]);

  const central = await checkAfterRestart(server, devices, centralFile, 'converged');
  const written = devices.flatMap((dv) => dv.batches.map((b) => b.id));
  expect([...central.batches.keys()].sort()).toEqual([...written].sort());
  for (const dev of devices) expect(dev.rows(), `${dev.name} holds the central rows`).toEqual(central.rows);
  // The chaos really happened: kills while uploads were in flight, and uploads cut by them.
  expect(killsDuringUpload.length).toBe(KILLS);
  expect(killsDuringUpload.filter((n) => n > 0).length, `uploads in flight at each kill: ${killsDuringUpload.join(',')}`).toBeGreaterThan(KILLS / 2);
  expect(stats.interrupted, 'uploads cut by a kill').toBeGreaterThan(0);

  expect(await stopGracefully(server), `graceful stop:\n${server.stderr()}`).toBe(0);
  for (const dev of devices) dev.engine.close();
}, 180_000);

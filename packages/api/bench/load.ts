/**
 * Load benchmark (issue "A server that hostile devices and bad days cannot break", How we will
 * know): the server in its own process (bench/load-server.ts, loopback only), every device here.
 * A benchmark, not a test: prints figures, never fails on them. Bounded: each phase has a
 * deadline and every request a timeout.
 *
 *   (e) mixed load: 200 devices (half on the database's API key, half on their own access token)
 *       join over the first half of the run, each doing a first sync (G3 check until final) of a
 *       seeded database and then, with 150–450 ms think time, uploads (G3 inline apply of 20 new
 *       rows), incremental checks and status calls; 4 admin dashboards poll GraphQL. Reported:
 *       p50/p99 per route, event-loop delay p99 of the server process, errors (non-2xx, failed
 *       applies, connection errors), server RSS.
 *   (f) upload burst: the same 200 devices send 3 × 100-row uploads back to back, all at once;
 *       changes merged per second vs raw better-sqlite3 inserting the same rows (same run).
 *   (g) initial-sync storm: 200 fresh devices, one access token (user) each, check a 20k-row
 *       database under RLS (`user_id = auth_userid()`) at the same instant: check p50/p99, time to
 *       the whole first sync, connection resets, rows received per device.
 *
 * Quotas: the server keeps the default per-credential limits (20 req/s, burst 60, 4 concurrent
 * uploads); an API key counts per device (key + site), so no device shares a bucket.
 * Run alone: `tsx bench/load.ts` (BENCH_QUICK=1 for a smoke run); `npm run bench` runs it too.
 */
import { cpus, loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { openReplica, TODOS_DDL } from '@offsync/core/testing';
import type { SyncEngine } from '@offsync/core';
import { percentile } from './live.ts';
import { baseline } from './merge.ts';
import { STORM_DDL, startLoadServer } from './load-ipc.ts';
import type { LagReply, LoadServer } from './load-ipc.ts';

export interface LoadOptions {
  devices: number;
  durationMs: number;
  seedRows: number;
  rowsPerUpload: number;
  dashboards: number;
  burstUploads: number;
  burstRows: number;
  stormRows: number;
  stormDevices: number;
}

export const FULL: LoadOptions = { devices: 200, durationMs: 20_000, seedRows: 5_000, rowsPerUpload: 20, dashboards: 4, burstUploads: 3, burstRows: 100, stormRows: 20_000, stormDevices: 200 };
export const QUICK: LoadOptions = { devices: 50, durationMs: 6_000, seedRows: 1_000, rowsPerUpload: 20, dashboards: 2, burstUploads: 2, burstRows: 50, stormRows: 5_000, stormDevices: 50 };

type Row = (what: string, value: string, target?: string, note?: string) => void;

const G3 = { 'x-cloudsync-version': '1.1.4', 'x-cloudsync-capabilities': 'check-status-response, check-chunks' };
const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const ms = (n: number): string => (n >= 1000 ? `${fmt(n / 1000, 2)} s` : `${fmt(n, 1)} ms`);
const MiB = 1024 * 1024;
const sleep = (t: number): Promise<void> => new Promise((r) => setTimeout(r, t));
const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');
/** Waits for `p` at most `limit` ms (the timer is cleared, so it never holds the process). */
async function within(p: Promise<unknown>, limit: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((resolve) => { timer = setTimeout(resolve, limit); })]);
  clearTimeout(timer);
}

/** Latencies and errors per route. */
class Routes {
  readonly latency = new Map<string, number[]>();
  readonly errors = new Map<string, Map<string, number>>();
  ok(route: string, t: number): void {
    const l = this.latency.get(route) ?? [];
    l.push(t);
    this.latency.set(route, l);
  }
  error(route: string, code: string): void {
    const e = this.errors.get(route) ?? new Map<string, number>();
    e.set(code, (e.get(code) ?? 0) + 1);
    this.errors.set(route, e);
  }
  errorCount(route?: string): number {
    let n = 0;
    for (const [r, e] of this.errors) if (route === undefined || r === route) for (const c of e.values()) n += c;
    return n;
  }
  errorText(route?: string): string {
    const parts: string[] = [];
    for (const [r, e] of this.errors) if (route === undefined || r === route) for (const [c, k] of e) parts.push(`${r} ${c} ×${k}`);
    return parts.join(', ') || 'none';
  }
}

/** A request; connection failures and timeouts are recorded as errors (code `reset:<cause>` / `timeout`). */
async function send(routes: Routes, route: string, url: string, init: RequestInit, timeoutMs: number): Promise<{ status: number; body: Record<string, unknown>; bytes: number } | null> {
  const t0 = performance.now();
  try {
    const r = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    const text = await r.text();
    const t = performance.now() - t0;
    let body: Record<string, unknown> = {};
    try {
      body = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
    } catch {
      body = {};
    }
    if (r.status >= 200 && r.status < 300) routes.ok(route, t);
    else routes.error(route, `${r.status} ${String((body['errors'] as Array<{ code?: string }> | undefined)?.[0]?.code ?? '')}`.trim());
    return { status: r.status, body, bytes: text.length };
  } catch (e) {
    if (e instanceof DOMException && e.name === 'TimeoutError') routes.error(route, 'timeout');
    else {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      routes.error(route, `reset:${cause?.code ?? cause?.message ?? String(e)}`);
    }
    return null;
  }
}

interface Prepared { body: string; max: number; changes: number }

interface CheckData { payload?: string; chunks?: Array<{ payload?: string; url?: string }>; final?: boolean; nextCursor?: number; watermark?: number }

/** A device of the mixed load: its own replica (for uploads), G3 over HTTP. Downloads are counted, not applied. */
class Device {
  readonly engine: SyncEngine;
  readonly site: string;
  sent = 0;
  watermark = 0;
  n = 0;
  uploadedChanges = 0;
  readonly rows: Array<[string, string]> = [];

  constructor(readonly i: number, readonly s: LoadServer, readonly databaseId: string, readonly credential: string, public routes: Routes, ddl = TODOS_DDL) {
    this.engine = openReplica(ddl);
    this.site = Buffer.from(this.engine.siteId).toString('hex');
  }

  url(call: string): string {
    return `${this.s.origin}/v2/cloudsync/databases/${this.databaseId}/${this.site}/${call}`;
  }

  headers(json: boolean): Record<string, string> {
    return { ...G3, authorization: `Bearer ${this.credential}`, ...(json ? { 'content-type': 'application/json' } : {}) };
  }

  /** Checks from the watermark until final; each payload goes to `onPayload`. Returns bytes received, or null on an error. */
  async check(route: string, timeoutMs: number, onPayload?: (p: Uint8Array) => void): Promise<number | null> {
    let cursor = 0;
    let bytes = 0;
    for (let round = 0; round < 1000; round++) {
      const r = await send(this.routes, route, this.url('check'), { method: 'POST', headers: this.headers(true), body: JSON.stringify({ dbVersion: this.watermark, seq: 0, cursor }) }, timeoutMs);
      if (r === null || r.status !== 200) return null;
      bytes += r.bytes;
      const data = r.body['data'] as CheckData | undefined;
      if (data === undefined) return bytes;
      if (data.payload !== undefined) onPayload?.(new Uint8Array(Buffer.from(data.payload, 'base64')));
      for (const c of data.chunks ?? []) {
        if (c.payload !== undefined) onPayload?.(new Uint8Array(Buffer.from(c.payload, 'base64')));
        else if (c.url !== undefined) {
          const t0 = performance.now();
          try {
            const a = await fetch(c.url, { signal: AbortSignal.timeout(timeoutMs) });
            const buf = new Uint8Array(await a.arrayBuffer());
            if (a.status !== 200) this.routes.error('artifact GET', String(a.status));
            else this.routes.ok('artifact GET', performance.now() - t0);
            bytes += buf.byteLength;
            onPayload?.(buf);
          } catch {
            this.routes.error('artifact GET', 'reset');
            return null;
          }
        }
      }
      if (data.final !== false) {
        if (data.watermark !== undefined) this.watermark = data.watermark;
        return bytes;
      }
      cursor = data.nextCursor ?? 0;
    }
    return bytes;
  }

  /** One local transaction of `rows` new todos, encoded as the G3 inline apply of everything after `after`. */
  prepare(rows: number, after = this.sent): Prepared | null {
    const d = this.i;
    const b = ++this.n;
    this.engine.driver.transaction(() => {
      const st = this.engine.driver.prepare('INSERT INTO todos (id, title, done) VALUES (?, ?, 0)');
      for (let r = 0; r < rows; r++) {
        const id = `d${d}-b${b}-r${r}`;
        const title = `todo ${r} of batch ${b} on device ${d}`;
        st.run(id, title);
        this.rows.push([id, title]);
      }
    });
    const max = this.engine.dbVersion();
    const changes = [...this.engine.changes({ localOnly: true, after: { dbVersion: after, seq: Number.MAX_SAFE_INTEGER } })];
    const payload = this.engine.encodeChanges(changes);
    if (payload === null) return null;
    return { body: JSON.stringify({ blob: Buffer.from(payload).toString('base64'), dbVersionMin: after + 1, dbVersionMax: max }), max, changes: changes.length };
  }

  /** Sends a prepared upload; acknowledged → `sent` moves. */
  async send(u: Prepared, timeoutMs: number): Promise<void> {
    const r = await send(this.routes, 'apply', this.url('apply'), { method: 'POST', headers: this.headers(true), body: u.body }, timeoutMs);
    if (r === null || r.status !== 200) return;
    const failure = (r.body['failures'] as { apply?: { code?: string } } | undefined)?.apply;
    if (failure !== undefined) {
      this.routes.error('apply', `failures.apply ${failure.code ?? ''}`);
      return;
    }
    this.sent = u.max;
    this.uploadedChanges += u.changes;
  }

  async upload(rows: number, timeoutMs: number): Promise<void> {
    const u = this.prepare(rows);
    if (u !== null) await this.send(u, timeoutMs);
  }

  async status(timeoutMs: number): Promise<void> {
    await send(this.routes, 'status', this.url('status'), { method: 'GET', headers: this.headers(false) }, timeoutMs);
  }
}

function lagNote(l: LagReply): string {
  return `p50 ${fmt(l.p50, 1)} ms, max ${ms(l.max)}; server RSS ${fmt(l.rssStart / MiB)} → peak ${fmt(l.rssPeak / MiB)} MiB`;
}

function routeRows(row: Row, label: string, routes: Routes, names: string[], targets: Record<string, string> = {}): void {
  for (const name of names) {
    const l = routes.latency.get(name) ?? [];
    const errors = routes.errorCount(name);
    row(`${label} ${name} p50 / p99`, l.length === 0 ? 'no answer' : `${ms(percentile(l, 50))} / ${ms(percentile(l, 99))}`, targets[name] ?? '', `${fmt(l.length)} ok, ${errors} errors`);
  }
}

/** (e) mixed load, (f) upload burst, (g) initial-sync storm. */
export async function loadBench(row: Row, o: LoadOptions): Promise<void> {
  process.stderr.write(`(e)(f)(g) load: starting the server (${o.seedRows} + ${o.stormRows} seeded rows, ${o.devices + o.stormDevices} credentials)…\n`);
  const setup0 = performance.now();
  const s = await startLoadServer({ seedRows: o.seedRows, tokens: Math.floor(o.devices / 2), stormRows: o.stormRows, stormUsers: o.stormDevices });
  process.stderr.write(`  server ready in ${ms(performance.now() - setup0)}\n`);
  // Server and devices share this machine's cores with whatever else runs: the figures are relative to that.
  row('(e)–(g) machine during the load bench', `${cpus().length} cores`, '', `load average ${loadavg().map((x) => fmt(x, 1)).join(' / ')} (1 / 5 / 15 min) at start; server in its own process, devices in this one`);
  try {
    // (e) mixed load.
    const routes = new Routes();
    const devices = Array.from({ length: o.devices }, (_, i) => new Device(i, s, s.mix.databaseId, i % 2 === 0 ? s.mix.apiKey : (s.mix.tokens[(i - 1) / 2] ?? s.mix.apiKey), routes));
    const firstSync: number[] = [];
    let firstSyncBytes = 0;
    const timeout = 30_000;
    process.stderr.write(`(e) mixed load: ${o.devices} devices for ${o.durationMs / 1000} s…\n`);
    await s.lagStart();
    const t0 = performance.now();
    const deadline = t0 + o.durationMs;
    const ramp = o.durationMs / 2;
    const device = async (d: Device): Promise<void> => {
      await sleep((d.i / o.devices) * ramp);
      const f0 = performance.now();
      const bytes = await d.check('check (first sync)', timeout);
      if (bytes !== null) {
        firstSync.push(performance.now() - f0);
        firstSyncBytes += bytes;
      }
      while (performance.now() < deadline) {
        await sleep(150 + Math.random() * 300);
        if (performance.now() >= deadline) break;
        const pick = Math.random();
        if (pick < 0.5) await d.upload(o.rowsPerUpload, timeout);
        else if (pick < 0.85) await d.check('check', timeout);
        else await d.status(timeout);
      }
    };
    const dashboard = async (): Promise<void> => {
      const query = 'query($id: ID!) { database(id: $id) { devices(first: 5) { totalCount nodes { siteId } } metrics { activeDevices requests uploadBytes downloadBytes } connection { status } } }';
      const body = JSON.stringify({ query, variables: { id: s.mix.databaseId } });
      while (performance.now() < deadline) {
        const r = await send(routes, 'GraphQL', `${s.origin}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${s.adminKey}` }, body }, timeout);
        if (r !== null && r.status === 200 && (r.body['errors'] as unknown[] | undefined)?.length) routes.error('GraphQL', 'errors');
        await sleep(250);
      }
    };
    await within(Promise.all([...devices.map(device), ...Array.from({ length: o.dashboards }, dashboard)]), o.durationMs + 2 * timeout);
    const window = (performance.now() - t0) / 1000;
    const lagE = await s.lag();
    const changes = devices.reduce((n, d) => n + d.uploadedChanges, 0);
    const rowsUp = devices.reduce((n, d) => n + d.rows.length, 0);
    row(`(e) mixed load, ${o.devices} devices, ${fmt(window, 1)} s`, `${routes.errorCount()} errors`, '0 errors', `${verdict(routes.errorCount() === 0)}; ${routes.errorText()}`);
    routeRows(row, '(e)', routes, ['apply', 'check', 'status', 'GraphQL'], { status: '≤ 100 ms p99', GraphQL: '≤ 100 ms p99' });
    row('(e) first sync (check until final) p50 / p99', `${ms(percentile(firstSync, 50))} / ${ms(percentile(firstSync, 99))}`, '', `${firstSync.length} devices, ${fmt(firstSyncBytes / MiB, 1)} MiB; single check requests: ${(() => { const l = routes.latency.get('check (first sync)') ?? []; return `${ms(percentile(l, 50))} / ${ms(percentile(l, 99))}`; })()}`);
    row('(e) server event-loop delay p99', `${fmt(lagE.p99, 1)} ms`, '', lagNote(lagE));
    row('(e) uploads merged during the load', `${fmt(changes / window)} changes/s`, '', `${fmt(rowsUp)} rows; paced by think time (offered load, not capacity)`);

    // (f) upload burst: every device, back to back, all at once.
    process.stderr.write(`(f) upload burst: ${o.devices} × ${o.burstUploads} × ${o.burstRows} rows…\n`);
    const burst = new Routes();
    for (const d of devices) {
      d.routes = burst;
      d.rows.length = 0;
      d.uploadedChanges = 0;
    }
    // Encoded before the clock starts (device-side cost excluded), each window following the previous.
    const prepared = devices.map((d) => {
      const list: Prepared[] = [];
      for (let k = 0, after = d.sent; k < o.burstUploads; k++) {
        const u = d.prepare(o.burstRows, after);
        if (u !== null) list.push(u);
        after = u?.max ?? after;
      }
      return list;
    });
    await s.lagStart();
    const b0 = performance.now();
    await Promise.all(devices.map(async (d, i) => { for (const u of prepared[i] ?? []) await d.send(u, 60_000); }));
    const burstMs = performance.now() - b0;
    const lagF = await s.lag();
    const burstChanges = devices.reduce((n, d) => n + d.uploadedChanges, 0);
    const burstRows = devices.flatMap((d) => d.rows);
    const rate = burstChanges / (burstMs / 1000);
    const raw = burstRows.length / (baseline(burstRows, o.burstRows) / 1000);
    const l = burst.latency.get('apply') ?? [];
    row(`(f) upload burst, ${o.devices} devices × ${o.burstUploads} × ${o.burstRows} rows`, `${fmt(rate)} changes/s`, '', `${fmt(burstChanges)} changes in ${ms(burstMs)}, apply p50 / p99 ${ms(percentile(l, 50))} / ${ms(percentile(l, 99))}, ${burst.errorCount()} errors (${burst.errorText()})`);
    row('(f) baseline raw better-sqlite3 inserts, same rows', `${fmt(raw)} rows/s`, '', `merge under the burst is ${fmt(raw / (rate / (burstChanges / Math.max(1, burstRows.length))), 1)}× slower per row; event-loop delay p99 ${fmt(lagF.p99, 1)} ms, max ${ms(lagF.max)}`);
    for (const d of devices) d.engine.close();

    // (g) initial-sync storm: fresh RLS devices, one user each, all at the same instant.
    process.stderr.write(`(g) storm: ${o.stormDevices} fresh RLS devices on ${o.stormRows} rows…\n`);
    const storm = new Routes();
    const fresh = s.storm.tokens.map((token, i) => new Device(i, s, s.storm.databaseId, token, storm, STORM_DDL));
    const done: number[] = [];
    await s.lagStart();
    const g0 = performance.now();
    await within(Promise.all(fresh.map(async (d) => {
      const bytes = await d.check('check', 120_000, (p) => { d.engine.applyPayload(p); });
      if (bytes !== null) done.push(performance.now() - g0);
    })), 180_000);
    const lagG = await s.lag();
    const expected = o.stormRows / o.stormDevices;
    // Each device must hold exactly its user's rows (RLS): all of them, nobody else's.
    const count = (d: Device): { all: number; mine: number } => {
      const r = d.engine.driver.prepare('SELECT count(*) AS all_rows, sum(user_id = ?) AS mine FROM todos').get(`u${d.i}`) as { all_rows: number | bigint; mine: number | bigint | null };
      return { all: Number(r.all_rows), mine: Number(r.mine ?? 0) };
    };
    const rowsOk = fresh.filter((d) => { const c = count(d); return c.all === expected && c.mine === expected; }).length;
    const resets = [...(storm.errors.get('check') ?? new Map<string, number>())].filter(([c]) => c.startsWith('reset') || c === 'timeout').reduce((n, [, k]) => n + k, 0);
    routeRows(row, `(g) storm, ${o.stormDevices} fresh RLS devices, ${fmt(o.stormRows)} rows:`, storm, ['check'], { check: '≤ 5 s p99' });
    row('(g) storm: whole first sync p50 / p99', `${ms(percentile(done, 50))} / ${ms(percentile(done, 99))}`, '≤ 5 s p99', `${verdict(percentile(done, 99) <= 5000 && done.length === fresh.length)}; ${done.length}/${fresh.length} complete, ${rowsOk} with exactly their ${expected} rows`);
    row('(g) storm: connection resets / timeouts', `${resets}`, '0', `${verdict(resets === 0)}; all errors: ${storm.errorText()}; event-loop delay p99 ${fmt(lagG.p99, 1)} ms, max ${ms(lagG.max)}; RSS peak ${fmt(lagG.rssPeak / MiB)} MiB`);
    for (const d of fresh) d.engine.close();
  } finally {
    await s.stop();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows: Array<[string, string, string, string]> = [];
  const row: Row = (what, value, target = '', note = '') => {
    rows.push([what, value, target, note]);
    process.stderr.write(`  ${what}: ${value}${note ? ` (${note})` : ''}\n`);
  };
  // LOAD_OPTIONS: JSON overriding LoadOptions, e.g. '{"durationMs":10000}'.
  const options = { ...(process.env['BENCH_QUICK'] === '1' ? QUICK : FULL), ...(JSON.parse(process.env['LOAD_OPTIONS'] || '{}') as Partial<LoadOptions>) };
  loadBench(row, options).then(() => {
    const widths = [0, 1, 2, 3].map((i) => Math.max(...[['measure', 'result', 'target', 'notes'], ...rows].map((r) => (r[i] ?? '').length)));
    const line = (r: string[]): string => `| ${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
    process.stdout.write(`\n${line(['measure', 'result', 'target', 'notes'])}\n${line(widths.map((w) => '-'.repeat(w)))}\n${rows.map(line).join('\n')}\n`);
  }, (e: unknown) => {
    process.stderr.write(`load bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  });
}

/**
 * (c) Propagation latency device → server → device and (d) memory per idle subscriber: N devices
 * hold a graphql-ws connection each with a `changes` subscription from the head of the feed; one
 * writer device pushes one change per round through `pushChanges`; we time until a randomly
 * chosen subscriber (and the last one) receives it. Memory: see {@link subscriberMemory}. The
 * subscribers speak graphql-transport-ws themselves ({@link Fleet}); CPU per round of the server
 * and of this process is reported next to the latencies.
 */
import { randomBytes } from 'node:crypto';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { openReplica, TODOS_DDL } from '@offsync/core/testing';
import type { SyncEngine } from '@offsync/core';
import type { BenchServer } from './ipc.ts';

const CHANGES = `subscription($db: ID!, $site: String!, $cursor: SyncCursorInput) {
  changes(databaseId: $db, siteId: $site, cursor: $cursor) { payload changes cursor { dbVersion seq } final }
}`;
const PUSH = `mutation($db: ID!, $site: String!, $payload: String!, $min: Int, $max: Int) {
  pushChanges(databaseId: $db, siteId: $site, payload: $payload, dbVersionMin: $min, dbVersionMax: $max) { applied failures { code } }
}`;

interface Sub {
  client: { dispose(): void | Promise<void> };
  received: number;
  /** `received` this round ends at (propagation). */
  target: number;
  lastAt: number;
  caughtUp: boolean;
}

export class Fleet {
  readonly subs: Sub[] = [];
  /** Subscribers still short of their target this round (a counter, so a batch costs O(1) here, not a scan of the fleet). */
  remaining = 0;
  #onBatch: (() => void) | undefined;
  constructor(readonly server: BenchServer) {}

  /** A batch (or the caught-up marker, payload null) reached `sub` at `at`. */
  #next(sub: Sub, payload: string | null | undefined, at: number): void {
    if (payload === null) sub.caughtUp = true;
    else {
      sub.lastAt = at;
      if (++sub.received === sub.target) this.remaining--;
    }
    this.#onBatch?.();
  }

  /**
   * One subscriber as a minimal graphql-transport-ws client over its own `ws` WebSocket (the
   * protocol graphql-ws speaks: connection_init → connection_ack, subscribe, next / error /
   * complete). Every subscriber still receives and JSON-parses its whole message and checks its
   * type, id and data; what it leaves out is the graphql-ws client's bookkeeping per message
   * (measured ~20% of this process's CPU per round: 16–19 vs 22–24 ms at 1,000 subscribers,
   * two alternating runs each). All subscribers share this one process, so
   * the k-th message of a fan-out waits for the k-1 before it: a heavier client measures itself.
   * The arrival time is taken before the parse. BENCH_LIVE_CLIENT=graphql-ws: the graphql-ws
   * client instead.
   */
  #subscribeRaw(sub: Sub, variables: Record<string, unknown>): Sub['client'] {
    const socket = new WebSocket(this.server.wsUrl, 'graphql-transport-ws');
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${this.server.adminKey}` } })));
    socket.on('message', (data) => {
      const at = performance.now();
      const m = JSON.parse(String(data)) as { type: string; id?: string; payload?: { data?: { changes?: { payload?: string | null } }; errors?: unknown } | unknown[] };
      if (m.type === 'connection_ack') socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: CHANGES, variables } }));
      else if (m.type === 'next' && m.id === '1' && !Array.isArray(m.payload) && m.payload?.data?.changes !== undefined) this.#next(sub, m.payload.data.changes.payload, at);
      else if (m.type === 'ping') socket.send(JSON.stringify({ type: 'pong' }));
      else if (m.type !== 'complete' && m.type !== 'pong') console.error('subscriber failed', m);
    });
    socket.on('error', (e) => console.error('subscriber failed', e));
    return {
      dispose: () =>
        new Promise<void>((resolve) => {
          if (socket.readyState === WebSocket.CLOSED) return resolve();
          socket.once('close', () => resolve());
          socket.close(1000);
        }),
    };
  }

  /** Opens `n` more idle subscribers (each its own WebSocket) from the current head. */
  async grow(n: number): Promise<void> {
    const { dbVersion } = await this.server.request({ type: 'head' });
    const cursor = { dbVersion, seq: 2 ** 31 - 1 };
    const fresh: Sub[] = [];
    const library = process.env['BENCH_LIVE_CLIENT'] === 'graphql-ws';
    for (let i = 0; i < n; i++) {
      const sub: Sub = { client: { dispose: () => undefined }, received: 0, target: 0, lastAt: 0, caughtUp: false };
      const variables = { db: this.server.databaseId, site: randomBytes(16).toString('hex'), cursor };
      if (library) {
        const client = createClient({ url: this.server.wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${this.server.adminKey}` }, retryAttempts: 0, lazy: true });
        client.subscribe<{ changes: { payload: string | null } }>(
          { query: CHANGES, variables },
          { next: (r) => this.#next(sub, r.data?.changes.payload, performance.now()), error: (e) => console.error('subscriber failed', e), complete: () => {} },
        );
        sub.client = client;
      } else sub.client = this.#subscribeRaw(sub, variables);
      fresh.push(sub);
      this.subs.push(sub);
      if (i % 100 === 99) await this.until(() => fresh.every((s) => s.caughtUp), 60_000);
    }
    await this.until(() => fresh.every((s) => s.caughtUp), 60_000);
  }

  until(pred: () => boolean, ms: number): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#onBatch = undefined;
        reject(new Error('timed out waiting for subscribers'));
      }, ms);
      this.#onBatch = () => {
        if (!pred()) return;
        clearTimeout(timer);
        this.#onBatch = undefined;
        resolve();
      };
    });
  }

  /** Every subscriber is now expected to receive one batch more. */
  expectOneMore(): void {
    for (const s of this.subs) s.target = s.received + 1;
    this.remaining = this.subs.length;
  }

  async close(): Promise<void> {
    await Promise.all(this.subs.splice(0).map(async (s) => s.client.dispose()));
  }
}

export interface LatencyResult {
  rounds: number;
  chosen: number[];
  last: number[];
  /** When the writer had the server's reply to its push (the merge acknowledged), ms after the round started. */
  ack: number[];
  /** CPU time (user + system) per round of the server process and of this (measuring) process, ms: what a round costs whatever the machine's load. */
  serverCpuMs: number;
  clientCpuMs: number;
}

const cpuMs = (u: { user: number; system: number }): number => (u.user + u.system) / 1000;

export class Writer {
  readonly engine: SyncEngine = openReplica(TODOS_DDL);
  #sent = 0;
  #n = 0;
  constructor(readonly server: BenchServer) {
    this.engine.driver.prepare("INSERT INTO todos (id, title) VALUES ('writer', 'w')").run();
  }

  async push(): Promise<void> {
    if (this.#n++ > 0) this.engine.driver.prepare("UPDATE todos SET title = ? WHERE id = 'writer'").run(`w${this.#n}`);
    const bytes = this.engine.encodeChanges(this.engine.changes({ localOnly: true, after: { dbVersion: this.#sent, seq: Number.MAX_SAFE_INTEGER } }));
    if (bytes === null) throw new Error('nothing to push');
    const max = this.engine.dbVersion();
    const variables = { db: this.server.databaseId, site: Buffer.from(this.engine.siteId).toString('hex'), payload: Buffer.from(bytes).toString('base64'), min: this.#sent + 1, max };
    const r = await fetch(`${this.server.origin}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${this.server.apiKey}` },
      body: JSON.stringify({ query: PUSH, variables }),
    });
    const body = (await r.json()) as { data?: { pushChanges: { applied: number; failures: unknown[] } }; errors?: unknown };
    if (body.data?.pushChanges.failures.length !== 0) throw new Error(`push failed: ${JSON.stringify(body)}`);
    this.#sent = max;
  }
}

/** `rounds` pushes, one at a time; each waits until every subscriber has the change. */
export async function propagation(fleet: Fleet, writer: Writer, rounds: number): Promise<LatencyResult> {
  const chosen: number[] = [];
  const last: number[] = [];
  const ack: number[] = [];
  // BENCH_LIVE_PROF=<file>: a CPU profile of the server's main thread over the rounds alone.
  const prof = process.env['BENCH_LIVE_PROF'];
  if (prof) await fleet.server.request({ type: 'profile', action: 'start' });
  const server0 = cpuMs(await fleet.server.request({ type: 'cpu' }));
  const client0 = process.cpuUsage();
  for (let r = 0; r < rounds; r++) {
    fleet.expectOneMore();
    const pick = Math.floor(Math.random() * fleet.subs.length);
    const t0 = performance.now();
    await writer.push();
    ack.push(performance.now() - t0);
    await fleet.until(() => fleet.remaining <= 0, 30_000);
    chosen.push((fleet.subs[pick]?.lastAt ?? t0) - t0);
    last.push(Math.max(...fleet.subs.map((s) => s.lastAt)) - t0);
  }
  const clientCpuMs = cpuMs(process.cpuUsage(client0)) / rounds;
  const serverCpuMs = (cpuMs(await fleet.server.request({ type: 'cpu' })) - server0) / rounds;
  if (prof) await fleet.server.request({ type: 'profile', action: 'stop', file: `${prof}.${fleet.subs.length}.cpuprofile` });
  return { rounds, chosen, last, ack, serverCpuMs, clientCpuMs };
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

const KiB = 1024;
const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');
export type Row = (what: string, value: string, target?: string, note?: string) => void;

/** The server's heap after full collections (bench/server.ts runs with --expose-gc and collects 3 times). */
async function settledHeap(server: BenchServer): Promise<{ heapUsed: number; external: number; rss: number }> {
  // Let closes, timers and unref'd cleanups run before collecting.
  await new Promise((r) => setTimeout(r, 300));
  return server.request({ type: 'memory' });
}

export interface SubscriberMemory {
  /** JS heap bytes per idle subscriber (slope over the tier). */
  heap: number;
  /** External + ArrayBuffer bytes per idle subscriber (socket buffers). */
  external: number;
  samples: number;
}

/**
 * Memory per idle subscriber, measured so that it means something: the server runs in its own
 * process with --expose-gc; before and after opening `n` more subscribers it is collected fully
 * (three gc() calls after a 300 ms settle), so both figures are live heap only — never
 * garbage-dependent RSS, which the allocator does not return to the OS and which came out
 * negative before. The heap is sampled with 0, n/2 and n new subscribers open; the figure is the
 * least-squares slope (bytes per added subscriber), which one-off allocations cannot inflate.
 * Heap growth from one subscriber more is live objects only, so the slope is ≥ 0 up to the
 * collector's noise (a few KiB over the whole tier, i.e. bytes per subscriber).
 */
export async function subscriberMemory(server: BenchServer, fleet: Fleet, n: number): Promise<SubscriberMemory> {
  const xs: number[] = [];
  const heap: number[] = [];
  const ext: number[] = [];
  const sample = async (): Promise<void> => {
    const m = await settledHeap(server);
    xs.push(fleet.subs.length);
    heap.push(m.heapUsed);
    ext.push(m.external);
  };
  await sample();
  const half = Math.floor(n / 2);
  await fleet.grow(half);
  await sample();
  await fleet.grow(n - half);
  await sample();
  const slope = (ys: number[]): number => {
    const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
    const my = ys.reduce((a, b) => a + b, 0) / ys.length;
    let num = 0;
    let den = 0;
    for (let i = 0; i < xs.length; i++) {
      num += ((xs[i] ?? 0) - mx) * ((ys[i] ?? 0) - my);
      den += ((xs[i] ?? 0) - mx) ** 2;
    }
    return den === 0 ? 0 : num / den;
  };
  return { heap: slope(heap), external: slope(ext), samples: xs.length };
}

/** (c) and (d) for each tier: memory per idle subscriber while growing to the tier, then propagation rounds. */
export async function liveBench(server: BenchServer, row: Row, o: { tiers: number[]; rounds: number }): Promise<void> {
  const fleet = new Fleet(server);
  const writer = new Writer(server);
  await writer.push(); // warm-up: the writer's first row, the engine and the yoga pipeline
  // Warm-up subscribers (code compiled, caches filled), closed before the first heap sample.
  const warm = new Fleet(server);
  await warm.grow(Math.min(50, o.tiers[0] ?? 50));
  await warm.close();
  for (const n of o.tiers) {
    const added = n - fleet.subs.length;
    const t0 = performance.now();
    const mem = await subscriberMemory(server, fleet, added);
    const connectMs = performance.now() - t0;
    row(
      `(d) memory per idle subscriber, ${n} subs, JS heap`,
      `${fmt(mem.heap / KiB, 1)} KiB`,
      '≤ 20 KiB',
      `${verdict(mem.heap <= 20 * KiB)}; heap after forced GC in the server process, slope over ${mem.samples} samples (0, ${Math.floor(added / 2)}, ${added} more subs); external/buffers ${fmt(mem.external / KiB, 1)} KiB; ${fmt(connectMs)} ms incl. connect + subscribe`,
    );
    for (let i = 0; i < 5; i++) await writer.push(); // warm-up at this fan-out
    await fleet.until(() => fleet.subs.every((s) => s.received >= 5), 30_000).catch(() => undefined);
    const r = await propagation(fleet, writer, n >= 1000 ? Math.round(o.rounds / 2) : o.rounds);
    const p50 = percentile(r.chosen, 50);
    const p99 = percentile(r.chosen, 99);
    row(`(c) propagation, ${n} subs, random subscriber p50`, `${fmt(p50, 2)} ms`, '≤ 10 ms', verdict(p50 <= 10));
    row(`(c) propagation, ${n} subs, random subscriber p99`, `${fmt(p99, 2)} ms`, '≤ 50 ms', verdict(p99 <= 50));
    row(`(c) propagation, ${n} subs, last subscriber p50 / p99`, `${fmt(percentile(r.last, 50), 2)} / ${fmt(percentile(r.last, 99), 2)} ms`, '', `${r.rounds} rounds, fan-out complete`);
    row(`(c) propagation, ${n} subs, writer's acknowledgement p50 / p99`, `${fmt(percentile(r.ack, 50), 2)} / ${fmt(percentile(r.ack, 99), 2)} ms`, '', 'the push reply (its merge committed) while the server fans the change out');
    row(`(c) propagation, ${n} subs, CPU per round server / bench client`, `${fmt(r.serverCpuMs, 2)} / ${fmt(r.clientCpuMs, 2)} ms`, '', 'process CPU time (user + system) over the rounds, per round: the server process vs the one measuring all subscribers');
  }
  await fleet.close();
  writer.engine.close();
}

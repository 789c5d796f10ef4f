/**
 * (c) Propagation latency device → server → device and (d) memory per idle subscriber: N devices
 * hold a graphql-ws connection each with a `changes` subscription from the head of the feed; one
 * writer device pushes one change per round through `pushChanges`; we time until a randomly
 * chosen subscriber (and the last one) receives it. Memory is the server process's RSS / heap
 * delta after N idle subscriptions, divided by N.
 */
import { randomBytes } from 'node:crypto';
import { createClient } from 'graphql-ws';
import type { Client } from 'graphql-ws';
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
  client: Client;
  received: number;
  lastAt: number;
  caughtUp: boolean;
}

export class Fleet {
  readonly subs: Sub[] = [];
  #onBatch: (() => void) | undefined;
  constructor(readonly server: BenchServer) {}

  /** Opens `n` more idle subscribers (each its own WebSocket) from the current head. */
  async grow(n: number): Promise<void> {
    const { dbVersion } = await this.server.request({ type: 'head' });
    const cursor = { dbVersion, seq: 2 ** 31 - 1 };
    const fresh: Sub[] = [];
    for (let i = 0; i < n; i++) {
      const client = createClient({ url: this.server.wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${this.server.adminKey}` }, retryAttempts: 0, lazy: true });
      const sub: Sub = { client, received: 0, lastAt: 0, caughtUp: false };
      client.subscribe<{ changes: { payload: string | null } }>(
        { query: CHANGES, variables: { db: this.server.databaseId, site: randomBytes(16).toString('hex'), cursor } },
        {
          next: (r) => {
            if (r.data?.changes.payload === null) sub.caughtUp = true;
            else {
              sub.received++;
              sub.lastAt = performance.now();
            }
            this.#onBatch?.();
          },
          error: (e) => console.error('subscriber failed', e),
          complete: () => {},
        },
      );
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

  async close(): Promise<void> {
    await Promise.all(this.subs.splice(0).map((s) => s.client.dispose()));
  }
}

export interface LatencyResult {
  rounds: number;
  chosen: number[];
  last: number[];
}

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
  for (let r = 0; r < rounds; r++) {
    const target = fleet.subs.map((s) => s.received + 1);
    const pick = Math.floor(Math.random() * fleet.subs.length);
    const t0 = performance.now();
    await writer.push();
    await fleet.until(() => fleet.subs.every((s, i) => s.received >= (target[i] ?? 0)), 30_000);
    chosen.push((fleet.subs[pick]?.lastAt ?? t0) - t0);
    last.push(Math.max(...fleet.subs.map((s) => s.lastAt)) - t0);
  }
  return { rounds, chosen, last };
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

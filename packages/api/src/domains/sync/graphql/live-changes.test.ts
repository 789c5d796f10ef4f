/**
 * Push mode of the live `changes` stream (what the graphql-ws fast path uses): a sink that is not
 * ready is skipped and keeps its cursor — it never holds more than what it took, the other
 * subscribers of the same shared page keep streaming, and once it resumes it gets exactly what it
 * missed (no gap, no duplicate). Pull mode keeps working alongside on the same events.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { decodePayload } from '../../../../../core/src/codec/payload.ts';
import { insertTodos, push, replica, startSyncApp } from '../../../../test/graphql-sync-fixture.ts';
import type { SyncTestApp } from '../../../../test/graphql-sync-fixture.ts';
import { stopEmbeddedPg } from '../../../../test/helpers.ts';
import type { Principal } from '../sync-deps.ts';
import { changeHubOf } from './change-hub.ts';
import { liveChanges } from './live-changes.ts';
import type { ChangesBatch, LiveStream } from './live-changes.ts';

let t: SyncTestApp;
beforeAll(async () => {
  t = await startSyncApp();
});
afterAll(async () => {
  await t.dispose();
  await stopEmbeddedPg();
});

const principal: Principal = { kind: 'apiKey', userId: null, claims: {} };

/** Change keys of a batch (pk/col/col_version). */
const keysOf = (b: ChangesBatch): string[] =>
  b.payload === null ? [] : decodePayload(b.payload).changes.map((c) => `${Buffer.from(c.pk).toString('hex')}/${c.col}/${c.colVersion}`);

/** A sink recording what it is given, ready or not as the test says; `wait` resolves on the next write or end. */
class Recorder {
  readonly batches: ChangesBatch[] = [];
  open = true;
  writesWhileClosed = 0;
  ended: unknown = 'open';
  resume: () => void = () => undefined;
  #waiters: Array<() => void> = [];

  attach(stream: LiveStream): void {
    this.resume = stream.attach({
      ready: () => this.open,
      write: (b) => {
        if (!this.open) this.writesWhileClosed++;
        this.batches.push(b);
        for (const w of this.#waiters.splice(0)) w();
      },
      end: (e) => {
        this.ended = e;
        for (const w of this.#waiters.splice(0)) w();
      },
    });
  }

  keys(): string[] {
    return this.batches.flatMap(keysOf);
  }

  async until(pred: () => boolean): Promise<void> {
    while (!pred()) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }
}

async function open(): Promise<LiveStream> {
  const db = await t.app.sync.databases.get(t.databaseId);
  return liveChanges({
    sync: t.app.sync,
    hub: changeHubOf(t.app.services.pubsub),
    db,
    site: randomBytes(16).toString('hex'),
    principal,
    after: { dbVersion: 0, seq: 0 },
    pageBytes: 1 << 20,
  });
}

test('a sink that is not ready is skipped, holds nothing, delays nobody and gets exactly what it missed when it resumes', async () => {
  const writer = replica();
  const fast = new Recorder();
  const slow = new Recorder();
  slow.open = false;
  const fastStream = await open();
  const slowStream = await open();
  const pulled = await open();
  fast.attach(fastStream);
  slow.attach(slowStream);
  // Replay of an empty database: the caught-up marker.
  await fast.until(() => fast.batches.length === 1);
  expect(fast.batches[0]).toMatchObject({ payload: null, final: true });
  const first = await pulled.next();
  expect(first.value).toMatchObject({ payload: null, final: true });

  let sent = 0;
  const expected: string[] = [];
  for (let round = 0; round < 5; round++) {
    insertTodos(writer, round * 3, 3, `r${round}`);
    sent = (await push(t, writer, sent)).sent;
    await fast.until(() => fast.keys().length >= expected.length + 9);
    expected.splice(0, expected.length, ...fast.keys());
    const p = await pulled.next();
    expect(p.done).toBe(false);
  }
  // 5 rounds × 3 rows × 3 columns, each once, in order, all live (one batch per round).
  expect(fast.keys()).toHaveLength(45);
  expect(new Set(fast.keys()).size).toBe(45);
  expect(fast.batches.length).toBe(6);
  // The slow sink was never written to while not ready, so it holds nothing.
  expect(slow.batches).toHaveLength(0);

  slow.open = true;
  slow.resume();
  await slow.until(() => slow.batches.at(-1)?.cursor.dbVersion === fast.batches.at(-1)?.cursor.dbVersion && slow.batches.at(-1)?.final === true);
  expect(slow.writesWhileClosed).toBe(0);
  expect(slow.keys()).toEqual(fast.keys());
  expect(slow.batches.at(-1)?.cursor).toEqual(fast.batches.at(-1)?.cursor);

  // Both keep streaming live afterwards.
  insertTodos(writer, 100, 1, 'after');
  sent = (await push(t, writer, sent)).sent;
  await fast.until(() => fast.keys().length === 48);
  await slow.until(() => slow.keys().length === 48);
  expect(slow.keys()).toEqual(fast.keys());

  // The end reaches the sink once, done (no error); pull mode ends done too.
  await slowStream.return();
  await fastStream.return();
  await slow.until(() => slow.ended !== 'open');
  expect(slow.ended).toBeUndefined();
  expect(fast.ended).toBeUndefined();
  expect(await pulled.return()).toEqual({ done: true, value: undefined });
  expect(await pulled.next()).toEqual({ done: true, value: undefined });
  writer.close();
});

/**
 * The fast path's frame writer (live-fast-path.ts `frameWriter`): a message written straight to
 * the TCP socket arrives as the same text message `ws.send` would give, at every payload-length
 * encoding (7-bit, 16-bit, 64-bit) and around their limits; frames keep their order with ws's own
 * frames (a ping between messages); and a socket whose sender is not idle, or that negotiated
 * permessage-deflate, goes through `ws.send`.
 */
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, expect, test } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { frameWriter } from './live-fast-path.ts';
import type { FastSocket } from './live-fast-path.ts';

const servers: WebSocketServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    for (const c of s.clients) c.terminate();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

/** A connected pair: the server's socket and what the client receives (text messages and pings, in order). */
async function pair(perMessageDeflate = false): Promise<{ server: WebSocket; received: string[]; until(n: number): Promise<void>; client: WebSocket }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate });
  servers.push(wss);
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const serverSide = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, { perMessageDeflate });
  const received: string[] = [];
  let wake = (): void => undefined;
  client.on('message', (data, isBinary) => {
    received.push(`${isBinary ? 'binary' : 'text'}:${Buffer.from(data as Buffer).toString('utf8')}`);
    wake();
  });
  client.on('ping', (data) => {
    received.push(`ping:${Buffer.from(data).toString('utf8')}`);
    wake();
  });
  await new Promise<void>((resolve) => client.once('open', () => resolve()));
  const until = (n: number): Promise<void> =>
    new Promise((resolve) => {
      const check = (): void => {
        if (received.length >= n) resolve();
      };
      wake = check;
      check();
    });
  return { server: await serverSide, received, until, client };
}

const sent = (send: ReturnType<typeof frameWriter>, parts: Buffer[]): Promise<void> => new Promise((resolve, reject) => send(parts, (err) => (err ? reject(err) : resolve())));

/** The direct path was taken: the socket's sender never saw the message. */
function countSends(socket: WebSocket): { n: number } {
  const counter = { n: 0 };
  const original = socket.send.bind(socket);
  (socket as unknown as { send: typeof socket.send }).send = ((...args: Parameters<typeof socket.send>) => {
    counter.n++;
    return original(...args);
  }) as typeof socket.send;
  return counter;
}

test('messages of every length encoding arrive as the text ws.send gives, written directly', async () => {
  const { server, received, until } = await pair();
  const viaWs = countSends(server);
  const send = frameWriter(server as unknown as FastSocket);
  const lengths = [0, 1, 124, 125, 126, 127, 65_535, 65_536, 70_001];
  const expected: string[] = [];
  for (const [i, n] of lengths.entries()) {
    const body = 'é'.repeat(Math.floor(n / 2)) + (n % 2 === 1 ? 'x' : ''); // n UTF-8 bytes, multi-byte characters
    const prefix = Buffer.from(`{"id":"${i}","p":"`);
    const message = `${prefix.toString()}${body}"}`;
    // Lengths measured on the whole message: the split into parts is the caller's.
    await sent(send, [prefix, Buffer.from(body), Buffer.from('"}')]);
    expected.push(`text:${message}`);
  }
  await until(expected.length);
  expect(received).toEqual(expected);
  expect(viaWs.n).toBe(0);
});

test("ws's own frames keep their order around direct writes", async () => {
  const { server, received, until } = await pair();
  const send = frameWriter(server as unknown as FastSocket);
  await sent(send, [Buffer.from('one')]);
  server.ping('p');
  await sent(send, [Buffer.from('two')]);
  server.send('three');
  await sent(send, [Buffer.from('four')]);
  await until(5);
  expect(received).toEqual(['text:one', 'ping:p', 'text:two', 'text:three', 'text:four']);
});

test('a sender that is not idle, or permessage-deflate, takes ws.send', async () => {
  const busy = await pair();
  const viaWs = countSends(busy.server);
  const send = frameWriter(busy.server as unknown as FastSocket);
  const sender = (busy.server as unknown as { _sender: { _state: number } })._sender;
  const state = sender._state;
  // What ws's sender is in while it compresses or reads a blob: frames it holds must go first.
  sender._state = 1;
  const first = sent(send, [Buffer.from('held')]);
  expect(viaWs.n).toBe(1);
  sender._state = state;
  (sender as unknown as { dequeue(): void }).dequeue();
  await first;
  await busy.until(1);
  expect(busy.received).toEqual(['text:held']);

  const deflate = await pair(true);
  const viaWsDeflate = countSends(deflate.server);
  const big = 'z'.repeat(2000);
  await sent(frameWriter(deflate.server as unknown as FastSocket), [Buffer.from(big)]);
  await deflate.until(1);
  expect(deflate.received).toEqual([`text:${big}`]);
  expect(viaWsDeflate.n).toBe(1);
});

/** Counts the frames handed straight to the TCP socket's handle (node:net `_writeGeneric`) by the writer. */
function countHandleWrites(socket: WebSocket): { n: number } {
  const raw = (socket as unknown as { _socket: { _writeGeneric(...args: unknown[]): unknown } })._socket;
  const counter = { n: 0 };
  const original = raw._writeGeneric.bind(raw);
  raw._writeGeneric = (...args: unknown[]) => {
    counter.n++;
    return original(...args);
  };
  return counter;
}

test('an idle TCP socket takes the frame at its handle; one whose Writable holds data takes it after that data', async () => {
  const { server, received, until } = await pair();
  const send = frameWriter(server as unknown as FastSocket);
  const raw = (server as unknown as { _socket: Socket })._socket;
  // Counted from here: ws's own frames below go through the Writable, which calls _writeGeneric too.
  await sent(send, [Buffer.from('one')]);
  const handle = countHandleWrites(server);
  await sent(send, [Buffer.from('two')]);
  expect(handle.n).toBe(1);
  // ws's frame is held by the corked Writable: the writer's frame must queue behind it, not jump it.
  raw.cork();
  server.send('three');
  expect(raw.writableLength).toBeGreaterThan(0);
  const four = sent(send, [Buffer.from('four')]);
  expect(handle.n).toBe(1);
  raw.uncork();
  await four;
  await sent(send, [Buffer.from('five')]);
  await until(5);
  expect(received).toEqual(['text:one', 'text:two', 'text:three', 'text:four', 'text:five']);
});

test("a failed handle write reports its error on a later tick, not from inside the writer's call", async () => {
  const { server } = await pair();
  const raw = (server as unknown as { _socket: { _writeGeneric(w: boolean, d: Buffer, e: string, cb: (err?: Error | null) => void): unknown } })._socket;
  const failure = new Error('EPIPE');
  raw._writeGeneric = (_w, _d, _e, cb) => cb(failure);
  const send = frameWriter(server as unknown as FastSocket);
  const seen: unknown[] = [];
  send([Buffer.from('x')], (err) => seen.push(err));
  expect(seen).toEqual([]);
  await new Promise<void>((resolve) => process.nextTick(resolve));
  expect(seen).toEqual([failure]);
});

/**
 * graphql-ws fast path of the `changes` subscription: batches go to the socket as one JSON text
 * serialised once per batch object and selection shape, not through a GraphQL execution and a
 * `JSON.stringify` per subscriber. Subscribers that share a live page share the batch object
 * (domains/sync/graphql/shared-pages.ts, live-changes.ts), so a live event costs one
 * serialisation for all of them and a socket write each.
 *
 * What stays exactly as before:
 * - Setup (authentication, `syncCaller`, the live session, traffic counting) runs through Yoga's
 *   enveloped `subscribe` as for any subscription: the `changes` field's own `subscribe` resolver
 *   runs, in a copy of the schema whose `changes` field hands its source stream (the resolver's
 *   return value) to this module and gives the executor a stand-in.
 * - The values: the fast path only takes operations whose selection it can reproduce exactly
 *   ({@link changesShape}: the `changes` field with `payload`, `changes`, `final`, `cursor { dbVersion
 *   seq }`, `__typename`, aliases and fragments, no directives, no variables in the selection);
 *   anything else runs the plain GraphQL path.
 * - The end: an error of the source goes through Yoga's own error masking (`mask`: what its
 *   masked-errors plugin does on a subscription error) and graphql-ws, as before. Without `mask`
 *   the executor's stream is kept and the stand-in returns the outcome to it instead.
 * - Backpressure: the next batch is written only after the socket has taken the previous one
 *   (the send callback), as graphql-ws does. A live stream (domains/sync/graphql/live-changes.ts)
 *   is driven in push mode: it hands batches to this socket's sink synchronously, in the loop that
 *   settles a shared page, and skips the socket while its previous frame is in flight.
 */
import { Kind } from 'graphql';
import type { DocumentNode, ExecutionArgs, FragmentDefinitionNode, GraphQLFieldConfig, GraphQLObjectType, GraphQLSchema, SelectionSetNode } from 'graphql';
import { LiveStream } from '../domains/sync/graphql/live-changes.ts';
import type { ChangesBatch } from '../domains/sync/graphql/live-changes.ts';
import { encodeBase64 } from '../domains/sync/graphql/payload.ts';

/** How to write one batch: response keys in order, each a field of the batch or of its cursor. */
type Leaf = { key: string; field: 'payload' | 'changes' | 'final' | '__typename' } | { key: string; field: 'cursor'; sub: Array<{ key: string; field: 'dbVersion' | 'seq' | '__typename' }> };
export interface ChangesShape {
  /** Response key of the root field. */
  root: string;
  fields: Leaf[];
  /** Identity of the shape (cache key of serialised batches). */
  id: string;
}

const BATCH_FIELDS = new Set(['payload', 'changes', 'final', '__typename', 'cursor']);
const CURSOR_FIELDS = new Set(['dbVersion', 'seq', '__typename']);

interface Collected {
  name: string;
  sets: SelectionSetNode[];
}

/** graphql-js field collection for one selection set (fragments expanded); null when not plain. */
function collect(sets: SelectionSetNode[], fragments: Map<string, FragmentDefinitionNode>, types: Set<string>, depth = 0): Map<string, Collected> | null {
  const out = new Map<string, Collected>();
  const visit = (set: SelectionSetNode, d: number): boolean => {
    if (d > 8) return false;
    for (const s of set.selections) {
      if ((s.directives?.length ?? 0) > 0) return false;
      if (s.kind === Kind.FIELD) {
        if ((s.arguments?.length ?? 0) > 0 && depth > 0) return false;
        const key = s.alias?.value ?? s.name.value;
        const prev = out.get(key);
        if (prev !== undefined && prev.name !== s.name.value) return false;
        const c = prev ?? { name: s.name.value, sets: [] };
        if (s.selectionSet !== undefined) c.sets.push(s.selectionSet);
        out.set(key, c);
      } else {
        const frag = s.kind === Kind.FRAGMENT_SPREAD ? fragments.get(s.name.value) : s;
        if (frag === undefined) return false;
        if ((frag.directives?.length ?? 0) > 0) return false;
        if (frag.typeCondition !== undefined && !types.has(frag.typeCondition.name.value)) return false;
        if (!visit(frag.selectionSet, d + 1)) return false;
      }
    }
    return true;
  };
  for (const set of sets) if (!visit(set, 0)) return null;
  return out;
}

const shapes = new WeakMap<DocumentNode, Map<string, ChangesShape | null>>();

/** The fast-path shape of a subscription document, or null (plain GraphQL path). */
export function changesShape(document: DocumentNode, operationName: string | null | undefined): ChangesShape | null {
  let byOp = shapes.get(document);
  if (byOp === undefined) {
    byOp = new Map();
    shapes.set(document, byOp);
  }
  const opKey = operationName ?? '';
  if (byOp.has(opKey)) return byOp.get(opKey) ?? null;
  const shape = compute(document, operationName);
  byOp.set(opKey, shape);
  return shape;
}

function compute(document: DocumentNode, operationName: string | null | undefined): ChangesShape | null {
  const fragments = new Map<string, FragmentDefinitionNode>();
  const ops = [];
  for (const d of document.definitions) {
    if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
    else if (d.kind === Kind.OPERATION_DEFINITION) ops.push(d);
  }
  const op = operationName ? ops.find((o) => o.name?.value === operationName) : ops.length === 1 ? ops[0] : undefined;
  if (op === undefined || op.operation !== 'subscription' || (op.directives?.length ?? 0) > 0) return null;
  const root = collect([op.selectionSet], fragments, new Set(['Subscription']));
  if (root === null || root.size !== 1) return null;
  const [[rootKey, rootField]] = [...root] as [[string, Collected]];
  if (rootField.name !== 'changes') return null;
  const batch = collect(rootField.sets, fragments, new Set(['SyncChanges']), 1);
  if (batch === null || batch.size === 0) return null;
  const fields: Leaf[] = [];
  for (const [key, c] of batch) {
    if (!BATCH_FIELDS.has(c.name)) return null;
    if (c.name === 'cursor') {
      const sub = collect(c.sets, fragments, new Set(['SyncCursor']), 2);
      if (sub === null || sub.size === 0) return null;
      const leaves: Array<{ key: string; field: 'dbVersion' | 'seq' | '__typename' }> = [];
      for (const [k, s] of sub) {
        if (!CURSOR_FIELDS.has(s.name) || s.sets.length > 0) return null;
        leaves.push({ key: k, field: s.name as 'dbVersion' | 'seq' | '__typename' });
      }
      fields.push({ key, field: 'cursor', sub: leaves });
    } else {
      if (c.sets.length > 0) return null;
      fields.push({ key, field: c.name as 'payload' | 'changes' | 'final' | '__typename' });
    }
  }
  return { root: rootKey, fields, id: JSON.stringify([rootKey, fields]) };
}

/** `{"data":{…}}` of one batch for one shape (what executing the selection and JSON.stringify give). */
export function serialise(batch: ChangesBatch, shape: ChangesShape): string {
  const parts: string[] = [];
  for (const f of shape.fields) {
    const k = JSON.stringify(f.key);
    switch (f.field) {
      case 'payload':
        parts.push(`${k}:${JSON.stringify(encodeBase64(batch.payload))}`);
        break;
      case 'changes':
        parts.push(`${k}:${JSON.stringify(batch.changes)}`);
        break;
      case 'final':
        parts.push(`${k}:${batch.final ? 'true' : 'false'}`);
        break;
      case '__typename':
        parts.push(`${k}:"SyncChanges"`);
        break;
      case 'cursor': {
        const sub = f.sub.map((s) => `${JSON.stringify(s.key)}:${s.field === '__typename' ? '"SyncCursor"' : JSON.stringify(batch.cursor[s.field])}`);
        parts.push(`${k}:{${sub.join(',')}}`);
        break;
      }
    }
  }
  return `{"data":{${JSON.stringify(shape.root)}:{${parts.join(',')}}}}`;
}

const serialised = new WeakMap<ChangesBatch, Map<string, string>>();

const encoded = new WeakMap<ChangesBatch, Map<string, Buffer>>();

/**
 * The last {@link nextTailOnce} answer: the subscribers of a shared page ask for the same batch
 * and shape one after the other, so most asks of a fan-out are two identity checks instead of two
 * map lookups.
 */
let lastTail: { batch: ChangesBatch; shape: string; bytes: Buffer } | undefined;

/**
 * What follows a subscriber's `{"id":…,"type":"next","payload":` in its `next` message: the UTF-8
 * of {@link serialise} and the message's closing `}`, encoded once per batch object and shape
 * (the bytes every subscriber's frame copies).
 */
export function nextTailOnce(batch: ChangesBatch, shape: ChangesShape): Buffer {
  if (lastTail !== undefined && lastTail.batch === batch && lastTail.shape === shape.id) return lastTail.bytes;
  let byShape = encoded.get(batch);
  if (byShape === undefined) {
    byShape = new Map();
    encoded.set(batch, byShape);
  }
  let bytes = byShape.get(shape.id);
  if (bytes === undefined) {
    bytes = Buffer.from(`${serialisedOnce(batch, shape)}}`);
    byShape.set(shape.id, bytes);
  }
  lastTail = { batch, shape: shape.id, bytes };
  return bytes;
}

/** {@link serialise}, once per batch object and shape. */
export function serialisedOnce(batch: ChangesBatch, shape: ChangesShape): string {
  let byShape = serialised.get(batch);
  if (byShape === undefined) {
    byShape = new Map();
    serialised.set(batch, byShape);
  }
  let text = byShape.get(shape.id);
  if (text === undefined) {
    text = serialise(batch, shape);
    byShape.set(shape.id, text);
  }
  return text;
}

/** Where the `changes` resolver's source goes for one subscription (keyed by its context value). */
interface Slot {
  source?: AsyncIterator<ChangesBatch>;
  /** The outcome the stand-in gives the executor once the fast path has finished. */
  terminal?: Promise<IteratorResult<ChangesBatch>>;
  release?: () => void;
}

const slots = new WeakMap<object, Slot>();

const isAsyncIterable = (v: unknown): v is AsyncIterable<ChangesBatch> =>
  typeof v === 'object' && v !== null && typeof (v as Record<symbol, unknown>)[Symbol.asyncIterator] === 'function';

/** Stand-in source for the executor: it only ever sees the end (or the error) of the stream. */
function standIn(slot: Slot, source: AsyncIterator<ChangesBatch>): AsyncIterableIterator<ChangesBatch> {
  const self: AsyncIterableIterator<ChangesBatch> = {
    next: () =>
      new Promise<IteratorResult<ChangesBatch>>((resolve, reject) => {
        if (slot.terminal !== undefined) return void slot.terminal.then(resolve, reject);
        slot.release = () => void slot.terminal?.then(resolve, reject);
      }),
    async return() {
      await source.return?.();
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]: () => self,
  };
  return self;
}

const fastSchemas = new WeakMap<GraphQLSchema, GraphQLSchema | null>();

/** The schema with the `changes` subscribe resolver tapped (null when there is no such field). */
export function fastSchemaOf(schema: GraphQLSchema): GraphQLSchema | null {
  if (fastSchemas.has(schema)) return fastSchemas.get(schema) ?? null;
  let fast: GraphQLSchema | null = null;
  const sub = schema.getSubscriptionType();
  const field = sub?.getFields()['changes'];
  const original = field?.subscribe;
  if (sub !== null && sub !== undefined && original !== undefined) {
    const config = sub.toConfig();
    const changes = config.fields['changes'] as GraphQLFieldConfig<unknown, unknown>;
    // The schema's own classes: graphql may be loaded twice (ESM and CJS), and types of one copy are refused by the other.
    const ObjectType = sub.constructor as typeof GraphQLObjectType;
    const Schema = schema.constructor as typeof GraphQLSchema;
    const tapped = new ObjectType({
      ...config,
      fields: {
        ...config.fields,
        changes: {
          ...changes,
          subscribe: async (root, args, ctx, info) => {
            const r: unknown = await original(root, args, ctx, info);
            const slot = typeof ctx === 'object' && ctx !== null ? slots.get(ctx) : undefined;
            if (slot === undefined || !isAsyncIterable(r)) return r;
            const source = r[Symbol.asyncIterator]();
            slot.source = source;
            return standIn(slot, source);
          },
        },
      },
    });
    const cfg = schema.toConfig();
    fast = new Schema({ ...cfg, subscription: tapped, types: cfg.types.map((t) => (t === sub ? tapped : t)) });
  }
  fastSchemas.set(schema, fast);
  return fast;
}

export interface FastSocket {
  readonly readyState: number;
  readonly OPEN: number;
  send(data: string, cb: (err?: Error) => void): void;
  /** `binary: false`: a text frame from UTF-8 bytes (ws). */
  send(data: Buffer, options: { binary: false }, cb: (err?: Error | null) => void): void;
}

const TEXT = { binary: false } as const;

/** Room left in front of a frame's message for its WebSocket header (at most 10 bytes, RFC 6455 §5.2). */
const HEADER_ROOM = 10;

/**
 * The ws 8 internals {@link frameWriter} relies on (lib/websocket.js, lib/sender.js): the socket
 * the WebSocket writes to, its sender's state (0 = idle: it writes each frame to that socket at
 * once, in call order) and queue (frames held while compressing), and the negotiated extensions.
 */
interface WsInternals {
  _socket?: RawSocket;
  _sender?: { _state?: unknown; _queue?: unknown };
  _extensions?: unknown;
  _isServer?: unknown;
}

/**
 * The TCP socket under a ws WebSocket. `_writeGeneric` is node:net's `Socket` method that hands a
 * chunk to the socket's handle (libuv queues the writes of a handle in call order); `Writable`'s
 * `write` calls it once it has nothing of its own buffered (Node 20, lib/net.js). Looked up, not
 * assumed: a socket without it takes `write`.
 */
interface RawSocket {
  write(chunk: Buffer, cb: (err?: Error | null) => void): boolean;
  _writeGeneric?: (writev: false, data: Buffer, encoding: 'buffer', cb: (err?: Error | null) => void) => unknown;
  _handle?: unknown;
  readonly writable?: boolean;
  readonly writableLength?: number;
  readonly writableCorked?: number;
  readonly connecting?: boolean;
  readonly encrypted?: boolean;
}

/**
 * Sends one text message whose UTF-8 bytes are `parts` joined, and calls `cb` when the socket
 * took it (or failed; a failure is reported on a later tick, never from inside the call). On a
 * server-side ws WebSocket with no extension (no permessage-deflate) the frame — header and
 * message in one buffer — goes to the TCP socket in one write, instead of ws's header and message
 * as two buffers of a corked write (a `writev`) through its sender: the same bytes on the wire,
 * measured ~1.5 µs less CPU per message (of ~9: the rest is the write itself), i.e. per
 * subscriber of a fan-out. Whenever the sender is not idle (a frame of its own held back) the
 * message goes through `socket.send`, after it, so frames keep their order; any other socket
 * always does.
 *
 * On a plain (not TLS) TCP socket whose `Writable` holds nothing (no write of its own in flight
 * or buffered, not corked, still writable) the frame skips the `Writable` too and goes straight
 * to the socket's handle (node:net `_writeGeneric`, what `Writable.write` would call next): the
 * handle writes in call order, so the frame still comes after everything written before it and
 * before everything written after it; `cb` then runs as soon as the handle took the frame (at
 * once when the kernel took it whole) instead of on the next tick — about 1 µs less CPU per
 * message (server CPU for 1,000 such writes 7.1 → 6.1 ms, medians of 130 alternating rounds).
 * Otherwise, and on any other socket, `write`.
 */
export function frameWriter(socket: FastSocket): (parts: readonly Buffer[], cb: (err?: Error | null) => void) => void {
  const ws = socket as unknown as WsInternals;
  const raw = ws._socket;
  const sender = ws._sender;
  const direct =
    ws._isServer === true &&
    raw !== undefined &&
    typeof raw.write === 'function' &&
    sender !== undefined &&
    Array.isArray(sender._queue) &&
    typeof sender._state === 'number' &&
    typeof ws._extensions === 'object' &&
    ws._extensions !== null &&
    Object.keys(ws._extensions).length === 0;
  const handleWrite = direct && typeof raw._writeGeneric === 'function' && raw.encrypted !== true && typeof raw.writableLength === 'number' && typeof raw.writableCorked === 'number';
  /** `cb` of the last call, and it with failures moved to a later tick (the callback is the same one, call after call, for a subscriber). */
  let lastCb: ((err?: Error | null) => void) | undefined;
  let lastWrapped: (err?: Error | null) => void = () => undefined;
  return (parts, cb) => {
    let length = 0;
    for (const p of parts) length += p.length;
    const buf = Buffer.allocUnsafe(HEADER_ROOM + length);
    let at = HEADER_ROOM;
    for (const p of parts) {
      buf.set(p, at);
      at += p.length;
    }
    if (!direct || sender._state !== 0 || (sender._queue as unknown[]).length > 0) return socket.send(buf.subarray(HEADER_ROOM), TEXT, cb);
    // Unmasked server frame: FIN + text opcode, then the payload length (7 bits, 16 or 64 bits).
    let start: number;
    if (length < 126) {
      start = HEADER_ROOM - 2;
      buf[start + 1] = length;
    } else if (length < 65536) {
      start = HEADER_ROOM - 4;
      buf[start + 1] = 126;
      buf.writeUInt16BE(length, start + 2);
    } else {
      start = 0;
      buf[1] = 127;
      buf.writeUInt16BE(0, 2);
      buf.writeUIntBE(length, 4, 6);
    }
    buf[start] = 0x81;
    const frame = start === 0 ? buf : buf.subarray(start);
    if (handleWrite && raw.writable === true && raw.writableLength === 0 && raw.writableCorked === 0 && raw.connecting !== true && raw._handle !== null && raw._handle !== undefined) {
      if (cb !== lastCb) {
        const target = cb;
        lastCb = cb;
        lastWrapped = (err) => (err === undefined || err === null ? target() : process.nextTick(target, err));
      }
      (raw._writeGeneric as NonNullable<RawSocket['_writeGeneric']>).call(raw, false, frame, 'buffer', lastWrapped);
      return;
    }
    raw.write(frame, cb);
  };
}

/**
 * Runs `subscribe` (Yoga's enveloped subscribe) on the tapped schema; when the `changes` resolver
 * produced a stream, returns the iterable graphql-ws consumes: it writes each batch to `socket`
 * itself (serialised once per batch) and yields only what the executor makes of the stream's end.
 * Otherwise (setup error, not a stream) returns the executor's result unchanged.
 */
export async function fastSubscribe(
  args: ExecutionArgs,
  subscribe: (args: ExecutionArgs) => unknown,
  fastSchema: GraphQLSchema,
  shape: ChangesShape,
  socket: FastSocket,
  id: string,
  mask: ((error: unknown) => unknown) | null,
): Promise<unknown> {
  const ctx = args.contextValue;
  if (typeof ctx !== 'object' || ctx === null) return subscribe(args);
  const slot: Slot = {};
  slots.set(ctx, slot);
  const result = await subscribe({ ...args, schema: fastSchema });
  slots.delete(ctx);
  const source = slot.source;
  if (source === undefined || !isAsyncIterable(result)) return result;
  // With Yoga's masking at hand the executor's stream is dropped now (an idle subscriber then
  // keeps none of the execution and plugin closures: about 5 KiB); else it gives the end.
  let kept: AsyncIterator<unknown> | undefined = (result as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  if (mask !== null) kept = undefined;
  const prefix = `{"id":${JSON.stringify(id)},"type":"next","payload":`;
  const prefixBytes = Buffer.from(prefix);
  const write = (text: string): Promise<void> =>
    new Promise((resolve, reject) => {
      if (socket.readyState !== socket.OPEN) return resolve();
      socket.send(prefix + text + '}', (err) => (err ? reject(err) : resolve()));
    });
  let finished = false;
  const finish = (outcome: Promise<IteratorResult<ChangesBatch>>): Promise<IteratorResult<unknown>> => {
    finished = true;
    if (kept === undefined) return outcome.catch((e: unknown) => Promise.reject(mask?.(e) ?? e)).then(() => ({ done: true, value: undefined }));
    outcome.catch(() => undefined);
    slot.terminal = outcome;
    slot.release?.();
    return kept.next();
  };
  /**
   * Push mode: the stream hands each batch to the sink synchronously (in the loop that settles a
   * shared page); the frame is the subscriber's prefix and the batch's bytes with the closing `}`
   * ({@link nextTailOnce}: encoded once).
   * One frame in flight per socket: until its send callback, `ready()` is false, the stream skips
   * this subscriber and keeps its cursor, and the callback resumes it (backpressure without a
   * buffer that grows, and without holding up the other subscribers). The returned promise is the
   * stream's end, which graphql-ws awaits as its one pending `next()`.
   */
  const pushed = (stream: LiveStream): Promise<IteratorResult<unknown>> =>
    new Promise((resolve, reject) => {
      let busy = false;
      let resume = (): void => undefined;
      /** A failed send ends the stream with that error (as the pull loop's write did). */
      let failure: Error | undefined;
      const sent = (err?: Error | null): void => {
        busy = false;
        if (err !== undefined && err !== null) {
          failure ??= err;
          void stream.return();
          return;
        }
        resume();
      };
      const send = frameWriter(socket);
      resume = stream.attach({
        ready: () => !busy,
        write(batch) {
          if (socket.readyState !== socket.OPEN) return;
          busy = true;
          send([prefixBytes, nextTailOnce(batch, shape)], sent);
        },
        end(error) {
          if (failure !== undefined) {
            finished = true;
            return reject(failure);
          }
          finish(error === undefined ? Promise.resolve({ done: true, value: undefined }) : Promise.reject(error)).then(resolve, reject);
        },
      });
    });
  const self: AsyncIterableIterator<unknown> & { return(): Promise<IteratorResult<unknown>> } = {
    async next() {
      if (finished) return kept === undefined ? { done: true, value: undefined } : kept.next();
      if (source instanceof LiveStream) return pushed(source);
      for (;;) {
        let r: IteratorResult<ChangesBatch>;
        try {
          r = await source.next();
        } catch (e) {
          return finish(Promise.reject(e));
        }
        if (r.done === true) return finish(Promise.resolve(r));
        await write(serialisedOnce(r.value, shape));
      }
    },
    async return() {
      finished = true;
      await (kept === undefined ? source.return?.() : kept.return?.());
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]: () => self,
  };
  return self;
}

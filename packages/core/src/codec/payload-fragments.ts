/**
 * Fragmented values (payload format version 3; docs/PROTOCOL.md "Fragmented values").
 *
 * A 1.1.x client whose `payload_max_chunk_size` is smaller than one TEXT or BLOB value sends that
 * value as a run of fragment rows. A fragment row is an ordinary 9-value row whose `col_name` is
 *
 *   `__cloudsync_frag_v1__:<stream id, 32 hex>:<FNV-1a-64 of the whole, 16 hex>:<index>:<count>:<total bytes>:<column>`
 *
 * and whose value is a BLOB holding bytes `[off, off + len)` of the **encoded** original value
 * (its type byte, length and data, as one payload value). Every other field (tbl, pk,
 * col_version, db_version, site_id, cl, seq) is the original change's. The parts of one value
 * may arrive in any order and across several payloads (chunks of one batch).
 *
 * {@link FragmentAssembler} collects parts under budgets and turns a complete stream back into
 * the original change; a stream is applied whole or not at all: a batch that ends with a stream
 * still open is refused ({@link FragmentAssembler.finish}).
 */
import { CoreError, CoreErrorCode } from '../errors.ts';
import type { Change } from '../types.ts';
import { ByteReader, ByteWriter, sameBytes } from './bytes.ts';
import { fnv1a64 } from './fnv.ts';
import { decodeValue, encodeValue } from './value.ts';

export const FRAGMENT_COL_PREFIX = '__cloudsync_frag_v1__:';

/** The fields of a fragment row's `col_name`. */
export interface FragmentName {
  /** 32 lowercase hex digits; random per value and send. */
  streamId: string;
  /** FNV-1a-64 of the whole encoded value. */
  hash: bigint;
  index: number;
  count: number;
  /** Length of the whole encoded value in bytes. */
  total: number;
  /** The column the value belongs to. */
  col: string;
}

export interface FragmentLimits {
  /** Largest encoded value one stream may announce (bytes). */
  maxValueSize: number;
  /** Most bytes announced by the streams open at one time. */
  maxOpenBytes: number;
  /** Most streams open at one time. */
  maxOpenStreams: number;
}

function bad(message: string, details: Record<string, unknown> = {}): CoreError {
  return new CoreError(CoreErrorCode.PAYLOAD_BAD_FRAGMENT, message, { details });
}

const HEX32 = /^[0-9a-f]{32}$/i;
const HEX16 = /^[0-9a-f]{16}$/i;
const DEC = /^(0|[1-9][0-9]{0,14})$/;

/** True when `col` names a fragment row (the prefix alone; {@link parseFragmentName} checks the rest). */
export function isFragmentName(col: string): boolean {
  return col.startsWith(FRAGMENT_COL_PREFIX);
}

/** Parses a fragment row's `col_name`; throws PAYLOAD_BAD_FRAGMENT when malformed. */
export function parseFragmentName(col: string): FragmentName {
  if (!isFragmentName(col)) throw bad('not a fragment column name');
  const fields: string[] = [];
  let at = FRAGMENT_COL_PREFIX.length;
  for (let i = 0; i < 5; i++) {
    const next = col.indexOf(':', at);
    if (next < 0) throw bad('fragment name has too few fields', { col: col.slice(0, 200) });
    fields.push(col.slice(at, next));
    at = next + 1;
  }
  const [streamId, hash, index, count, total] = fields as [string, string, string, string, string];
  const column = col.slice(at);
  if (!HEX32.test(streamId) || !HEX16.test(hash) || !DEC.test(index) || !DEC.test(count) || !DEC.test(total) || column === '') {
    throw bad('malformed fragment name', { col: col.slice(0, 200) });
  }
  const n = { streamId: streamId.toLowerCase(), hash: BigInt(`0x${hash}`), index: Number(index), count: Number(count), total: Number(total), col: column };
  if (n.count < 1 || n.index >= n.count || n.total < 1 || n.count > n.total) {
    throw bad('fragment index, count or total out of range', { index: n.index, count: n.count, total: n.total });
  }
  return n;
}

interface Stream {
  name: FragmentName;
  first: Change;
  parts: (Uint8Array | undefined)[];
  received: number;
  bytes: number;
}

/**
 * Reassembles fragment streams. `add()` takes every decoded change in order: an ordinary change
 * comes back as is, a part is kept (null) until its stream is complete, when the original change
 * comes back (at the position of the stream's last part). Checks: the name parses, the value is a
 * BLOB, every part of a stream carries the same row fields, count and total, no index twice, the
 * parts' lengths sum to the total, the hash matches, and the whole decodes as exactly one value.
 * Budgets are claimed when a stream opens (its announced total), before any part is kept.
 */
export class FragmentAssembler {
  readonly #limits: FragmentLimits;
  readonly #open = new Map<string, Stream>();
  readonly #done = new Set<string>();
  #openBytes = 0;

  constructor(limits: FragmentLimits) {
    this.#limits = limits;
  }

  /** Streams still waiting for parts. */
  get openStreams(): number {
    return this.#open.size;
  }

  add(change: Change): Change | null {
    if (!isFragmentName(change.col)) return change;
    const name = parseFragmentName(change.col);
    const part = change.val;
    if (!(part instanceof Uint8Array)) throw bad('fragment value must be a BLOB', { streamId: name.streamId, index: name.index });
    if (this.#done.has(name.streamId)) throw bad('fragment of a stream already complete', { streamId: name.streamId });
    let s = this.#open.get(name.streamId);
    if (s === undefined) {
      const lim = this.#limits;
      if (name.total > lim.maxValueSize) {
        throw new CoreError(CoreErrorCode.PAYLOAD_TOO_LARGE, `fragmented value of ${name.total} bytes exceeds the per-value limit ${lim.maxValueSize}`, {
          details: { what: 'fragmented value size', size: name.total, limit: lim.maxValueSize },
        });
      }
      if (this.#open.size >= lim.maxOpenStreams) {
        throw new CoreError(CoreErrorCode.PAYLOAD_TOO_LARGE, `more than ${lim.maxOpenStreams} fragmented values open at once`, {
          details: { what: 'open fragment streams', size: this.#open.size + 1, limit: lim.maxOpenStreams },
        });
      }
      if (this.#openBytes + name.total > lim.maxOpenBytes) {
        throw new CoreError(CoreErrorCode.PAYLOAD_TOO_LARGE, `fragmented values open at once announce ${this.#openBytes + name.total} bytes, over the limit ${lim.maxOpenBytes}`, {
          details: { what: 'open fragment bytes', size: this.#openBytes + name.total, limit: lim.maxOpenBytes },
        });
      }
      s = { name, first: change, parts: new Array<Uint8Array | undefined>(name.count), received: 0, bytes: 0 };
      this.#open.set(name.streamId, s);
      this.#openBytes += name.total;
    } else {
      const a = s.name;
      const f = s.first;
      if (
        a.hash !== name.hash || a.count !== name.count || a.total !== name.total || a.col !== name.col ||
        f.tbl !== change.tbl || !sameBytes(f.pk, change.pk) || !sameBytes(f.siteId, change.siteId) ||
        f.colVersion !== change.colVersion || f.dbVersion !== change.dbVersion || f.cl !== change.cl || f.seq !== change.seq
      ) {
        throw bad('fragments of one stream disagree', { streamId: name.streamId, index: name.index });
      }
    }
    if (s.parts[name.index] !== undefined) throw bad('fragment index repeated', { streamId: name.streamId, index: name.index });
    if (s.bytes + part.length > name.total) throw bad('fragments exceed the announced total', { streamId: name.streamId, total: name.total });
    s.parts[name.index] = part;
    s.received++;
    s.bytes += part.length;
    if (s.received < name.count) return null;
    return this.#complete(s);
  }

  #complete(s: Stream): Change {
    const { name, first } = s;
    this.#open.delete(name.streamId);
    this.#openBytes -= name.total;
    this.#done.add(name.streamId);
    if (s.bytes !== name.total) throw bad('fragments are shorter than the announced total', { streamId: name.streamId, total: name.total, received: s.bytes });
    const whole = new Uint8Array(name.total);
    let off = 0;
    for (const p of s.parts as Uint8Array[]) {
      whole.set(p, off);
      off += p.length;
    }
    if (fnv1a64(whole) !== name.hash) throw bad('fragmented value fails its hash', { streamId: name.streamId });
    const r = new ByteReader(whole);
    let val;
    try {
      val = decodeValue(r, false, this.#limits.maxValueSize);
    } catch (e) {
      throw bad(`fragmented value does not decode: ${e instanceof Error ? e.message : String(e)}`, { streamId: name.streamId });
    }
    if (r.remaining !== 0) throw bad('bytes after the fragmented value', { streamId: name.streamId, trailing: r.remaining });
    return { tbl: first.tbl, pk: first.pk, col: name.col, val, colVersion: first.colVersion, dbVersion: first.dbVersion, siteId: first.siteId, cl: first.cl, seq: first.seq };
  }

  /** Refuses (PAYLOAD_BAD_FRAGMENT) when a stream is still open: a value is applied whole or not at all. */
  finish(): void {
    if (this.#open.size === 0) return;
    const [s] = this.#open.values();
    throw bad(`${this.#open.size} fragmented value(s) incomplete at the end of the batch`, {
      streamId: s?.name.streamId, received: s?.received, count: s?.name.count,
    });
  }
}

/** A random 32-hex-digit stream id. */
export function randomStreamId(): string {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

/**
 * Cuts `change`'s value into fragment rows of at most `partSize` bytes of the encoded value
 * (the layout 1.1.x sends; any value type can be cut, 1.1.x cuts only TEXT and BLOB).
 */
export function fragmentChange(change: Change, partSize: number, streamId: string = randomStreamId()): Change[] {
  if (!Number.isSafeInteger(partSize) || partSize < 1) throw new CoreError(CoreErrorCode.PAYLOAD_BAD_VALUE, `fragment size must be a positive integer, got ${partSize}`);
  if (!HEX32.test(streamId)) throw new CoreError(CoreErrorCode.PAYLOAD_BAD_VALUE, 'stream id must be 32 hex digits');
  const w = new ByteWriter(64);
  encodeValue(w, change.val);
  const whole = w.toBytes();
  const hash = fnv1a64(whole).toString(16).padStart(16, '0');
  const count = Math.ceil(whole.length / partSize);
  const out: Change[] = [];
  for (let i = 0; i < count; i++) {
    const col = `${FRAGMENT_COL_PREFIX}${streamId.toLowerCase()}:${hash}:${i}:${count}:${whole.length}:${change.col}`;
    out.push({ ...change, col, val: whole.subarray(i * partSize, Math.min(whole.length, (i + 1) * partSize)) });
  }
  return out;
}

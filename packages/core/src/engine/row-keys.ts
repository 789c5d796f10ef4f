/**
 * Key-blob hashing for the merges (apply.ts): which rows of a batch share a key, without a string
 * per key. A batch's keys come from a peer, so the hash is seeded per process (a peer cannot craft
 * keys that collide here without knowing the seed), and {@link RowsByKey} falls back to exact
 * string keys if probing ever gets long anyway: a hostile batch costs at most one rebuild, never
 * quadratic time.
 */
import { sameBytes } from '../codec/bytes.ts';

/** Hashes are cut to 30 bits: small integers, which V8 keeps in a Set without allocating. */
const SMI_BITS = 0x3fffffff;

/** The per-process seed (FNV-1a offset basis): where every hash here starts. */
export const HASH_SEED = (globalThis.crypto.getRandomValues(new Uint32Array(1))[0] as number) | 1;

/** Seeded FNV-1a of the bytes of `b`, continuing from hash `h` (32 bits; by default from the seed). */
export function bytesHash(b: Uint8Array, h = HASH_SEED): number {
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ (b[i] as number), 0x01000193);
  return h;
}

/** Seeded FNV-1a of the UTF-16 code units of `s`, continuing from hash `h` (32 bits; by default from the seed). */
export function textHash(s: string, h = HASH_SEED): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h;
}

/** Cuts a {@link bytesHash} or {@link textHash} to 30 bits. */
export function smallHash(h: number): number {
  return h & SMI_BITS;
}

/** The 30-bit hash of a key blob. */
export function blobHash(b: Uint8Array): number {
  return smallHash(bytesHash(b));
}

/** Probes after which {@link RowsByKey} stops trusting the hash (expected: 1–2 at its load factor). */
const MAX_PROBES = 48;

/** A map key for a key blob (one char per byte), native for Node Buffers. */
function blobKey(b: Uint8Array): string {
  return (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)).toString('latin1');
}

/**
 * The rows of one table in a grouped merge, by key blob (compared bytewise, as SQLite compares
 * BLOBs): an open-addressing table of row indices by {@link blobHash}, kept at most half full.
 * Before it, a `Map` keyed by a latin1 string per key: 100k strings to build, hash and keep for a
 * batch of 100k new keys, and a map rehashed at every doubling.
 */
export class RowsByKey<R extends { readonly pk: Uint8Array }> {
  /** Every row, in order of addition. */
  readonly list: R[] = [];
  /** Row index + 1 per slot (0: empty), and each slot's hash. */
  #slots = new Int32Array(1024);
  #hashes = new Int32Array(1024);
  /** Exact keys, once probing got long (see the module comment). */
  #exact: Map<string, R> | undefined;
  #lastPk: Uint8Array | undefined;
  #lastHash = 0;

  constructor(readonly hash: (b: Uint8Array) => number = blobHash) {}

  #hashOf(pk: Uint8Array): number {
    if (pk !== this.#lastPk) {
      this.#lastPk = pk;
      this.#lastHash = this.hash(pk);
    }
    return this.#lastHash;
  }

  /** The row of key `pk`, or undefined. */
  find(pk: Uint8Array): R | undefined {
    if (this.#exact !== undefined) return this.#exact.get(blobKey(pk));
    const h = this.#hashOf(pk);
    const slots = this.#slots;
    const mask = slots.length - 1;
    for (let i = h & mask, probes = 0; slots[i] !== 0; i = (i + 1) & mask) {
      if (this.#hashes[i] === h) {
        const r = this.list[(slots[i] as number) - 1] as R;
        if (sameBytes(r.pk, pk)) return r;
      }
      if (++probes > MAX_PROBES) {
        this.#toExact();
        return this.find(pk);
      }
    }
    return undefined;
  }

  /** Adds `r`, whose key is not held yet. */
  add(r: R): void {
    this.list.push(r);
    if (this.#exact !== undefined) {
      this.#exact.set(blobKey(r.pk), r);
      return;
    }
    // (A fall-back to exact keys, in #grow or here, takes `r` from the list.)
    if (2 * this.list.length > this.#slots.length) this.#grow();
    if (this.#exact === undefined && !this.#place(this.#hashOf(r.pk), this.list.length)) this.#toExact();
  }

  /** Puts row `index` (1-based) of hash `h` into the first free slot; false when probing got long. */
  #place(h: number, index: number): boolean {
    const slots = this.#slots;
    const mask = slots.length - 1;
    let i = h & mask;
    for (let probes = 0; slots[i] !== 0; i = (i + 1) & mask) if (++probes > MAX_PROBES) return false;
    slots[i] = index;
    this.#hashes[i] = h;
    return true;
  }

  #grow(): void {
    const oldSlots = this.#slots;
    const oldHashes = this.#hashes;
    this.#slots = new Int32Array(oldSlots.length * 2);
    this.#hashes = new Int32Array(oldSlots.length * 2);
    for (let i = 0; i < oldSlots.length; i++) {
      const index = oldSlots[i] as number;
      if (index !== 0 && !this.#place(oldHashes[i] as number, index)) return this.#toExact();
    }
  }

  #toExact(): void {
    if (this.#exact !== undefined) return;
    this.#exact = new Map();
    for (const r of this.list) this.#exact.set(blobKey(r.pk), r);
    this.#slots = new Int32Array(0);
    this.#hashes = new Int32Array(0);
  }

  /** Whether the table fell back to exact string keys (tests). */
  get exact(): boolean {
    return this.#exact !== undefined;
  }
}

/**
 * A Bloom filter of byte strings (compacted keys, docs/PROTOCOL.md "Compaction and the resync
 * horizon"): `mayContain` never answers false for an added key; it answers true for a key never
 * added with a probability of about 0.8% at 10 bits per key and k = 7. Pure TypeScript (core
 * stays free of node:crypto): two 32-bit hashes of the bytes (FNV-1a, and a murmur3-style mix
 * with another seed) combined by double hashing, bit i = (h1 + i·h2) mod m.
 */

/** Bits per key a filter is sized for. */
export const BLOOM_BITS_PER_KEY = 10;
/** Hash functions per key. */
export const BLOOM_HASHES = 7;

function fnv1a(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i] as number;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function murmurMix(bytes: Uint8Array): number {
  let h = 0x9747b28c ^ bytes.length;
  for (let i = 0; i < bytes.length; i++) {
    let k = Math.imul(bytes[i] as number, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class BloomFilter {
  /** Number of bits (bits.length · 8). */
  readonly m: number;

  private constructor(
    readonly bits: Uint8Array,
    readonly k: number,
  ) {
    this.m = bits.length * 8;
  }

  /** An empty filter sized for `n` keys (at least 64 bits). */
  static forKeys(n: number, bitsPerKey = BLOOM_BITS_PER_KEY, k = BLOOM_HASHES): BloomFilter {
    const bytes = Math.max(8, Math.ceil((Math.max(0, n) * bitsPerKey) / 8));
    return new BloomFilter(new Uint8Array(bytes), k);
  }

  /** A filter read back from its stored bits and hash count. */
  static from(bits: Uint8Array, k: number): BloomFilter {
    if (bits.length === 0 || !Number.isSafeInteger(k) || k < 1) throw new RangeError(`invalid Bloom filter (${bits.length} bytes, k = ${k})`);
    return new BloomFilter(bits, k);
  }

  add(key: Uint8Array): void {
    const h1 = fnv1a(key);
    const h2 = (murmurMix(key) | 1) >>> 0;
    for (let i = 0; i < this.k; i++) {
      const bit = (h1 + i * h2) % this.m;
      this.bits[bit >>> 3] = (this.bits[bit >>> 3] as number) | (1 << (bit & 7));
    }
  }

  /** False only when `key` was never added. */
  mayContain(key: Uint8Array): boolean {
    const h1 = fnv1a(key);
    const h2 = (murmurMix(key) | 1) >>> 0;
    for (let i = 0; i < this.k; i++) {
      const bit = (h1 + i * h2) % this.m;
      if ((((this.bits[bit >>> 3] as number) >>> (bit & 7)) & 1) === 0) return false;
    }
    return true;
  }
}

/**
 * FNV-1a, 64-bit (docs/PROTOCOL.md §P4): offset basis 0xcbf29ce484222325, prime 0x100000001b3,
 * byte-wise xor then multiply.
 *
 * The state is kept as two unsigned 32-bit halves so the per-byte loop runs on plain numbers
 * (no bigint arithmetic per byte). Multiplying by the prime 2^40 + 0x1b3 modulo 2^64 is
 * `h * 0x1b3 + (h << 40)`; every intermediate stays below 2^53, so it is exact.
 */

export const FNV64_OFFSET_BASIS = 0xcbf29ce484222325n;
export const FNV64_PRIME = 0x100000001b3n;

const TWO_32 = 4294967296;

/** Mutable FNV state as two 32-bit halves. */
export interface Fnv64State {
  hi: number;
  lo: number;
}

/** Starts a hash state from a 64-bit seed (default: the FNV offset basis). */
export function fnv64Init(seed: bigint = FNV64_OFFSET_BASIS): Fnv64State {
  const s = BigInt.asUintN(64, seed);
  return { hi: Number(s >> 32n), lo: Number(s & 0xffffffffn) };
}

/** Feeds `bytes[start..end)` into `state`. */
export function fnv64Update(state: Fnv64State, bytes: Uint8Array, start = 0, end = bytes.length): void {
  let hi = state.hi;
  let lo = state.lo;
  for (let i = start; i < end; i++) {
    lo = (lo ^ (bytes[i] as number)) >>> 0;
    const t = lo * 0x1b3; // < 2^41, exact
    const carry = (t / TWO_32) | 0;
    hi = (Math.imul(hi, 0x1b3) + carry + (lo << 8)) >>> 0;
    lo = t >>> 0;
  }
  state.hi = hi;
  state.lo = lo;
}

/** Feeds one byte into `state`. */
export function fnv64UpdateByte(state: Fnv64State, byte: number): void {
  const lo = (state.lo ^ (byte & 0xff)) >>> 0;
  const t = lo * 0x1b3;
  state.hi = (Math.imul(state.hi, 0x1b3) + ((t / TWO_32) | 0) + (lo << 8)) >>> 0;
  state.lo = t >>> 0;
}

/** The 64-bit value of a state. */
export function fnv64Digest(state: Fnv64State): bigint {
  return (BigInt(state.hi) << 32n) | BigInt(state.lo);
}

/** FNV-1a-64 of `bytes`, optionally continuing from `seed` (a previous digest). */
export function fnv1a64(bytes: Uint8Array, seed?: bigint): bigint {
  const st = fnv64Init(seed);
  fnv64Update(st, bytes);
  return fnv64Digest(st);
}

/** Low 48 bits of FNV-1a-64 of `bytes`: the v2 payload checksum (§P4). */
export function checksum48(bytes: Uint8Array): bigint {
  return BigInt(checksum48Number(bytes));
}

/**
 * {@link checksum48} as a number (exact: < 2^48), of `bytes[start..end)`, computed on 16-bit
 * limbs: the low 48 bits of a product modulo 2^64 depend only on the low 48 bits of its
 * factors, and the xor only touches the low byte, so three limbs of the state suffice.
 * Multiplying by the prime 2^40 + 0x1b3 is `h * 0x1b3 + (h << 40)`; every intermediate is below
 * 2^27 (small integers, no float division per byte as with the 32-bit halves above).
 */
export function checksum48Number(bytes: Uint8Array, start = 0, end = bytes.length): number {
  // Offset basis 0xcbf29ce484222325, low 48 bits as limbs.
  let a0 = 0x2325;
  let a1 = 0x8422;
  let a2 = 0x9ce4;
  for (let i = start; i < end; i++) {
    a0 ^= bytes[i] as number;
    const t0 = a0 * 0x1b3;
    const t1 = a1 * 0x1b3 + (t0 >>> 16);
    const t2 = a2 * 0x1b3 + (t1 >>> 16) + ((a0 << 8) & 0xffff);
    a0 = t0 & 0xffff;
    a1 = t1 & 0xffff;
    a2 = t2 & 0xffff;
  }
  return a2 * 4294967296 + a1 * 65536 + a0;
}

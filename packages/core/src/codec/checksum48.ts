/**
 * The v2 payload checksum (docs/PROTOCOL.md §P4: the low 48 bits of FNV-1a-64 of the body as
 * transmitted), computed on 16-bit limbs: the same value as fnv.ts `checksum48Number`, faster.
 *
 * The low 48 bits of a product modulo 2^64 depend only on the low 48 bits of its factors, and
 * the xor only touches the low byte, so three limbs of the state suffice. Multiplying by the
 * prime 2^40 + 0x1b3 is `h * 0x1b3 + (h << 40)`; every intermediate is below 2^27 (small
 * integers, no float division per byte as with 32-bit halves).
 */

/** Low 48 bits of FNV-1a-64 of `bytes[start..end)`. */
export function checksum48Fast(bytes: Uint8Array, start = 0, end = bytes.length): number {
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

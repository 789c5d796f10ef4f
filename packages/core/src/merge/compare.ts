/**
 * The value order used to break ties between concurrent writes of equal col_version
 * (docs/PROTOCOL.md §P5). Deterministic and replica-independent: every replica picks the
 * same winner whatever order it sees the writes in.
 */
import type { SqlValue } from '../types.ts';

/** SQLite type codes: lower wins (INTEGER 1 > REAL 2 > TEXT 3 > BLOB 4 > NULL 5). */
export function typeCode(v: SqlValue): number {
  if (v === null) return 5;
  switch (typeof v) {
    case 'bigint':
      return 1;
    case 'number':
      return 2;
    case 'string':
      return 3;
    default:
      return 4;
  }
}

const encoder = new TextEncoder();

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** strcmp over UTF-8 bytes up to the first NUL, as the extension compares TEXT. */
function compareText(a: string, b: string): number {
  if (a === b) return 0;
  const ascii = /^[\x01-\x7f]*$/;
  if (ascii.test(a) && ascii.test(b)) return a < b ? -1 : 1;
  const ea = encoder.encode(a);
  const eb = encoder.encode(b);
  const za = ea.indexOf(0);
  const zb = eb.indexOf(0);
  return compareBytes(za < 0 ? ea : ea.subarray(0, za), zb < 0 ? eb : eb.subarray(0, zb));
}

/**
 * Compares two values in the merge order: positive when `a` beats `b`, 0 when equal.
 * Different storage classes: the lower type code wins. Same class: numeric order for
 * INTEGER/REAL, UTF-8 byte order for TEXT, memcmp-then-length for BLOB.
 */
export function compareForMerge(a: SqlValue, b: SqlValue): number {
  const ta = typeCode(a);
  const tb = typeCode(b);
  if (ta !== tb) return tb - ta;
  switch (ta) {
    case 1: {
      const x = a as bigint;
      const y = b as bigint;
      return x === y ? 0 : x > y ? 1 : -1;
    }
    case 2: {
      const x = a as number;
      const y = b as number;
      if (x === y || (Number.isNaN(x) && Number.isNaN(y))) return 0;
      // SQLite stores NaN as NULL; treat it as the smallest REAL so the order stays total.
      if (Number.isNaN(x)) return -1;
      if (Number.isNaN(y)) return 1;
      return x > y ? 1 : -1;
    }
    case 3:
      return compareText(a as string, b as string);
    case 4:
      return compareBytes(a as Uint8Array, b as Uint8Array);
    default:
      return 0;
  }
}

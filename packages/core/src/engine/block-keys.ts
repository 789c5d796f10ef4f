/**
 * Position ids of block cells (docs/PROTOCOL.md "Block columns"). The ids 1.1.4 writes follow the
 * public fractional-indexing scheme (base-62 digits `0-9A-Za-z`, byte-wise order): an integer
 * part whose head letter gives its length (`a0`, `a1`, …; `Zz` before `a0`) and an optional
 * fraction without trailing `0` (`a1V` between `a1` and `a2`). Ids made here follow it too, so a
 * device can place its own lines between them.
 */
const DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function intLength(head: string): number {
  if (head >= 'a' && head <= 'z') return head.charCodeAt(0) - 97 + 2;
  if (head >= 'A' && head <= 'Z') return 90 - head.charCodeAt(0) + 2;
  throw new Error(`invalid position id head ${head}`);
}

function intPart(key: string): string {
  const n = intLength(key[0] ?? '');
  if (n > key.length) throw new Error(`invalid position id ${key}`);
  return key.slice(0, n);
}

/** A fraction strictly between `a` and `b` (`b` null: no upper bound). */
function midpoint(a: string, b: string | null): string {
  if (b !== null) {
    let n = 0;
    while ((a[n] ?? '0') === b[n]) n++;
    if (n > 0) return b.slice(0, n) + midpoint(a.slice(n), b.slice(n));
  }
  const da = a.length > 0 ? DIGITS.indexOf(a[0] as string) : 0;
  const db = b !== null ? DIGITS.indexOf(b[0] as string) : DIGITS.length;
  if (db - da > 1) return DIGITS[Math.round((da + db) / 2)] as string;
  if (b !== null && b.length > 1) return b.slice(0, 1);
  return (DIGITS[da] as string) + midpoint(a.slice(1), null);
}

function increment(x: string): string | null {
  const head = x[0] as string;
  const d = x.slice(1).split('');
  let carry = true;
  for (let i = d.length - 1; carry && i >= 0; i--) {
    const v = DIGITS.indexOf(d[i] as string) + 1;
    if (v === DIGITS.length) d[i] = '0';
    else {
      d[i] = DIGITS[v] as string;
      carry = false;
    }
  }
  if (!carry) return head + d.join('');
  if (head === 'Z') return 'a0';
  if (head === 'z') return null;
  const h = String.fromCharCode(head.charCodeAt(0) + 1);
  if (h > 'a') d.push('0');
  else d.pop();
  return h + d.join('');
}

function decrement(x: string): string | null {
  const head = x[0] as string;
  const d = x.slice(1).split('');
  let borrow = true;
  for (let i = d.length - 1; borrow && i >= 0; i--) {
    const v = DIGITS.indexOf(d[i] as string) - 1;
    if (v === -1) d[i] = 'z';
    else {
      d[i] = DIGITS[v] as string;
      borrow = false;
    }
  }
  if (!borrow) return head + d.join('');
  if (head === 'a') return 'Zz';
  if (head === 'A') return null;
  const h = String.fromCharCode(head.charCodeAt(0) - 1);
  if (h < 'Z') d.push('z');
  else d.pop();
  return h + d.join('');
}

/** A position id strictly between `a` and `b` (null: open end), byte-wise. */
export function positionBetween(a: string | null, b: string | null): string {
  if (a === null && b === null) return 'a0';
  if (a === null) {
    const ib = intPart(b as string);
    if (ib.length < (b as string).length) return ib;
    const dec = decrement(ib);
    if (dec === null) return ib + midpoint('', (b as string).slice(ib.length));
    return dec;
  }
  const ia = intPart(a);
  const fa = a.slice(ia.length);
  if (b === null) {
    const inc = increment(ia);
    return inc === null ? ia + midpoint(fa, null) : inc;
  }
  const ib = intPart(b);
  if (ia === ib) return ia + midpoint(fa, b.slice(ib.length));
  const inc = increment(ia);
  return inc !== null && inc < b ? inc : ia + midpoint(fa, null);
}

/**
 * Schema hashes carried in the payload header (docs/PROTOCOL.md §P6).
 *
 * Both variants feed a normalised string into FNV-1a-64 (same constants as the payload checksum):
 * - comments (`-- … \n`, `/* … *\/`) outside quotes are dropped;
 * - quoted sections (`'…'`, `"…"`) are hashed verbatim, except that a doubled quote (the escape)
 *   hashes as ONE quote byte (`"q""q"` hashes `"q"q"`; pinned down against the 0.9.99 extension);
 * - outside quotes, non-printable bytes are dropped, ASCII letters lower-cased, and runs of spaces
 *   collapse to one space, which is dropped at the start, before `(`, `)`, `,`, `;` and at the end
 *   (see {@link normalizedFnv64} for the exact rules, §P6: TAB, CR and LF are dropped, not collapsed);
 * - `;` is never hashed.
 * The pre-pass works on the UTF-8 bytes (a C `char` loop), so non-ASCII bytes outside quotes count
 * as non-printable and are dropped.
 */
import { fnv64Digest, fnv64Init, fnv64UpdateByte } from '../codec/fnv.ts';

const SPACE = 0x20;
const SQUOTE = 0x27;
const DQUOTE = 0x22;

/** Control bytes (including TAB, CR, LF), DEL and every non-ASCII byte. */
function isNonPrintable(c: number): boolean {
  return c < 0x20 || c >= 0x7f;
}

/** ASCII-only lower-casing, like SQLite's built-in LOWER() without ICU. */
export function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

function asciiUpper(s: string): string {
  return s.replace(/[a-z]+/g, (m) => m.toUpperCase());
}

function isDropSpaceBefore(c: number | undefined): boolean {
  // `(`, `)`, `,`, `;` or end of input
  return c === undefined || c === 0x28 || c === 0x29 || c === 0x2c || c === 0x3b;
}

/**
 * FNV-1a-64 of `text` after the §P6 normalisation pre-pass.
 *
 * Whitespace handling, pinned down against the 0.9.99 extension:
 * - only the space byte (0x20) is whitespace; TAB, CR, LF and other control bytes are
 *   non-printable and simply dropped (`a\nreal` hashes `areal`, `a \n real` hashes `a real`);
 * - a run of spaces (with any non-printable bytes inside it) hashes one space unless nothing was
 *   hashed yet, the last hashed byte is already a space, or the next byte after the run is `(`,
 *   `)`, `,`, `;` or the end;
 * - that look-ahead is the raw next byte, so a comment right after a run does not suppress the
 *   space (`null /* c *\/,` hashes `null ,`), and a comment is not whitespace
 *   (`a/*x*\/text` hashes `atext`).
 * The result is the
 * state after the last non-space byte hashed (trailing spaces do not count).
 */
export function normalizedFnv64(text: string): bigint {
  const b = new TextEncoder().encode(text);
  const n = b.length;
  const st = fnv64Init();
  let final = fnv64Digest(st);
  let emitted = false;
  let lastWasSpace = false;
  const put = (c: number): void => {
    fnv64UpdateByte(st, c);
    emitted = true;
    lastWasSpace = c === SPACE;
  };
  const mark = (): void => {
    final = fnv64Digest(st);
  };
  let i = 0;
  while (i < n) {
    const c = b[i] as number;
    if (c === SQUOTE || c === DQUOTE) {
      put(c);
      i++;
      while (i < n) {
        const d = b[i++] as number;
        put(d);
        if (d === c) {
          // A doubled quote is an escape: one quote byte was hashed, skip the second.
          if (i < n && b[i] === c) i++;
          else break;
        }
      }
      mark();
      continue;
    }
    if (c === 0x2d && b[i + 1] === 0x2d) {
      i += 2;
      while (i < n && b[i] !== 0x0a) i++;
      i++; // the newline ends the comment
      continue;
    }
    if (c === 0x2f && b[i + 1] === 0x2a) {
      i += 2;
      while (i < n && !(b[i] === 0x2a && b[i + 1] === 0x2f)) i++;
      i += 2;
      continue;
    }
    if (c === SPACE || isNonPrintable(c)) {
      let sawSpace = false;
      while (i < n) {
        const d = b[i] as number;
        if (d === SPACE) sawSpace = true;
        else if (!isNonPrintable(d)) break;
        i++;
      }
      if (sawSpace && emitted && !lastWasSpace && !isDropSpaceBefore(b[i])) put(SPACE);
      continue;
    }
    i++;
    if (c === 0x3b) continue; // `;` is never hashed
    put(c >= 0x41 && c <= 0x5a ? c + 32 : c);
    mark();
  }
  return final;
}

export interface SchemaHashColumn {
  name: string;
  /** Declared type as written (may be empty). */
  type: string;
  /** Part of the primary key. */
  pk: boolean;
}

export interface SchemaHashTable {
  name: string;
  /** Columns in `pragma_table_info` cid order. */
  columns: SchemaHashColumn[];
}

/** Affinity word of a declared type, per the §P6 rules (first match wins). */
export function columnListAffinity(declaredType: string): 'integer' | 'text' | 'blob' | 'real' | 'numeric' {
  const t = asciiUpper(declaredType);
  if (t.includes('INT')) return 'integer';
  if (t.includes('CHAR') || t.includes('CLOB') || t.includes('TEXT')) return 'text';
  if (t.includes('BLOB') || t === '') return 'blob';
  if (t.includes('REAL') || t.includes('FLOA') || t.includes('DOUB')) return 'real';
  if (t === 'NUMERIC' || t === 'DECIMAL') return 'numeric';
  return 'text';
}

function nocaseCompare(a: string, b: string): number {
  const x = asciiLower(a);
  const y = asciiLower(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Input string of the column-list variant (0.9.118 and 1.x): `tbl:col:affinity:pk` entries joined
 * with `,`; tables ordered by name (NOCASE), columns in the given (cid) order, column names
 * lower-cased. Table names are used as given (the verified example has a lower-case table name).
 */
export function columnListHashInput(tables: readonly SchemaHashTable[]): string {
  const sorted = [...tables].sort((a, b) => nocaseCompare(a.name, b.name));
  const parts: string[] = [];
  for (const t of sorted) {
    for (const c of t.columns) parts.push(`${t.name}:${asciiLower(c.name)}:${columnListAffinity(c.type)}:${c.pk ? 1 : 0}`);
  }
  return parts.join(',');
}

/** Column-list schema hash (0.9.118 and 1.x). */
export function columnListSchemaHash(tables: readonly SchemaHashTable[]): bigint {
  return normalizedFnv64(columnListHashInput(tables));
}

/**
 * DDL-text schema hash (0.8.x – 0.9.99): the lower-cased `CREATE TABLE` texts of the synced tables
 * in `sqlite_master` order, joined with `,`.
 */
export function ddlTextSchemaHash(createSqls: readonly string[]): bigint {
  return normalizedFnv64(createSqls.map(asciiLower).join(','));
}

/** The u64 hash as SQLite stores it (signed int64) and back. */
export function schemaHashToInt64(h: bigint): bigint {
  return BigInt.asIntN(64, h);
}

export function schemaHashFromInt64(v: bigint | number): bigint {
  return BigInt.asUintN(64, BigInt(v));
}

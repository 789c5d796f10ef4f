/**
 * Payload budgets (docs/PROTOCOL.md "Limits"): compressed size, expanded size, row count,
 * per-value size and clock bound, each enforced before the work it bounds. A decompression bomb
 * is refused without expanding it.
 */
import { expect, test } from 'vitest';
import { CoreErrorCode, isCoreError } from '../errors.ts';
import type { Change } from '../types.ts';
import { openReplica } from '../testing/replica.ts';
import { dumpDatabase } from '../testing/db-dump.ts';
import { lz4BlockDecompress } from './lz4-block.ts';
import { decodePayload, DEFAULT_PAYLOAD_LIMITS, encodePayload, MAX_CLOCK } from './payload.ts';
import { writePayloadHeader } from './payload-header.ts';
import { checksum48Number } from './fnv.ts';

const SITE = new Uint8Array(16).fill(5);
const MiB = 1024 * 1024;

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isCoreError(e) ? e.code : `not a CoreError: ${String(e)}`;
  }
  return undefined;
}

/** A v2 payload around `body` with a correct checksum. */
function wrap(body: Uint8Array, expandedSize: number, nrows: number): Uint8Array {
  const out = new Uint8Array(32 + body.length);
  out.set(body, 32);
  writePayloadHeader(out, { libVersion: [1, 1, 4], expandedSize, nrows, schemaHash: 0n, checksum: checksum48Number(out, 32, out.length) });
  return out;
}

/**
 * A ~1 MiB LZ4 block that really expands to `size` bytes: one literal, then one match at offset
 * 1 whose length is spelled with ~size/255 extension bytes, then the 5 final literals.
 */
function lz4Bomb(size: number): Uint8Array {
  const matchLen = size - 1 - 5; // ml = 15 + 255k + r + 4
  const rest = matchLen - 4 - 15;
  const k = Math.floor(rest / 255);
  const r = rest - 255 * k;
  const out = new Uint8Array(1 + 1 + 2 + k + 1 + 6);
  let p = 0;
  out[p++] = 0x1f;
  out[p++] = 0x41;
  out[p++] = 1;
  out[p++] = 0;
  out.fill(255, p, p + k);
  p += k;
  out[p++] = r;
  out[p++] = 0x50;
  out.fill(0x42, p, p + 5);
  return out;
}

const rows = (n: number, val: Change['val'] = 'v'): Change[] =>
  Array.from({ length: n }, (_, i) => ({ tbl: 'todos', pk: Uint8Array.of(1, 0x0b, 1, 0x61 + (i % 26)), col: 'title', val, colVersion: 1, dbVersion: 1, siteId: SITE, cl: 1, seq: i }));

test('defaults are the documented ones', () => {
  expect(DEFAULT_PAYLOAD_LIMITS).toEqual({ maxCompressedSize: 48 * MiB, maxExpandedSize: 64 * MiB, maxRows: 1_000_000, maxValueSize: 32 * MiB, maxClock: 2 ** 48 - 1 });
  expect(MAX_CLOCK).toBe(2 ** 48 - 1);
  expect(MAX_CLOCK).toBeLessThan(Number.MAX_SAFE_INTEGER / 16);
});

test('the bomb helper really expands to the announced size', () => {
  const small = lz4Bomb(100_000);
  const out = lz4BlockDecompress(small, 100_000);
  expect(out.length).toBe(100_000);
  expect(out[99_999]).toBe(0x42);
});

test('a 1 MiB payload that expands to 256 MiB is refused at once, without expanding it', () => {
  const bomb = wrap(lz4Bomb(256 * MiB), 256 * MiB, 1000);
  expect(bomb.length).toBeLessThan(1.01 * MiB);
  const before = process.memoryUsage();
  const t0 = performance.now();
  const err = (() => {
    try {
      decodePayload(bomb);
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  const elapsed = performance.now() - t0;
  const after = process.memoryUsage();
  expect(isCoreError(err, CoreErrorCode.PAYLOAD_TOO_LARGE)).toBe(true);
  expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(64 * MiB);
  expect(after.heapUsed - before.heapUsed).toBeLessThan(64 * MiB);
  expect(elapsed).toBeLessThan(2000); // generous: it is a header check (the old path took seconds)
});

test('a bomb whose header understates its expansion stops at the announced size', () => {
  // Announces 48 MiB (within budget) but would expand to 256 MiB: refused before writing the
  // match, having allocated only the first few MiB of output.
  const bomb = wrap(lz4Bomb(256 * MiB), 48 * MiB, 1000);
  const before = process.memoryUsage().arrayBuffers;
  expect(codeOf(() => decodePayload(bomb))).toBe(CoreErrorCode.PAYLOAD_BAD_COMPRESSION);
  expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * MiB);
});

test('the LZ4 decoder allocates what the block produces, not what the header announces', () => {
  // 1 MiB of literals announced as 60 MiB (within the 255:1 bound and the budget): refused at the
  // end, having held about 8 MiB (the first buffer is 8× the block) — the old decoder allocated all 60 MiB first.
  const lit = 1 * MiB;
  const block = new Uint8Array(1 + Math.ceil((lit - 15 + 1) / 255) + 1 + lit);
  let p = 0;
  block[p++] = 0xf0;
  let n = lit - 15;
  while (n >= 255) {
    block[p++] = 255;
    n -= 255;
  }
  block[p++] = n;
  p += lit;
  const exact = block.subarray(0, p);
  expect(lz4BlockDecompress(exact, lit).length).toBe(lit);
  const before = process.memoryUsage().arrayBuffers;
  expect(codeOf(() => lz4BlockDecompress(exact, 60 * MiB))).toBe(CoreErrorCode.PAYLOAD_BAD_COMPRESSION);
  expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * MiB);
});

test('each budget refuses with PAYLOAD_TOO_LARGE, and is configurable', () => {
  const p = encodePayload(rows(200), { schemaHash: 0n })!;
  expect(decodePayload(p).changes).toHaveLength(200);
  expect(codeOf(() => decodePayload(p, { maxCompressedSize: p.length - 1 }))).toBe(CoreErrorCode.PAYLOAD_TOO_LARGE);
  expect(decodePayload(p, { maxCompressedSize: p.length }).changes).toHaveLength(200);
  expect(codeOf(() => decodePayload(p, { maxRows: 199 }))).toBe(CoreErrorCode.PAYLOAD_TOO_LARGE);
  expect(codeOf(() => decodePayload(p, { maxExpandedSize: 1000 }))).toBe(CoreErrorCode.PAYLOAD_TOO_LARGE);

  // Per-value size: the value, the table name and the primary key are all bounded.
  const big = encodePayload(rows(3, 'x'.repeat(5000)), { schemaHash: 0n })!;
  expect(codeOf(() => decodePayload(big, { maxValueSize: 4999 }))).toBe(CoreErrorCode.PAYLOAD_TOO_LARGE);
  expect(decodePayload(big, { maxValueSize: 5000 }).changes).toHaveLength(3);
  const blob = encodePayload(rows(1, new Uint8Array(300)), { schemaHash: 0n })!;
  expect(codeOf(() => decodePayload(blob, { maxValueSize: 299 }))).toBe(CoreErrorCode.PAYLOAD_TOO_LARGE);
  const longName = encodePayload([{ ...rows(1)[0]!, tbl: 't'.repeat(100) }], { schemaHash: 0n })!;
  expect(codeOf(() => decodePayload(longName, { maxValueSize: 99 }))).toBe(CoreErrorCode.PAYLOAD_TOO_LARGE);
  const longPk = encodePayload([{ ...rows(1)[0]!, pk: new Uint8Array(100) }], { schemaHash: 0n })!;
  expect(codeOf(() => decodePayload(longPk, { maxValueSize: 99 }))).toBe(CoreErrorCode.PAYLOAD_TOO_LARGE);
});

test('a row count larger than the budget is refused before the body is touched', () => {
  const body = new Uint8Array(40 * 1_000_001); // zeros: not even a valid row
  const p = wrap(body, 0, 1_000_001);
  expect(codeOf(() => decodePayload(p))).toBe(CoreErrorCode.PAYLOAD_TOO_LARGE);
  expect(codeOf(() => decodePayload(p, { maxRows: 2_000_000 }))).toBe(CoreErrorCode.PAYLOAD_BAD_VALUE);
});

test('the engine passes applyPayload limits through and changes nothing when refusing', () => {
  const device = openReplica();
  device.driver.exec("INSERT INTO todos (id, title) VALUES ('a', 'one'), ('b', 'two')");
  const server = openReplica();
  const before = dumpDatabase(server);
  const p = device.encodeChanges([...device.changes({})])!;
  expect(codeOf(() => server.applyPayload(p, { limits: { maxRows: 1 } }))).toBe(CoreErrorCode.PAYLOAD_TOO_LARGE);
  expect(codeOf(() => server.applyPayload(p, { limits: { maxValueSize: 2 } }))).toBe(CoreErrorCode.PAYLOAD_TOO_LARGE);
  expect(dumpDatabase(server)).toEqual(before);
  expect(server.applyPayload(p).applied).toBeGreaterThan(0);
});

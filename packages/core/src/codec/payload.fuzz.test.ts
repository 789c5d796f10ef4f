/**
 * Fuzz of the payload decoder and of payload apply (issue 9, docs/PROTOCOL.md "Limits"):
 * random bytes, mutations and truncations of valid payloads (compressed and not, with the
 * checksum recomputed for half of them so the body decoder runs), payloads assembled from random
 * wire fields (every type byte and width, clocks around the bound, lengths around the limits),
 * and the same inputs applied to a real database. Every input must either decode / apply or
 * throw a CoreError with a stable code — never a crash, a TypeError or a RangeError — and a
 * refused apply must leave the database byte-for-byte unchanged (no partial apply).
 *
 * CI: ~14,000 inputs here (plus every truncation of ten fixtures) (plus ~8,000 over the HTTP parsers in packages/api), fixed seeds.
 * Long mode: FC_NUM_RUNS=1000000 (split over the properties below), FC_SEED=<n> to explore;
 * fast-check prints the seed and the shrunk counterexample on failure.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { CoreError, CoreErrorCode } from '../errors.ts';
import { dumpDatabase } from '../testing/db-dump.ts';
import { openReplica } from '../testing/replica.ts';
import type { SyncEngine } from '../engine/engine.ts';
import type { Change } from '../types.ts';
import { ByteWriter } from './bytes.ts';
import { lz4BlockCompress } from './lz4-block.ts';
import { decodePayload, decodePayloadHeader, encodePayload, MAX_CLOCK } from './payload.ts';
import type { PayloadDecodeLimits } from './payload.ts';
import { encodePk } from './pk.ts';
import { changeArb, fcSeed, fixChecksum, numRuns } from './test-arbitraries.ts';

const STABLE_CODES = new Set<string>(Object.values(CoreErrorCode));
/** Small budgets so that the limit paths run often; real defaults are checked in payload-limits.test.ts. */
const FUZZ_LIMITS: PayloadDecodeLimits = { maxExpandedSize: 1 << 22, maxRows: 5000, maxValueSize: 1 << 16 };

/** Rethrows anything that is not a CoreError with a stable code. */
function expectStable(e: unknown): asserts e is CoreError {
  if (!(e instanceof CoreError)) throw e;
  if (!STABLE_CODES.has(e.code)) throw new Error(`unstable code ${String(e.code)}`, { cause: e });
}

function mustBeCoreErrorOrOk(bytes: Uint8Array, limits: PayloadDecodeLimits = FUZZ_LIMITS): void {
  try {
    const { header, changes } = decodePayload(bytes, limits);
    expect(changes.length).toBe(header.nrows);
    for (const c of changes) {
      for (const v of [c.colVersion, c.dbVersion, c.cl, c.seq]) expect(Number.isSafeInteger(v) && v >= 0 && v <= (limits.maxClock ?? MAX_CLOCK)).toBe(true);
      expect(c.siteId.length).toBe(16);
    }
  } catch (e) {
    expectStable(e);
  }
}

const SITES = [new Uint8Array(16).fill(7), new Uint8Array(16).fill(9)];

function samplePayloads(): Uint8Array[] {
  const out: Uint8Array[] = [];
  const lists = fc.sample(fc.array(changeArb(SITES), { minLength: 1, maxLength: 30 }), { seed: 11, numRuns: 60 });
  for (const l of lists) out.push(encodePayload(l, { schemaHash: 123n })!);
  // Single random rows with big blobs: these stay uncompressed.
  for (const c of fc.sample(changeArb(SITES), { seed: 12, numRuns: 20 })) {
    let x = c.seq + 1;
    const blob = Uint8Array.from({ length: 64 }, () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24);
    out.push(encodePayload([{ ...c, val: blob.subarray(16), siteId: blob.subarray(0, 16) }], { schemaHash: 9n })!);
  }
  // A surely compressed one.
  const rep: Change[] = Array.from({ length: 200 }, (_, i) => ({
    tbl: 'todos', pk: Uint8Array.of(1, 9, i & 255), col: 'title', val: 'same text', colVersion: 1, dbVersion: 3, siteId: SITES[0]!, cl: 1, seq: i,
  }));
  out.push(encodePayload(rep, { schemaHash: 1n })!);
  return out;
}

const payloads = samplePayloads();

const mutationArb = fc.record({
  which: fc.nat(),
  edits: fc.array(fc.record({ pos: fc.nat(), byte: fc.integer({ min: 0, max: 255 }), kind: fc.constantFrom('set', 'xor1', 'insert', 'delete') }), {
    minLength: 1,
    maxLength: 4,
  }),
  truncate: fc.option(fc.nat(), { nil: undefined }),
  fix: fc.boolean(),
});

type Mutation = typeof mutationArb extends fc.Arbitrary<infer T> ? T : never;

function mutate(base: Uint8Array, m: Mutation): Uint8Array {
  let bytes = Array.from(base);
  for (const e of m.edits) {
    const pos = e.pos % (bytes.length + 1);
    if (e.kind === 'set') bytes[pos] = e.byte;
    else if (e.kind === 'xor1') bytes[pos] = (bytes[pos] ?? 0) ^ (1 << (e.byte & 7));
    else if (e.kind === 'insert') bytes.splice(pos, 0, e.byte);
    else bytes.splice(pos, 1);
  }
  if (m.truncate !== undefined) bytes = bytes.slice(0, m.truncate % (bytes.length + 1));
  let u8: Uint8Array = Uint8Array.from(bytes.map((b) => b & 255));
  if (m.fix && u8.length >= 32) u8 = fixChecksum(u8);
  return u8;
}

// ---- Payloads assembled from random wire fields -------------------------------------------------

/** Magnitudes around every interesting boundary: widths, the clock bound, 2^53, int64. */
const magnitudeArb: fc.Arbitrary<bigint> = fc.oneof(
  fc.bigInt({ min: 0n, max: 300n }),
  fc.constantFrom(0n, 255n, 256n, 65535n, 65536n, 2n ** 32n, BigInt(MAX_CLOCK), BigInt(MAX_CLOCK) + 1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
);

/** One wire value: any type code (0-7), any width bits (0-31), a magnitude/length and content. */
const wireValueArb = fc.oneof(
  // INTEGER / NEG_INTEGER with an explicit width (minimal or not, possibly too small).
  fc.record({ kind: fc.constant('int' as const), code: fc.constantFrom(0, 1), width: fc.integer({ min: 0, max: 9 }), mag: magnitudeArb }),
  // TEXT / BLOB with a length that may lie (longer than the content, huge).
  fc.record({
    kind: fc.constant('bytes' as const),
    code: fc.constantFrom(3, 4),
    content: fc.oneof(fc.uint8Array({ maxLength: 24 }), fc.constantFrom(new Uint8Array(16).fill(1), Uint8Array.of(0xc3, 0x28), Uint8Array.of(0xf0, 0x9f, 0x98, 0x80))),
    lie: fc.oneof(fc.constant(0), fc.integer({ min: -3, max: 3 }), fc.constantFrom(1 << 16, 1 << 20, 2 ** 31, 2 ** 48)),
    width: fc.integer({ min: 0, max: 9 }),
  }),
  fc.record({ kind: fc.constant('raw' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 10 }) }),
  fc.constantFrom({ kind: 'fixed' as const, bytes: Uint8Array.of(5) }, { kind: 'fixed' as const, bytes: Uint8Array.of(6) }, { kind: 'fixed' as const, bytes: Uint8Array.of(2, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f) }),
);
type WireValue = typeof wireValueArb extends fc.Arbitrary<infer T> ? T : never;

function writeWire(w: ByteWriter, v: WireValue): void {
  if (v.kind === 'raw' || v.kind === 'fixed') return w.bytes(v.bytes);
  if (v.kind === 'int') {
    const width = v.width & 31;
    w.u8((width << 3) | v.code);
    for (let i = Math.min(width, 8) - 1; i >= 0; i--) w.u8(Number((v.mag >> BigInt(8 * i)) & 0xffn));
    return;
  }
  const len = Math.max(0, v.content.length + v.lie);
  const width = v.width === 0 ? (len < 256 ? 1 : len < 65536 ? 2 : len < 2 ** 32 ? 4 : 7) : v.width;
  w.u8(((width & 31) << 3) | v.code);
  for (let i = Math.min(width, 8) - 1; i >= 0; i--) w.u8(Math.floor(len / 2 ** (8 * i)) & 0xff);
  w.bytes(v.content);
}

/** Mostly well-typed rows (so the decoder gets deep), each field replaced by a random wire value now and then. */
const wireRowArb = fc.record({
  fields: fc.array(fc.option(wireValueArb, { freq: 3, nil: undefined }), { minLength: 9, maxLength: 9 }),
  clocks: fc.array(magnitudeArb, { minLength: 4, maxLength: 4 }),
});

const wirePayloadArb = fc.record({
  rows: fc.array(wireRowArb, { minLength: 0, maxLength: 12 }),
  nrowsDelta: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -2, max: 2 }) }, { weight: 1, arbitrary: fc.constantFrom(0xffffffff, 1_000_001) }),
  version: fc.constantFrom(1, 2, 2),
  compress: fc.boolean(),
  expandedDelta: fc.oneof({ weight: 5, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -5, max: 5 }) }, { weight: 1, arbitrary: fc.constantFrom(2 ** 31 - 1, 64 * 1024 * 1024, 2 ** 32 - 1) }),
});

function defaultField(i: number, clocks: bigint[], row: number): Uint8Array {
  const w = new ByteWriter(32);
  const clock = (m: bigint): void => writeWire(w, { kind: 'int', code: 1, width: m < 256n ? 1 : m < 2n ** 48n ? 6 : 8, mag: m });
  switch (i) {
    case 0: w.bytes(Uint8Array.of(0x0b, 5, 0x74, 0x6f, 0x64, 0x6f, 0x73)); break; // 'todos'
    case 1: { const pk = encodePk([`k${row % 3}`]); w.u8((1 << 3) | 4); w.u8(pk.length); w.bytes(pk); break; }
    case 2: w.bytes(Uint8Array.of(0x0b, 5, 0x74, 0x69, 0x74, 0x6c, 0x65)); break; // 'title'
    case 3: w.bytes(Uint8Array.of(0x0b, 1, 0x78)); break; // 'x'
    case 4: clock(clocks[0]!); break;
    case 5: clock(clocks[1]!); break;
    case 6: w.u8((1 << 3) | 4); w.u8(16); w.bytes(SITES[row % 2]!); break;
    case 7: clock(clocks[2]!); break;
    default: clock(clocks[3]!);
  }
  return w.toBytes();
}

function buildWirePayload(p: typeof wirePayloadArb extends fc.Arbitrary<infer T> ? T : never): Uint8Array {
  const body = new ByteWriter(256);
  p.rows.forEach((r, row) => {
    r.fields.forEach((f, i) => (f === undefined ? body.bytes(defaultField(i, r.clocks.map((c) => c % (2n ** 49n)), row)) : writeWire(body, f)));
  });
  let raw = body.toBytes();
  let expanded = 0;
  if (p.compress && raw.length > 0) {
    const c = lz4BlockCompress(raw);
    if (c !== null) {
      expanded = Math.max(0, Math.min(2 ** 32 - 1, raw.length + p.expandedDelta));
      raw = c;
    }
  }
  const out = new Uint8Array(32 + raw.length);
  out.set(raw, 32);
  const v = new DataView(out.buffer);
  out.set([0x43, 0x4c, 0x53, 0x59, p.version, 1, 1, 4]);
  v.setUint32(8, expanded);
  v.setUint16(12, 9);
  v.setUint32(14, Math.max(0, Math.min(2 ** 32 - 1, p.rows.length + p.nrowsDelta)));
  return p.version === 2 ? fixChecksum(out) : out;
}

// ---- Tests ---------------------------------------------------------------------------------------

describe('payload decoder fuzz', () => {
  test('fixture set has compressed and uncompressed payloads', () => {
    const compressed = payloads.filter((p) => decodePayloadHeader(p).expandedSize !== 0).length;
    expect(compressed).toBeGreaterThan(2);
    expect(payloads.length - compressed).toBeGreaterThan(2);
  });

  test('random byte strings (some with a valid header prefix)', () => {
    const header = payloads[0]!.subarray(0, 32);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.boolean(), fc.boolean(), (rnd, withHeader, fix) => {
        let bytes: Uint8Array = rnd;
        if (withHeader) {
          bytes = new Uint8Array(32 + rnd.length);
          bytes.set(header);
          bytes.set(rnd, 32);
          if (fix) bytes = fixChecksum(bytes);
        }
        mustBeCoreErrorOrOk(bytes);
      }),
      { seed: fcSeed(20240601), numRuns: numRuns(3000, 0.2) },
    );
  });

  test('mutations and truncations of valid payloads', () => {
    fc.assert(
      fc.property(mutationArb, (m) => mustBeCoreErrorOrOk(mutate(payloads[m.which % payloads.length]!, m))),
      { seed: fcSeed(77), numRuns: numRuns(3000, 0.2) },
    );
  });

  test('payloads assembled from random wire fields (types, widths, lengths, clocks around the bound)', () => {
    let decoded = 0;
    const codes = new Set<string>();
    fc.assert(
      fc.property(wirePayloadArb, (p) => {
        const bytes = buildWirePayload(p);
        try {
          decodePayload(bytes, FUZZ_LIMITS);
          decoded++;
        } catch (e) {
          expectStable(e);
          codes.add(e.code);
        }
        mustBeCoreErrorOrOk(bytes);
      }),
      { seed: fcSeed(4242), numRuns: numRuns(5000, 0.3) },
    );
    // The generator reaches both the happy path and the deep refusals.
    expect(decoded).toBeGreaterThan(50);
    for (const c of [CoreErrorCode.CLOCK_OUT_OF_RANGE, CoreErrorCode.PAYLOAD_BAD_VALUE, CoreErrorCode.PAYLOAD_TRUNCATED, CoreErrorCode.PAYLOAD_TOO_LARGE]) expect(codes).toContain(c);
  });

  test('every truncation of every fixture fails cleanly', () => {
    for (const p of payloads.slice(0, 10)) {
      for (let n = 0; n < p.length; n++) {
        mustBeCoreErrorOrOk(p.subarray(0, n));
        mustBeCoreErrorOrOk(fixChecksum(p.subarray(0, Math.max(n, 32))));
      }
    }
  });

  test('an absurd expanded size is refused before allocating', () => {
    const p = payloads.find((x) => decodePayloadHeader(x).expandedSize !== 0)!.slice();
    new DataView(p.buffer).setUint32(8, 0x7fffffff);
    expect(() => decodePayload(fixChecksum(p))).toThrow(CoreError);
  });
});

// ---- Apply: refused payloads change nothing ------------------------------------------------------

const TODOS = "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, note TEXT)";

/** Valid uploads of a real device (inserts, updates, deletes), the raw material for apply fuzzing. */
function devicePayloads(): Uint8Array[] {
  const d = openReplica(TODOS);
  const out: Uint8Array[] = [];
  let after = { dbVersion: 0, seq: Number.MAX_SAFE_INTEGER };
  const step = (sql: string): void => {
    d.driver.exec(sql);
    const changes = [...d.changes({ after })];
    if (changes.length === 0) return;
    out.push(d.encodeChanges(changes)!);
    out.push(encodePayload(changes, { schemaHash: 0n })!);
    after = { dbVersion: d.dbVersion(), seq: Number.MAX_SAFE_INTEGER };
  };
  step("INSERT INTO todos (id, title) VALUES ('a', 'one'), ('b', 'two'), ('c', 'three')");
  step("UPDATE todos SET done = 1, note = 'n' WHERE id = 'a'");
  step("DELETE FROM todos WHERE id = 'b'");
  step(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40) INSERT INTO todos (id, title) SELECT 'r' || i, printf('%.40c', 'x') FROM n`);
  step("INSERT INTO todos (id, title) VALUES ('b', 'back')");
  return out;
}

const applyInputArb = fc.oneof(
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('fixture' as const), which: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('mutate' as const), m: mutationArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('wire' as const), p: wirePayloadArb }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('changes' as const),
      // Well-formed payloads of random changes to the real table: wrong columns, bad keys, clocks around the bound.
      changes: fc.array(
        fc.record({
          tbl: fc.constantFrom('todos', 'todos', 'todos', 'TODOS', 'nope'),
          pk: fc.oneof({ weight: 6, arbitrary: fc.constantFrom('a', 'b', 'c', 'z').map((k) => encodePk([k])) }, fc.uint8Array({ maxLength: 6 }), fc.constant(encodePk([1n, 'x']))),
          col: fc.constantFrom('title', 'done', 'note', '__[RIP]__', 'missing'),
          val: fc.oneof(fc.constant(null), fc.string({ maxLength: 8 }), fc.bigInt({ min: -5n, max: 5n }), fc.double(), fc.uint8Array({ maxLength: 4 })),
          colVersion: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 5 }) }, { weight: 1, arbitrary: fc.constantFrom(MAX_CLOCK, MAX_CLOCK + 1, Number.MAX_SAFE_INTEGER) }),
          dbVersion: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 9 }) }, { weight: 1, arbitrary: fc.constantFrom(MAX_CLOCK, MAX_CLOCK + 1, Number.MAX_SAFE_INTEGER) }),
          siteId: fc.constantFrom(...SITES),
          cl: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 4 }) }, { weight: 1, arbitrary: fc.constantFrom(MAX_CLOCK, MAX_CLOCK + 1) }),
          seq: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 9 }) }, { weight: 1, arbitrary: fc.constant(Number.MAX_SAFE_INTEGER) }),
        }),
        { minLength: 1, maxLength: 8 },
      ),
    }),
  },
);

describe('payload apply fuzz', () => {
  test('a refused payload leaves the database unchanged (no partial apply), only stable codes', () => {
    const fixtures = devicePayloads();
    let server: SyncEngine = openReplica(TODOS);
    let snapshot = dumpDatabase(server);
    let runs = 0;
    let refused = 0;
    let applied = 0;
    const codes = new Map<string, number>();
    fc.assert(
      fc.property(applyInputArb, (input) => {
        if (++runs % 200 === 0) {
          server.close();
          server = openReplica(TODOS);
          snapshot = dumpDatabase(server);
        }
        const bytes =
          input.kind === 'fixture'
            ? fixtures[input.which % fixtures.length]!
            : input.kind === 'mutate'
            ? mutate(fixtures[input.m.which % fixtures.length]!, input.m)
            : input.kind === 'wire'
              ? buildWirePayload(input.p)
              : encodePayload(input.changes, { schemaHash: 0n })!;
        try {
          server.applyPayload(bytes, { limits: FUZZ_LIMITS });
          applied++;
        } catch (e) {
          refused++;
          codes.set(String((e as { code?: unknown }).code), (codes.get(String((e as { code?: unknown }).code)) ?? 0) + 1);
          const code = (e as { code?: unknown }).code;
          if (!(typeof code === 'string' && code.startsWith('SQLITE_CONSTRAINT'))) expectStable(e);
          expect(dumpDatabase(server)).toEqual(snapshot);
          expect(server.driver.inTransaction).toBe(false);
          return;
        }
        snapshot = dumpDatabase(server);
      }),
      { seed: fcSeed(9009), numRuns: numRuns(3000, 0.3) },
    );
    server.close();
    if (process.env['FC_VERBOSE']) console.log({ applied, refused, codes });
    expect(applied).toBeGreaterThan(200);
    expect(refused).toBeGreaterThan(200);
    for (const c of [CoreErrorCode.CLOCK_OUT_OF_RANGE, CoreErrorCode.UNKNOWN_TABLE, CoreErrorCode.UNKNOWN_COLUMN, CoreErrorCode.PAYLOAD_BAD_CHECKSUM]) expect(codes.get(c)).toBeGreaterThan(0);
  });
});

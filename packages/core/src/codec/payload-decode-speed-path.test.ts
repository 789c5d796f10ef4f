/**
 * The decoder's fast row path (payload.ts: names repeating the previous row's, one-byte lengths,
 * short clocks, equal keys sharing one `pk`, names decoded once) against the checked field readers alone (the
 * decoder before that path): for random payloads, random byte flips and cuts of their bodies
 * (checksum fixed, so the rows are decoded), v1 and v2 REAL order, and small value / clock
 * limits, both must give the same changes or the same error (code and message).
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { CoreError } from '../errors.ts';
import type { Change } from '../types.ts';
import { ByteReader, sameBytes } from './bytes.ts';
import { checksum48Number } from './fnv.ts';
import { decodePayload, MIN_ROW_BYTES } from './payload.ts';
import type { PayloadDecodeLimits } from './payload.ts';
import { PAYLOAD_HEADER_SIZE, writePayloadHeader } from './payload-header.ts';
import { changeArb, fcSeed, numRuns, referenceBody, sameValue } from './test-arbitraries.ts';
import { decodeBlobField, decodeClockField, decodeTextField, MAX_CLOCK } from './value-fields.ts';
import { decodeValue } from './value.ts';


/** An uncompressed payload around `raw` with a correct checksum; v1 has none (and REAL big-endian). */
function payloadOf(raw: Uint8Array, nrows: number, version: 1 | 2): Uint8Array {
  const out = new Uint8Array(PAYLOAD_HEADER_SIZE + raw.length);
  out.set(raw, PAYLOAD_HEADER_SIZE);
  writePayloadHeader(out, { libVersion: [0, 9, 99], expandedSize: 0, nrows, schemaHash: 1n, checksum: checksum48Number(raw), version: 2 });
  if (version === 1) out[4] = 1;
  return out;
}

/** The rows as the checked readers alone decode them (payload.ts before its fast path). */
function referenceRows(raw: Uint8Array, nrows: number, realBigEndian: boolean, limits: PayloadDecodeLimits): Change[] {
  const maxValue = limits.maxValueSize ?? 32 * 1024 * 1024;
  const maxClock = limits.maxClock ?? MAX_CLOCK;
  const r = new ByteReader(raw);
  const out: Change[] = [];
  for (let i = 0; i < nrows; i++) {
    const tbl = decodeTextField(r, 'tbl', maxValue);
    const pk = decodeBlobField(r, 'pk', maxValue);
    const col = decodeTextField(r, 'col_name', maxValue);
    const val = decodeValue(r, realBigEndian, maxValue);
    const colVersion = decodeClockField(r, 'col_version', maxClock);
    const dbVersion = decodeClockField(r, 'db_version', maxClock);
    const siteAt = r.pos;
    const siteId = decodeBlobField(r, 'site_id', maxValue);
    if (siteId.length !== 16) throw new Error(`site_id must be 16 bytes, got ${siteId.length} at ${siteAt}`);
    const cl = decodeClockField(r, 'cl', maxClock);
    const seq = decodeClockField(r, 'seq', maxClock);
    out.push({ tbl, pk, col, val, colVersion, dbVersion, siteId, cl, seq });
  }
  if (r.remaining !== 0) throw new Error(`${r.remaining} bytes after the last row`);
  return out;
}

type Outcome = { ok: Change[] } | { error: string };

function outcome(f: () => Change[]): Outcome {
  try {
    return { ok: f() };
  } catch (e) {
    if (!(e instanceof Error)) throw e;
    return { error: e instanceof CoreError ? `${e.code}: ${e.message}` : e.message };
  }
}

function sameChanges(a: readonly Change[], b: readonly Change[]): boolean {
  return (
    a.length === b.length &&
    a.every((x, i) => {
      const y = b[i] as Change;
      return (
        x.tbl === y.tbl &&
        sameBytes(x.pk, y.pk) &&
        x.col === y.col &&
        sameValue(x.val, y.val) &&
        x.colVersion === y.colVersion &&
        x.dbVersion === y.dbVersion &&
        sameBytes(x.siteId, y.siteId) &&
        x.cl === y.cl &&
        x.seq === y.seq
      );
    })
  );
}

function check(raw: Uint8Array, nrows: number, version: 1 | 2, limits: PayloadDecodeLimits): void {
  const p = payloadOf(raw, nrows, version);
  const got = outcome(() => decodePayload(p, limits).changes);
  if (raw.length < nrows * MIN_ROW_BYTES) {
    // Refused by the header checks before any row is read.
    expect('error' in got ? got.error : '').toMatch(/^CORE_PAYLOAD_BAD_HEADER: /);
    return;
  }
  const want = outcome(() => referenceRows(raw, nrows, version === 1, limits));
  if ('ok' in want) {
    expect('ok' in got ? sameChanges(got.ok, want.ok) : got).toBe(true);
  } else {
    // The same failure: the site-id and trailing-bytes messages of payload.ts differ in detail
    // from the reference's, so those compare by their common text.
    expect('error' in got).toBe(true);
    const g = 'error' in got ? got.error : '';
    if (want.error.startsWith('site_id must be 16 bytes')) expect(g).toContain(want.error.split(' at ')[0]);
    else if (want.error.endsWith('bytes after the last row')) expect(g).toContain(want.error);
    else expect(g).toBe(want.error);
  }
}

const limitsArb: fc.Arbitrary<PayloadDecodeLimits> = fc.oneof(fc.constant({}), fc.record({ maxValueSize: fc.integer({ min: 0, max: 40 }), maxClock: fc.integer({ min: 0, max: 400 }) }));
/** Runs of rows of one table, one column and few keys (what the fast path takes), and random ones. */
const rowsArb = fc.oneof(
  fc.array(changeArb(), { minLength: 1, maxLength: 12 }),
  fc.tuple(changeArb(), fc.array(fc.record({ val: changeArb().map((c) => c.val), same: fc.boolean(), seq: fc.nat(300) }), { maxLength: 12 })).map(([c, rest]) => [
    c,
    ...rest.map((x) => ({ ...c, val: x.val, seq: x.seq, pk: x.same ? c.pk : Uint8Array.of(1, 9, x.seq & 255) })),
  ]),
);

describe('payload decoder fast path', () => {
  test('decodes as the checked readers alone: valid bodies, flipped bytes, cut bodies, small limits', () => {
    fc.assert(
      fc.property(rowsArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), fc.nat(), fc.constantFrom<1 | 2>(1, 2), limitsArb, (changes, flips, cut, version, limits) => {
        const raw = referenceBody(changes);
        check(raw, changes.length, version, limits);
        const mutated = raw.slice();
        for (const [at, v] of flips) mutated[at % mutated.length] = v;
        check(mutated, changes.length, version, limits);
        check(raw.subarray(0, cut % (raw.length + 1)), changes.length, version, limits);
      }),
      { numRuns: numRuns(1500), seed: fcSeed(777) },
    );
  });

  test('consecutive equal keys share one pk object, others do not', () => {
    const site = new Uint8Array(16).fill(3);
    const c: Change = { tbl: 't', pk: Uint8Array.of(1, 9, 1), col: 'a', val: 1n, colVersion: 1, dbVersion: 1, siteId: site, cl: 1, seq: 0 };
    const rows = [c, { ...c, seq: 1 }, { ...c, pk: Uint8Array.of(1, 9, 2), seq: 2 }, { ...c, seq: 3 }];
    const got = decodePayload(payloadOf(referenceBody(rows), rows.length, 2)).changes;
    expect(got.map((x) => Array.from(x.pk))).toEqual(rows.map((x) => Array.from(x.pk)));
    expect(got[0]?.pk).toBe(got[1]?.pk);
    expect(got[1]?.pk).not.toBe(got[3]?.pk);
  });
});

/**
 * Fuzz of every sync request parser (issue 9): URL routing (`parseSyncRoute`), bounded body
 * reading (`readBody`), JSON bodies (`parseJsonObject`), the fields of API calls (`windowOf`,
 * `uint`, `decodeBlob`, `chunkFieldsOf`, `normaliseSiteId`), and whole requests through the real
 * handler. Every input is either accepted or refused with a stable SyncError code — never a crash
 * or a 500 — and a refused upload leaves the central database unchanged (no partial apply).
 *
 * CI: ~9,000 inputs with fixed seeds (the payload decoder and apply are fuzzed in
 * packages/core/src/codec/payload.fuzz.test.ts). Long mode: FC_NUM_RUNS=1000000 (split over the
 * properties), FC_SEED=<n> to explore.
 */
import { createServer, request as httpRequest } from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { encodePayload } from '@offsync/core';
import type { SyncEngine } from '@offsync/core';
import { openSyncDatabase } from '@offsync/core/sqlite';
import {
  ARTIFACT_PATH_PREFIX,
  chunkFieldsOf,
  decodeBlob,
  uint,
  windowOf,
  parseJsonObject,
  readBody,
  parseSyncRoute,
  requestTarget,
  SyncError,
  SyncErrorCode,
  normaliseSiteId,
} from '../src/domains/sync/index.ts';
import { silentLogger, createRouter } from '../src/index.ts';
import { listenTestServer } from './sync-fixtures/server.ts';
import type { TestServer } from './sync-fixtures/server.ts';
import { insertTodos, newDevice, ownPayload, siteHex } from './sync-fixtures/devices.ts';

const STABLE = new Set<string>(Object.values(SyncErrorCode));

function runs(base: number, share: number): number {
  const env = Number(process.env['FC_NUM_RUNS']);
  return Number.isFinite(env) && env > 0 ? Math.max(Math.ceil(env * share), base) : base;
}
function seed(fixed: number): number {
  const env = Number(process.env['FC_SEED']);
  return Number.isSafeInteger(env) ? (env + fixed) | 0 : fixed;
}

/** Runs `fn`; anything thrown must be a SyncError with a stable code (optionally one of `codes`). */
function stable<T>(fn: () => T, codes?: readonly string[]): T | SyncError {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof SyncError)) throw e;
    expect(STABLE.has(e.code)).toBe(true);
    if (codes !== undefined) expect(codes).toContain(e.code);
    return e;
  }
}

// ---- URLs ----------------------------------------------------------------------------------------

const SITE = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
const segmentArb = fc.oneof(
  fc.constantFrom(SITE, SITE.toUpperCase(), 'upload', 'apply', 'check', 'status', 'databases', 'notifications', 'tokens', 'testdb.sqlite', 'db.sqlite3', 'x.db'),
  fc.constantFrom('0', '1', '999999999999999', '9999999999999999', '-1', '1e3', '', '%', '%zz', '%2F', '%00', '..', '.', '\u00e9', '😀', '_artifacts'),
  fc.stringMatching(/^[0-9a-f]{0,40}$/),
  fc.string({ maxLength: 12 }),
);
const pathArb = fc
  .tuple(
    fc.constantFrom('/v1/cloudsync/', '/v2/cloudsync/', '/v2/cloudsync/databases/', ARTIFACT_PATH_PREFIX, '/v3/cloudsync/', '/', '/v2/cloudsyncx/', '/graphql'),
    fc.array(segmentArb, { maxLength: 8 }),
    fc.boolean(),
  )
  .map(([prefix, segs, slash]) => prefix + segs.map((s) => (/[/?#]/.test(s) ? encodeURIComponent(s) : s)).join('/') + (slash ? '/' : ''));
const queryArb = fc.oneof(fc.constant(''), fc.constantFrom('database=other', 'database=', 'database=%zz', 'x=1&database=a&database=b'), fc.string({ maxLength: 20 }));

describe('parseSyncRoute', () => {
  test('never throws; routes are well-formed', () => {
    fc.assert(
      fc.property(pathArb, queryArb, (path, query) => {
        const route = parseSyncRoute(path, new URLSearchParams(query));
        const isSync = path.startsWith('/v1/cloudsync/') || path.startsWith('/v2/cloudsync/');
        expect(route === undefined).toBe(!isSync);
        if (route === undefined) return;
        const r = route!;
        expect(['api', 'pushTokens', 'artifact', 'unknown']).toContain(r.kind);
        for (const m of r.methods) expect(['GET', 'POST', 'PUT']).toContain(m);
        if (r.kind === 'api') {
          expect(['G1', 'G2a', 'G2b']).toContain(r.family);
          expect(['upload', 'apply', 'check', 'status']).toContain(r.action);
          expect(typeof r.site).toBe('string');
          expect(typeof r.databaseId).toBe('string');
          if (r.g1Cursor !== undefined) {
            expect(Number.isSafeInteger(r.g1Cursor.dbVersion) && r.g1Cursor.dbVersion >= 0).toBe(true);
            expect(Number.isSafeInteger(r.g1Cursor.seq) && r.g1Cursor.seq >= 0).toBe(true);
          }
        }
        if (r.kind === 'artifact') expect(r.token.includes('/') || r.token === '').toBe(false);
      }),
      { seed: seed(101), numRuns: runs(3000, 0.2) },
    );
  });
});

describe('requestTarget', () => {
  test('never throws; an origin-form target keeps its path, `//` included', () => {
    fc.assert(
      fc.property(fc.oneof(pathArb, fc.string({ maxLength: 30 }), fc.constantFrom('//', '//evil.example/x', '///v2/cloudsync/a', '/a?b=%zz', 'http://h/v2/cloudsync/x', '*', '')), queryArb, (path, query) => {
        const raw = query === '' ? path : `${path}?${query}`;
        const t = requestTarget(raw);
        if (raw.startsWith('/')) {
          expect(t).toBeDefined();
          expect(t!.pathname.startsWith('/')).toBe(true);
          if (!/[\\\s#?%."<>`{}\u0000-\u001f\u007f-\uffff]/.test(path)) expect(t!.pathname).toBe(path);
        }
        if (t !== undefined) parseSyncRoute(t.pathname, t.query);
      }),
      { seed: seed(102), numRuns: runs(1000, 0.05) },
    );
    expect(requestTarget('//')?.pathname).toBe('//');
    expect(requestTarget('//evil.example/v2/cloudsync/x')?.pathname).toBe('//evil.example/v2/cloudsync/x');
    expect(requestTarget('http://h:1/v2/cloudsync/x?database=d')?.query.get('database')).toBe('d');
    expect(requestTarget(undefined)?.pathname).toBe('/');
  });
});

// ---- Bodies --------------------------------------------------------------------------------------

/** A fake request: a stream with headers, fed in chunks on the next ticks. */
function fakeRequest(chunks: Uint8Array[], contentLength: string | undefined): IncomingMessage {
  const s = new PassThrough();
  (s as unknown as { headers: Record<string, string> }).headers = contentLength === undefined ? {} : { 'content-length': contentLength };
  void (async () => {
    for (const c of chunks) {
      await new Promise((r) => setImmediate(r));
      s.write(c);
    }
    s.end();
  })();
  return s as unknown as IncomingMessage;
}

describe('readBody', () => {
  test('returns exactly the body within the limit, else payload_too_large; honest or lying Content-Length', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 6 }),
        fc.integer({ min: 0, max: 1200 }),
        fc.oneof(fc.constant('honest'), fc.constant(undefined), fc.constantFrom('0', '-1', 'abc', '1e9', '', ' 12 ', '99999999999999999999'), fc.nat({ max: 3000 }).map(String)),
        async (chunks, limit, cl) => {
          const total = chunks.reduce((n, c) => n + c.length, 0);
          const header = cl === 'honest' ? String(total) : cl;
          const declared = Number(header ?? Number.NaN);
          let got: Buffer | SyncError;
          try {
            got = await readBody(fakeRequest(chunks, header), limit);
          } catch (e) {
            if (!(e instanceof SyncError)) throw e;
            got = e;
          }
          if ((Number.isFinite(declared) && declared > limit) || total > limit) {
            expect(got).toBeInstanceOf(SyncError);
            expect((got as SyncError).code).toBe('payload_too_large');
          } else {
            expect(Buffer.isBuffer(got)).toBe(true);
            expect(Buffer.compare(got as Buffer, Buffer.concat(chunks))).toBe(0);
          }
        },
      ),
      { seed: seed(202), numRuns: runs(500, 0.05) },
    );
  });
});

const jsonTextArb = fc.oneof(
  fc.json({ maxDepth: 4 }),
  fc.string({ maxLength: 60 }),
  fc.constantFrom('', ' ', 'null', '[]', '{}', '{"a":1}', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}', '\ufeff{}', '{"a":1}{"b":2}', '{"a":"\\ud800"}', '1e999', '-0'),
  fc.nat({ max: 100_000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
  fc.nat({ max: 50_000 }).map((n) => '{"a":'.repeat(n) + '1' + '}'.repeat(n)),
);

describe('parseJsonObject', () => {
  test('a plain object or invalid_request', () => {
    fc.assert(
      fc.property(fc.oneof(jsonTextArb.map((t) => Buffer.from(t, 'utf8')), fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b))), (buf) => {
        const r = stable(() => parseJsonObject(buf), ['invalid_request']);
        if (!(r instanceof SyncError)) {
          expect(typeof r).toBe('object');
          expect(r).not.toBeNull();
          expect(Array.isArray(r)).toBe(false);
        }
      }),
      { seed: seed(303), numRuns: runs(2000, 0.15) },
    );
  });
});

// ---- Fields of API calls -------------------------------------------------------------------------

const numberLike = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -0, 1, -1, 1.5, 2 ** 48, 2 ** 53 - 1, 2 ** 53, 2 ** 64, Number.MAX_VALUE, Infinity, -Infinity),
  fc.string({ maxLength: 5 }),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.array(fc.nat(), { maxLength: 2 }),
  fc.object({ maxDepth: 1 }),
);
const base64Arb = fc.oneof(
  fc.uint8Array({ maxLength: 120 }).map((b) => Buffer.from(b).toString('base64')),
  fc.uint8Array({ maxLength: 30 }).map((b) => Buffer.from(b).toString('base64url')),
  fc.string({ maxLength: 40 }),
  fc.constantFrom('', '====', 'A===', 'AA==', 'AAA=', 'AAAA', 'A', '!!!!', 'AA=A'),
);

describe('API call fields', () => {
  test('windowOf, uint, decodeBlob, chunkFieldsOf and normaliseSiteId: valid values or stable codes', () => {
    fc.assert(
      fc.property(
        fc.record({ dbVersionMin: numberLike, dbVersionMax: numberLike, batchId: fc.oneof(numberLike, fc.string({ maxLength: 80 })), chunkIndex: numberLike, isFinal: numberLike }, { requiredKeys: [] }),
        fc.oneof(base64Arb, numberLike),
        fc.nat({ max: 100 }),
        fc.oneof(fc.stringMatching(/^[0-9a-fA-F]{30,34}$/), fc.string({ maxLength: 40 })),
        (body, blob, maxBytes, site) => {
          const w = stable(() => windowOf(body), ['invalid_request']);
          if (w !== undefined && !(w instanceof SyncError)) {
            expect(Number.isSafeInteger(w.dbVersionMin) && Number.isSafeInteger(w.dbVersionMax)).toBe(true);
            expect(0 <= w.dbVersionMin && w.dbVersionMin <= w.dbVersionMax).toBe(true);
          }
          const u = uint(body.dbVersionMin);
          if (u !== undefined) expect(Number.isSafeInteger(u) && u >= 0).toBe(true);
          const b = stable(() => decodeBlob(blob, maxBytes), ['invalid_payload', 'payload_too_large']);
          if (b instanceof Uint8Array) {
            expect(b.length).toBeLessThanOrEqual(maxBytes + 2);
            // Every base64 character counts (non-canonical padding bits are tolerated, as by most decoders).
            const text = blob as string;
            expect(b.length).toBe((text.length / 4) * 3 - (text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0));
            expect(Buffer.from(b).toString('base64').slice(0, -4)).toBe(text.slice(0, -4));
          }
          const c = stable(() => chunkFieldsOf(body), ['invalid_request']);
          if (c !== undefined && !(c instanceof SyncError)) expect(typeof c.batchId === 'string' && Number.isSafeInteger(c.index) && typeof c.final === 'boolean').toBe(true);
          const s = stable(() => normaliseSiteId(site), ['invalid_site_id']);
          if (typeof s === 'string') expect(s).toMatch(/^[0-9a-f]{32}$/);
        },
      ),
      { seed: seed(404), numRuns: runs(2000, 0.15) },
    );
  });
});

// ---- Whole requests through the handler ----------------------------------------------------------

let t: TestServer & { origin: string };
const DB = 'fuzzdb';
beforeAll(async () => {
  t = await listenTestServer({ databases: [{ id: DB }], http: { maxUploadBytes: 64 * 1024, maxJsonBodyBytes: 8192, maxInlineBodyBytes: 96 * 1024 } });
});
afterAll(async () => t.close());

/** Every table of the central database except the site-ownership claims (a first request may claim its site). */
function dump(e: SyncEngine): string {
  const names = e.driver.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'offsync_site_owners' ORDER BY name").all();
  return JSON.stringify(
    names.map((n) => [n['name'], e.driver.prepare(`SELECT * FROM "${String(n['name'])}"`).all().map((r) => JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v))).sort()]),
  );
}

describe('request targets through the app router', () => {
  test('`GET //` and other odd targets get an answer (they used to reject outside the router: an unhandled rejection)', async () => {
    const router = createRouter({ graphqlPath: '/graphql', graphql: () => undefined, handlers: [t.handler], logger: silentLogger });
    const server = createServer((req, res) => void router(req, res));
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const { port } = server.address() as AddressInfo;
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown): void => void unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      for (const target of ['//', '//x', '///v2/cloudsync/databases/fuzzdb/x/status', '/v2/cloudsync//']) {
        const status = await new Promise<number>((ok, fail) => {
          const req = httpRequest({ host: '127.0.0.1', port, path: target, method: 'GET' }, (res) => {
            res.resume();
            ok(res.statusCode ?? 0);
          });
          req.on('error', fail);
          req.end();
        });
        expect([target, status]).toEqual([target, 404]);
      }
      await new Promise((r) => setImmediate(r));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await new Promise((ok) => server.close(ok));
    }
  });
});

describe('requests through the sync handler', () => {
  test('no 500, only stable codes, and a refused upload changes nothing', async () => {
    const dev = newDevice();
    insertTodos(dev, 5, 'f');
    const good = ownPayload(dev)!;
    const foreign = encodePayload([{ tbl: 'nope', pk: Uint8Array.of(1, 9, 1), col: 'x', val: 1n, colVersion: 1, dbVersion: 1, siteId: dev.siteId, cl: 1, seq: 0 }], { schemaHash: 0n })!;
    const payloadArb = fc.oneof(
      fc.constantFrom(good, foreign),
      fc.tuple(fc.constantFrom(good, foreign), fc.nat(), fc.nat({ max: 255 })).map(([p, at, b]) => {
        const q = p.slice();
        q[at % q.length] = b;
        return q;
      }),
      fc.uint8Array({ maxLength: 64 }),
    );
    const bodyArb = fc.oneof(
      fc.record(
        {
          blob: payloadArb.map((p) => Buffer.from(p).toString('base64')),
          url: fc.oneof(fc.string({ maxLength: 20 }), fc.constant(`${t.origin}${ARTIFACT_PATH_PREFIX}forged`)),
          dbVersionMin: numberLike,
          dbVersionMax: numberLike,
          dbVersion: numberLike,
          seq: numberLike,
          cursor: numberLike,
          maxChunks: numberLike,
          batchId: fc.oneof(fc.constant('b1'), fc.string({ maxLength: 5 })),
          chunkIndex: numberLike,
          isFinal: fc.boolean(),
          expoToken: fc.string({ maxLength: 10 }),
          deviceId: fc.string({ maxLength: 10 }),
          siteId: fc.constantFrom(SITE, 'zz'),
          platform: fc.constantFrom('ios', ''),
        },
        { requiredKeys: [] },
      ).map((o) => JSON.stringify(o)),
      jsonTextArb.filter((s) => s.length < 4000),
      payloadArb.map((p) => Buffer.from(p)),
    );
    const siteOf = fc.constantFrom(siteHex(dev), SITE, 'not-a-site', SITE.slice(1));
    const requestArb = fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'POST', 'DELETE', 'OPTIONS', 'PATCH'),
      path: fc.oneof(
        { weight: 3, arbitrary: fc.tuple(fc.constantFrom('/v2/cloudsync/databases/DB/SITE/', '/v2/cloudsync/DB.sqlite/SITE/', '/v1/cloudsync/DB.sqlite/SITE/'), fc.constantFrom('apply', 'check', 'status', 'upload'), siteOf).map(([p, a, s]) => p.replace('DB', DB).replace('SITE', s) + a) },
        { weight: 1, arbitrary: fc.tuple(siteOf, fc.constantFrom('0/0', '3/1', '999999999999999/1', 'x/1')).map(([s, c]) => `/v1/cloudsync/${DB}.sqlite/${s}/${c}/check`) },
        { weight: 1, arbitrary: fc.constantFrom(`/v2/cloudsync/databases/${DB}/notifications/tokens`, `${ARTIFACT_PATH_PREFIX}abc`, `${ARTIFACT_PATH_PREFIX}`, '/v2/cloudsync/databases/other/x/status') },
        { weight: 1, arbitrary: pathArb },
      ),
      auth: fc.constantFrom('Bearer TESTKEY123', 'Bearer TESTKEY123', 'Bearer wrong', 'Basic x', undefined),
      version: fc.constantFrom(undefined, '1.1.4', ''),
      caps: fc.constantFrom(undefined, 'check-chunks', 'check-status-response, check-chunks'),
      body: bodyArb,
    });
    const engine = (): SyncEngine => t.handler.service.databases.peek(DB) ?? openSyncDatabase(t.pathOf(DB));
    let ok = 0;
    let refusedUploads = 0;
    await fc.assert(
      fc.asyncProperty(requestArb, async (q) => {
        const headers: Record<string, string> = {};
        if (q.auth !== undefined) headers['authorization'] = q.auth;
        if (q.version !== undefined) headers['x-cloudsync-version'] = q.version;
        if (q.caps !== undefined) headers['x-cloudsync-capabilities'] = q.caps;
        const isUpload = q.method === 'POST' && /\/(apply|upload)$/.test(q.path);
        const before = isUpload ? dump(engine()) : '';
        const init: RequestInit = { method: q.method, headers };
        if (q.method !== 'GET' && q.method !== 'OPTIONS') init.body = typeof q.body === 'string' ? q.body : new Uint8Array(q.body);
        const r = await fetch(`${t.origin}${q.path}`, init);
        const text = await r.text();
        expect(r.status).toBeLessThan(500);
        let refused = r.status >= 400;
        if (r.status >= 400 && (r.headers.get('content-type') ?? '').startsWith('application/json')) {
          const code = (JSON.parse(text) as { errors: Array<{ code: string }> }).errors[0]?.code;
          expect(STABLE.has(code ?? '')).toBe(true);
        }
        if (r.status === 200 && text.startsWith('{')) {
          const failures = (JSON.parse(text) as { failures?: { apply?: { code: string } } }).failures;
          if (failures?.apply !== undefined) {
            refused = true;
            expect(STABLE.has(failures.apply.code)).toBe(true);
          }
        }
        if (isUpload && refused) {
          refusedUploads++;
          expect(dump(engine())).toBe(before);
        }
        if (r.status < 400) ok++;
      }),
      { seed: seed(505), numRuns: runs(1500, 0.1) },
    );
    expect(ok).toBeGreaterThan(100);
    expect(refusedUploads).toBeGreaterThan(100);
  });
});

/**
 * Operating OffSync (issue 13, points 1–3; docs/CONTROL-PLANE.md "Operating"): `/healthz`,
 * `/readyz` (ready, not ready, draining) and graceful shutdown; Prometheus `/metrics` after real
 * G3 syncs through the app (requests, bytes and changes up/down, merge and download histograms,
 * rejected changes, refusals, active devices, live subscribers, pending artifact bytes,
 * event-loop lag) and its bearer token; the structured request/sync log lines of the production
 * (pino) logger — one `warn` line with its code and no secret for a refused sync request — and
 * `X-Request-Id` propagation.
 */
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  createApp,
  ConfigError,
  createPrismaClient,
  silentLogger,
  loadObservabilityConfig,
  createHealth,
  createLogger,
  prettyLine,
  createRedisPubSub,
} from '../src/index.ts';
import type { AppObservabilityOptions, HttpHandler, RedisPubSub } from '../src/index.ts';
import { createAccessToken, G3, http, serveApp, setupDatabase, TestDevice } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';
import { createTestDeps } from './helpers.ts';

interface LogLine { level: string; msg: string; [k: string]: unknown }

interface ObservedApp extends RunningApp {
  lines: string[];
  entries(): LogLine[];
}

/** The real app with the production (pino) logger writing into `lines`. */
async function start(options: { observability?: AppObservabilityOptions; httpHandlers?: HttpHandler[] } = {}): Promise<ObservedApp> {
  const { deps, dataDir, cleanup } = await createTestDeps('sqlite');
  const lines: string[] = [];
  const logger = createLogger({ level: 'debug', destination: { write: (line: string) => lines.push(line) } });
  const app = createApp({ ...deps, logger, sync: { cacheTtlMs: 0 }, ...options, observability: { accessLog: logger, ...options.observability } });
  return { ...(await serveApp(app, dataDir, cleanup, { gqlOverHttp: true })), lines, entries: () => lines.map((l) => JSON.parse(l) as LogLine) };
}

/** The value of one sample of a Prometheus text exposition, or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

const get = (url: string, headers: Record<string, string> = {}) => fetch(url, { headers });

describe('health and readiness', () => {
  let t: ObservedApp;
  beforeAll(async () => {
    t = await start();
  });
  afterAll(async () => t.dispose());

  test('/healthz answers ok; /readyz is ready with every check ok', async () => {
    const h = await get(`${t.origin}/healthz`);
    expect(h.status).toBe(200);
    expect(await h.json()).toEqual({ status: 'ok' });
    const r = await get(`${t.origin}/readyz`);
    expect(r.status).toBe(200);
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect(await r.json()).toEqual({ status: 'ready', checks: { controlPlane: 'ok', migrations: 'ok' } });
    expect((await fetch(`${t.origin}/readyz`, { method: 'POST' })).status).toBe(405);
  });

  test('a migration missing from the control plane makes /readyz 503 pending_migrations, logged once, until it is back', async () => {
    const rows = await t.app.services.deps.prisma.$queryRawUnsafe<{ name: string; applied_at: string }[]>('SELECT name, applied_at FROM _offsync_migrations ORDER BY name DESC LIMIT 1');
    const last = rows[0];
    if (last === undefined) throw new Error('no migrations recorded');
    await t.app.services.deps.prisma.$executeRawUnsafe('DELETE FROM _offsync_migrations WHERE name = ?', last.name);
    try {
      for (let i = 0; i < 2; i++) {
        const r = await get(`${t.origin}/readyz`);
        expect(r.status).toBe(503);
        expect(await r.json()).toEqual({ status: 'not_ready', checks: { controlPlane: 'ok', migrations: 'pending_migrations' } });
      }
      const warns = t.entries().filter((e) => e.msg === 'readiness: check failing');
      expect(warns).toHaveLength(1);
      expect(warns[0]).toMatchObject({ level: 'warn', check: 'migrations', code: 'pending_migrations' });
    } finally {
      await t.app.services.deps.prisma.$executeRawUnsafe('INSERT INTO _offsync_migrations (name, applied_at) VALUES (?, ?)', last.name, last.applied_at);
    }
    expect((await get(`${t.origin}/readyz`)).status).toBe(200);
    expect(t.entries().filter((e) => e.msg === 'readiness: check recovered')).toHaveLength(1);
  });

  test('draining: /readyz answers 503 draining while /healthz stays ok', async () => {
    const d = await start();
    try {
      d.app.health.startDraining();
      const r = await get(`${d.origin}/readyz`);
      expect(r.status).toBe(503);
      expect(await r.json()).toEqual({ status: 'draining', checks: {} });
      expect((await get(`${d.origin}/healthz`)).status).toBe(200);
    } finally {
      await d.dispose();
    }
  });

  test('an unreachable control plane, a failing and a hanging extra check make the server not ready', async () => {
    const { deps, cleanup } = await createTestDeps('sqlite');
    const prisma = createPrismaClient({ provider: 'postgresql', url: 'postgresql://postgres@127.0.0.1:1/nothing', schema: null });
    // The client's first query loads its engine (slow on a busy machine): out of the timed checks.
    await expect(prisma.$queryRawUnsafe('SELECT 1')).rejects.toThrow();
    const app = createApp({
      ...deps,
      prisma,
      provider: 'postgresql',
      observability: {
        readinessTimeoutMs: 1000,
        readinessChecks: [
          { name: 'redis', check: () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:6390')) },
          { name: 'hangs', check: () => new Promise<void>(() => {}) },
        ],
      },
    });
    try {
      const r = await app.health.readiness();
      expect(r).toEqual({ ready: false, status: 'not_ready', checks: { controlPlane: 'unreachable', migrations: 'unreachable', redis: 'unreachable', hangs: 'timeout' } });
    } finally {
      await app.dispose();
      await cleanup();
    }
  });

  test('Redis readiness (REDIS_URL): PING answers while connected, the check fails once the connection is gone', async () => {
    const url = process.env['TEST_REDIS_URL'] || 'redis://127.0.0.1:6379';
    let redis: RedisPubSub;
    try {
      redis = await createRedisPubSub({ url, connectTimeoutMs: 2000, onError: () => {} });
    } catch (e) {
      // No Redis on this machine: the server refuses to start instead (main.ts), nothing to probe.
      expect(String(e)).toMatch(/cannot connect to Redis/);
      return;
    }
    const ping = redis.ping;
    if (ping === undefined) throw new Error('RedisPubSub.ping missing');
    const health = createHealth({ checks: [{ name: 'redis', check: ping }], logger: silentLogger });
    expect(await health.readiness()).toEqual({ ready: true, status: 'ready', checks: { redis: 'ok' } });
    await redis.close();
    expect(await health.readiness()).toEqual({ ready: false, status: 'not_ready', checks: { redis: 'unreachable' } });
  });

  test('shutdown drains: requests in flight finish, then the server closes', async () => {
    let entered!: () => void;
    let release!: () => void;
    const inFlight = new Promise<void>((r) => { entered = r; });
    const released = new Promise<void>((r) => { release = r; });
    const slow: HttpHandler = async (req, res) => {
      if (req.url !== '/slow') return false;
      entered();
      await released;
      res.writeHead(200, { 'content-type': 'text/plain' }).end('done');
      return true;
    };
    const d = await start({ httpHandlers: [slow] });
    try {
      const response = fetch(`${d.origin}/slow`);
      await inFlight;
      const stopping = d.app.shutdown({ graceMs: 20_000 });
      expect(d.app.health.draining).toBe(true);
      expect(await d.app.health.readiness()).toMatchObject({ ready: false, status: 'draining' });
      release();
      const r = await response;
      expect(r.status).toBe(200);
      expect(await r.text()).toBe('done');
      await stopping;
      expect(d.app.server.listening).toBe(false);
    } finally {
      await d.dispose();
    }
  });
});

describe('metrics', () => {
  let t: ObservedApp;
  let db: { databaseId: string; apiKey: string };
  const TOKEN = 'metrics-token-0123456789abcdef';
  beforeAll(async () => {
    t = await start({ observability: { metricsToken: TOKEN } });
    db = await setupDatabase(t);
  });
  afterAll(async () => t.dispose());

  const scrape = async (): Promise<string> => {
    const r = await get(`${t.origin}/metrics`, { authorization: `Bearer ${TOKEN}` });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return r.text();
  };

  test('the token protects /metrics', async () => {
    const none = await get(`${t.origin}/metrics`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await none.json()).toMatchObject({ errors: [{ code: 'unauthorized' }] });
    expect((await get(`${t.origin}/metrics`, { authorization: `Bearer ${TOKEN}x` })).status).toBe(401);
    expect((await get(`${t.origin}/metrics`, { authorization: TOKEN })).status).toBe(401);
    expect((await get(`${t.origin}/metrics`, { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    // Without a token configured it is open.
    const open = await start();
    try {
      expect((await get(`${open.origin}/metrics`)).status).toBe(200);
    } finally {
      await open.dispose();
    }
  });

  test('after uploads, downloads, a rejection, a refusal, a pending upload and a live subscriber, every metric counts', async () => {
    const before = await scrape();
    expect(sample(before, 'offsync_sync_bytes_total', { direction: 'up' })).toBe(0);
    expect(sample(before, 'offsync_sync_changes_total', { direction: 'down' })).toBe(0);

    // Two API-key devices: one uploads, the other downloads.
    const writer = new TestDevice(t, db.databaseId, db.apiKey);
    writer.exec("INSERT INTO todos (id, user_id, title) VALUES ('a1', 'alice', 'one'), ('b1', 'bob', 'two')");
    expect((await writer.upload()).status).toBe(200);
    const reader = new TestDevice(t, db.databaseId, db.apiKey);
    expect((await reader.download()).status).toBe(200);
    expect(reader.rows()).toHaveLength(2);

    // A user under RLS forging a row of another user: rejected on its own (rejection log).
    await t.gql('mutation($d: ID!) { setRlsMode(databaseId: $d, mode: ENFORCE) { id } }', { d: db.databaseId });
    for (const [op, e] of [['SELECT', 'user_id = auth_userid()'], ['INSERT', 'NEW.user_id = auth_userid()']] as const) {
      await t.gql('mutation($d: ID!, $op: RlsOperation!, $e: String!) { setRlsPolicy(databaseId: $d, table: "todos", operation: $op, expression: $e) { table } }', { d: db.databaseId, op, e });
    }
    const alice = new TestDevice(t, db.databaseId, await createAccessToken(t, db.databaseId, 'alice'));
    alice.exec("INSERT INTO todos (id, user_id, title) VALUES ('x1', 'bob', 'forged')");
    const forged = await alice.upload();
    expect((forged.body['failures'] as { rejected?: { count: number } }).rejected?.count).toBe(1);

    // A refused request (no credential) and an upload waiting for its apply call.
    expect((await http('POST', reader.url('check'), null, { dbVersion: 0, seq: 0 })).status).toBe(401);
    const slot = await http('GET', reader.url('upload'), db.apiKey);
    const put = await fetch(slot.body['url'] as string, { method: 'PUT', body: new Uint8Array(1234) });
    expect(put.status).toBe(200);

    // A live `changes` subscriber over graphql-ws (replay done = registered).
    const wsUrl = `${t.origin.replace('http', 'ws')}/graphql`;
    const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${db.apiKey}`, databaseId: db.databaseId }, retryAttempts: 0, lazy: true });
    try {
      await new Promise<void>((resolve, reject) => {
        client.subscribe<{ changes: { final: boolean } }>(
          { query: 'subscription($db: ID!, $site: String!) { changes(databaseId: $db, siteId: $site) { final } }', variables: { db: db.databaseId, site: reader.site } },
          { next: (r) => { if (r.data?.changes.final === true) resolve(); else if (r.errors) reject(new Error(JSON.stringify(r.errors))); }, error: reject, complete: () => {} },
        );
      });

      const text = await scrape();
      expect(sample(text, 'offsync_http_requests_total', { route: 'sync_apply', method: 'POST', status: '200', generation: 'G3' })).toBe(2);
      expect(sample(text, 'offsync_http_requests_total', { route: 'sync_check', method: 'POST', status: '200', generation: 'G3' })).toBe(1);
      expect(sample(text, 'offsync_http_requests_total', { route: 'sync_check', status: '401', generation: 'G3' })).toBe(1);
      expect(sample(text, 'offsync_http_requests_total', { route: 'graphql', method: 'POST', status: '200', generation: 'none' })).toBeGreaterThan(0);
      expect(sample(text, 'offsync_http_request_duration_seconds_count', { route: 'sync_apply' })).toBe(2);
      expect(sample(text, 'offsync_sync_bytes_total', { direction: 'up' })).toBeGreaterThan(1234);
      expect(sample(text, 'offsync_sync_bytes_total', { direction: 'down' })).toBeGreaterThan(0);
      expect(sample(text, 'offsync_sync_changes_total', { direction: 'up' })).toBeGreaterThanOrEqual(6);
      expect(sample(text, 'offsync_sync_changes_total', { direction: 'down' })).toBeGreaterThanOrEqual(4);
      expect(sample(text, 'offsync_sync_merge_duration_seconds_count')).toBe(2);
      expect(sample(text, 'offsync_sync_merge_duration_seconds_sum')).toBeGreaterThan(0);
      expect(sample(text, 'offsync_sync_download_duration_seconds_count')).toBeGreaterThanOrEqual(1);
      expect(sample(text, 'offsync_sync_rejected_changes_total', { code: 'rls_denied' })).toBe(1);
      expect(sample(text, 'offsync_sync_refusals_total', { code: 'unauthorized' })).toBe(1);
      expect(sample(text, 'offsync_active_devices')).toBe(3);
      expect(sample(text, 'offsync_live_subscribers')).toBeGreaterThanOrEqual(1);
      expect(sample(text, 'offsync_pending_artifact_bytes')).toBe(1234);
      expect(sample(text, 'nodejs_eventloop_lag_seconds')).toBeGreaterThan(0);
      expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    } finally {
      await client.dispose();
    }
  });
});

describe('structured logs', () => {
  let t: ObservedApp;
  let db: { databaseId: string; apiKey: string };
  beforeAll(async () => {
    t = await start();
    db = await setupDatabase(t);
  });
  afterAll(async () => t.dispose());

  const syncLines = (): LogLine[] => t.entries().filter((e) => e.msg.startsWith('sync: '));

  test('a refused sync request is one warn line with its code, database, site, generation and no secret', async () => {
    const device = new TestDevice(t, db.databaseId, 'osk_this-is-a-wrong-secret-credential-0123456789');
    const n = t.lines.length;
    const r = await http('POST', device.url('check'), device.credential, { dbVersion: 0, seq: 0 });
    expect(r.status).toBe(401);
    const lines = t.lines.slice(n);
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0] ?? '{}') as LogLine;
    expect(line).toMatchObject({
      level: 'warn',
      msg: 'sync: check',
      status: 401,
      code: 'unauthorized',
      database: db.databaseId,
      site: device.site,
      generation: 'G3',
      route: 'sync_check',
      method: 'POST',
    });
    expect(typeof line['requestId']).toBe('string');
    expect(line['durationMs']).toBeGreaterThanOrEqual(0);
    expect(lines[0]).not.toContain('this-is-a-wrong-secret');

    // An artifact URL is a credential: its token never reaches the log.
    const token = 'v1.forged-artifact-token-that-is-a-secret';
    const a = await fetch(`${t.origin}/v2/cloudsync/_artifacts/${token}`);
    expect(a.status).toBeGreaterThanOrEqual(400);
    const artifact = syncLines().at(-1);
    expect(artifact).toMatchObject({ level: 'warn', msg: 'sync: artifact', path: '/v2/cloudsync/_artifacts/[redacted]', code: expect.any(String) });
    expect(JSON.stringify(t.lines)).not.toContain('forged-artifact-token');
  });

  test('a G3 apply refused inside its 200 SyncStatus is a warn line with its code; a good sync an info line with its facts', async () => {
    const device = new TestDevice(t, db.databaseId, db.apiKey);
    const n = t.lines.length;
    const bad = await http('POST', device.url('apply'), db.apiKey, { blob: Buffer.from('not a payload').toString('base64'), dbVersionMin: 1, dbVersionMax: 1 });
    expect(bad.status).toBe(200);
    const refused = (bad.body['failures'] as { apply: { code: string } }).apply.code;
    device.exec("INSERT INTO todos (id, user_id, title) VALUES ('l1', 'u', 'logged')");
    expect((await device.upload()).status).toBe(200);
    const lines = t.entries().slice(n).filter((e) => e.msg === 'sync: apply');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ level: 'warn', status: 200, code: refused, database: db.databaseId, site: device.site, generation: 'G3' });
    expect(lines[1]).toMatchObject({ level: 'info', status: 200, database: db.databaseId, site: device.site, generation: 'G3', auth: 'apiKey', changesUp: 2 });
    expect(lines[1]?.['bytesUp']).toBeGreaterThan(0);
    expect(lines[1]?.['code']).toBeUndefined();
    expect(JSON.stringify(t.lines)).not.toContain(db.apiKey);
  });

  test('X-Request-Id: a valid incoming id is echoed and logged; an invalid one is replaced', async () => {
    const device = new TestDevice(t, db.databaseId, db.apiKey);
    const r = await fetch(device.url('check'), { method: 'POST', headers: { ...G3, authorization: `Bearer ${db.apiKey}`, 'content-type': 'application/json', 'x-request-id': 'req-abc.123' }, body: JSON.stringify({ dbVersion: 0, seq: 0 }) });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-request-id')).toBe('req-abc.123');
    expect(t.entries().filter((e) => e.requestId === 'req-abc.123')).toEqual([expect.objectContaining({ msg: 'sync: check', status: 200, level: 'info' })]);

    const g = await fetch(`${t.origin}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'gql-7' }, body: JSON.stringify({ query: '{ __typename }' }) });
    expect(g.headers.get('x-request-id')).toBe('gql-7');
    expect(t.entries().filter((e) => e.requestId === 'gql-7')).toEqual([expect.objectContaining({ msg: 'http: request', route: 'graphql', status: 200 })]);

    const bad = await fetch(`${t.origin}/healthz`, { headers: { 'x-request-id': 'has spaces and "quotes"' } });
    expect(bad.headers.get('x-request-id')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(t.entries().find((e) => e.requestId === bad.headers.get('x-request-id'))).toMatchObject({ level: 'debug', route: 'healthz' });
  });
});

describe('the production logger', () => {
  test('JSON lines with level names; LOG_LEVEL filters; secrets are redacted by name and by shape', () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'warn', destination: { write: (l: string) => lines.push(l) } });
    logger.info('dropped');
    logger.debug('dropped too');
    logger.warn('kept', {
      authorization: 'Bearer abc.def',
      nested: { password: 'hunter2', apiKey: 'osk_123', ok: 'visible' },
      url: 'postgres://admin:s3cret-pw@db.internal:5432/app',
      level: 'not the level',
      error: new Error('token=leaky-value failed'),
    });
    expect(lines).toHaveLength(1);
    const o = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
    expect(o).toMatchObject({ level: 'warn', msg: 'kept', authorization: '[redacted]', nested: { password: '[redacted]', apiKey: '[redacted]', ok: 'visible' }, field_level: 'not the level' });
    expect(typeof o['time']).toBe('string');
    for (const secret of ['abc.def', 'hunter2', 'osk_123', 's3cret-pw', 'leaky-value']) expect(lines[0]).not.toContain(secret);
    expect(o['url']).toBe('postgres://admin:[redacted]@db.internal:5432/app');
  });

  test('the pretty format is one compact human line', () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', format: 'pretty', color: false, destination: { write: (l: string) => lines.push(l) } });
    logger.warn('sync: check', { status: 401, code: 'unauthorized', path: '/v2/cloudsync/databases/db_1/abc/check' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} WARN  sync: check status=401 code=unauthorized path=\/v2\/cloudsync\/databases\/db_1\/abc\/check\n$/);
    expect(prettyLine('not json')).toBe('not json');
  });

  test('loadObservabilityConfig: LOG_LEVEL, LOG_FORMAT (auto = pretty on a terminal), metrics token, drain timings', () => {
    expect(loadObservabilityConfig({}, false)).toEqual({ logLevel: 'info', logFormat: 'json', metricsToken: undefined, drainDelayMs: 0, shutdownGraceMs: 5000 });
    expect(loadObservabilityConfig({}, true).logFormat).toBe('pretty');
    expect(loadObservabilityConfig({ LOG_LEVEL: 'DEBUG', LOG_FORMAT: 'json', OFFSYNC_METRICS_TOKEN: 'a-long-enough-token', OFFSYNC_DRAIN_DELAY_MS: '3000' }, true))
      .toMatchObject({ logLevel: 'debug', logFormat: 'json', metricsToken: 'a-long-enough-token', drainDelayMs: 3000 });
    expect(() => loadObservabilityConfig({ LOG_LEVEL: 'loud' }, false)).toThrow(ConfigError);
    expect(() => loadObservabilityConfig({ OFFSYNC_METRICS_TOKEN: 'short' }, false)).toThrow(ConfigError);
    expect(() => loadObservabilityConfig({ OFFSYNC_SHUTDOWN_GRACE_MS: '-1' }, false)).toThrow(ConfigError);
  });
});

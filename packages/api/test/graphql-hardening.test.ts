/**
 * Issue 9, points 4, 5 and 11: GraphQL limits (aliases, tokens, size, introspection depth/lists,
 * introspection and suggestions only with the admin key), CORS allowlists without credentials,
 * logs without secrets, client mistakes as one-line warns and 500s with their cause.
 */
import type { AddressInfo } from 'node:net';
import { getIntrospectionQuery } from 'graphql';
import type { GraphQLError } from 'graphql';
import { createSchema, createYoga } from 'graphql-yoga';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createApp, graphqlLimitsPlugin } from '../src/index.ts';
import type { App, AppDeps, Logger, IntrospectionMode } from '../src/index.ts';
import { createTestDeps, siteId, stopEmbeddedPg } from './helpers.ts';

afterAll(stopEmbeddedPg);

type Entry = { level: 'info' | 'warn' | 'error'; message: string; fields: Record<string, unknown> | undefined };
type GqlResult = { data?: Record<string, unknown> | null; errors?: { message: string; extensions?: Record<string, unknown> }[] };

function capturingLogger(): { logger: Logger; entries: Entry[] } {
  const entries: Entry[] = [];
  const at = (level: Entry['level']) => (message: string, fields?: Record<string, unknown>) => entries.push({ level, message, fields });
  return { logger: { info: at('info'), warn: at('warn'), error: at('error') }, entries };
}

interface Harness {
  app: App;
  adminKey: string;
  entries: Entry[];
  url: string;
  dispose(): Promise<void>;
}

async function start(extra: Partial<AppDeps> = {}): Promise<Harness> {
  const { deps, cleanup } = await createTestDeps('sqlite');
  const { logger, entries } = capturingLogger();
  const app = createApp({ ...deps, logger, ...extra });
  const adminKey = await app.services.auth.ensureAdminKey();
  if (adminKey === null) throw new Error('expected a fresh admin key');
  await new Promise<void>((resolve) => app.server.listen(0, '127.0.0.1', () => resolve()));
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return { app, adminKey, entries, url, dispose: async () => { await app.dispose(); await cleanup(); } };
}

async function post(h: Harness, query: string, opts: { key?: string | null; variables?: Record<string, unknown> } = {}): Promise<{ status: number; text: string; body: GqlResult }> {
  const key = opts.key === undefined ? null : opts.key;
  const res = await fetch(`${h.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key === null ? {} : { authorization: `Bearer ${key}` }) },
    body: JSON.stringify({ query, variables: opts.variables ?? {} }),
  });
  const text = await res.text();
  return { status: res.status, text, body: JSON.parse(text) as GqlResult };
}

const codeOf = (r: { body: GqlResult }) => r.body.errors?.[0]?.extensions?.['code'];

describe('GraphQL hardening (default configuration)', () => {
  let h: Harness;
  beforeAll(async () => { h = await start(); });
  afterAll(async () => { await h.dispose(); });

  test('an alias bomb is refused quickly with TOO_MANY_ALIASES and a small reply, also through fragments', async () => {
    const bomb = `{ ${Array.from({ length: 800 }, (_, i) => `a${i}: __typename`).join(' ')} }`;
    const t0 = Date.now();
    const r = await post(h, bomb);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(codeOf(r)).toBe('TOO_MANY_ALIASES');
    expect(r.body.errors).toHaveLength(1);
    expect(r.text.length).toBeLessThan(1000);
    expect(r.body.data ?? null).toBeNull();

    const five = Array.from({ length: 5 }, (_, i) => `x${i}: __typename`).join(' ');
    const viaFragments = `query { ...B } fragment A on Query { ${five} } fragment B on Query { ...A ...A ...A ...A ...A }`;
    expect(codeOf(await post(h, viaFragments, { key: h.adminKey }))).toBe('TOO_MANY_ALIASES');
    // Spreads that fan out without fields (ending in a cycle) are bounded too.
    const fanOut = Array.from({ length: 30 }, (_, i) => `fragment F${i} on Query { ...F${i + 1} ...F${i + 1} }`).join(' ');
    const spreads = await post(h, `query { ...F0 } ${fanOut} fragment F30 on Query { ...F30 }`, { key: h.adminKey });
    expect(codeOf(spreads)).toBe('QUERY_TOO_COMPLEX');
    // A few aliases stay fine.
    const few = await post(h, '{ a: __typename b: __typename }');
    expect(few.body).toEqual({ data: { a: 'Query', b: 'Query' } });
  });

  test('oversized and token-heavy documents are refused before parsing (QUERY_TOO_LARGE, TOO_MANY_TOKENS)', async () => {
    const huge = `{ ${'a: __schema { types { fields { name } } } '.repeat(20_000)} }`; // ≈ 900 KB
    const big = await post(h, huge, { key: h.adminKey });
    expect(codeOf(big)).toBe('QUERY_TOO_LARGE');
    expect(big.text.length).toBeLessThan(1000);
    const tokens = await post(h, `{ ${'__typename '.repeat(4000)}}`);
    expect(codeOf(tokens)).toBe('TOO_MANY_TOKENS');
    expect(tokens.text.length).toBeLessThan(1000);
  });

  test('introspection is refused anonymously (INTROSPECTION_DISABLED) but allowed with the admin key', async () => {
    const full = getIntrospectionQuery({ descriptions: true, specifiedByUrl: true, directiveIsRepeatable: true, schemaDescription: true, inputValueDeprecation: true });
    const admin = await post(h, full, { key: h.adminKey });
    expect(admin.body.errors).toBeUndefined();
    expect((admin.body.data?.['__schema'] as { types: unknown[] }).types.length).toBeGreaterThan(20);
    // The same document right after, anonymously: no cached "valid" result is reused.
    for (const q of [full, '{ __schema { queryType { name } } }', '{ __type(name: "Query") { name } }', 'query { ...F } fragment F on Query { t: __type(name: "Database") { fields { name } } }']) {
      const anon = await post(h, q);
      expect(codeOf(anon)).toBe('INTROSPECTION_DISABLED');
      expect(anon.body.data ?? null).toBeNull();
    }
    const wrongKey = await post(h, '{ __schema { queryType { name } } }', { key: 'osa_not-a-real-admin-key' });
    expect(codeOf(wrongKey)).toBe('INTROSPECTION_DISABLED');
    // __typename is not introspection of the schema.
    expect((await post(h, '{ __typename }')).body).toEqual({ data: { __typename: 'Query' } });
  });

  test('field suggestions are absent for anonymous callers (validation and variables), present for the admin', async () => {
    const typo = '{ projectz { id } }';
    const anon = await post(h, typo);
    expect(anon.body.errors?.[0]?.message).toMatch(/Cannot query field "projectz"/);
    expect(anon.text).not.toMatch(/Did you mean/);
    const admin = await post(h, typo, { key: h.adminKey });
    expect(admin.body.errors?.[0]?.message).toMatch(/Did you mean "project" or "projects"\?/);

    const enumTypo = 'mutation($k: DatabaseKind!) { createProject(name: "x", kind: $k) { id } }';
    const anonVar = await post(h, enumTypo, { variables: { k: 'SQLIT' } });
    expect(anonVar.body.errors?.[0]?.message).toMatch(/SQLIT/);
    expect(anonVar.text).not.toMatch(/Did you mean/);
    expect((await post(h, enumTypo, { key: h.adminKey, variables: { k: 'SQLIT' } })).body.errors?.[0]?.message).toMatch(/Did you mean the enum value "SQLITE"/);
  });

  test('deep or repeated __schema queries are refused even with the admin key', async () => {
    const lists = await post(h, '{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }', { key: h.adminKey });
    expect(codeOf(lists)).toBe('QUERY_TOO_DEEP');
    const chain = `{ __type(name: "Query") { ${'ofType { '.repeat(25)} name ${'} '.repeat(25)} } }`;
    expect(codeOf(await post(h, chain, { key: h.adminKey }))).toBe('QUERY_TOO_DEEP');
    const twice = await post(h, '{ a: __schema { queryType { name } } b: __schema { queryType { name } } }', { key: h.adminKey });
    expect(codeOf(twice)).toBe('QUERY_TOO_COMPLEX');
    // The existing depth limit outside introspection keeps its code.
    const deep = await post(h, `{ projects { ${'databases { project { '.repeat(7)} id ${'} '.repeat(14)} } }`, { key: h.adminKey });
    expect(codeOf(deep)).toBe('QUERY_TOO_DEEP');
    expect(deep.body.errors?.[0]?.message).toMatch(/depth/i);
  });

  test('limits and introspection rules also hold on the graphql-ws path (viewer resolved at connection time)', () => {
    // ws/graphql-ws.ts runs every operation through yoga.getEnveloped({ ...ctx, viewer, params }).
    const check = (viewer: unknown, query: string) => {
      const env = h.app.yoga.getEnveloped({ viewer, params: { query } } as never);
      return env.validate(env.schema, env.parse(query)).map((e: GraphQLError) => e.extensions['code'] ?? e.message);
    };
    const admin = { kind: 'admin', adminKeyId: 'k' };
    expect(check(admin, `{ ${Array.from({ length: 50 }, (_, i) => `a${i}: __typename`).join(' ')} }`)).toEqual(['TOO_MANY_ALIASES']);
    expect(check(admin, '{ __schema { queryType { name } } }')).toEqual([]);
    // A device-credential connection (viewer null) may not introspect.
    expect(check(null, '{ __schema { queryType { name } } }')).toEqual(['INTROSPECTION_DISABLED']);
    const env = h.app.yoga.getEnveloped({ viewer: admin, params: {} } as never);
    expect(() => env.parse(`{ ${'__typename '.repeat(4000)}}`)).toThrow(expect.objectContaining({ extensions: expect.objectContaining({ code: 'TOO_MANY_TOKENS' }) }));
  });

  test('CORS: /graphql answers no allow-origin to a foreign origin; sync endpoints allow any origin, never with credentials', async () => {
    const preflight = await fetch(`${h.url}/graphql`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    expect(preflight.headers.get('access-control-allow-credentials')).toBeNull();
    const actual = await fetch(`${h.url}/graphql`, { method: 'POST', headers: { origin: 'https://evil.example', 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ __typename }' }) });
    expect(await actual.json()).toEqual({ data: { __typename: 'Query' } });
    expect(actual.headers.get('access-control-allow-origin')).toBeNull();
    expect(actual.headers.get('access-control-allow-credentials')).toBeNull();

    const syncPath = `/v2/cloudsync/databases/db_none/${siteId()}/check`;
    const sync = await fetch(`${h.url}${syncPath}`, { method: 'OPTIONS', headers: { origin: 'https://any-app.example', 'access-control-request-method': 'POST' } });
    expect(sync.status).toBe(204);
    expect(sync.headers.get('access-control-allow-origin')).toBe('*');
    expect(sync.headers.get('access-control-allow-headers')).toMatch(/authorization/);
    expect(sync.headers.get('access-control-allow-credentials')).toBeNull();
    const refused = await fetch(`${h.url}${syncPath}`, { method: 'POST', headers: { origin: 'https://any-app.example' } });
    expect(refused.status).toBeGreaterThanOrEqual(400);
    expect(refused.headers.get('access-control-allow-origin')).toBe('*');
  });

  test('a failing mutation with an inline secret leaves no trace of it in the logs; the refusal is one warn line', async () => {
    const secret = 'inline-jwt-secret-0123456789-abcdefghij-SHOULD-NOT-LEAK';
    const password = 'pg-password-SHOULD-NOT-LEAK';
    const expo = 'expo-token-SHOULD-NOT-LEAK';
    h.entries.length = 0;
    const jwt = await post(h, `mutation { configureJwtProvider(databaseId: "db_missing", method: HS256, secret: "${secret}") { configured } }`, { key: h.adminKey });
    expect(codeOf(jwt)).toBe('NOT_FOUND');
    const bare = await post(h, `mutation { setExpoAccessToken(databaseId: "db_missing", token: ${expo.replace(/-/g, '_')}) }`, { key: h.adminKey });
    expect(bare.body.errors?.length).toBeGreaterThan(0);
    const pg = await post(h, `mutation { configureConnection(databaseId: "db_missing", connection: { host: "h", port: 5432, database: "d", user: "u", password: "${password}" }) { id } }`, { key: h.adminKey });
    expect(pg.body.errors?.length).toBeGreaterThan(0);
    const viaVariables = await post(h, 'mutation($t: String!) { setExpoAccessToken(databaseId: "db_missing", token: $t) }', { key: h.adminKey, variables: { t: expo } });
    expect(codeOf(viaVariables)).toBe('NOT_FOUND');

    const logged = JSON.stringify(h.entries);
    for (const s of [secret, password, expo, expo.replace(/-/g, '_')]) expect(logged).not.toContain(s);
    const refusals = h.entries.filter((e) => e.message === 'graphql: request refused');
    expect(refusals.length).toBeGreaterThanOrEqual(2);
    for (const e of refusals) {
      expect(e.level).toBe('warn');
      expect(JSON.stringify(e)).not.toMatch(/\\n/);
    }
    expect(refusals[0]?.fields).toMatchObject({ code: 'NOT_FOUND', path: 'configureJwtProvider' });
    expect(String(refusals[0]?.fields?.['query'])).toMatch(/configureJwtProvider\(databaseId: "\[redacted\]",? method: "\[redacted\]",? secret: "\[redacted\]"\)/);
    expect(h.entries.some((e) => e.level === 'error')).toBe(false);
  });

  test('an unexpected resolver failure is one error entry with its cause and no secret', async () => {
    const token = 'expo-token-in-a-crashing-mutation-SHOULD-NOT-LEAK';
    const push = h.app.services.push as unknown as Record<string, unknown>;
    const original = push['setExpoAccessToken'];
    push['setExpoAccessToken'] = () => { throw new TypeError('push store exploded'); };
    h.entries.length = 0;
    try {
      const r = await post(h, `mutation { setExpoAccessToken(databaseId: "db_x", token: "${token}") }`, { key: h.adminKey });
      expect(r.body.errors?.[0]?.message).toBe('Unexpected error.');
    } finally {
      push['setExpoAccessToken'] = original;
    }
    const errors = h.entries.filter((e) => e.level === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ message: 'graphql: operation failed', fields: { path: 'setExpoAccessToken', error: { name: 'TypeError', message: 'push store exploded' } } });
    expect(String((errors[0]?.fields?.['error'] as { stack?: string }).stack)).toMatch(/graphql-hardening\.test\.ts/);
    expect(JSON.stringify(h.entries)).not.toContain(token);
  });

  test('a 500 from the sync endpoints logs its cause once', async () => {
    // The control plane fails while the request's database is resolved (data-plane/resolve.ts).
    const resolver = h.app.dataPlane.resolver as { resolve: unknown };
    const original = resolver.resolve;
    resolver.resolve = async () => { throw new RangeError('control plane exploded'); };
    h.entries.length = 0;
    try {
      const res = await fetch(`${h.url}/v2/cloudsync/databases/db_x/${siteId()}/status`, { headers: { authorization: 'Bearer osk_whatever' } });
      expect(res.status).toBe(500);
    } finally {
      resolver.resolve = original;
    }
    expect(h.entries).toHaveLength(1);
    expect(h.entries[0]).toMatchObject({ level: 'error', message: 'sync: request failed', fields: { error: { name: 'RangeError', message: 'control plane exploded' } } });
    expect(String((h.entries[0]?.fields?.['error'] as { stack?: string }).stack)).toMatch(/graphql-hardening\.test\.ts/);
  });
});

describe('GraphQL hardening (configured)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await start({
      introspection: 'all',
      cors: { graphql: ['https://admin.example.com'], sync: ['https://app.example.com'] },
      httpHandlers: [(req) => {
        if (req.url !== '/explode') return false;
        throw new Error('handler exploded');
      }],
    });
  });
  afterAll(async () => { await h.dispose(); });

  test('CORS allowlists: allowed origins are echoed with Vary, others get nothing, never credentials', async () => {
    const ok = await fetch(`${h.url}/graphql`, { method: 'OPTIONS', headers: { origin: 'https://admin.example.com', 'access-control-request-method': 'POST' } });
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://admin.example.com');
    expect(ok.headers.get('access-control-allow-headers')).toMatch(/authorization/);
    expect(ok.headers.get('vary')).toMatch(/Origin/);
    expect(ok.headers.get('access-control-allow-credentials')).toBeNull();
    const post1 = await fetch(`${h.url}/graphql`, { method: 'POST', headers: { origin: 'https://admin.example.com', 'content-type': 'application/json' }, body: '{"query":"{ __typename }"}' });
    expect(post1.headers.get('access-control-allow-origin')).toBe('https://admin.example.com');
    expect(post1.headers.get('access-control-allow-credentials')).toBeNull();
    const other = await fetch(`${h.url}/graphql`, { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();

    const syncPath = `/v2/cloudsync/databases/db_none/${siteId()}/check`;
    const app = await fetch(`${h.url}${syncPath}`, { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST' } });
    expect(app.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(app.headers.get('access-control-expose-headers')).toMatch(/x-cloudsync-ticket/);
    const evil = await fetch(`${h.url}${syncPath}`, { method: 'POST', headers: { origin: 'https://evil.example' } });
    expect(evil.status).toBeGreaterThanOrEqual(400);
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();
  });

  test('introspection: all lets anonymous callers introspect and see suggestions; limits still apply', async () => {
    expect((await post(h, '{ __schema { queryType { name } } }')).body).toEqual({ data: { __schema: { queryType: { name: 'Query' } } } });
    expect((await post(h, '{ projectz { id } }')).text).toMatch(/Did you mean/);
    expect(codeOf(await post(h, `{ ${Array.from({ length: 30 }, (_, i) => `a${i}: __typename`).join(' ')} }`))).toBe('TOO_MANY_ALIASES');
  });

  test('a router 500 logs one error entry with its cause', async () => {
    h.entries.length = 0;
    const res = await fetch(`${h.url}/explode`);
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ errors: [{ status: '500', code: 'internal', title: 'Internal server error' }] });
    expect(h.entries).toHaveLength(1);
    expect(h.entries[0]).toMatchObject({ level: 'error', message: 'http: request failed', fields: { method: 'GET', path: '/explode', error: { name: 'Error', message: 'handler exploded' } } });
    expect(String((h.entries[0]?.fields?.['error'] as { stack?: string }).stack)).toMatch(/graphql-hardening\.test\.ts/);
  });
});

describe('introspection modes of the limits plugin', () => {
  const yogaWith = (introspection: IntrospectionMode) => createYoga({
    schema: createSchema({ typeDefs: 'type Query { hello: String }', resolvers: { Query: { hello: () => 'hi' } } }),
    logging: false,
    parserAndValidationCache: { validationCache: false },
    plugins: [graphqlLimitsPlugin({ introspection, isAdminRequest: async (r) => r.headers.get('authorization') === 'Bearer admin', isAdminContext: () => undefined })],
  });
  const ask = async (yoga: ReturnType<typeof yogaWith>, admin: boolean) => {
    const res = await yoga.fetch('http://x/graphql', { method: 'POST', headers: { 'content-type': 'application/json', ...(admin ? { authorization: 'Bearer admin' } : {}) }, body: JSON.stringify({ query: '{ __type(name: "Query") { name } }' }) });
    return ((await res.json()) as GqlResult);
  };

  test('off refuses even the admin; admin allows only the admin', async () => {
    const off = yogaWith('off');
    expect((await ask(off, true)).errors?.[0]?.extensions?.['code']).toBe('INTROSPECTION_DISABLED');
    const admin = yogaWith('admin');
    expect((await ask(admin, true)).data).toEqual({ __type: { name: 'Query' } });
    expect((await ask(admin, false)).errors?.[0]).toMatchObject({ message: 'Introspection requires the admin key.', extensions: { code: 'INTROSPECTION_DISABLED' } });
  });
});

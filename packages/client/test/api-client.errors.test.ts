/**
 * ClientError codes (real server where the server decides, an injected fetch where only a broken
 * transport can), and the drift guards: every root field of the committed schema has an
 * operation, and the package entry exports every generated document and type.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { buildSchema, Kind, parse, visit } from 'graphql';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ClientError, createApiClient, CreateProjectDocument, operations, ProjectsDocument } from '../src/index.ts';
import type { TypedDocument } from '../src/index.ts';
import { startTestServer } from './api-client.server.ts';
import type { TestServer } from './api-client.server.ts';

async function rejection(p: Promise<unknown>): Promise<ClientError> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(ClientError);
  return e as ClientError;
}

const unknownField: TypedDocument<{ nope: string }, Record<string, never>> = { toString: () => 'query Nope { nope }' };

describe('errors from the real server', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer(); });
  afterAll(async () => { await server.close(); });

  test('a wrong token → CLIENT_UNAUTHENTICATED over HTTP and over graphql-ws', async () => {
    const bad = createApiClient({ url: server.url, token: 'osa_wrong', webSocketImpl: WebSocket });
    try {
      const http = await rejection(bad.projects());
      expect(http).toMatchObject({ code: 'CLIENT_UNAUTHENTICATED', serverCode: 'UNAUTHENTICATED', retryable: false });
      const ws = await rejection(bad.liveMetrics({ databaseId: 'db_x' }).next());
      expect(ws).toMatchObject({ code: 'CLIENT_UNAUTHENTICATED', status: 4403 });
    } finally {
      await bad.dispose();
    }
  });

  test('documents or variables the schema rejects → CLIENT_VALIDATION', async () => {
    const client = createApiClient({ url: server.url, token: server.adminKey, webSocketImpl: WebSocket, retryAttempts: 0 });
    try {
      const doc = await rejection(client.execute(unknownField));
      expect(doc).toMatchObject({ code: 'CLIENT_VALIDATION', serverCode: 'GRAPHQL_VALIDATION_FAILED' });
      // @ts-expect-error 'NOPE' is not a DatabaseKind
      const vars = await rejection(client.execute(CreateProjectDocument, { name: 'x', kind: 'NOPE' }));
      expect(vars.code).toBe('CLIENT_VALIDATION');
      const sub = await rejection(client.subscribe(unknownField).next());
      expect(sub.code).toBe('CLIENT_VALIDATION');
    } finally {
      await client.dispose();
    }
  });

  test('domain refusals → CLIENT_DOMAIN with the server code and partial data', async () => {
    const client = createApiClient({ url: server.url, token: server.adminKey });
    const e = await rejection(client.createProject({ name: '', kind: 'SQLITE' }));
    expect(e).toMatchObject({ code: 'CLIENT_DOMAIN', serverCode: 'VALIDATION_FAILED', data: null });
    expect(e.errors[0]?.extensions?.['code']).toBe('VALIDATION_FAILED');
    const missing = await rejection(client.project({ id: 'prj_missing' }));
    expect(missing).toMatchObject({ code: 'CLIENT_DOMAIN', serverCode: 'NOT_FOUND' });
  });

  test('nothing listening → CLIENT_NETWORK (retryable)', async () => {
    const port = Number(new URL(server.url).port);
    const dead = createApiClient({ url: `http://127.0.0.1:${port === 1 ? 2 : 1}/graphql`, token: 't' });
    const e = await rejection(dead.projects());
    expect(e).toMatchObject({ code: 'CLIENT_NETWORK', retryable: true });
    expect(e.cause).toBeDefined();
  });
});

describe('injected fetch', () => {
  function fake(respond: () => Response) {
    const calls: Array<{ url: string; init: RequestInit | undefined }> = [];
    const fetch = async (input: string | URL | Request, init?: RequestInit) => {
      calls.push({ url: String(input), init });
      return respond();
    };
    return { calls, client: createApiClient({ url: 'http://api.test/graphql', token: 'tok', fetch, headers: () => ({ 'x-trace': 't1' }) }) };
  }

  test('sends the bearer token, headers, operation name and variables; returns data', async () => {
    const { calls, client } = fake(() => Response.json({ data: { projects: [] } }));
    expect(await client.execute(ProjectsDocument)).toEqual({ projects: [] });
    const call = calls[0];
    expect(call?.url).toBe('http://api.test/graphql');
    expect(call?.init?.method).toBe('POST');
    expect(call?.init?.headers).toMatchObject({ authorization: 'Bearer tok', 'x-trace': 't1', 'content-type': 'application/json' });
    const body = JSON.parse(String(call?.init?.body)) as { operationName: string; variables: unknown; query: string };
    expect(body).toMatchObject({ operationName: 'Projects', variables: {} });
    expect(body.query).toContain('fragment ProjectFields');
  });

  const broken: ReadonlyArray<{ name: string; respond: () => Response; code: string }> = [
    { name: 'HTML 500', respond: () => new Response('<h1>oops</h1>', { status: 500 }), code: 'CLIENT_SERVER' },
    { name: 'gateway 502', respond: () => new Response('bad gateway', { status: 502 }), code: 'CLIENT_NETWORK' },
    { name: '401 without a body', respond: () => new Response('', { status: 401 }), code: 'CLIENT_UNAUTHENTICATED' },
    { name: 'masked error', respond: () => Response.json({ errors: [{ message: 'Unexpected error.', path: ['projects'] }], data: null }), code: 'CLIENT_SERVER' },
    { name: 'INTERNAL_SERVER_ERROR', respond: () => Response.json({ errors: [{ message: 'x', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] }), code: 'CLIENT_SERVER' },
    { name: 'no data, no errors', respond: () => Response.json({ data: null }), code: 'CLIENT_SERVER' },
    { name: 'JSON that is not GraphQL', respond: () => Response.json({ hello: 1 }), code: 'CLIENT_SERVER' },
  ];
  test.each(broken)('$name → $code', async ({ respond, code }) => {
    const { client } = fake(respond);
    expect((await rejection(client.projects())).code).toBe(code);
  });

  test('a fetch that throws → CLIENT_NETWORK with the cause', async () => {
    const cause = new TypeError('fetch failed');
    const client = createApiClient({ url: 'http://api.test/graphql', token: 't', fetch: () => Promise.reject(cause) });
    const e = await rejection(client.projects());
    expect(e).toMatchObject({ code: 'CLIENT_NETWORK', cause });
  });
});

describe('drift guards', () => {
  const require = createRequire(import.meta.url);
  const schemaSdl = readFileSync(require.resolve('@offsync/api/schema.graphql'), 'utf8');
  const operationsDir = new URL('../src/graphql/operations/', import.meta.url);

  test('every query, mutation and subscription of the committed schema has an operation', () => {
    const schema = buildSchema(schemaSdl);
    const used = new Set<string>();
    for (const { document } of Object.values(operations)) {
      const ast = parse(document.toString());
      for (const def of ast.definitions) {
        if (def.kind !== Kind.OPERATION_DEFINITION) continue;
        const root = def.operation === 'query' ? 'Query' : def.operation === 'mutation' ? 'Mutation' : 'Subscription';
        visit(def.selectionSet, { Field: (f) => { used.add(`${root}.${f.name.value}`); return false; } });
      }
    }
    const missing: string[] = [];
    for (const type of [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()]) {
      for (const field of Object.keys(type?.getFields() ?? {})) if (!used.has(`${type?.name}.${field}`)) missing.push(`${type?.name}.${field}`);
    }
    expect(missing, `add operations to ${operationsDir.pathname} and run npm run generate -w @offsync/client`).toEqual([]);
  });

  test('the package entry exports every generated document and type by name', () => {
    const generated = readFileSync(new URL('../src/generated/graphql.ts', import.meta.url), 'utf8');
    const index = readFileSync(new URL('../src/index.ts', import.meta.url), 'utf8');
    const names = [...generated.matchAll(/^export (?:type|const) (\w+)/gm)].map((m) => m[1] ?? '')
      .filter((n) => n !== 'Incremental' && !n.endsWith('FragmentDoc'));
    expect(names.length).toBeGreaterThan(50);
    expect(names.filter((n) => !new RegExp(`\\b${n}\\b`).test(index))).toEqual([]);
  });
});

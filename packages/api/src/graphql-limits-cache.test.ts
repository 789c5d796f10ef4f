/**
 * The limits plugin's validation cache (src/graphql-limits.ts): a repeated operation is validated
 * by graphql-js once per trust level, never answered with another trust level's result; refusals
 * are still logged on every request and suggestions still stripped for untrusted callers.
 */
import { getIntrospectionQuery } from 'graphql';
import type { GraphQLError, ValidationRule } from 'graphql';
import { createSchema, createYoga } from 'graphql-yoga';
import type { Plugin } from 'graphql-yoga';
import { describe, expect, test } from 'vitest';
import { graphqlLimitsPlugin } from './graphql-limits.ts';
import type { GraphQLLimits, IntrospectionMode } from './graphql-limits.ts';

type GqlResult = { data?: Record<string, unknown> | null; errors?: { message: string; extensions?: Record<string, unknown> }[] };

function harness(introspection: IntrospectionMode = 'admin', limits: GraphQLLimits = {}) {
  const validations: string[] = [];
  const refused: GraphQLError[] = [];
  // Runs once per graphql-js validation of a document (its source recorded), after the limits plugin.
  const counting: ValidationRule = (context) => {
    validations.push(context.getDocument().loc?.source.body ?? '?');
    return {};
  };
  const countingPlugin: Plugin = {
    onValidate({ addValidationRule }) {
      addValidationRule(counting);
    },
  };
  const yoga = createYoga({
    schema: createSchema({ typeDefs: 'type Query { hello: String, world(n: Int): String }', resolvers: { Query: { hello: () => 'hi', world: () => 'w' } } }),
    logging: false,
    // As in app.ts: Yoga's own validation cache is keyed without the caller.
    parserAndValidationCache: { validationCache: false },
    plugins: [
      graphqlLimitsPlugin({
        introspection,
        limits,
        isAdminRequest: async (r) => r.headers.get('authorization') === 'Bearer admin',
        isAdminContext: (context) => ('viewer' in context ? context['viewer'] === 'admin' : undefined),
        onRefused: (e) => refused.push(e),
      }),
      countingPlugin,
    ],
  });
  const ask = async (query: string, admin: boolean, operationName?: string): Promise<GqlResult> => {
    const res = await yoga.fetch('http://x/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(admin ? { authorization: 'Bearer admin' } : {}) },
      body: JSON.stringify({ query, ...(operationName === undefined ? {} : { operationName }) }),
    });
    return (await res.json()) as GqlResult;
  };
  return { yoga, ask, validations, refused };
}

const codes = (r: GqlResult): unknown[] => (r.errors ?? []).map((e) => e.extensions?.['code']);

describe('validation cache of the limits plugin', () => {
  test("Yoga's parser cache hands out the same DocumentNode for the same source (the cache's key)", () => {
    const { yoga } = harness();
    const a = yoga.getEnveloped({ viewer: null }).parse('{ hello }');
    const b = yoga.getEnveloped({ viewer: 'admin' }).parse('{ hello }');
    expect(b).toBe(a);
    expect(yoga.getEnveloped({}).parse('{ hello world }')).not.toBe(a);
  });

  test('a repeated operation is validated once per trust level', async () => {
    const h = harness();
    for (let i = 0; i < 3; i++) expect(await h.ask('{ hello }', false)).toEqual({ data: { hello: 'hi' } });
    expect(h.validations).toEqual(['{ hello }']);
    for (let i = 0; i < 3; i++) expect(await h.ask('{ hello }', true)).toEqual({ data: { hello: 'hi' } });
    expect(h.validations).toEqual(['{ hello }', '{ hello }']);
    // Another document is validated on its own.
    expect(await h.ask('{ world(n: 1) }', false)).toEqual({ data: { world: 'w' } });
    expect(await h.ask('{ world(n: 1) }', false)).toEqual({ data: { world: 'w' } });
    expect(h.validations).toEqual(['{ hello }', '{ hello }', '{ world(n: 1) }']);
    expect(h.refused).toEqual([]);
  });

  test('graphql-ws style contexts (viewer in the context) share the cache per trust level', () => {
    const h = harness();
    const run = (viewer: string | null): readonly GraphQLError[] => {
      const { parse, validate, schema } = h.yoga.getEnveloped({ viewer });
      return validate(schema, parse('{ hello }'));
    };
    expect(run(null)).toEqual([]);
    expect(run(null)).toEqual([]);
    expect(run('admin')).toEqual([]);
    expect(run('admin')).toEqual([]);
    expect(h.validations).toHaveLength(2);
  });

  test("an admin's introspection result never reaches an untrusted caller", async () => {
    const h = harness();
    const query = '{ __type(name: "Query") { name } }';
    expect(await h.ask(query, true)).toEqual({ data: { __type: { name: 'Query' } } });
    expect(await h.ask(query, true)).toEqual({ data: { __type: { name: 'Query' } } });
    expect(h.validations).toHaveLength(1);
    for (let i = 0; i < 2; i++) {
      const r = await h.ask(query, false);
      expect(r.data ?? null).toBeNull();
      expect(r.errors).toHaveLength(1);
      expect(r.errors?.[0]).toMatchObject({ message: 'Introspection requires the admin key.', extensions: { code: 'INTROSPECTION_DISABLED' } });
    }
    // The refusal never reached graphql-js, and was logged on each request.
    expect(h.validations).toHaveLength(1);
    expect(h.refused.map((e) => e.extensions['code'])).toEqual(['INTROSPECTION_DISABLED', 'INTROSPECTION_DISABLED']);
    // The full introspection query too, and the admin is still served afterwards.
    expect(codes(await h.ask(getIntrospectionQuery(), true))).toEqual([]);
    expect(codes(await h.ask(getIntrospectionQuery(), false))).toEqual(['INTROSPECTION_DISABLED']);
    expect(await h.ask(query, true)).toEqual({ data: { __type: { name: 'Query' } } });
  });

  test('the other way round: an untrusted refusal is not served to the admin', async () => {
    const h = harness();
    const query = '{ __schema { queryType { name } } }';
    expect(codes(await h.ask(query, false))).toEqual(['INTROSPECTION_DISABLED']);
    expect(await h.ask(query, true)).toEqual({ data: { __schema: { queryType: { name: 'Query' } } } });
    expect(h.refused).toHaveLength(1);
  });

  test('refused documents are logged once per refused operation on every request', async () => {
    const h = harness();
    const bomb = `{ ${Array.from({ length: 30 }, (_, i) => `a${i}: hello`).join(' ')} }`;
    const twoOps = `query A { ${Array.from({ length: 30 }, (_, i) => `a${i}: hello`).join(' ')} } query B { __type(name: "Query") { name } }`;
    for (let i = 0; i < 3; i++) expect(codes(await h.ask(bomb, i === 1))).toEqual(['TOO_MANY_ALIASES']);
    expect(h.refused.map((e) => e.extensions['code'])).toEqual(['TOO_MANY_ALIASES', 'TOO_MANY_ALIASES', 'TOO_MANY_ALIASES']);
    h.refused.length = 0;
    for (let i = 0; i < 2; i++) expect(codes(await h.ask(twoOps, false, 'A'))).toEqual(['TOO_MANY_ALIASES', 'INTROSPECTION_DISABLED']);
    expect(h.refused.map((e) => e.extensions['code'])).toEqual(['TOO_MANY_ALIASES', 'INTROSPECTION_DISABLED', 'TOO_MANY_ALIASES', 'INTROSPECTION_DISABLED']);
    expect(h.validations).toEqual([]);
  });

  test("graphql-armor's refusals (graphql-js rules, so cached results) are logged on every request", async () => {
    const h = harness('admin', { maxCost: 2 });
    const costly = '{ a: hello b: hello c: hello d: hello }';
    for (let i = 0; i < 2; i++) expect(codes(await h.ask(costly, false))).toEqual(['QUERY_TOO_COMPLEX']);
    expect(h.validations).toEqual([costly]);
    expect(h.refused.map((e) => e.extensions['code'])).toEqual(['QUERY_TOO_COMPLEX', 'QUERY_TOO_COMPLEX']);
  });

  test('suggestions are stripped for untrusted callers even after an admin got them from the same document', async () => {
    const h = harness();
    const typo = '{ helo }';
    const admin = await h.ask(typo, true);
    expect(admin.errors?.[0]?.message).toMatch(/Did you mean "hello"\?/);
    for (let i = 0; i < 2; i++) {
      const r = await h.ask(typo, false);
      expect(r.errors).toHaveLength(1);
      expect(r.errors?.[0]?.message).toBe('Cannot query field "helo" on type "Query".');
    }
    // And the admin still gets them after untrusted callers (their stripped copy is not cached).
    expect((await h.ask(typo, true)).errors?.[0]?.message).toMatch(/Did you mean "hello"\?/);
    expect(h.validations).toEqual([typo, typo]);
  });

  test('a validation rule that is new on every request runs on every request', async () => {
    let fresh = 0;
    const yoga = createYoga({
      schema: createSchema({ typeDefs: 'type Query { hello: String }', resolvers: { Query: { hello: () => 'hi' } } }),
      logging: false,
      parserAndValidationCache: { validationCache: false },
      plugins: [
        graphqlLimitsPlugin({ isAdminRequest: async () => false, isAdminContext: () => undefined }),
        { onValidate: ({ addValidationRule }) => addValidationRule(() => ((fresh++), {})) } satisfies Plugin,
      ],
    });
    for (let i = 0; i < 6; i++) {
      const res = await yoga.fetch('http://x/graphql', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ hello }' }) });
      expect(await res.json()).toEqual({ data: { hello: 'hi' } });
    }
    expect(fresh).toBe(6);
  });

  test("mode 'all' trusts everyone: one validation for all callers", async () => {
    const h = harness('all');
    expect(await h.ask('{ __type(name: "Query") { name } }', false)).toEqual({ data: { __type: { name: 'Query' } } });
    expect(await h.ask('{ __type(name: "Query") { name } }', true)).toEqual({ data: { __type: { name: 'Query' } } });
    expect(h.validations).toHaveLength(1);
  });
});

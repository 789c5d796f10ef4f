import { describe, expect, test } from 'vitest';
import { ConfigError, loadHttpSecurityConfig } from '../config.ts';
import { allowedOrigin, corsPolicy, normaliseOrigin, parseCorsOrigins } from './cors.ts';

const rest = { allowMethods: 'GET', allowHeaders: 'authorization', maxAgeSeconds: 600 };

describe('CORS allowlists', () => {
  test('origins are normalised; paths, credentials and other schemes are refused', () => {
    expect(normaliseOrigin('https://App.Example.com:443/')).toBe('https://app.example.com');
    expect(normaliseOrigin('http://localhost:5173')).toBe('http://localhost:5173');
    for (const bad of ['https://a.example/path', 'https://u:p@a.example', 'ftp://a.example', 'a.example', 'null']) expect(normaliseOrigin(bad)).toBeUndefined();
    expect(parseCorsOrigins(' https://a.example , http://localhost:3000 ')).toEqual(['https://a.example', 'http://localhost:3000']);
    expect(parseCorsOrigins('https://a.example,*')).toBe('*');
    expect(() => parseCorsOrigins('https://a.example/x')).toThrow(/https:\/\/a\.example\/x/);
  });

  test('only listed origins are allowed; * allows any', () => {
    const list = corsPolicy(['https://a.example'], rest);
    expect(allowedOrigin(list, 'https://a.example')).toBe('https://a.example');
    expect(allowedOrigin(list, 'https://b.example')).toBeUndefined();
    expect(allowedOrigin(list, undefined)).toBeUndefined();
    expect(allowedOrigin(corsPolicy([], rest), 'https://a.example')).toBeUndefined();
    expect(allowedOrigin(corsPolicy('*', rest), 'https://b.example')).toBe('*');
  });

  test('configuration: defaults, the sync override, introspection modes, errors', () => {
    expect(loadHttpSecurityConfig({})).toEqual({ graphqlCorsOrigins: undefined, syncCorsOrigins: undefined, graphqlIntrospection: 'admin' });
    expect(loadHttpSecurityConfig({ OFFSYNC_CORS_ORIGINS: 'https://admin.example', OFFSYNC_GRAPHQL_INTROSPECTION: 'OFF' })).toEqual({
      graphqlCorsOrigins: ['https://admin.example'], syncCorsOrigins: ['https://admin.example'], graphqlIntrospection: 'off',
    });
    expect(loadHttpSecurityConfig({ OFFSYNC_CORS_ORIGINS: 'https://admin.example', OFFSYNC_SYNC_CORS_ORIGINS: '*' }).syncCorsOrigins).toBe('*');
    expect(() => loadHttpSecurityConfig({ OFFSYNC_CORS_ORIGINS: 'admin.example' })).toThrow(ConfigError);
    expect(() => loadHttpSecurityConfig({ OFFSYNC_GRAPHQL_INTROSPECTION: 'anonymous' })).toThrow(/admin, all or off/);
  });
});

import { describe, expect, test } from 'vitest';
import { ApiError } from '../errors.ts';
import { describeError, yogaLogger } from './log-errors.ts';
import { REDACTED, redactMessage, redactPath, redactQuery, redactTokens, redactVariables } from './redact.ts';

const SECRET = 'hs256-secret-that-must-not-leak-0123456789';

describe('redactQuery', () => {
  test('replaces every literal argument value, keeps names, variables and structure, on one line', () => {
    const q = `mutation Configure($db: ID! = "db_default") {
      configureJwtProvider(databaseId: $db, method: HS256, secret: "${SECRET}") { configured }
      setExpoAccessToken(databaseId: "db_1", token: """${SECRET}""")
      configureConnection(databaseId: "db_1", connection: { host: "h", port: 5432, password: "${SECRET}", tls: true, extra: ["${SECRET}", 7] }) { id }
    }`;
    const out = redactQuery(q);
    expect(out).not.toContain(SECRET);
    expect(out).not.toContain('db_default');
    expect(out).not.toContain('5432');
    expect(out).not.toMatch(/\n/);
    expect(out).toContain('mutation Configure($db: ID! = "[redacted]")');
    // print() drops the commas of arguments it would wrap (they are optional in GraphQL).
    expect(out).toMatch(/configureJwtProvider\(databaseId: \$db,? method: "\[redacted\]",? secret: "\[redacted\]"\)/);
    expect(out).toContain('password: "[redacted]", tls: true');
    expect(out).toContain('{ configured }');
  });

  test('an unquoted secret (parsed as an enum value) is redacted too', () => {
    expect(redactQuery(`mutation { setExpoAccessToken(databaseId: "d", token: ${SECRET.replace(/-/g, '_')}) }`)).not.toContain(SECRET.replace(/-/g, '_'));
  });

  test('documents that do not parse are redacted token by token', () => {
    const broken = `mutation { configureJwtProvider(secret: "${SECRET}", method: HS256, bare: ${SECRET.replace(/-/g, '_')} { configured `;
    const out = redactQuery(broken);
    expect(out).not.toContain(SECRET);
    expect(out).not.toContain(SECRET.replace(/-/g, '_'));
    expect(out).toContain('configureJwtProvider(secret: "[redacted]"');
    // A lexing error (unterminated string) drops the rest.
    const unterminated = redactTokens(`mutation { setExpoAccessToken(token: "${SECRET}`);
    expect(unterminated).not.toContain(SECRET);
    expect(unterminated).toContain('setExpoAccessToken(token:');
  });

  test('long documents are cut', () => {
    expect(redactQuery(`{ ${'__typename '.repeat(1000)}}`, 100).length).toBeLessThanOrEqual(101);
  });
});

describe('redactVariables, redactMessage, redactPath', () => {
  test('variables keep their keys and shape, never their values', () => {
    expect(redactVariables({ token: SECRET, n: 5, ok: true, none: null, list: ['a', { password: SECRET }] })).toEqual({
      token: REDACTED, n: REDACTED, ok: true, none: null, list: [REDACTED, { password: REDACTED }],
    });
    expect(JSON.stringify(redactVariables(Array.from({ length: 50 }, () => SECRET)))).toContain('40 more');
  });

  test('messages lose quoted values, URL credentials and key=value secrets', () => {
    expect(redactMessage(`Variable "$t" got invalid value "${SECRET}"; Expected type "Int".`)).not.toContain(SECRET);
    expect(redactMessage(`Int cannot represent non-integer value: "${SECRET}"`)).not.toContain(SECRET);
    expect(redactMessage(`Expected value of type "Int!", found {password: "${SECRET}"}.`)).not.toContain(SECRET);
    const url = redactMessage(`connect failed: postgres://alice:${SECRET}@db.example:5432/app`);
    expect(url).toContain('postgres://alice:[redacted]@db.example');
    expect(url).not.toContain(SECRET);
    expect(redactMessage(`bad config password=${SECRET} secret: "${SECRET}" Bearer ${SECRET}`)).not.toContain(SECRET);
    expect(redactMessage('first line\n  second line')).toBe('first line second line');
  });

  test('paths lose query strings and artifact tokens', () => {
    expect(redactPath(`/v2/cloudsync/_artifacts/${SECRET}`)).toBe('/v2/cloudsync/_artifacts/[redacted]');
    expect(redactPath(`/v1/cloudsync/x?token=${SECRET}`)).toBe('/v1/cloudsync/x');
  });
});

describe('describeError and the yoga logger', () => {
  test('describeError: name, redacted message, code, stack frames once, cause chain', () => {
    const inner = Object.assign(new Error(`connect ECONNREFUSED postgres://u:${SECRET}@h`), { code: 'ECONNREFUSED' });
    const outer = new TypeError('lookup failed', { cause: inner });
    const d = describeError(outer);
    expect(d).toMatchObject({ name: 'TypeError', message: 'lookup failed', cause: { name: 'Error', code: 'ECONNREFUSED' } });
    expect(d.stack).toMatch(/redact\.test\.ts/);
    expect(d.stack).not.toMatch(/lookup failed/);
    expect(d.cause?.stack).toBeUndefined();
    expect(JSON.stringify(d)).not.toContain(SECRET);
    expect(describeError('plain')).toEqual({ name: 'string', message: 'plain' });
  });

  test('an ApiError from yoga is one warn line; other errors one error entry with the cause', () => {
    const entries: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
    const logger = yogaLogger({
      info: (message, fields) => entries.push({ level: 'info', message, ...(fields ? { fields } : {}) }),
      warn: (message, fields) => entries.push({ level: 'warn', message, ...(fields ? { fields } : {}) }),
      error: (message, fields) => entries.push({ level: 'error', message, ...(fields ? { fields } : {}) }),
    });
    const located = (original: Error) => Object.assign(new Error(original.message), { path: ['configureJwtProvider'], source: { body: `mutation { configureJwtProvider(secret: "${SECRET}") { configured } }` }, originalError: original, extensions: {} });
    logger.error(located(new ApiError('VALIDATION_FAILED', 'secret too short')));
    logger.error(located(new RangeError('boom')));
    logger.warn('multi\nline', SECRET.length);
    expect(entries.map((e) => [e.level, e.message])).toEqual([
      ['warn', 'graphql: request refused'],
      ['error', 'graphql: operation failed'],
      ['warn', `multi line ${SECRET.length}`],
    ]);
    expect(entries[0]?.fields).toMatchObject({ code: 'VALIDATION_FAILED', message: 'secret too short', path: 'configureJwtProvider' });
    expect(entries[1]?.fields).toMatchObject({ error: { name: 'RangeError', message: 'boom' } });
    expect(JSON.stringify(entries)).not.toContain(SECRET);
  });
});

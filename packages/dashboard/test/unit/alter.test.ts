import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ClientError, ClientErrorCode } from '@offsync/client';
import { describe, expect, test } from 'vitest';
import { alterRefusal } from '../../src/api.ts';
import { alterRefusalSentence, describeAlterRefusal, splitStatements } from '../../src/logic/alter.ts';

describe('Alter table: splitting the textarea into statements', () => {
  test('empty, blank and comment-only text gives no statement (nothing is sent)', () => {
    expect(splitStatements('')).toEqual([]);
    expect(splitStatements('  \n\t\n')).toEqual([]);
    expect(splitStatements(';;\n ;')).toEqual([]);
    expect(splitStatements('-- only a note\n/* and a block */')).toEqual([]);
  });

  test('without a ; each non-blank line is one statement', () => {
    expect(splitStatements('ALTER TABLE t ADD COLUMN a TEXT\n\n  ALTER TABLE t DROP COLUMN b  \r\n')).toEqual(['ALTER TABLE t ADD COLUMN a TEXT', 'ALTER TABLE t DROP COLUMN b']);
  });

  test('with a ; statements end at ; and may span lines; a trailing ; adds nothing', () => {
    expect(splitStatements('ALTER TABLE t\n  ADD COLUMN a TEXT;\nALTER TABLE t RENAME COLUMN b TO c;')).toEqual(['ALTER TABLE t\n  ADD COLUMN a TEXT', 'ALTER TABLE t RENAME COLUMN b TO c']);
    expect(splitStatements('ALTER TABLE t ADD COLUMN a TEXT;')).toEqual(['ALTER TABLE t ADD COLUMN a TEXT']);
  });

  test('a ; or line break inside a string, a quoted name or a comment separates nothing', () => {
    expect(splitStatements("ALTER TABLE t ADD COLUMN a TEXT DEFAULT 'x;y' ; ALTER TABLE t ADD COLUMN \"b;c\" TEXT")).toEqual(["ALTER TABLE t ADD COLUMN a TEXT DEFAULT 'x;y'", 'ALTER TABLE t ADD COLUMN "b;c" TEXT']);
    expect(splitStatements("ALTER TABLE t ADD COLUMN a TEXT DEFAULT 'it''s; fine'")).toEqual(["ALTER TABLE t ADD COLUMN a TEXT DEFAULT 'it''s; fine'"]);
    expect(splitStatements("ALTER TABLE t ADD COLUMN a TEXT DEFAULT 'two\nlines'")).toEqual(["ALTER TABLE t ADD COLUMN a TEXT DEFAULT 'two\nlines'"]);
    expect(splitStatements('ALTER TABLE t ADD COLUMN a TEXT -- no; split\nALTER TABLE t DROP COLUMN b')).toEqual(['ALTER TABLE t ADD COLUMN a TEXT -- no; split', 'ALTER TABLE t DROP COLUMN b']);
    expect(splitStatements('ALTER TABLE t /* a; b */ DROP COLUMN b')).toEqual(['ALTER TABLE t /* a; b */ DROP COLUMN b']);
  });
});

describe('Alter table: refusals in plain words', () => {
  // The reasons alterTable documents (schema.graphql: "details.reason: A, B, …;"), so a new one needs its sentence here.
  const schema = readFileSync(createRequire(import.meta.url).resolve('@offsync/api/schema.graphql'), 'utf8');
  const REASONS = (/details\.reason: ([A-Z_, ]+);/.exec(schema)?.[1] ?? '').split(', ');

  test('the documented reasons are read from the schema', () => {
    expect(REASONS).toEqual(expect.arrayContaining(['UNSUPPORTED', 'PRIMARY_KEY_CHANGE', 'POLICY_DEPENDENCY']));
    expect(REASONS.length).toBeGreaterThanOrEqual(11);
  });

  test('every AlterRefusal reason has its own sentence; ALTER_FAILED and an unknown reason have theirs', () => {
    const generic = alterRefusalSentence({ code: 'ALTER_REFUSED', reason: 'SOMETHING_NEW' });
    expect(generic).toBe('The change was refused.');
    const sentences = REASONS.map((reason) => alterRefusalSentence({ code: 'ALTER_REFUSED', reason }));
    for (const s of sentences) expect(s).not.toBe(generic);
    expect(new Set(sentences).size).toBe(REASONS.length);
    expect(alterRefusalSentence({ code: 'ALTER_REFUSED', reason: 'POLICY_DEPENDENCY' })).toMatch(/RLS policy .* first/);
    expect(alterRefusalSentence({ code: 'ALTER_REFUSED', reason: 'PRIMARY_KEY_CHANGE' })).toMatch(/primary key cannot change/);
    expect(alterRefusalSentence({ code: 'ALTER_FAILED' })).toBe('The database rejected this statement.');
    expect(alterRefusalSentence({ code: 'ALTER_REFUSED' })).toBe(generic);
  });

  test('the statement concerned: 1-based with the text sent; none when the server names none or one not sent', () => {
    const sent = ['ALTER TABLE t ADD COLUMN a TEXT', 'ALTER TABLE t DROP COLUMN id'];
    expect(describeAlterRefusal({ code: 'ALTER_REFUSED', reason: 'PRIMARY_KEY_CHANGE', statement: 1, message: 'statements[1]: key' }, sent)).toEqual({
      sentence: 'The primary key cannot change: devices identify rows by it.',
      statement: { position: 2, text: 'ALTER TABLE t DROP COLUMN id' },
      message: 'statements[1]: key',
    });
    expect(describeAlterRefusal({ code: 'ALTER_REFUSED', reason: 'SCHEMA_INVALID', message: 'm' }, sent).statement).toBeUndefined();
    expect(describeAlterRefusal({ code: 'ALTER_REFUSED', reason: 'INVALID_INPUT', statement: 32, message: 'm' }, sent).statement).toBeUndefined();
  });

  test('alterRefusal reads code, reason and statement from the GraphQL error; other errors are not refusals', () => {
    const refused = new ClientError(ClientErrorCode.DOMAIN, 'statements[0]: nope', { serverCode: 'ALTER_REFUSED', errors: [{ message: 'statements[0]: nope', extensions: { code: 'ALTER_REFUSED', field: 'statements', statement: 0, reason: 'UNSUPPORTED' } }] });
    expect(alterRefusal(refused)).toEqual({ code: 'ALTER_REFUSED', reason: 'UNSUPPORTED', statement: 0, message: 'statements[0]: nope' });
    const failed = new ClientError(ClientErrorCode.DOMAIN, 'statements[1] failed', { serverCode: 'ALTER_FAILED', errors: [{ message: 'statements[1] failed', extensions: { code: 'ALTER_FAILED', statement: 1, message: 'duplicate column name: a' } }] });
    expect(alterRefusal(failed)).toEqual({ code: 'ALTER_FAILED', reason: undefined, statement: 1, message: 'statements[1] failed' });
    expect(alterRefusal(new ClientError(ClientErrorCode.DOMAIN, 'x', { serverCode: 'NOT_FOUND' }))).toBeUndefined();
    expect(alterRefusal(new Error('x'))).toBeUndefined();
  });
});

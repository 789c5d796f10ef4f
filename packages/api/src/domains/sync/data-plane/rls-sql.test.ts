/**
 * Set-based RLS SELECT (rls-sql.ts) must mean exactly what the per-row evaluator computes.
 */
import { openReplica } from '@offsync/core/testing';
import { describe, expect, test } from 'vitest';
import type { Principal } from '../sync-deps.ts';
import { RlsEvaluator } from './rls-evaluator.ts';
import { bindAuthCalls, keyOf, visibleKeys } from './rls-sql.ts';

describe('bindAuthCalls', () => {
  test('replaces the two auth calls outside literals and quoted names only', () => {
    expect(bindAuthCalls('user_id = auth_userid()')).toBe('user_id = @offsync_uid');
    expect(bindAuthCalls("json_extract(AUTH_JSON ( ), '$.role') = 'admin'")).toBe("json_extract(@offsync_claims, '$.role') = 'admin'");
    expect(bindAuthCalls("title = 'auth_userid()' OR \"auth_userid()\" = auth_userid()")).toBe("title = 'auth_userid()' OR \"auth_userid()\" = @offsync_uid");
    expect(bindAuthCalls("title = 'it''s auth_json()'")).toBe("title = 'it''s auth_json()'");
    expect(bindAuthCalls('my_auth_userid() = 1')).toBe('my_auth_userid() = 1');
    expect(bindAuthCalls("title = 'unterminated")).toBeUndefined();
  });
});

describe('visibleKeys', () => {
  const DDL = "CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL DEFAULT '', title TEXT, n INTEGER NOT NULL DEFAULT 0)";
  const principal = (userId: string, claims: Record<string, unknown> = {}): Principal => ({ kind: 'accessToken', userId, claims: { user_id: userId, ...claims } });
  const policies = [
    'owner = auth_userid()',
    "owner = auth_userid() OR json_extract(auth_json(), '$.role') = 'auditor'",
    "title LIKE 'pub%' AND n > 1",
    "title = 'auth_userid()'",
    'n % 2 = 0',
  ];

  test.each(policies)('agrees with the per-row evaluator for %s', (expr) => {
    const e = openReplica(DDL, ['t']);
    const rows: [string, string, string | null, number][] = [];
    for (let i = 0; i < 60; i++) rows.push([`r${i}`, `u${i % 3}`, i % 4 === 0 ? 'auth_userid()' : i % 5 === 0 ? null : `pub${i}`, i]);
    for (const r of rows) e.driver.prepare('INSERT INTO t VALUES (?, ?, ?, ?)').run(...r);
    const ev = new RlsEvaluator();
    for (const p of [principal('u1'), principal('u2', { role: 'auditor' })]) {
      const set = visibleKeys(e, 't', expr, p);
      expect(set).toBeDefined();
      const expected = rows.filter(([id, owner, title, n]) => ev.allows(p, 't', 'SELECT', expr, ['id', 'owner', 'title', 'n'], { row: { id, owner, title, n } })).map(([id]) => keyOf([id]));
      expect([...(set as Set<string>)].sort()).toEqual(expected.sort());
    }
    ev.close();
  });

  test('a policy that does not run in SQL is left to the per-row evaluator', () => {
    const e = openReplica(DDL, ['t']);
    expect(visibleKeys(e, 't', 'no_such_function(owner)', principal('u1'))).toBeUndefined();
  });

  test('keys are typed: INTEGER 5 and TEXT 5 differ', () => {
    expect(keyOf([5n])).toBe(keyOf([5]));
    expect(keyOf([5n])).not.toBe(keyOf(['5']));
  });
});

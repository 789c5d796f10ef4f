import { expect, test } from 'vitest';
import { validateRlsExpression } from './rls-validate.ts';

const cols = [
  { name: 'id', type: 'TEXT', notNull: true, defaultValue: null, pk: 1 },
  { name: 'user_id', type: 'TEXT', notNull: false, defaultValue: null, pk: 0 },
];

test('accepts the expression styles of §A.7', () => {
  expect(validateRlsExpression('todos', cols, 'SELECT', ' user_id = auth_userid() ')).toBe('user_id = auth_userid()');
  expect(validateRlsExpression('todos', cols, 'SELECT', "json_extract(auth_json(),'$.attributes.role')='admin'")).toBeTruthy();
  expect(validateRlsExpression('todos', cols, 'INSERT', 'NEW.user_id = auth_userid()')).toBeTruthy();
  expect(validateRlsExpression('todos', cols, 'UPDATE', 'OLD.user_id = auth_userid() AND NEW.user_id = OLD.user_id')).toBeTruthy();
  expect(validateRlsExpression('todos', cols, 'DELETE', 'OLD.user_id = auth_userid()')).toBeTruthy();
  expect(validateRlsExpression('todos', cols, 'SELECT', "user_id = ';'")).toBeTruthy();
});

test.each([
  ['SELECT', 'user_id = auth_userid(); DROP TABLE todos'],
  ['SELECT', 'user_id IN (SELECT id FROM other_table)'],
  ['SELECT', '(SELECT count(*) FROM sqlite_master) > 0'],
  ['SELECT', 'nope = 1'],
  ['SELECT', 'NEW.user_id = auth_userid()'],
  ['INSERT', 'OLD.user_id = auth_userid()'],
  ['SELECT', '1) UNION SELECT (2'],
  ['SELECT', 'user_id = auth_userid() -- x'],
  ['SELECT', ''],
  ['SELECT', 'user_id ='],
] as const)('rejects %s %s', (op, expr) => {
  expect(() => validateRlsExpression('todos', cols, op, expr)).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }));
});

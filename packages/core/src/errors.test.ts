import { expect, test } from 'vitest';
import { CoreError, CoreErrorCode, isCoreError } from './errors.ts';

test('error codes are unique, namespaced and stable in form', () => {
  const codes = Object.values(CoreErrorCode);
  expect(new Set(codes).size).toBe(codes.length);
  for (const c of codes) expect(c).toMatch(/^CORE_[A-Z0-9_]+$/);
  for (const [k, v] of Object.entries(CoreErrorCode)) expect(v).toBe(`CORE_${k}`);
});

test('CoreError carries code, details and cause', () => {
  const cause = new Error('low level');
  const e = new CoreError(CoreErrorCode.UNKNOWN_TABLE, 'no such table', { cause, details: { table: 't' } });
  expect(isCoreError(e)).toBe(true);
  expect(isCoreError(e, 'CORE_UNKNOWN_TABLE')).toBe(true);
  expect(isCoreError(e, 'CORE_UNKNOWN_COLUMN')).toBe(false);
  expect(isCoreError(new Error('x'))).toBe(false);
  expect(e.cause).toBe(cause);
  expect(e.details).toEqual({ table: 't' });
});

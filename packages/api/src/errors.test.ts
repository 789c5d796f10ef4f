import { expect, test } from 'vitest';
import { ApiError, ApiErrorCode, toGraphQLError } from './errors.ts';

test('codes are unique, upper snake case and equal to their key', () => {
  const values = Object.values(ApiErrorCode);
  expect(new Set(values).size).toBe(values.length);
  for (const [key, value] of Object.entries(ApiErrorCode)) {
    expect(value).toMatch(/^[A-Z][A-Z_]+$/);
    expect(value).toBe(key);
  }
});

test('toGraphQLError carries the code and details', () => {
  const err = toGraphQLError(new ApiError('NOT_FOUND', 'no such database', { details: { databaseId: 'db_x' } }));
  expect(err.extensions['code']).toBe('NOT_FOUND');
  expect(err.extensions['databaseId']).toBe('db_x');
});

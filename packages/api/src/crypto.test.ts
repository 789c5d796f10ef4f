import { randomBytes } from 'node:crypto';
import { expect, test } from 'vitest';
import { createSecretBox, generateId, generateSecret, parseServerKey, sha256Hex } from './crypto.ts';

test('secret box round-trips and detects tampering', () => {
  const box = createSecretBox(randomBytes(32));
  const ct = box.encrypt('hunter2');
  expect(ct).not.toContain('hunter2');
  expect(box.decrypt(ct)).toBe('hunter2');
  const parts = ct.split('.');
  parts[3] = Buffer.from('x').toString('base64url');
  expect(() => box.decrypt(parts.join('.'))).toThrow();
  expect(() => createSecretBox(randomBytes(32)).decrypt(ct)).toThrow();
});

test('secrets and ids have the expected shape', () => {
  expect(generateSecret('osk')).toMatch(/^osk_[A-Za-z0-9_-]{43}$/);
  expect(generateId('db')).toMatch(/^db_[a-z0-9]{24}$/);
  expect(sha256Hex('a')).toHaveLength(64);
  expect(parseServerKey('00'.repeat(32))).toHaveLength(32);
  expect(() => parseServerKey('short')).toThrow();
});

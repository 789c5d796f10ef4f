import { expect, test } from 'vitest';
import { validateHost, validateName, validatePort, validateUrl } from './validation.ts';

test('validators accept good input and reject bad input with VALIDATION_FAILED', () => {
  expect(validateName('name', ' My App ')).toBe('My App');
  expect(() => validateName('name', '')).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }));
  expect(() => validateName('name', 'a;drop')).toThrow(/name/);
  expect(validateHost('host', 'db.example.com')).toBe('db.example.com');
  expect(validateHost('host', '10.0.0.1')).toBe('10.0.0.1');
  expect(() => validateHost('host', 'bad host')).toThrow();
  expect(() => validatePort('port', 70000)).toThrow();
  expect(validateUrl('jwksUri', 'https://x.example/.well-known/jwks.json', { requireHttps: true })).toContain('https://');
  expect(() => validateUrl('jwksUri', 'http://x.example/jwks', { requireHttps: true })).toThrow(/https/);
  expect(() => validateUrl('jwksUri', 'ftp://x')).toThrow();
});

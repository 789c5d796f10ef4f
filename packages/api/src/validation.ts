/** Input validation shared by the services. Each failure is an ApiError VALIDATION_FAILED naming the field. */
import { ApiError } from './errors.ts';

function fail(field: string, message: string): never {
  throw new ApiError('VALIDATION_FAILED', `${field}: ${message}`, { details: { field } });
}

/** Display names: 1–64 chars, letters, digits, space, `_ . -`. */
export function validateName(field: string, value: string): string {
  const v = value.trim();
  if (v.length < 1 || v.length > 64) fail(field, 'must be 1 to 64 characters');
  if (!/^[\p{L}\p{N}][\p{L}\p{N} _.-]*$/u.test(v)) fail(field, 'may contain letters, digits, spaces, "_", "." and "-", and must start with a letter or digit');
  return v;
}

/** SQL identifiers (table names, PG user/database): 1–128 chars, no control chars or quotes. */
export function validateIdentifier(field: string, value: string): string {
  if (value.length < 1 || value.length > 128) fail(field, 'must be 1 to 128 characters');
  if (/[\u0000-\u001f"'`;]/.test(value)) fail(field, 'must not contain quotes, ";" or control characters');
  return value;
}

/** Host names (RFC 1123 labels), IPv4 or bracket-less IPv6. */
export function validateHost(field: string, value: string): string {
  const v = value.trim();
  const hostname = /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
  const ipv6 = /^[0-9a-fA-F:]+$/;
  if (!hostname.test(v) && !(v.includes(':') && ipv6.test(v))) fail(field, 'must be a host name or IP address');
  return v;
}

export function validatePort(field: string, value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > 65535) fail(field, 'must be an integer between 1 and 65535');
  return value;
}

/** Absolute http(s) URL; https required unless the host is loopback. */
export function validateUrl(field: string, value: string, options: { requireHttps?: boolean } = {}): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    fail(field, 'must be an absolute URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') fail(field, 'must be an http(s) URL');
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  if (options.requireHttps === true && url.protocol !== 'https:' && !loopback) fail(field, 'must use https');
  if (url.username !== '' || url.password !== '') fail(field, 'must not contain credentials');
  return url.toString();
}

export function validateSecret(field: string, value: string, minLength: number): string {
  if (value.length < minLength) fail(field, `must be at least ${minLength} characters`);
  if (value.length > 4096) fail(field, 'is too long');
  return value;
}

export function validateText(field: string, value: string, max: number): string {
  if (value.length > max) fail(field, `must be at most ${max} characters`);
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(value)) fail(field, 'must not contain control characters');
  return value;
}

/** Secrets: random tokens, SHA-256 hashes, and AES-256-GCM encryption at rest under the server key. */
import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** `<prefix>_` + 32 random bytes, base64url. */
export function generateSecret(prefix: string, bytes = 32): string {
  return `${prefix}_${randomBytes(bytes).toString('base64url')}`;
}

/** Short random id, e.g. `db_` + 24 chars. */
export function generateId(prefix: string, length = 24): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(length);
  let out = '';
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return `${prefix}_${out}`;
}

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

export function safeEqualHex(a: string, b: string): boolean {
  const ba = Buffer.from(a, 'hex');
  const bb = Buffer.from(b, 'hex');
  return ba.length === bb.length && timingSafeEqual(ba, bb);
}

/** Encrypts/decrypts short secrets. Format: `v1.<iv>.<tag>.<ciphertext>` (base64url parts). */
export interface SecretBox {
  encrypt(plaintext: string): string;
  decrypt(ciphertext: string): string;
}

/** `key` must be 32 bytes (the server key). */
export function createSecretBox(key: Uint8Array): SecretBox {
  if (key.length !== 32) throw new Error('server key must be 32 bytes');
  return {
    encrypt(plaintext) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return ['v1', iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
    },
    decrypt(value) {
      const [version, iv, tag, ct] = value.split('.');
      if (version !== 'v1' || iv === undefined || tag === undefined || ct === undefined) throw new Error('bad ciphertext');
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
    },
  };
}

/** Parses a server key given as 64 hex chars or base64/base64url of 32 bytes. */
export function parseServerKey(text: string): Uint8Array {
  const t = text.trim();
  const bytes = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64url');
  if (bytes.length !== 32) throw new Error('OFFSYNC_SECRET_KEY must be 32 bytes (64 hex chars or base64)');
  return new Uint8Array(bytes);
}

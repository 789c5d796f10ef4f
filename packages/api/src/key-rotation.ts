/**
 * Server key rotation and start-up check (docs/ARCHITECTURE.md "Files and keys").
 *
 * The control plane stores three kinds of AES-256-GCM ciphertexts under the server key
 * (`crypto.ts` SecretBox): PostgreSQL passwords (`Database.pgPasswordEnc`), Expo access tokens
 * (`Database.expoAccessTokenEnc`) and HS256 JWT secrets (`JwtProvider.secretEnc`).
 * {@link rotateServerKey} re-encrypts all of them under a new key in one transaction: every value
 * is decrypted first (one failure aborts before anything is written), each update is conditional
 * on the ciphertext read, and the result is checked under the new key before the commit.
 */
import { createSecretBox } from './crypto.ts';
import type { SecretBox } from './crypto.ts';
import type { PrismaClient } from './db/prisma.ts';

/** Where ciphertexts live, for reports and errors. */
export type EncryptedColumn = 'Database.pgPasswordEnc' | 'Database.expoAccessTokenEnc' | 'JwtProvider.secretEnc';

export interface RotationResult {
  /** Ciphertexts re-encrypted, per column. */
  columns: Record<EncryptedColumn, number>;
  total: number;
}

export class KeyMismatchError extends Error {
  override readonly name = 'KeyMismatchError';
}

interface Cipher { column: EncryptedColumn; id: string; value: string }

type Reader = Pick<PrismaClient, 'database' | 'jwtProvider'>;

async function readCiphertexts(db: Reader): Promise<Cipher[]> {
  const out: Cipher[] = [];
  // Only the columns needed: works on a control plane with pending migrations too.
  const dbs = await db.database.findMany({
    where: { OR: [{ pgPasswordEnc: { not: null } }, { expoAccessTokenEnc: { not: null } }] },
    select: { id: true, pgPasswordEnc: true, expoAccessTokenEnc: true },
    orderBy: { id: 'asc' },
  });
  for (const d of dbs) {
    if (d.pgPasswordEnc !== null) out.push({ column: 'Database.pgPasswordEnc', id: d.id, value: d.pgPasswordEnc });
    if (d.expoAccessTokenEnc !== null) out.push({ column: 'Database.expoAccessTokenEnc', id: d.id, value: d.expoAccessTokenEnc });
  }
  const jwt = await db.jwtProvider.findMany({ where: { secretEnc: { not: null } }, select: { databaseId: true, secretEnc: true }, orderBy: { databaseId: 'asc' } });
  for (const p of jwt) if (p.secretEnc !== null) out.push({ column: 'JwtProvider.secretEnc', id: p.databaseId, value: p.secretEnc });
  return out;
}

function decryptAll(box: SecretBox, ciphers: Cipher[]): string[] {
  const failed: string[] = [];
  const plain = ciphers.map((c) => {
    try {
      return box.decrypt(c.value);
    } catch {
      failed.push(`${c.column} of ${c.id}`);
      return '';
    }
  });
  if (failed.length > 0) {
    throw new KeyMismatchError(`the server key does not decrypt ${failed.length} stored secret(s): ${failed.slice(0, 5).join(', ')}${failed.length > 5 ? ', …' : ''}`);
  }
  return plain;
}

/**
 * Re-encrypts every ciphertext of the control plane from `oldKey` to `newKey` in one
 * transaction. Throws (and changes nothing) when a value does not decrypt under `oldKey` or
 * changed meanwhile. Run it with the server stopped: a running server keeps encrypting new
 * secrets under the key it started with.
 */
export async function rotateServerKey(prisma: PrismaClient, oldKey: Uint8Array, newKey: Uint8Array): Promise<RotationResult> {
  if (Buffer.from(oldKey).equals(Buffer.from(newKey))) throw new Error('the new key is the current key');
  const oldBox = createSecretBox(oldKey);
  const newBox = createSecretBox(newKey);
  return prisma.$transaction(async (tx) => {
    const ciphers = await readCiphertexts(tx);
    const plain = decryptAll(oldBox, ciphers);
    const columns: Record<EncryptedColumn, number> = { 'Database.pgPasswordEnc': 0, 'Database.expoAccessTokenEnc': 0, 'JwtProvider.secretEnc': 0 };
    for (const [i, c] of ciphers.entries()) {
      const value = newBox.encrypt(plain[i] ?? '');
      let n: number;
      if (c.column === 'Database.pgPasswordEnc') n = (await tx.database.updateMany({ where: { id: c.id, pgPasswordEnc: c.value }, data: { pgPasswordEnc: value } })).count;
      else if (c.column === 'Database.expoAccessTokenEnc') n = (await tx.database.updateMany({ where: { id: c.id, expoAccessTokenEnc: c.value }, data: { expoAccessTokenEnc: value } })).count;
      else n = (await tx.jwtProvider.updateMany({ where: { databaseId: c.id, secretEnc: c.value }, data: { secretEnc: value } })).count;
      if (n !== 1) throw new Error(`${c.column} of ${c.id} changed during the rotation; nothing was changed (stop the server and retry)`);
      columns[c.column] += 1;
    }
    // Everything must read back under the new key before the commit.
    const after = await readCiphertexts(tx);
    const check = decryptAll(newBox, after);
    if (after.length !== ciphers.length || check.some((p, i) => p !== plain[i])) throw new Error('re-encrypted secrets did not read back; nothing was changed');
    return { columns, total: ciphers.length };
  }, { timeout: 120_000, maxWait: 30_000 });
}

/**
 * Start-up check: the configured key decrypts the stored secrets (one of each column is tried).
 * Throws {@link KeyMismatchError} otherwise, e.g. after a rotation when the server still has the
 * old key; returns how many were tried (0: nothing stored yet).
 */
export async function verifyServerKey(prisma: PrismaClient, box: SecretBox): Promise<number> {
  const samples: Cipher[] = [];
  const pg = await prisma.database.findFirst({ where: { pgPasswordEnc: { not: null } }, select: { id: true, pgPasswordEnc: true } });
  if (pg?.pgPasswordEnc) samples.push({ column: 'Database.pgPasswordEnc', id: pg.id, value: pg.pgPasswordEnc });
  const expo = await prisma.database.findFirst({ where: { expoAccessTokenEnc: { not: null } }, select: { id: true, expoAccessTokenEnc: true } });
  if (expo?.expoAccessTokenEnc) samples.push({ column: 'Database.expoAccessTokenEnc', id: expo.id, value: expo.expoAccessTokenEnc });
  const jwt = await prisma.jwtProvider.findFirst({ where: { secretEnc: { not: null } }, select: { databaseId: true, secretEnc: true } });
  if (jwt?.secretEnc) samples.push({ column: 'JwtProvider.secretEnc', id: jwt.databaseId, value: jwt.secretEnc });
  decryptAll(box, samples);
  return samples.length;
}

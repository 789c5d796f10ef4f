/**
 * The SQLite control plane runs every Prisma statement on one connection: a statement issued by
 * another request while a transaction is open must wait for it, not run inside it (and vanish
 * with its rollback, or commit with it half-way). docs/ARCHITECTURE.md "Devices and traffic".
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { createPrismaClient, migrate } from '../src/index.ts';

let cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

async function controlPlane() {
  const dir = mkdtempSync(join(tmpdir(), 'offsync-cp-tx-'));
  const file = join(dir, 'control.db');
  await migrate({ provider: 'sqlite', file });
  const prisma = createPrismaClient({ provider: 'sqlite', file });
  cleanups.push(async () => {
    await prisma.$disconnect();
    rmSync(dir, { recursive: true, force: true });
  });
  return prisma;
}

const key = (id: string) => ({ data: { id, hash: `hash-${id}`, createdAt: new Date(0) } });

test('a write outside a transaction that rolls back is kept: it waited for the transaction instead of joining it', async () => {
  const prisma = await controlPlane();
  let release!: () => void;
  const held = new Promise<void>((ok) => (release = ok));
  let inside!: () => void;
  const started = new Promise<void>((ok) => (inside = ok));
  const order: string[] = [];
  const failing = prisma.$transaction(async (tx) => {
    await tx.adminKey.create(key('in-tx'));
    inside();
    await held;
    order.push('tx ends');
    throw new Error('rolled back on purpose');
  });
  await started;
  const outside = prisma.adminKey.create(key('outside')).then(() => order.push('outside written'));
  // Let the outside statement run if it could (it must not while the transaction is open).
  for (let i = 0; i < 20; i++) await new Promise((ok) => setImmediate(ok));
  expect(order).toEqual([]);
  release();
  await expect(failing).rejects.toThrow('rolled back on purpose');
  await outside;
  expect(order).toEqual(['tx ends', 'outside written']);
  const ids = (await prisma.adminKey.findMany({ select: { id: true } })).map((k) => k.id).sort();
  expect(ids).toEqual(['outside']);
});

test('a read outside never sees a transaction half-way: it waits and sees all of it', async () => {
  const prisma = await controlPlane();
  let inside!: () => void;
  const started = new Promise<void>((ok) => (inside = ok));
  const tx = prisma.$transaction(async (t) => {
    await t.adminKey.create(key('a1'));
    inside();
    for (let i = 0; i < 20; i++) await new Promise((ok) => setImmediate(ok));
    await t.adminKey.create(key('a2'));
  });
  await started;
  // Issued while the transaction holds one of its two writes: inside it, this would count 1.
  const seen = await prisma.adminKey.count();
  await tx;
  expect(seen).toBe(2);
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, expect, test, vi } from 'vitest';
import { migrate } from './migrate.ts';
import { cacheStatements, createPrismaClient, STATEMENT_CACHE_SIZE } from './prisma.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'offsync-prisma-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('the control-plane connection prepares each SQL text once; every call gets its own arguments', () => {
  const db = new Database(':memory:');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)');
  const prepare = vi.spyOn(db, 'prepare');
  const adapter = { client: db };
  cacheStatements(adapter as never);
  const client = adapter.client as unknown as {
    prepare(sql: string): { reader: boolean; run(): unknown; bind(args: unknown[]): { reader: boolean; columns(): Array<{ name: string }>; raw(): { all(): unknown[] }; run(): { changes: number } } };
  };
  // As the adapter does: prepare(sql).bind(args), then run() or columns() + raw().all().
  expect(client.prepare('INSERT INTO t (id, name) VALUES (?, ?)').bind([1, 'a']).run()).toMatchObject({ changes: 1 });
  expect(client.prepare('INSERT INTO t (id, name) VALUES (?, ?)').bind([2, 'b']).run()).toMatchObject({ changes: 1 });
  const select = (id: number): unknown[] => {
    const s = client.prepare('SELECT id, name FROM t WHERE id = ?').bind([id]);
    expect(s.reader).toBe(true);
    expect(s.columns().map((c) => c.name)).toEqual(['id', 'name']);
    return s.raw().all();
  };
  expect(select(1)).toEqual([[1, 'a']]);
  expect(select(2)).toEqual([[2, 'b']]);
  expect(select(3)).toEqual([]);
  client.prepare('BEGIN').run();
  client.prepare('ROLLBACK').run();
  expect(prepare.mock.calls.map((c) => c[0])).toEqual(['INSERT INTO t (id, name) VALUES (?, ?)', 'SELECT id, name FROM t WHERE id = ?', 'BEGIN', 'ROLLBACK']);
  // Bounded: past the cache size the least recently used text is prepared again.
  for (let i = 0; i < STATEMENT_CACHE_SIZE; i++) client.prepare(`SELECT ${i}`);
  prepare.mockClear();
  expect(select(1)).toEqual([[1, 'a']]);
  expect(prepare).toHaveBeenCalledTimes(1);
  db.close();
});

test('a Prisma client on the cached statements answers repeated queries with their own arguments', async () => {
  const target = { provider: 'sqlite' as const, file: join(dir, 'control.db') };
  await migrate(target);
  const prisma = createPrismaClient(target);
  try {
    for (const name of ['one', 'two', 'three']) await prisma.project.create({ data: { id: `p-${name}`, name, kind: 'SQLITE' } });
    for (let round = 0; round < 2; round++) {
      for (const name of ['one', 'two', 'three']) expect((await prisma.project.findUnique({ where: { id: `p-${name}` } }))?.name).toBe(name);
      expect(await prisma.project.findUnique({ where: { id: 'p-none' } })).toBeNull();
    }
    await prisma.$transaction([prisma.project.update({ where: { id: 'p-one' }, data: { name: 'uno' } }), prisma.project.delete({ where: { id: 'p-two' } })]);
    expect((await prisma.project.findMany({ orderBy: { id: 'asc' } })).map((p) => p.name)).toEqual(['uno', 'three']);
  } finally {
    await prisma.$disconnect();
  }
});

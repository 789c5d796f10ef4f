import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, expect, test, vi } from 'vitest';
import { migrate } from './migrate.ts';
import { cacheStatements, createPrismaClient, INLINED_LIMIT_MAX, STATEMENT_CACHE_SIZE } from './prisma.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'offsync-prisma-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** An in-memory connection with `statements` run, under `cacheStatements`, and a spy on its real `prepare`. */
function cachedConnection(statements: string) {
  const db = new Database(':memory:');
  db.exec(statements);
  const prepare = vi.spyOn(db, 'prepare');
  const adapter = { client: db };
  cacheStatements(adapter as never);
  const client = adapter.client as unknown as {
    prepare(sql: string): { reader: boolean; run(): unknown; bind(args: unknown[]): { reader: boolean; columns(): Array<{ name: string }>; raw(): { all(): unknown[] }; run(): { changes: number } } };
  };
  return { db, prepare, client };
}

test('the control-plane connection prepares each SQL text once; every call gets its own arguments', () => {
  const { db, prepare, client } = cachedConnection('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)');
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

test('the last LIMIT ? OFFSET ? bound to small integers runs with the integers in the text; other limits keep their parameters', () => {
  const { db, prepare, client } = cachedConnection("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')");
  const rows = (sql: string, args: unknown[]): unknown[] => {
    const s = client.prepare(sql).bind(args);
    expect(s.columns().map((c) => c.name)).toEqual(['id', 'name']);
    return s.raw().all();
  };
  const paged = 'SELECT id, name FROM t WHERE id > ? ORDER BY id LIMIT ? OFFSET ?';
  expect(rows(paged, [0, 2, 0])).toEqual([[1, 'a'], [2, 'b']]);
  expect(rows(paged, [1, 1n, 0n])).toEqual([[2, 'b']]);
  expect(rows('SELECT id, name FROM t WHERE id = ? LIMIT ?', [3, 1])).toEqual([[3, 'c']]);
  // Prisma's count: the limit (-1, none) inside a subquery, nothing bound after it.
  const counted = 'SELECT id, name FROM (SELECT id, name FROM t WHERE id > ? LIMIT ? OFFSET ?) AS sub ORDER BY id';
  expect(rows(counted, [1, -1, 0])).toEqual([[2, 'b'], [3, 'c']]);
  // What was prepared: each bound text once, and the texts with the integers written in.
  expect(prepare.mock.calls.map((c) => c[0])).toEqual([
    paged,
    'SELECT id, name FROM t WHERE id > ? ORDER BY id LIMIT 2 OFFSET 0',
    'SELECT id, name FROM t WHERE id > ? ORDER BY id LIMIT 1 OFFSET 0',
    'SELECT id, name FROM t WHERE id = ? LIMIT ?',
    'SELECT id, name FROM t WHERE id = ? LIMIT 1',
    counted,
    'SELECT id, name FROM (SELECT id, name FROM t WHERE id > ? LIMIT -1 OFFSET 0) AS sub ORDER BY id',
  ]);
  prepare.mockClear();
  // An offset, a large limit, a limit that is not an integer, a parameter after the limit, a `?`
  // in a literal: parameters, as given.
  expect(rows(paged, [0, 2, 1])).toEqual([[2, 'b'], [3, 'c']]);
  expect(rows(paged, [0, INLINED_LIMIT_MAX + 1, 0])).toEqual([[1, 'a'], [2, 'b'], [3, 'c']]);
  expect(rows(paged, [0, '1', 0])).toEqual([[1, 'a']]);
  const after = 'SELECT id, name FROM (SELECT id, name FROM t ORDER BY id LIMIT ?) WHERE id > ? ORDER BY id';
  expect(rows(after, [2, 1])).toEqual([[2, 'b']]);
  const literal = "SELECT id, name FROM t WHERE name <> '?' ORDER BY id LIMIT ?";
  expect(rows(literal, [1])).toEqual([[1, 'a']]);
  expect(prepare.mock.calls.map((c) => c[0])).toEqual([after, literal]);
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
    // Pages (LIMIT/OFFSET, written into the text or bound) and firsts.
    await prisma.project.create({ data: { id: 'p-four', name: 'four', kind: 'SQLITE' } });
    expect((await prisma.project.findMany({ orderBy: { id: 'asc' }, take: 2 })).map((p) => p.name)).toEqual(['four', 'uno']);
    expect((await prisma.project.findMany({ orderBy: { id: 'asc' }, take: 2, skip: 1 })).map((p) => p.name)).toEqual(['uno', 'three']);
    expect((await prisma.project.findFirst({ where: { name: { not: 'uno' } }, orderBy: { id: 'desc' } }))?.name).toBe('three');
    expect(await prisma.project.count({ where: { name: { not: 'uno' } } })).toBe(2);
    expect(await prisma.project.count({ where: { name: { not: 'uno' } }, take: 1 })).toBe(1);
  } finally {
    await prisma.$disconnect();
  }
});

import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { prepareControlPlaneFile, secureDataDir } from './data-dir.ts';
import type { Logger } from './deps.ts';
import { migrate } from './db/migrate.ts';
import { createCentralFile } from './domains/sync/central-file.ts';

let root: string;
let umask: number;
let warnings: Array<{ message: string; fields?: Record<string, unknown> }>;
const logger: Logger = { info() {}, error() {}, warn: (message, fields) => void warnings.push(fields === undefined ? { message } : { message, fields }) };
const mode = (p: string) => statSync(p).mode & 0o777;

beforeEach(() => {
  // Modes must not depend on the umask: with 000, anything left to it would be world-writable.
  umask = process.umask(0);
  root = mkdtempSync(join(tmpdir(), 'offsync-datadir-'));
  warnings = [];
});
afterEach(() => {
  process.umask(umask);
  rmSync(root, { recursive: true, force: true });
});

test('a fresh DATA_DIR: folders 0700, control plane, central files and their -wal/-shm 0600', async () => {
  const dataDir = join(root, 'data');
  expect(secureDataDir(dataDir, logger)).toEqual([]);
  expect(mode(dataDir)).toBe(0o700);
  expect(mode(join(dataDir, 'databases'))).toBe(0o700);

  const cp = join(dataDir, 'offsync.db');
  prepareControlPlaneFile(cp, dataDir, logger);
  await migrate({ provider: 'sqlite', file: cp });
  const held = new Database(cp);
  held.exec('CREATE TABLE probe (x); INSERT INTO probe VALUES (1)');
  for (const f of [cp, `${cp}-wal`, `${cp}-shm`]) expect({ f, mode: mode(f) }).toEqual({ f, mode: 0o600 });
  held.close();

  const central = join(dataDir, 'databases', 'db_x.sqlite');
  createCentralFile(central);
  const open = new Database(central);
  open.exec('CREATE TABLE t (x); INSERT INTO t VALUES (1)');
  for (const f of [central, `${central}-wal`, `${central}-shm`]) expect({ f, mode: mode(f) }).toEqual({ f, mode: 0o600 });
  open.close();
  expect(warnings).toEqual([]);
});

test('wider modes found at start are tightened, with a warning; symbolic links are not followed', () => {
  const dataDir = join(root, 'data');
  mkdirSync(join(dataDir, 'databases', 'nested'), { recursive: true });
  const files = ['offsync.db', 'offsync.db-wal', 'server.key', 'databases/db_a.sqlite', 'databases/db_a.sqlite-shm', 'databases/nested/x'];
  for (const f of files) writeFileSync(join(dataDir, f), 'x');
  for (const f of files) chmodSync(join(dataDir, f), 0o644);
  for (const d of ['', 'databases', 'databases/nested']) chmodSync(join(dataDir, d), 0o755);
  chmodSync(join(dataDir, 'server.key'), 0o600); // already right: left alone
  const outside = join(root, 'outside.txt');
  writeFileSync(outside, 'x');
  chmodSync(outside, 0o644);
  symlinkSync(outside, join(dataDir, 'link'));

  const tightened = secureDataDir(dataDir, logger);
  for (const d of ['', 'databases', 'databases/nested']) expect(mode(join(dataDir, d))).toBe(0o700);
  for (const f of files) expect({ f, mode: mode(join(dataDir, f)) }).toEqual({ f, mode: 0o600 });
  expect(mode(outside)).toBe(0o644);
  expect(tightened.map((t) => t.path).sort()).toEqual([dataDir, ...['databases', 'databases/nested', ...files.filter((f) => f !== 'server.key')].map((f) => join(dataDir, f))].sort());
  expect(warnings).toHaveLength(tightened.length);
  expect(warnings[0]).toEqual({ message: 'file mode tightened', fields: { path: tightened[0]?.path, from: '755', to: '700' } });
  // Idempotent: nothing left to tighten.
  expect(secureDataDir(dataDir, logger)).toEqual([]);
});

test('a control plane outside DATA_DIR: its file is 0600, an existing folder of the operator is left as it is', () => {
  const dataDir = join(root, 'data');
  const elsewhere = join(root, 'cp');
  mkdirSync(elsewhere, { mode: 0o755 });
  chmodSync(elsewhere, 0o755);
  const file = join(elsewhere, 'control.db');
  writeFileSync(file, '');
  chmodSync(file, 0o666);
  const tightened = prepareControlPlaneFile(file, dataDir, logger);
  expect(mode(file)).toBe(0o600);
  expect(mode(elsewhere)).toBe(0o755);
  expect(tightened).toEqual([{ path: file, from: 0o666, to: 0o600 }]);
  // A missing folder is created private.
  const fresh = join(root, 'new', 'control.db');
  prepareControlPlaneFile(fresh, dataDir, logger);
  expect(mode(join(root, 'new'))).toBe(0o700);
  expect(mode(fresh)).toBe(0o600);
});

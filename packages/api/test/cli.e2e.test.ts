/**
 * The `offsync` operator CLI (issue 13 point 4), run as child processes (`bin/offsync.mjs`, what
 * `npx offsync` runs) against a real server started by `offsync start` in a temporary DATA_DIR:
 * the README quick start (create a database from a schema file, deploy, enable, API key, two
 * devices sync, watch them), status, usage, tables, backup, admin keys (create, rotate, revoke,
 * recover from DATA_DIR), --json and the exit codes.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { TestDevice } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';

const BIN = fileURLToPath(new URL('../bin/offsync.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'offsync-cli-'));
const dataDir = join(dir, 'data');
let server: ChildProcess;
let origin = '';
let adminKey = '';

interface Run { code: number; stdout: string; stderr: string }
function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: dir, env: { ...process.env, DATA_DIR: dataDir, OFFSYNC_URL: origin, OFFSYNC_ADMIN_KEY: adminKey, LOG_LEVEL: 'warn', DATABASE_URL: '', ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}
async function json<T = Record<string, unknown>>(args: string[], env: Record<string, string> = {}): Promise<T> {
  const r = await cli([...args, '--json'], env);
  if (r.code !== 0) throw new Error(`offsync ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

beforeAll(async () => {
  server = spawn(process.execPath, [BIN, 'start'], { cwd: dir, env: { ...process.env, DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', OFFSYNC_ADMIN_KEY: '', DATABASE_URL: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  server.stderr?.on('data', (c: Buffer) => { err += c.toString(); });
  await new Promise<void>((resolve, reject) => {
    server.once('exit', (code) => reject(new Error(`server exited ${code}: ${err}`)));
    server.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      const url = /listening on (http:\/\/[^/\s]+)\/graphql/.exec(out);
      const key = /Admin key \(shown once\): (\S+)/.exec(out);
      if (url?.[1] !== undefined && key?.[1] !== undefined) {
        origin = url[1];
        adminKey = key[1];
        resolve();
      }
    });
  });
}, 120_000);

afterAll(async () => {
  if (server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('quick start (README "Quick start with the CLI")', () => {
  let databaseId = '';
  let apiKey = '';

  test('db create from a schema file with the bundled SQLite, deploy and enable; api-key create', async () => {
    writeFileSync(join(dir, 'schema.sql'), "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0);\n");
    const created = await json<{ databaseId: string; projectId: string; tablesCreated: string[]; deployed: string[]; enabled: boolean; sqliteVersion: string }>(['db', 'create', '--project', 'demo', '--name', 'todos', '--schema', 'schema.sql', '--deploy', '--enable']);
    expect(created).toMatchObject({ tablesCreated: ['todos'], deployed: ['todos'], enabled: true });
    const bundled = new Database(':memory:');
    expect(created.sqliteVersion).toBe(bundled.prepare('SELECT sqlite_version()').pluck().get());
    bundled.close();
    databaseId = created.databaseId;
    const key = await json<{ secret: string }>(['api-key', 'create', databaseId, '--name', 'app']);
    expect(key.secret).toMatch(/^osk_/);
    apiKey = key.secret;
    const tables = await json<{ tables: { name: string; selected: boolean; enabled: boolean }[] }>(['tables', 'list', databaseId]);
    expect(tables.tables).toEqual([expect.objectContaining({ name: 'todos', selected: true, enabled: true })]);
  }, 120_000);

  test('two devices sync; devices list shows both, status and usage see the traffic', async () => {
    const t = { origin } as RunningApp;
    const ddl = "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0)";
    const a = new TestDevice(t, databaseId, apiKey, ddl);
    const b = new TestDevice(t, databaseId, apiKey, ddl);
    a.exec("INSERT INTO todos (id, title) VALUES ('t1', 'from a')");
    expect((await a.upload()).body['failures']).toBeUndefined();
    await b.download();
    expect(b.rows()).toEqual([{ id: 't1', title: 'from a', done: 0n }]);

    const listed = await vi.waitFor(async () => {
      const r = await json<{ totalCount: number; devices: { siteId: string; uploadBytes: number; backlog: { changes: number } }[] }>(['devices', 'list', databaseId]);
      if (r.totalCount < 2) throw new Error('devices not recorded yet');
      return r;
    }, { timeout: 30_000, interval: 500 });
    expect(listed.devices.map((d) => d.siteId).sort()).toEqual([a.site, b.site].sort());
    expect(listed.devices.find((d) => d.siteId === a.site)?.backlog.changes).toBe(0);
    const human = await cli(['devices', 'list', databaseId]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(a.site);

    const status = await json<{ healthy: boolean; ready: boolean; databases: { database: string; devices: number; enabled: boolean }[] }>(['status']);
    expect(status).toMatchObject({ healthy: true, ready: true });
    expect(status.databases).toContainEqual(expect.objectContaining({ database: databaseId, devices: 2, enabled: true }));
    const usage = await vi.waitFor(async () => {
      const u = await json<{ uploadBytes: number; databases: { databaseId: string }[] }>(['usage', '--project', 'demo']);
      if (u.uploadBytes === 0) throw new Error('traffic not recorded yet');
      return u;
    }, { timeout: 30_000, interval: 500 });
    expect(usage.databases.map((d) => d.databaseId)).toContain(databaseId);
  }, 180_000);

  test('backup while the server runs: an integrity-checked copy with the synced rows', async () => {
    const file = join(dir, 'todos-backup.sqlite');
    const r = await json<{ file: string; integrity: string; bytes: number }>(['backup', databaseId, 'todos-backup.sqlite']);
    expect(r).toMatchObject({ file, integrity: 'ok' });
    const copy = new Database(file, { readonly: true });
    expect(copy.prepare('SELECT id, title FROM todos').all()).toEqual([{ id: 't1', title: 'from a' }]);
    copy.close();
  }, 60_000);

  test('tables deploy with modes', async () => {
    writeFileSync(join(dir, 'more.sql'), 'CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, body TEXT);\n');
    const other = await json<{ databaseId: string }>(['db', 'create', '--project', 'demo', '--name', 'notes', '--schema', 'more.sql']);
    expect((await json<{ added: string[] }>(['tables', 'deploy', other.databaseId, 'notes', '--mode', 'add', '--algorithm', 'gos'])).added).toEqual(['notes']);
    const r = await json<{ removed: string[]; tables: { name: string; algorithm: string | null }[] }>(['tables', 'deploy', other.databaseId, 'notes', '--mode', 'remove']);
    expect(r.removed).toEqual(['notes']);
  }, 60_000);

  test('tables alter: ADD COLUMN prints what ran and the new hashes; --file; a refusal prints code, reason and statement, exit 1, nothing changed', async () => {
    const columns = () => {
      const db = new Database(join(dataDir, 'databases', `${databaseId}.sqlite`), { readonly: true });
      try {
        return db.prepare("SELECT name FROM pragma_table_info('todos') ORDER BY cid").pluck().all();
      } finally {
        db.close();
      }
    };
    const added = await cli(['tables', 'alter', databaseId, 'todos', 'ALTER TABLE todos ADD COLUMN due TEXT']);
    expect(added.code, added.stderr).toBe(0);
    const hash = /^Schema hash: (\d+)$/m.exec(added.stdout)?.[1];
    expect(added.stdout).toMatch(/^Altered todos \(1 statement ran\):\n {2}ALTER TABLE "todos" ADD COLUMN "due" TEXT\nSchema hash: \d+\nDDL schema hash: \d+\n$/);
    expect(columns()).toEqual(['id', 'title', 'done', 'due']);

    // --file: ;-separated, a ; inside a string and a comment separate nothing.
    writeFileSync(join(dir, 'alter.sql'), "ALTER TABLE todos ADD COLUMN note TEXT NOT NULL DEFAULT 'a;b';\n-- then; rename it\nALTER TABLE todos RENAME COLUMN note TO memo;\n");
    const viaFile = await json<{ table: string; statements: string[]; schemaHash: string; ddlSchemaHash: string }>(['tables', 'alter', databaseId, 'todos', '--file', 'alter.sql']);
    expect(viaFile).toMatchObject({ table: 'todos', statements: ['ALTER TABLE "todos" ADD COLUMN "note" TEXT NOT NULL DEFAULT \'a;b\'', 'ALTER TABLE "todos" RENAME COLUMN "note" TO "memo"'] });
    expect(viaFile.schemaHash).toMatch(/^\d+$/);
    expect(viaFile.schemaHash).not.toBe(hash);
    expect(columns()).toEqual(['id', 'title', 'done', 'due', 'memo']);

    // Refused before anything ran: the second statement drops a key column.
    const refused = await cli(['tables', 'alter', databaseId, 'todos', 'ALTER TABLE todos ADD COLUMN x TEXT', 'ALTER TABLE todos DROP COLUMN id']);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/^offsync: ALTER_REFUSED \(reason PRIMARY_KEY_CHANGE\), statement 2 of 2: ALTER TABLE todos DROP COLUMN id\n {2}statements\[1\]: .+\n {2}Nothing was changed\.\n$/);
    const unsupported = await cli(['tables', 'alter', databaseId, 'todos', 'ALTER TABLE todos ADD CONSTRAINT c CHECK (done IN (0, 1))', '--json']);
    expect(unsupported.code).toBe(1);
    expect(JSON.parse(unsupported.stderr)).toMatchObject({ error: { code: 'ALTER_REFUSED', exitCode: 1, details: { reason: 'UNSUPPORTED', statement: 0 } } });
    // The database rejects it: ALTER_FAILED with the statement.
    const failed = await cli(['tables', 'alter', databaseId, 'todos', 'ALTER TABLE todos ADD COLUMN due TEXT']);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^offsync: ALTER_FAILED, statement 1 of 1: ALTER TABLE todos ADD COLUMN due TEXT\n {2}statements\[0\] failed, nothing was changed: .*duplicate column/);
    expect(columns()).toEqual(['id', 'title', 'done', 'due', 'memo']);
    expect((await cli(['tables', 'alter', databaseId, 'todos'])).code).toBe(2);
  }, 120_000);
});

describe('admin keys', () => {
  test('create, rotate, revoke (not the last one), recover from DATA_DIR with --revoke-others', async () => {
    const first = await json<{ adminKeys: { id: string }[] }>(['admin-key', 'list']);
    expect(first.adminKeys).toHaveLength(1);
    const originalId = first.adminKeys[0]?.id as string;

    const created = await json<{ id: string; secret: string }>(['admin-key', 'create']);
    expect((await cli(['status'], { OFFSYNC_ADMIN_KEY: created.secret })).code).toBe(0);

    const rotated = await json<{ id: string; secret: string; replaced: string }>(['admin-key', 'rotate', created.id]);
    expect(rotated.replaced).toBe(created.id);
    expect((await cli(['status'], { OFFSYNC_ADMIN_KEY: created.secret })).code).toBe(4);
    expect((await cli(['status'], { OFFSYNC_ADMIN_KEY: rotated.secret })).code).toBe(0);

    expect((await json(['admin-key', 'revoke', originalId])).revoked).toBe(originalId);
    const last = await cli(['admin-key', 'revoke', rotated.id, '--json']);
    expect(last.code).toBe(1);
    expect(JSON.parse(last.stderr)).toMatchObject({ error: { code: 'LAST_KEY' } });

    // The printed key is lost: recover needs only DATA_DIR.
    const recovered = await json<{ id: string; secret: string; revoked: string[] }>(['recover', '--revoke-others'], { OFFSYNC_ADMIN_KEY: '' });
    expect(recovered.revoked).toEqual([rotated.id]);
    expect((await cli(['status'], { OFFSYNC_ADMIN_KEY: rotated.secret })).code).toBe(4);
    expect((await cli(['status'], { OFFSYNC_ADMIN_KEY: recovered.secret })).code).toBe(0);
    adminKey = recovered.secret;
  }, 180_000);
});

describe('help, --json and exit codes', () => {
  test('--help everywhere, usage errors 2, unreachable 3, no admin key 4, refused 1', async () => {
    const top = await cli(['--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toContain('Exit codes: 0 ok, 1 operation failed or refused, 2 usage error, 3 server unreachable, 4 admin key missing or refused.');
    for (const args of [['start'], ['db', 'create'], ['tables', 'deploy'], ['tables', 'alter'], ['devices', 'list'], ['backup'], ['admin-key', 'rotate'], ['recover'], ['usage'], ['status']]) {
      const h = await cli([...args, '--help']);
      expect(h.code, args.join(' ')).toBe(0);
      expect(h.stdout).toContain(`usage: offsync ${args.join(' ')}`);
    }
    expect((await cli(['tables', 'explode'])).code).toBe(2);
    expect((await cli(['db', 'create', '--project', 'demo'])).code).toBe(2); // --name missing
    expect((await cli(['status', '--bogus', 'x'])).code).toBe(2);
    const unreachable = await cli(['status', '--json'], { OFFSYNC_URL: 'http://127.0.0.1:9' });
    expect(unreachable.code).toBe(3);
    expect(JSON.parse(unreachable.stderr)).toMatchObject({ error: { code: 'UNREACHABLE', exitCode: 3 } });
    expect((await cli(['db', 'list'], { OFFSYNC_ADMIN_KEY: '' })).code).toBe(4);
    const missing = await cli(['tables', 'list', 'db_doesnotexist', '--json']);
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stderr)).toMatchObject({ error: { code: 'NOT_FOUND' } });
    expect((await cli(['backup', 'db_doesnotexist', 'x.sqlite'])).code).toBe(1);
  }, 180_000);
});

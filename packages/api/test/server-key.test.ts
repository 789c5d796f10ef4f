/**
 * Server key (docs/ARCHITECTURE.md "Files and keys"): from OFFSYNC_SECRET_KEY, from
 * OFFSYNC_SECRET_KEY_FILE (outside DATA_DIR), or `<DATA_DIR>/server.key`; `rotate-key`
 * re-encrypts every secret in one transaction and leaves the old key untouched; the start-up
 * check refuses a key that does not decrypt the stored secrets.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import {
  ConfigError,
  loadConfig,
  loadOrCreateServerKey,
  createSecretBox,
  parseServerKey,
  createPrismaClient,
  migrate,
  KeyMismatchError,
  rotateServerKey,
  verifyServerKey,
  createServices,
} from '../src/index.ts';
import type { Services } from '../src/index.ts';
import { createTestDeps, providers, stopEmbeddedPg } from './helpers.ts';

afterAll(stopEmbeddedPg);

const tmp = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));

describe('key configuration', () => {
  test('OFFSYNC_SECRET_KEY_FILE is read (hex or base64), must exist and lie outside DATA_DIR', () => {
    const dir = tmp('offsync-keyfile-');
    try {
      const dataDir = join(dir, 'data');
      const keyFile = join(dir, 'secrets', 'offsync.key');
      const key = randomBytes(32);
      expect(() => loadOrCreateServerKey(loadConfig({ DATA_DIR: dataDir, OFFSYNC_SECRET_KEY_FILE: keyFile }))).toThrow(/cannot read the server key file/);
      rmSync(join(dir, 'secrets'), { recursive: true, force: true });
      writeFileSync(join(dir, 'k.hex'), `${key.toString('hex')}\n`);
      writeFileSync(join(dir, 'k.b64'), key.toString('base64'));
      for (const f of ['k.hex', 'k.b64']) {
        const config = loadConfig({ DATA_DIR: dataDir, OFFSYNC_SECRET_KEY_FILE: join(dir, f) });
        expect(config.secretKeyFile).toBe(join(dir, f));
        const k = loadOrCreateServerKey(config);
        expect(k).toMatchObject({ source: 'file', created: false, file: join(dir, f) });
        expect(Buffer.from(k.key).equals(key)).toBe(true);
      }
      // Relative to INIT_CWD like DATA_DIR.
      expect(loadConfig({ INIT_CWD: dir, DATA_DIR: './data', OFFSYNC_SECRET_KEY_FILE: './k.hex' }).secretKeyFile).toBe(join(dir, 'k.hex'));
      // Nothing was generated in DATA_DIR.
      expect(() => statSync(join(dataDir, 'server.key'))).toThrow();

      expect(() => loadConfig({ DATA_DIR: dataDir, OFFSYNC_SECRET_KEY_FILE: join(dataDir, 'server.key') })).toThrow(/outside DATA_DIR/);
      expect(() => loadConfig({ DATA_DIR: dataDir, OFFSYNC_SECRET_KEY_FILE: join(dataDir, 'keys', 'k') })).toThrow(ConfigError);
      expect(() => loadConfig({ DATA_DIR: dataDir, OFFSYNC_SECRET_KEY_FILE: dataDir })).toThrow(/outside DATA_DIR/);
      expect(() => loadConfig({ DATA_DIR: dataDir, OFFSYNC_SECRET_KEY: key.toString('hex'), OFFSYNC_SECRET_KEY_FILE: join(dir, 'k.hex') })).toThrow(/not both/);
      writeFileSync(join(dir, 'short'), 'abcd');
      expect(() => loadOrCreateServerKey(loadConfig({ DATA_DIR: dataDir, OFFSYNC_SECRET_KEY_FILE: join(dir, 'short') }))).toThrow(/short: .*32 bytes/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('OFFSYNC_SECRET_KEY wins over DATA_DIR/server.key; without either, server.key is made 0600 in a 0700 DATA_DIR', () => {
    const dir = tmp('offsync-keyenv-');
    const old = process.umask(0);
    try {
      const key = randomBytes(32);
      const fromEnv = loadOrCreateServerKey(loadConfig({ DATA_DIR: join(dir, 'a'), OFFSYNC_SECRET_KEY: key.toString('hex') }));
      expect(fromEnv).toMatchObject({ source: 'env', created: false });
      expect(Buffer.from(fromEnv.key).equals(key)).toBe(true);

      const dataDir = join(dir, 'b');
      const made = loadOrCreateServerKey(loadConfig({ DATA_DIR: dataDir }));
      expect(made).toMatchObject({ source: 'dataDir', created: true, file: join(dataDir, 'server.key') });
      expect(statSync(dataDir).mode & 0o777).toBe(0o700);
      expect(statSync(join(dataDir, 'server.key')).mode & 0o777).toBe(0o600);
    } finally {
      process.umask(old);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('OFFSYNC_SYNCHRONOUS: FULL by default, NORMAL on request, anything else refused', () => {
    expect(loadConfig({}).centralSynchronous).toBe('FULL');
    expect(loadConfig({ OFFSYNC_SYNCHRONOUS: 'normal' }).centralSynchronous).toBe('NORMAL');
    expect(() => loadConfig({ OFFSYNC_SYNCHRONOUS: 'OFF' })).toThrow(/OFFSYNC_SYNCHRONOUS/);
  });
});

interface Stored { pg: string; expo: string; jwt: string }

async function storeSecrets(services: Services): Promise<{ ids: { pgDb: string; liteDb: string }; plain: Stored }> {
  const plain: Stored = { pg: 'pg-password-0123', expo: 'expo-access-token-0123456789', jwt: 'hs256-shared-secret-0123456789abcdef' };
  const pgProject = await services.projects.createProject({ name: 'pg', kind: 'POSTGRES' });
  const pgDb = await services.databases.createDatabase({ projectId: pgProject.id, name: 'app', connection: { host: 'db.example', port: 5432, database: 'app', user: 'app', password: plain.pg } });
  const lite = await services.projects.createProject({ name: 'lite', kind: 'SQLITE' });
  const liteDb = await services.databases.createDatabase({ projectId: lite.id, name: 'app' });
  await services.push.setExpoAccessToken(liteDb.id, plain.expo);
  await services.auth.configureJwtProvider(liteDb.id, { method: 'HS256', secret: plain.jwt });
  return { ids: { pgDb: pgDb.id, liteDb: liteDb.id }, plain };
}

async function readStored(services: Services, ids: { pgDb: string; liteDb: string }) {
  const pgDb = await services.prisma.database.findUniqueOrThrow({ where: { id: ids.pgDb } });
  const liteDb = await services.prisma.database.findUniqueOrThrow({ where: { id: ids.liteDb } });
  const jwt = await services.prisma.jwtProvider.findUniqueOrThrow({ where: { databaseId: ids.liteDb } });
  return { pg: pgDb.pgPasswordEnc ?? '', expo: liteDb.expoAccessTokenEnc ?? '', jwt: jwt.secretEnc ?? '' };
}

describe.each(providers)('rotation on %s', (provider) => {
  let t: Awaited<ReturnType<typeof createTestDeps>>;
  let services: Services;
  const oldKey = randomBytes(32);
  beforeAll(async () => {
    t = await createTestDeps(provider);
    t.deps.secretBox = createSecretBox(oldKey);
    services = createServices(t.deps);
  });
  afterAll(async () => { await t.cleanup(); });

  test('round trip: every ciphertext re-encrypted under the new key, the old key no longer decrypts, the start-up check follows', async () => {
    const { ids, plain } = await storeSecrets(services);
    const before = await readStored(services, ids);
    expect(await verifyServerKey(t.deps.prisma, createSecretBox(oldKey))).toBe(3);

    const newKey = randomBytes(32);
    const result = await rotateServerKey(t.deps.prisma, oldKey, newKey);
    expect(result).toEqual({ total: 3, columns: { 'Database.pgPasswordEnc': 1, 'Database.expoAccessTokenEnc': 1, 'JwtProvider.secretEnc': 1 } });

    const after = await readStored(services, ids);
    const newBox = createSecretBox(newKey);
    const oldBox = createSecretBox(oldKey);
    for (const k of ['pg', 'expo', 'jwt'] as const) {
      expect(after[k]).not.toBe(before[k]);
      expect(newBox.decrypt(after[k])).toBe(plain[k]);
      expect(() => oldBox.decrypt(after[k])).toThrow();
    }
    // The services read the secrets under the new key.
    const withNewKey = createServices({ ...t.deps, secretBox: newBox });
    expect(await withNewKey.push.getExpoAccessToken(ids.liteDb)).toBe(plain.expo);
    expect(withNewKey.databases.pgSettings(await withNewKey.databases.getDatabase(ids.pgDb)).password).toBe(plain.pg);

    expect(await verifyServerKey(t.deps.prisma, newBox)).toBe(3);
    await expect(verifyServerKey(t.deps.prisma, oldBox)).rejects.toBeInstanceOf(KeyMismatchError);
    await expect(rotateServerKey(t.deps.prisma, newKey, newKey)).rejects.toThrow(/current key/);

    // A wrong "old" key: refused, nothing changed.
    await expect(rotateServerKey(t.deps.prisma, randomBytes(32), randomBytes(32))).rejects.toBeInstanceOf(KeyMismatchError);
    expect(await readStored(services, ids)).toEqual(after);

    // One value that does not decrypt (corrupted row): the whole rotation is refused, the others untouched.
    await t.deps.prisma.database.update({ where: { id: ids.pgDb }, data: { pgPasswordEnc: oldBox.encrypt('under another key') } });
    const mixed = await readStored(services, ids);
    await expect(rotateServerKey(t.deps.prisma, newKey, randomBytes(32))).rejects.toThrow(/Database.pgPasswordEnc of /);
    expect(await readStored(services, ids)).toEqual(mixed);
  });
});

describe('npm run rotate-key', () => {
  test('re-encrypts a SQLite control plane from DATA_DIR/server.key to --new-key-file, old key file untouched', async () => {
    const dir = tmp('offsync-rotate-cli-');
    try {
      const dataDir = join(dir, 'data');
      const env = { ...process.env, DATA_DIR: dataDir, DATABASE_URL: '', OFFSYNC_SECRET_KEY: '', OFFSYNC_SECRET_KEY_FILE: '', INIT_CWD: dir };
      const old = loadOrCreateServerKey({ dataDir, secretKey: null });
      const oldText = readFileSync(join(dataDir, 'server.key'), 'utf8');
      const target = { provider: 'sqlite' as const, file: join(dataDir, 'offsync.db') };
      await migrate(target);
      const prisma = createPrismaClient(target);
      const base = await createTestDeps('sqlite');
      const deps = base.deps;
      onTestFinished(() => base.cleanup());
      const services = createServices({ ...deps, prisma, dataDir, secretBox: createSecretBox(old.key) });
      const { ids, plain } = await storeSecrets(services);
      await prisma.$disconnect();

      const tsx = fileURLToPath(new URL('../../../node_modules/tsx/dist/cli.mjs', import.meta.url));
      const cwd = fileURLToPath(new URL('..', import.meta.url));
      const run = (args: string[]) => promisify(execFile)(process.execPath, [tsx, 'scripts/rotate-key.ts', ...args], { cwd, env, encoding: 'utf8' });
      await expect(run(['--new-key-file', join(dataDir, 'new.key')])).rejects.toMatchObject({ stderr: expect.stringMatching(/outside DATA_DIR/) });
      const out = await run(['--new-key-file', './new.key']);
      expect(out.stdout).toMatch(/New key generated in .*new\.key/);
      expect(out.stdout).toMatch(/Re-encrypted 3 secret\(s\)/);
      expect(statSync(join(dir, 'new.key')).mode & 0o777).toBe(0o600);
      expect(readFileSync(join(dataDir, 'server.key'), 'utf8')).toBe(oldText);

      const newKey = parseServerKey(readFileSync(join(dir, 'new.key'), 'utf8'));
      const check = createPrismaClient(target);
      try {
        const after = createServices({ ...deps, prisma: check, dataDir, secretBox: createSecretBox(newKey) });
        expect(await after.push.getExpoAccessToken(ids.liteDb)).toBe(plain.expo);
        expect(await verifyServerKey(check, createSecretBox(newKey))).toBe(3);
        await expect(verifyServerKey(check, createSecretBox(old.key))).rejects.toBeInstanceOf(KeyMismatchError);
      } finally {
        await check.$disconnect();
      }
      // Run again with the old key still configured: it no longer decrypts, nothing changes.
      await expect(run(['--new-key-file', './new.key'])).rejects.toMatchObject({ stderr: expect.stringMatching(/does not decrypt 3 stored secret/) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

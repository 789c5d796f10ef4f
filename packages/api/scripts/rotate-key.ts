/**
 * `npm run rotate-key -w @offsync/api -- --new-key-file <path>`: re-encrypts every secret of the
 * control plane under a new server key (docs/ARCHITECTURE.md "Files and keys").
 *
 * The current key comes from the usual configuration (OFFSYNC_SECRET_KEY, OFFSYNC_SECRET_KEY_FILE
 * or `<DATA_DIR>/server.key`, with DATA_DIR / DATABASE_URL as for `npm start`). The new key is
 * read from `<path>`, which must be outside DATA_DIR; when the file does not exist, a random key
 * is written there (mode 0600). Everything is re-encrypted in one transaction; the old key is
 * never modified or deleted. Stop the server first, then start it with
 * OFFSYNC_SECRET_KEY_FILE=<path>.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, loadConfig, loadOrCreateServerKey, readServerKeyFile } from '../src/config.ts';
import { createPrismaClient, parseDatabaseUrl } from '../src/db/prisma.ts';
import { rotateServerKey } from '../src/key-rotation.ts';

function usage(): never {
  process.stderr.write('usage: npm run rotate-key -w @offsync/api -- --new-key-file <path>\n');
  process.exit(2);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const i = args.indexOf('--new-key-file');
  const given = i >= 0 ? args[i + 1] : undefined;
  if (given === undefined || given.startsWith('--') || args.length !== 2) usage();
  const config = loadConfig(process.env);
  const newFile = resolve(process.env['INIT_CWD'] || process.cwd(), given);
  // The same rule as OFFSYNC_SECRET_KEY_FILE: the new key must not sit in DATA_DIR.
  loadConfig({ ...process.env, OFFSYNC_SECRET_KEY: '', OFFSYNC_SECRET_KEY_FILE: newFile });

  if (config.secretKey === null && config.secretKeyFile === null && !existsSync(join(config.dataDir, 'server.key'))) {
    throw new ConfigError(`no server key configured and no ${join(config.dataDir, 'server.key')}: nothing to rotate`);
  }
  const current = loadOrCreateServerKey(config);

  let generated = false;
  if (!existsSync(newFile)) {
    writeFileSync(newFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
    chmodSync(newFile, 0o600);
    generated = true;
  }
  const newKey = readServerKeyFile(newFile);

  const prisma = createPrismaClient(parseDatabaseUrl(config.databaseUrl, config.dataDir));
  try {
    const result = await rotateServerKey(prisma, current.key, newKey);
    const from = current.source === 'env' ? 'OFFSYNC_SECRET_KEY' : current.file;
    process.stdout.write(
      `${generated ? `New key generated in ${newFile}.\n` : ''}` +
        `Re-encrypted ${result.total} secret(s) from ${from} to ${newFile}: ` +
        `${Object.entries(result.columns).map(([c, n]) => `${c} ${n}`).join(', ')}.\n` +
        `Start the server with OFFSYNC_SECRET_KEY_FILE=${newFile}${current.source === 'env' ? ' and without OFFSYNC_SECRET_KEY' : ''}; ` +
        `the old key no longer decrypts anything and can be destroyed${current.source === 'env' ? '' : ` (${from})`}.\n`,
    );
  } finally {
    await prisma.$disconnect();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`rotate-key failed, the control plane was not changed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});

/**
 * The e2e suite's server: `packages/api/src/main.ts` as `npm start` runs it (a child process,
 * temp DATA_DIR, ephemeral port, a known admin key), so the test covers main.ts's wiring of the
 * dashboard handler too. Also finds the system Chromium (Debian's `chromium` package).
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const DASHBOARD_DIR = join(here, '../..');
const REPO = join(DASHBOARD_DIR, '../..');

/** CHROMIUM_PATH, else /usr/bin/chromium; throws (never skips) when it is missing. */
export function chromiumPath(): string {
  const path = process.env['CHROMIUM_PATH'] || '/usr/bin/chromium';
  if (!existsSync(path)) {
    throw new Error(
      `The dashboard e2e suite needs a system Chromium at ${path} (npm cannot download browsers here). ` +
        'Install Debian\'s package: apt-get update && apt-get install -y chromium (or set CHROMIUM_PATH). See README "Tests".',
    );
  }
  return path;
}

/** dist/ as `npm start` would serve it (built when stale). */
export function ensureBuilt(): void {
  const r = spawnSync(process.execPath, [join(DASHBOARD_DIR, 'scripts/build-if-stale.mjs')], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('vite build of the dashboard failed');
}

export interface Server {
  origin: string;
  adminKey: string;
  dataDir: string;
  /** The central SQLite file of a database (packages/api `sqliteDatabasePath`). */
  databaseFile(databaseId: string): string;
  stop(): Promise<void>;
}

/** A free loopback port (the snippet shows the server's public URL, so PORT=0 would print :0). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

export async function startServer(): Promise<Server> {
  const dataDir = mkdtempSync(join(tmpdir(), 'offsync-dash-e2e-'));
  const adminKey = `osa_${randomBytes(24).toString('hex')}`;
  const tsx = join(REPO, 'node_modules/.bin/tsx');
  const child: ChildProcess = spawn(tsx, [join(REPO, 'packages/api/src/main.ts')], {
    cwd: join(REPO, 'packages/api'),
    env: { ...process.env, PORT: String(await freePort()), HOST: '127.0.0.1', DATA_DIR: dataDir, OFFSYNC_ADMIN_KEY: adminKey, DATABASE_URL: '', REDIS_URL: '', INIT_CWD: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr?.on('data', (c: Buffer) => { log += c.toString(); });
  const origin = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not start in 90 s:\n${out}\n${log}`)), 90_000);
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /OffSync listening on (http:\/\/[^/\s]+)\//.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening:\n${out}\n${log}`));
    });
  });
  return {
    origin,
    adminKey,
    dataDir,
    databaseFile: (id) => join(dataDir, 'databases', `${id}.sqlite`),
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

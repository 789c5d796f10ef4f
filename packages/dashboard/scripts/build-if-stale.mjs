/**
 * Builds dist/ with Vite unless it is newer than every input (src/, index.html, the configs and the
 * generated API client). Run by the root `prestart` and before the tests, so `npm start` always
 * serves current assets and a second start costs nothing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const inputs = [join(root, 'src'), join(root, 'index.html'), join(root, 'vite.config.ts'), join(root, 'package.json'), join(root, '../client/src'), join(root, '../core/src/schema/sql-text.ts')];

function newest(path) {
  if (!existsSync(path)) return 0;
  const s = statSync(path);
  if (!s.isDirectory()) return s.mtimeMs;
  let max = 0;
  for (const entry of readdirSync(path)) max = Math.max(max, newest(join(path, entry)));
  return max;
}

const built = join(root, 'dist', 'index.html');
const builtAt = existsSync(built) ? statSync(built).mtimeMs : 0;
const changedAt = Math.max(...inputs.map(newest));
if (builtAt > changedAt && process.env.DASHBOARD_FORCE_BUILD === undefined) {
  process.stdout.write('dashboard: dist/ is up to date\n');
} else {
  const vite = join(root, 'node_modules/.bin/vite');
  const bin = existsSync(vite) ? vite : join(root, '../../node_modules/.bin/vite');
  const r = spawnSync(bin, ['build', '--logLevel', 'warn'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
  process.stdout.write('dashboard: built dist/\n');
}

#!/usr/bin/env node
// The `offsync` operator CLI (src/cli/main.ts; docs/CONTROL-PLANE.md "Operator CLI"). The server
// package runs as TypeScript source through tsx, like `npm start`; the Prisma client is generated
// first when missing or stale (what `npm start`'s prestart does; a no-op when up to date).
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

execFileSync(process.execPath, [fileURLToPath(new URL('../scripts/prisma-generate.mjs', import.meta.url))], { stdio: ['ignore', 'ignore', 'inherit'] });
register();
const { runCli } = await import('../src/cli/main.ts');
process.exitCode = await runCli(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  cwd: process.cwd(),
});

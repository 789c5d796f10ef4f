/**
 * Liveness and readiness (docs/CONTROL-PLANE.md "Operating"):
 *
 * - `GET /healthz` — the process serves HTTP: always 200 `{"status":"ok"}` (no I/O).
 * - `GET /readyz` — the server should receive traffic: 200 `{"status":"ready","checks":{…}}` when
 *   every check passes (control-plane database answers `SELECT 1`, every migration is applied,
 *   Redis answers PING when REDIS_URL is set), each within `timeoutMs` (default 1 s); otherwise
 *   503 with `status` `not_ready` and the failing checks (`timeout`, `unreachable`,
 *   `pending_migrations`). From {@link Health.startDraining} on (SIGTERM) it answers 503
 *   `{"status":"draining"}` so a load balancer stops sending before the server closes.
 *
 * A check's failure detail is logged once when it starts failing (warn) and when it recovers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dialectOf, rawTable } from '../db/prisma.ts';
import type { PrismaClient } from '../db/prisma.ts';
import { loadMigrations } from '../db/migrate.ts';
import type { Logger } from '../deps.ts';
import { describeError } from '../logging/log-errors.ts';
import { requestTarget } from '../http/request-target.ts';
import type { HttpHandler } from '../http/router.ts';

export const HEALTHZ_PATH = '/healthz';
export const READYZ_PATH = '/readyz';

export interface ReadinessCheck {
  /** Key in the `/readyz` body, e.g. `controlPlane`, `migrations`, `redis`. */
  name: string;
  /** Resolves when ready; rejects otherwise (an error with `code` gives the reported reason). */
  check(): Promise<void>;
}

export type CheckResult = 'ok' | 'timeout' | 'unreachable' | 'pending_migrations' | (string & {});

export interface Readiness {
  ready: boolean;
  status: 'ready' | 'not_ready' | 'draining';
  checks: Record<string, CheckResult>;
}

export interface Health {
  /** Answers `/healthz` and `/readyz` (false for other paths). */
  readonly handler: HttpHandler;
  readonly draining: boolean;
  /** `/readyz` answers 503 `draining` from now on (SIGTERM). */
  startDraining(): void;
  readiness(): Promise<Readiness>;
}

export interface HealthOptions {
  checks: readonly ReadinessCheck[];
  /** Per-check time limit (default 1000 ms). */
  timeoutMs?: number;
  logger: Logger;
}

class CheckError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

function withTimeout(run: () => Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CheckError('timeout', `no answer within ${ms} ms`)), ms);
  });
  return Promise.race([run(), timeout]).finally(() => clearTimeout(timer));
}

/** The control-plane database answers. */
export function controlPlaneCheck(prisma: PrismaClient): ReadinessCheck {
  return {
    name: 'controlPlane',
    async check() {
      try {
        await prisma.$queryRawUnsafe('SELECT 1');
      } catch (e) {
        throw new CheckError('unreachable', e instanceof Error ? e.message : String(e));
      }
    },
  };
}

/**
 * Every migration shipped with this build is recorded in `_offsync_migrations` (db/migrate.ts), in
 * the client's PostgreSQL schema if DATABASE_URL names one (`dialectOf`).
 */
export function migrationsCheck(prisma: PrismaClient): ReadinessCheck {
  let expected: string[] | undefined;
  const dialect = dialectOf(prisma);
  const { provider } = dialect;
  const table = rawTable(dialect, '_offsync_migrations');
  return {
    name: 'migrations',
    async check() {
      expected ??= loadMigrations(provider).map((m) => m.name);
      let rows: { name: string }[];
      try {
        rows = await prisma.$queryRawUnsafe<{ name: string }[]>(`SELECT name FROM ${table}`);
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        // No migrations table yet: nothing applied; any other failure: the database did not answer.
        throw new CheckError(/no such table|does not exist/i.test(message) ? 'pending_migrations' : 'unreachable', message);
      }
      const applied = new Set(rows.map((r) => r.name));
      const missing = expected.filter((n) => !applied.has(n));
      if (missing.length > 0) throw new CheckError('pending_migrations', `${missing.length} migration(s) not applied: ${missing.slice(0, 5).join(', ')}`);
    },
  };
}

function send(res: ServerResponse, status: number, body: unknown, head: boolean): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(head ? undefined : text);
}

export function createHealth(options: HealthOptions): Health {
  const timeoutMs = options.timeoutMs ?? 1000;
  const failing = new Map<string, string>();
  let draining = false;

  const readiness = async (): Promise<Readiness> => {
    if (draining) return { ready: false, status: 'draining', checks: {} };
    const results = await Promise.all(
      options.checks.map(async (c): Promise<[string, CheckResult]> => {
        try {
          await withTimeout(() => c.check(), timeoutMs);
          if (failing.delete(c.name)) options.logger.info('readiness: check recovered', { check: c.name });
          return [c.name, 'ok'];
        } catch (e) {
          const code = e instanceof CheckError ? e.code : 'unreachable';
          if (!failing.has(c.name)) options.logger.warn('readiness: check failing', { check: c.name, code, error: describeError(e) });
          failing.set(c.name, code);
          return [c.name, code];
        }
      }),
    );
    const checks = Object.fromEntries(results);
    const ready = results.every(([, r]) => r === 'ok');
    return { ready, status: ready ? 'ready' : 'not_ready', checks };
  };

  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const path = requestTarget(req.url)?.pathname;
    if (path !== HEALTHZ_PATH && path !== READYZ_PATH) return false;
    req.resume();
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, 405, { errors: [{ status: '405', code: 'method_not_allowed', title: 'Method not allowed' }] }, false);
      return true;
    }
    if (path === HEALTHZ_PATH) {
      send(res, 200, { status: 'ok' }, head);
      return true;
    }
    const r = await readiness();
    send(res, r.ready ? 200 : 503, { status: r.status, checks: r.checks }, head);
    return true;
  };

  return {
    handler,
    get draining() {
      return draining;
    },
    startDraining() {
      draining = true;
    },
    readiness,
  };
}

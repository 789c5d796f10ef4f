/**
 * URL routing of the sync protocol (docs/PROTOCOL.md §P1 and "Generations and routes"):
 *
 * - G1  `GET|POST /v1/cloudsync/{path…}/{site}/upload`, `POST /v1/cloudsync/{path…}/{site}/{dbv}/{seq}/check`
 * - G2a `GET /v2/cloudsync/{path…}/{site}/upload`, `POST …/apply`, `POST …/check` (path ≠ `databases/…`)
 * - G2b/G3 `GET /v2/cloudsync/databases/{id}/{site}/status|upload`, `POST …/apply|check`
 * - `PUT /v2/cloudsync/databases/{id}/notifications/tokens`
 * - artifacts `PUT|GET /v2/cloudsync/_artifacts/{token}`
 *
 * For connection-string clients (G1/G2a) `{path…}` names the database: its last segment with a
 * trailing `.sqlite`, `.sqlite3` or `.db` removed (`/testdb.sqlite` → `testdb`,
 * `/a/db_x` → `db_x`); a `?database=` query parameter overrides it.
 */
import type { Cursor } from '../download-pages.ts';
import { ARTIFACT_PATH_PREFIX } from '../artifacts.ts';

export { requestTarget } from '../../../http/request-target.ts';

export type ApiAction = 'upload' | 'apply' | 'check' | 'status';

export type SyncRoute =
  | { kind: 'api'; family: 'G1' | 'G2a' | 'G2b'; databaseId: string; site: string; action: ApiAction; methods: readonly string[]; g1Cursor?: Cursor }
  | { kind: 'pushTokens'; databaseId: string; methods: readonly string[] }
  | { kind: 'artifact'; token: string; methods: readonly string[] }
  | { kind: 'unknown'; methods: readonly string[] };

const V1 = '/v1/cloudsync/';
const V2 = '/v2/cloudsync/';

/** Database id named by a connection-string path (G1/G2a). */
export function databaseIdFromPath(segments: readonly string[], query: URLSearchParams): string {
  const q = query.get('database');
  if (q !== null && q !== '') return q;
  const last = segments[segments.length - 1] ?? '';
  return last.replace(/\.(sqlite3?|db)$/i, '');
}

function decode(seg: string): string | undefined {
  try {
    return decodeURIComponent(seg);
  } catch {
    return undefined;
  }
}

function segmentsAfter(pathname: string, prefix: string): string[] | undefined {
  const parts = pathname.slice(prefix.length).split('/').map(decode);
  if (parts.some((p) => p === undefined || p === '')) return undefined;
  return parts as string[];
}

function clockSegment(s: string | undefined): number | undefined {
  return s !== undefined && /^\d{1,15}$/.test(s) ? Number(s) : undefined;
}

/** Parses a sync URL; undefined when the path is not a sync path at all. */
export function parseSyncRoute(pathname: string, query: URLSearchParams): SyncRoute | undefined {
  if (pathname.startsWith(ARTIFACT_PATH_PREFIX)) {
    const token = pathname.slice(ARTIFACT_PATH_PREFIX.length);
    return token.length > 0 && !token.includes('/') ? { kind: 'artifact', token, methods: ['GET', 'PUT'] } : { kind: 'unknown', methods: [] };
  }
  if (pathname.startsWith(V1)) {
    const s = segmentsAfter(pathname, V1);
    if (s === undefined) return { kind: 'unknown', methods: [] };
    const n = s.length;
    if (s[n - 1] === 'upload' && n >= 3) {
      return { kind: 'api', family: 'G1', databaseId: databaseIdFromPath(s.slice(0, n - 2), query), site: s[n - 2] ?? '', action: 'upload', methods: ['GET', 'POST'] };
    }
    if (s[n - 1] === 'check' && n >= 5) {
      const dbv = clockSegment(s[n - 3]);
      const seq = clockSegment(s[n - 2]);
      if (dbv !== undefined && seq !== undefined) {
        return {
          kind: 'api',
          family: 'G1',
          databaseId: databaseIdFromPath(s.slice(0, n - 4), query),
          site: s[n - 4] ?? '',
          action: 'check',
          methods: ['POST'],
          g1Cursor: { dbVersion: dbv, seq },
        };
      }
    }
    return { kind: 'unknown', methods: [] };
  }
  if (pathname.startsWith(V2)) {
    const s = segmentsAfter(pathname, V2);
    if (s === undefined) return { kind: 'unknown', methods: [] };
    const n = s.length;
    if (s[0] === 'databases') {
      if (n === 4 && s[2] === 'notifications' && s[3] === 'tokens') return { kind: 'pushTokens', databaseId: s[1] ?? '', methods: ['PUT'] };
      const action = s[3];
      if (n === 4 && (action === 'status' || action === 'upload' || action === 'apply' || action === 'check')) {
        const methods = action === 'status' || action === 'upload' ? ['GET'] : ['POST'];
        return { kind: 'api', family: 'G2b', databaseId: s[1] ?? '', site: s[2] ?? '', action, methods };
      }
      return { kind: 'unknown', methods: [] };
    }
    const action = s[n - 1];
    if (n >= 3 && (action === 'upload' || action === 'apply' || action === 'check')) {
      return { kind: 'api', family: 'G2a', databaseId: databaseIdFromPath(s.slice(0, n - 2), query), site: s[n - 2] ?? '', action, methods: action === 'upload' ? ['GET'] : ['POST'] };
    }
    return { kind: 'unknown', methods: [] };
  }
  return undefined;
}

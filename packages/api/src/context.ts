/** GraphQL context: who is calling (from the HTTP header or graphql-ws connectionParams) + services. */
import type { SyncService } from './domains/sync/sync.service.ts';
import type { Services } from './services.ts';

export type Viewer = { kind: 'admin'; adminKeyId: string } | null;

export interface GraphQLContext {
  viewer: Viewer;
  services: Services;
  /** The one sync service of this server (GraphQL pushChanges / pullChanges / changes). */
  sync: SyncService;
}

/** `Bearer <key>` → key; also accepts a bare key. */
export function extractBearer(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const m = /^\s*(?:Bearer\s+)?(\S+)\s*$/i.exec(value);
  return m?.[1] ?? null;
}

export async function resolveViewer(services: Services, credential: string | null): Promise<Viewer> {
  if (credential === null) return null;
  const adminKeyId = await services.auth.verifyAdminKey(credential);
  return adminKeyId === null ? null : { kind: 'admin', adminKeyId };
}

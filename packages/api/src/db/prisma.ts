/**
 * Creates the control-plane Prisma client for a DATABASE_URL. The provider is fixed at generate
 * time, so there are two generated clients with the same datamodel; the rest of the code uses the
 * SQLite client's type for both (the PostgreSQL client has the same model API).
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient as SqlitePrismaClient } from '../generated/sqlite/client.ts';
import { PrismaClient as PostgresPrismaClient } from '../generated/postgresql/client.ts';

export type PrismaClient = InstanceType<typeof SqlitePrismaClient>;
export type ControlPlaneProvider = 'sqlite' | 'postgresql';

/** Parsed DATABASE_URL. */
export type DatabaseTarget =
  | { provider: 'sqlite'; file: string }
  | { provider: 'postgresql'; url: string; schema: string | null };

export function parseDatabaseUrl(url: string | undefined, dataDir: string): DatabaseTarget {
  if (url === undefined || url === '') return { provider: 'sqlite', file: resolve(dataDir, 'offsync.db') };
  if (url.startsWith('file:')) return { provider: 'sqlite', file: resolve(url.slice('file:'.length)) };
  if (/^postgres(ql)?:\/\//.test(url)) {
    const parsed = new URL(url);
    const schema = parsed.searchParams.get('schema');
    parsed.searchParams.delete('schema');
    return { provider: 'postgresql', url: parsed.toString(), schema };
  }
  throw new Error('DATABASE_URL must start with file:, postgres:// or postgresql://');
}

export function createPrismaClient(target: DatabaseTarget): PrismaClient {
  if (target.provider === 'sqlite') {
    mkdirSync(dirname(target.file), { recursive: true });
    return new SqlitePrismaClient({ adapter: new PrismaBetterSqlite3({ url: target.file }) });
  }
  const adapter = new PrismaPg({ connectionString: target.url }, target.schema === null ? {} : { schema: target.schema });
  // Same datamodel, same model API: see the file comment.
  return new PostgresPrismaClient({ adapter }) as unknown as PrismaClient;
}

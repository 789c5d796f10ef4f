/**
 * The traffic counters' writes as a few multi-row statements (docs/ARCHITECTURE.md "Devices and
 * traffic"), instead of one awaited Prisma upsert per bucket and per device: a flush of 200
 * buckets and 200 devices was 600 statements in one transaction, 0.2 s during which every other
 * control-plane statement of the node waited (db/prisma.ts, one transaction at a time). Now it is
 * two statements per {@link ROWS_PER_STATEMENT} rows.
 *
 * - Same SQL on both control planes: `INSERT … SELECT … FROM (VALUES …) ON CONFLICT DO UPDATE`
 *   and `UPDATE … FROM (VALUES …)`, whose columns both name `column1`, `column2`, … PostgreSQL
 *   gets every value cast (its parameters arrive untyped); SQLite gets them bare (a cast there
 *   would change a timestamp's text). Tables are qualified with the control plane's schema.
 * - Values go through Prisma's raw parameters, so a timestamp is written in exactly the form its
 *   model writes use (the bucket's start is part of its key: the rejection log upserts the same
 *   rows through these statements).
 * - Every write is an increment (or a forward-only `lastSyncAt`), so several nodes' flushes over
 *   one PostgreSQL control plane add up; rows are written in one global order (sorted by key
 *   here, whatever order the caller gives), so they cannot deadlock on each other.
 */
import { rawTable as table } from '../../db/prisma.ts';
import type { ControlPlaneDialect, PrismaClient } from '../../db/prisma.ts';

/** Rows per statement: 7 parameters a bucket, far below SQLite's 32,766 and PostgreSQL's 65,535. */
export const ROWS_PER_STATEMENT = 500;

export interface BucketIncrement {
  databaseId: string;
  siteId: string;
  bucketStart: Date;
  uploadBytes: bigint;
  downloadBytes: bigint;
  requests: number;
  rejectedChanges: number;
}

export interface DeviceIncrement {
  databaseId: string;
  siteId: string;
  uploadBytes: bigint;
  downloadBytes: bigint;
  /** Written only if later than the stored one; null leaves it. */
  lastSyncAt: Date | null;
}

type Raw = ReturnType<PrismaClient['$executeRawUnsafe']>;

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const byDevice = (a: DeviceIncrement | BucketIncrement, b: DeviceIncrement | BucketIncrement): number =>
  byText(a.databaseId, b.databaseId) || byText(a.siteId, b.siteId);

function chunks<T>(rows: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) out.push(rows.slice(i, i + ROWS_PER_STATEMENT));
  return out;
}

/** `(VALUES (…), (…))` for `rows` rows of `types` (PostgreSQL casts; SQLite placeholders), numbered from `$1`. */
function values(dialect: ControlPlaneDialect, rows: number, types: readonly string[]): string {
  const pg = dialect.provider === 'postgresql';
  const tuples: string[] = [];
  let n = 0;
  for (let r = 0; r < rows; r++) tuples.push(`(${types.map((t) => (pg ? `CAST($${++n} AS ${t})` : '?')).join(', ')})`);
  return `(VALUES ${tuples.join(', ')})`;
}

/**
 * Statements adding `rows` into their (database, site, minute) buckets, creating the missing
 * ones. Rows of a database that no longer exists are skipped (its buckets went with it).
 */
export function bucketIncrements(prisma: PrismaClient, dialect: ControlPlaneDialect, rows: readonly BucketIncrement[]): Raw[] {
  const t = table(dialect, 'TrafficBucket');
  const cols = ['"uploadBytes"', '"downloadBytes"', '"requests"', '"rejectedChanges"'];
  const sorted = [...rows].sort((a, b) => byDevice(a, b) || a.bucketStart.getTime() - b.bucketStart.getTime());
  return chunks(sorted).map((part) => prisma.$executeRawUnsafe(
    `INSERT INTO ${t} ("databaseId", "siteId", "bucketStart", ${cols.join(', ')}) ` +
      `SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7 ` +
      `FROM ${values(dialect, part.length, ['text', 'text', 'timestamp(3)', 'bigint', 'bigint', 'integer', 'integer'])} AS v ` +
      // The WHERE also keeps SQLite's parser from reading ON CONFLICT as a join constraint.
      `WHERE v.column1 IN (SELECT "id" FROM ${table(dialect, 'Database')}) ` +
      `ON CONFLICT ("databaseId", "siteId", "bucketStart") DO UPDATE SET ${cols.map((c) => `${c} = ${t}.${c} + excluded.${c}`).join(', ')}`,
    ...part.flatMap((b) => [b.databaseId, b.siteId, b.bucketStart, b.uploadBytes, b.downloadBytes, b.requests, b.rejectedChanges]),
  ));
}

/**
 * Statements adding byte totals to devices and moving their `lastSyncAt` forward; each resolves
 * to the keys of the devices that exist (a device removed meanwhile is not recreated).
 */
export function deviceIncrements(prisma: PrismaClient, dialect: ControlPlaneDialect, rows: readonly DeviceIncrement[]): Array<ReturnType<PrismaClient['$queryRawUnsafe']>> {
  const t = table(dialect, 'Device');
  return chunks([...rows].sort(byDevice)).map((part) => prisma.$queryRawUnsafe<Array<{ databaseId: string; siteId: string }>>(
    `UPDATE ${t} SET "uploadBytes" = ${t}."uploadBytes" + v.column3, "downloadBytes" = ${t}."downloadBytes" + v.column4, ` +
      `"lastSyncAt" = CASE WHEN ${t}."lastSyncAt" < v.column5 THEN v.column5 ELSE ${t}."lastSyncAt" END ` +
      `FROM ${values(dialect, part.length, ['text', 'text', 'bigint', 'bigint', 'timestamp(3)'])} AS v ` +
      `WHERE ${t}."databaseId" = v.column1 AND ${t}."siteId" = v.column2 ` +
      `RETURNING ${t}."databaseId" AS "databaseId", ${t}."siteId" AS "siteId"`,
    ...part.flatMap((d) => [d.databaseId, d.siteId, d.uploadBytes, d.downloadBytes, d.lastSyncAt]),
  ));
}

/** The sums of one point of a metrics series and the sites that made them. */
export interface PointSums {
  /** The point's index in the series. */
  point: number;
  uploadBytes: number;
  downloadBytes: number;
  requests: number;
  rejectedChanges: number;
  /** Distinct sites with a bucket in the point. */
  sites: number;
}

/** Points per statement: 3 parameters each, far below SQLite's 32,766 and PostgreSQL's 65,535 (a series has at most 2,000). */
const POINTS_PER_STATEMENT = 2000;

/**
 * The sums of `databaseId`'s buckets in each of `points` (`[from, to)` each), aggregated in the
 * database: one row per point that has any bucket. A dashboard's 24 h of 1,000 busy devices is
 * 1.44 M minute buckets; read row by row into the process it took seconds of the event loop.
 */
export async function pointSums(prisma: PrismaClient, dialect: ControlPlaneDialect, databaseId: string, points: ReadonlyArray<{ from: Date; to: Date }>): Promise<PointSums[]> {
  const t = table(dialect, 'TrafficBucket');
  const out: PointSums[] = [];
  for (let at = 0; at < points.length; at += POINTS_PER_STATEMENT) {
    const part = points.slice(at, at + POINTS_PER_STATEMENT);
    const id = dialect.provider === 'postgresql' ? `CAST($${3 * part.length + 1} AS text)` : '?';
    const rows = await prisma.$queryRawUnsafe<Array<Record<string, unknown>>>(
      `SELECT p.column1 AS point, SUM(b."uploadBytes") AS up, SUM(b."downloadBytes") AS down, SUM(b."requests") AS req, ` +
        `SUM(b."rejectedChanges") AS rej, COUNT(DISTINCT b."siteId") AS sites ` +
        `FROM ${values(dialect, part.length, ['integer', 'timestamp(3)', 'timestamp(3)'])} AS p ` +
        `JOIN ${t} b ON b."databaseId" = ${id} AND b."bucketStart" >= p.column2 AND b."bucketStart" < p.column3 ` +
        `GROUP BY p.column1`,
      ...part.flatMap((p, i) => [at + i, p.from, p.to]),
      databaseId,
    );
    for (const r of rows) {
      out.push({ point: Number(r['point']), uploadBytes: Number(r['up'] ?? 0), downloadBytes: Number(r['down'] ?? 0), requests: Number(r['req'] ?? 0), rejectedChanges: Number(r['rej'] ?? 0), sites: Number(r['sites'] ?? 0) });
    }
  }
  return out;
}

/** Sums and distinct sites of each of `databaseIds`' buckets in `[from, to)`, aggregated in the database. */
export async function rangeSums(prisma: PrismaClient, dialect: ControlPlaneDialect, databaseIds: readonly string[], from: Date, to: Date): Promise<Map<string, Omit<PointSums, 'point'>>> {
  const t = table(dialect, 'TrafficBucket');
  const pg = dialect.provider === 'postgresql';
  const out = new Map<string, Omit<PointSums, 'point'>>();
  for (const databaseId of databaseIds) {
    const rows = await prisma.$queryRawUnsafe<Array<Record<string, unknown>>>(
      `SELECT SUM("uploadBytes") AS up, SUM("downloadBytes") AS down, SUM("requests") AS req, SUM("rejectedChanges") AS rej, COUNT(DISTINCT "siteId") AS sites ` +
        `FROM ${t} WHERE "databaseId" = ${pg ? 'CAST($1 AS text)' : '?'} AND "bucketStart" >= ${pg ? 'CAST($2 AS timestamp(3))' : '?'} AND "bucketStart" < ${pg ? 'CAST($3 AS timestamp(3))' : '?'}`,
      databaseId, from, to,
    );
    const r = rows[0] ?? {};
    out.set(databaseId, { uploadBytes: Number(r['up'] ?? 0), downloadBytes: Number(r['down'] ?? 0), requests: Number(r['req'] ?? 0), rejectedChanges: Number(r['rej'] ?? 0), sites: Number(r['sites'] ?? 0) });
  }
  return out;
}

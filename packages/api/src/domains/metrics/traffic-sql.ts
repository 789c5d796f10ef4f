/**
 * The traffic counters' writes as a few multi-row statements (docs/ARCHITECTURE.md "Devices and
 * traffic"), instead of one awaited Prisma upsert per bucket and per device: a flush of 200
 * buckets and 200 devices was 600 statements in one transaction, 0.2 s during which every other
 * control-plane statement of the node waited (db/prisma.ts, one transaction at a time). Now it is
 * one statement per {@link ROWS_PER_STATEMENT} rows for each bucket size (minute, hour, day) and
 * one for the devices. The reads ({@link pointSums}) aggregate in the database over the coarsest
 * whole buckets of the range ({@link coverRange}).
 *
 * - Same SQL on both control planes: `INSERT … SELECT … ON CONFLICT DO UPDATE` and `UPDATE …
 *   FROM`, reading the rows from one JSON parameter ({@link jsonRows}: `json_each` on SQLite,
 *   `json_array_elements` with casts on PostgreSQL), whose columns name `column1`, `column2`, …
 *   Tables are qualified with the control plane's schema.
 * - A timestamp is written in exactly the text Prisma's model writes use (the bucket's start is
 *   part of its key: a Prisma look-up by key finds these rows, metrics.service.test.ts).
 * - Every write is an increment (or a forward-only `lastSyncAt`), so several nodes' flushes over
 *   one PostgreSQL control plane add up; rows are written in one global order (sorted by key
 *   here, whatever order the caller gives), so they cannot deadlock on each other.
 */
import { rawTable as table } from '../../db/prisma.ts';
import type { ControlPlaneDialect, PrismaClient } from '../../db/prisma.ts';

/** Rows per statement (one JSON parameter each, see {@link jsonRows}): a statement stays a short write. */
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

type JsonCell = string | bigint | number | Date | null;

/**
 * `rows` (of `types`) as ONE parameter, a JSON array of arrays, and the derived table that reads
 * it back with the columns `column1`, `column2`, … (as a `VALUES` list names them). Prisma costs ~2 µs per raw
 * parameter: a flush of 200 buckets at three bucket sizes was 4,200 of them. A timestamp is
 * written as the text each control plane's Prisma adapter stores (SQLite: ISO 8601 with
 * `+00:00`; PostgreSQL reads the ISO text into `timestamp(3)`, UTC as everywhere here).
 */
function jsonRows(dialect: ControlPlaneDialect, types: readonly string[], rows: ReadonlyArray<readonly JsonCell[]>): { from: string; arg: string } {
  const pg = dialect.provider === 'postgresql';
  const cell = (v: JsonCell): string =>
    v === null ? 'null' : typeof v === 'string' ? JSON.stringify(v) : v instanceof Date ? `"${pg ? v.toISOString() : v.toISOString().replace('Z', '+00:00')}"` : String(v);
  const arg = `[${rows.map((r) => `[${r.map(cell).join(',')}]`).join(',')}]`;
  const cols = types.map((t, i) => (pg ? `CAST(j ->> ${i} AS ${t}) AS column${i + 1}` : `j.value ->> ${i} AS column${i + 1}`)).join(', ');
  return { from: `(SELECT ${cols} FROM ${pg ? 'json_array_elements(CAST($1 AS json)) AS j' : 'json_each(?) AS j'})`, arg };
}

/** Bucket sizes, finest first: each level's rows are the sums of the minutes they cover. */
export const TRAFFIC_LEVELS = [
  { level: 'minute', table: 'TrafficBucket', ms: 60_000 },
  { level: 'hour', table: 'TrafficHour', ms: 3_600_000 },
  { level: 'day', table: 'TrafficDay', ms: 86_400_000 },
] as const;
export type TrafficLevel = (typeof TRAFFIC_LEVELS)[number]['level'];

/**
 * Statements adding `rows` (minute buckets) into their (database, site, minute) buckets and into
 * the hour and day roll-ups that cover them, creating the missing ones; run them in one
 * transaction, so every level always holds the same sums. Rows of a database that no longer
 * exists are skipped (its buckets went with it).
 */
export function bucketIncrements(prisma: PrismaClient, dialect: ControlPlaneDialect, rows: readonly BucketIncrement[]): Raw[] {
  return TRAFFIC_LEVELS.flatMap(({ level, table: name, ms }) => levelIncrements(prisma, dialect, name, level === 'minute' ? rows : rollUp(rows, ms)));
}

/** `rows` summed per (database, site, bucket of `ms`). */
function rollUp(rows: readonly BucketIncrement[], ms: number): BucketIncrement[] {
  const out = new Map<string, BucketIncrement>();
  for (const r of rows) {
    const start = Math.floor(r.bucketStart.getTime() / ms) * ms;
    const key = `${r.databaseId}/${r.siteId}/${start}`;
    const o = out.get(key);
    if (o === undefined) out.set(key, { ...r, bucketStart: new Date(start) });
    else {
      o.uploadBytes += r.uploadBytes;
      o.downloadBytes += r.downloadBytes;
      o.requests += r.requests;
      o.rejectedChanges += r.rejectedChanges;
    }
  }
  return [...out.values()];
}

function levelIncrements(prisma: PrismaClient, dialect: ControlPlaneDialect, name: string, rows: readonly BucketIncrement[]): Raw[] {
  const t = table(dialect, name);
  const cols = ['"uploadBytes"', '"downloadBytes"', '"requests"', '"rejectedChanges"'];
  const sorted = [...rows].sort((a, b) => byDevice(a, b) || a.bucketStart.getTime() - b.bucketStart.getTime());
  return chunks(sorted).map((part) => {
    const v = jsonRows(dialect, ['text', 'text', 'timestamp(3)', 'bigint', 'bigint', 'integer', 'integer'],
      part.map((b) => [b.databaseId, b.siteId, b.bucketStart, b.uploadBytes, b.downloadBytes, b.requests, b.rejectedChanges]));
    return prisma.$executeRawUnsafe(
      `INSERT INTO ${t} ("databaseId", "siteId", "bucketStart", ${cols.join(', ')}) ` +
        `SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7 FROM ${v.from} AS v ` +
        // The WHERE also keeps SQLite's parser from reading ON CONFLICT as a join constraint.
        `WHERE v.column1 IN (SELECT "id" FROM ${table(dialect, 'Database')}) ` +
        `ON CONFLICT ("databaseId", "siteId", "bucketStart") DO UPDATE SET ${cols.map((c) => `${c} = ${t}.${c} + excluded.${c}`).join(', ')}`,
      v.arg,
    );
  });
}

/**
 * Statements adding byte totals to devices and moving their `lastSyncAt` forward; each resolves
 * to the keys of the devices that exist (a device removed meanwhile is not recreated).
 */
export function deviceIncrements(prisma: PrismaClient, dialect: ControlPlaneDialect, rows: readonly DeviceIncrement[]): Array<ReturnType<PrismaClient['$queryRawUnsafe']>> {
  const t = table(dialect, 'Device');
  return chunks([...rows].sort(byDevice)).map((part) => {
    const v = jsonRows(dialect, ['text', 'text', 'bigint', 'bigint', 'timestamp(3)'], part.map((d) => [d.databaseId, d.siteId, d.uploadBytes, d.downloadBytes, d.lastSyncAt]));
    return prisma.$queryRawUnsafe<Array<{ databaseId: string; siteId: string }>>(
      `UPDATE ${t} SET "uploadBytes" = ${t}."uploadBytes" + v.column3, "downloadBytes" = ${t}."downloadBytes" + v.column4, ` +
        `"lastSyncAt" = CASE WHEN ${t}."lastSyncAt" < v.column5 THEN v.column5 ELSE ${t}."lastSyncAt" END ` +
        `FROM ${v.from} AS v ` +
        `WHERE ${t}."databaseId" = v.column1 AND ${t}."siteId" = v.column2 ` +
        `RETURNING ${t}."databaseId" AS "databaseId", ${t}."siteId" AS "siteId"`,
      v.arg,
    );
  });
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

/** One piece of a range: the buckets of `level` starting in `[from, to)`, each wholly inside the range. */
export interface RangeSegment { level: TrafficLevel; from: number; to: number }

/**
 * `[from, to)` (ms) as the fewest whole buckets: a minute counts when its start is in the range
 * (as it always did), so the range is first the minutes from the first start at or after `from`
 * to the first at or after `to`; its whole UTC days are read from the day roll-ups, the whole
 * hours left from the hour roll-ups, and only the ends from the minutes. A 24 h series by hour
 * of 1,000 devices reads ~23,000 hour rows and at most 120,000 minutes, not 1.44 M minutes.
 */
export function coverRange(from: number, to: number): RangeSegment[] {
  const ceil = (t: number, ms: number): number => Math.ceil(t / ms) * ms;
  const floor = (t: number, ms: number): number => Math.floor(t / ms) * ms;
  const a = ceil(from, 60_000);
  const b = ceil(to, 60_000);
  if (a >= b) return [];
  const out: RangeSegment[] = [];
  const push = (level: TrafficLevel, f: number, t: number): void => {
    if (f < t) out.push({ level, from: f, to: t });
  };
  const ha = ceil(a, 3_600_000);
  const hb = floor(b, 3_600_000);
  if (ha >= hb) {
    push('minute', a, b);
    return out;
  }
  push('minute', a, ha);
  const da = ceil(ha, 86_400_000);
  const db = floor(hb, 86_400_000);
  if (da < db) {
    push('hour', ha, da);
    push('day', da, db);
    push('hour', db, hb);
  } else push('hour', ha, hb);
  push('minute', hb, b);
  return out;
}

/** Range segments per statement: 3 parameters each (a series' interior points are one segment each, its two ends at most five). */
const SEGMENTS_PER_STATEMENT = 3000;

/**
 * The sums of `databaseId`'s traffic in each of `points` (`[from, to)` each, by {@link coverRange}),
 * aggregated in the database: one row per point that has any bucket. Distinct sites are counted
 * over the point's rows of every level together (a site is one device whichever table says so).
 */
export async function pointSums(prisma: PrismaClient, dialect: ControlPlaneDialect, databaseId: string, points: ReadonlyArray<{ from: Date; to: Date }>): Promise<PointSums[]> {
  const pg = dialect.provider === 'postgresql';
  const out: PointSums[] = [];
  // Statements of whole points (a point's sites are counted in one statement).
  const statements: Array<Array<{ point: number } & RangeSegment>> = [[]];
  points.forEach((p, point) => {
    const segments = coverRange(p.from.getTime(), p.to.getTime()).map((s) => ({ point, ...s }));
    let last = statements[statements.length - 1] as Array<{ point: number } & RangeSegment>;
    if (last.length > 0 && last.length + segments.length > SEGMENTS_PER_STATEMENT) statements.push((last = []));
    last.push(...segments);
  });
  for (const segments of statements) {
    if (segments.length === 0) continue;
    const args: unknown[] = [];
    const param = (v: unknown, type: string): string => (args.push(v), pg ? `CAST($${args.length} AS ${type})` : '?');
    const branches: string[] = [];
    for (const { level, table: name } of TRAFFIC_LEVELS) {
      const mine = segments.filter((s) => s.level === level);
      if (mine.length === 0) continue;
      const list = mine.map((s) => `(${param(s.point, 'integer')}, ${param(new Date(s.from), 'timestamp(3)')}, ${param(new Date(s.to), 'timestamp(3)')})`).join(', ');
      branches.push(
        `SELECT p.column1 AS point, b."siteId" AS site, b."uploadBytes" AS up, b."downloadBytes" AS down, b."requests" AS req, b."rejectedChanges" AS rej ` +
          // CROSS JOIN: SQLite keeps the segments as the outer loop (inside a UNION ALL it would
          // otherwise scan the database's whole index once and probe the segments: seconds).
          `FROM (VALUES ${list}) AS p CROSS JOIN ${table(dialect, name)} b ` +
          `WHERE b."databaseId" = ${param(databaseId, 'text')} AND b."bucketStart" >= p.column2 AND b."bucketStart" < p.column3`,
      );
    }
    const rows = await prisma.$queryRawUnsafe<Array<Record<string, unknown>>>(
      `SELECT point, SUM(up) AS up, SUM(down) AS down, SUM(req) AS req, SUM(rej) AS rej, COUNT(DISTINCT site) AS sites ` +
        `FROM (${branches.join(' UNION ALL ')}) AS s GROUP BY point`,
      ...args,
    );
    for (const r of rows) {
      out.push({ point: Number(r['point']), uploadBytes: Number(r['up'] ?? 0), downloadBytes: Number(r['down'] ?? 0), requests: Number(r['req'] ?? 0), rejectedChanges: Number(r['rej'] ?? 0), sites: Number(r['sites'] ?? 0) });
    }
  }
  return out;
}

/** Sums and distinct sites of each of `databaseIds`' traffic in `[from, to)`, aggregated in the database. */
export async function rangeSums(prisma: PrismaClient, dialect: ControlPlaneDialect, databaseIds: readonly string[], from: Date, to: Date): Promise<Map<string, Omit<PointSums, 'point'>>> {
  const out = new Map<string, Omit<PointSums, 'point'>>();
  for (const databaseId of databaseIds) {
    const [r] = await pointSums(prisma, dialect, databaseId, [{ from, to }]);
    out.set(databaseId, { uploadBytes: r?.uploadBytes ?? 0, downloadBytes: r?.downloadBytes ?? 0, requests: r?.requests ?? 0, rejectedChanges: r?.rejectedChanges ?? 0, sites: r?.sites ?? 0 });
  }
  return out;
}

/** Rows deleted per statement by {@link expireTraffic} (a statement holds the control plane's one writer). */
const EXPIRE_BATCH = 5000;

/**
 * Deletes each database's buckets of each level in `before` that start before its date,
 * {@link EXPIRE_BATCH} rows per statement (each its own short transaction, so other control-plane
 * writes interleave); resolves to the number deleted per level. Safe on several nodes at once: a
 * row deleted twice is deleted once.
 */
export async function expireTraffic(prisma: PrismaClient, dialect: ControlPlaneDialect, before: Readonly<Record<Exclude<TrafficLevel, 'day'>, Date>>): Promise<Record<Exclude<TrafficLevel, 'day'>, number>> {
  const pg = dialect.provider === 'postgresql';
  // SQLite's rowid / PostgreSQL's ctid: the rows the indexed sub-select found, nothing else.
  const rowId = pg ? 'ctid' : 'rowid';
  const deleted = { minute: 0, hour: 0 };
  const ids = await prisma.$queryRawUnsafe<Array<{ id: string }>>(`SELECT "id" FROM ${table(dialect, 'Database')}`);
  for (const level of ['minute', 'hour'] as const) {
    const t = table(dialect, TRAFFIC_LEVELS.find((l) => l.level === level)?.table as string);
    for (const { id } of ids) {
      for (;;) {
        const n = await prisma.$executeRawUnsafe(
          `DELETE FROM ${t} WHERE ${rowId} IN (SELECT ${rowId} FROM ${t} WHERE "databaseId" = ${pg ? 'CAST($1 AS text)' : '?'} ` +
            `AND "bucketStart" < ${pg ? 'CAST($2 AS timestamp(3))' : '?'} LIMIT ${EXPIRE_BATCH})`,
          id, before[level],
        );
        deleted[level] += n;
        if (n < EXPIRE_BATCH) break;
      }
    }
  }
  return deleted;
}

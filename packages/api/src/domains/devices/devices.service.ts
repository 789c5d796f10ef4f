/** Devices (SQLite Sync sites) as the data plane sees them; every change is published as a device event. */
import type { ServiceDeps } from '../../deps.ts';
import { ApiError } from '../../errors.ts';
import type { DeviceEventKind } from '../../pubsub.ts';
import { createTrafficBuffer } from '../metrics/traffic-buffer.ts';
import type { TrafficBuffer } from '../metrics/traffic-buffer.ts';

export const CredentialKind = { API_KEY: 'API_KEY', ACCESS_TOKEN: 'ACCESS_TOKEN', JWT: 'JWT' } as const;
export type CredentialKind = (typeof CredentialKind)[keyof typeof CredentialKind];

export interface DeviceSeen {
  siteId: string;
  userId?: string | null;
  credentialKind: CredentialKind;
  clientVersion?: string | null;
  schemaHash?: string | null;
  at?: Date;
}

const SITE_ID = /^[0-9a-f]{32}$/;

export function validateSiteId(siteId: string): string {
  const s = siteId.toLowerCase();
  if (!SITE_ID.test(s)) throw new ApiError('VALIDATION_FAILED', 'siteId: must be 32 hex digits', { details: { field: 'siteId' } });
  return s;
}

/** The fields whose change writes the device at once (and publishes SYNCED). */
function sameFields(a: { userId: string | null; credentialKind: string; clientVersion: string | null; schemaHash: string | null }, b: typeof a): boolean {
  return a.userId === b.userId && a.credentialKind === b.credentialKind && a.clientVersion === b.clientVersion && a.schemaHash === b.schemaHash;
}

function encodeCursor(offset: number): string {
  return Buffer.from(`o:${offset}`).toString('base64url');
}
function decodeCursor(cursor: string | null | undefined): number {
  if (!cursor) return 0;
  const m = /^o:(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m?.[1]) throw new ApiError('VALIDATION_FAILED', 'after: invalid cursor', { details: { field: 'after' } });
  return Number(m[1]);
}

/** A device seen again with nothing changed has its `lastSyncAt` written at once at most this often (else with the next traffic flush). */
export const DEVICE_SEEN_WRITE_INTERVAL_MS = 30_000;
/** Devices whose last write this node remembers (least recently written dropped first). */
const KNOWN_DEVICES = 100_000;

type DeviceRow = Awaited<ReturnType<ServiceDeps['prisma']['device']['upsert']>>;

export function createDevicesService(deps: ServiceDeps, buffer: TrafficBuffer = createTrafficBuffer(deps)) {
  const { prisma, pubsub } = deps;
  const writeIntervalMs = deps.deviceSeenWriteIntervalMs ?? DEVICE_SEEN_WRITE_INTERVAL_MS;
  /** `${databaseId}/${siteId}` → the row this node last wrote and when (clock ms). */
  const known = new Map<string, { row: DeviceRow; writtenAt: number }>();

  function publish(kind: DeviceEventKind, databaseId: string, siteId: string, at: Date) {
    pubsub.publish('deviceEvent', databaseId, { kind, databaseId, siteId, at: at.toISOString() });
    pubsub.publish('metricsChanged', databaseId, { databaseId, at: at.toISOString() });
  }

  const service = {
    /**
     * Called by the data plane on every authenticated sync request; publishes REGISTERED, or
     * SYNCED when the record changed. One atomic upsert (INSERT … ON CONFLICT DO UPDATE): the
     * requests of one device may reach several nodes at once (docs/ARCHITECTURE.md "Scaling out").
     * The read before it only chooses the event; two racing first requests in the same
     * millisecond may both publish REGISTERED (subscribers treat it as idempotent).
     *
     * Throttled like `lastUsedAt` of API keys: when this node wrote the device less than
     * `deviceSeenWriteIntervalMs` ago (default 30 s) with the same user, credential kind, client
     * version and schema hash, nothing is written now: the new `lastSyncAt` goes with the next
     * traffic flush (traffic-buffer.ts; reads of devices flush first), and the row returned is the
     * one last written with this `lastSyncAt` (byte totals as of that write). A changed field, a
     * first request and a request after the window write at once, as before.
     */
    async recordDeviceSeen(databaseId: string, seen: DeviceSeen) {
      const siteId = validateSiteId(seen.siteId);
      const at = seen.at ?? new Date(deps.clock.now());
      const fields = {
        userId: seen.userId ?? null, credentialKind: seen.credentialKind,
        clientVersion: seen.clientVersion ?? null, schemaHash: seen.schemaHash ?? null, lastSyncAt: at,
      };
      const key = `${databaseId}/${siteId}`;
      const last = known.get(key);
      const t = at.getTime();
      if (last !== undefined && t >= last.writtenAt && t - last.writtenAt < writeIntervalMs && sameFields(last.row, fields)) {
        buffer.touchDevice(databaseId, siteId, t);
        if (t > last.row.lastSyncAt.getTime()) last.row = { ...last.row, lastSyncAt: at };
        return { ...last.row, lastSyncAt: at };
      }
      const where = { databaseId_siteId: { databaseId, siteId } };
      const existing = await prisma.device.findUnique({ where });
      const upsert = () => prisma.device.upsert({ where, create: { databaseId, siteId, firstSeenAt: at, ...fields }, update: fields });
      // Where Prisma cannot run a native upsert it reads then writes; a lost race then fails on the
      // unique key once, and the retry updates the winner's row.
      const device = await upsert().catch((e: unknown) => ((e as { code?: unknown }).code === 'P2002' ? upsert() : Promise.reject(e)));
      known.delete(key);
      known.set(key, { row: device, writtenAt: t });
      if (known.size > KNOWN_DEVICES) known.delete(known.keys().next().value ?? key);
      // SYNCED only when something changed (not for every poll): user, credential, client version
      // or schema hash here; transferred bytes in metrics.recordTraffic.
      if (existing === null) {
        if (device.firstSeenAt.getTime() === at.getTime()) publish('REGISTERED', databaseId, siteId, at);
      } else if (!sameFields(existing, fields)) {
        publish('SYNCED', databaseId, siteId, at);
      }
      return device;
    },

    async removeDevice(databaseId: string, siteId: string): Promise<boolean> {
      const s = validateSiteId(siteId);
      known.delete(`${databaseId}/${s}`);
      await buffer.settle(); // what was counted for it lands (and is told) before it goes
      const [res] = await prisma.$transaction([
        prisma.device.deleteMany({ where: { databaseId, siteId: s } }),
        prisma.pushToken.deleteMany({ where: { databaseId, siteId: s } }),
      ]);
      if (res.count === 0) throw new ApiError('NOT_FOUND', `Device ${s} not found`, { details: { siteId: s } });
      const at = new Date(deps.clock.now());
      publish('REMOVED', databaseId, s, at);
      // Live `changes` subscriptions of this device end now (domains/sync/graphql/live-sessions.ts).
      pubsub.publish('syncAccessEnded', databaseId, { databaseId, reason: 'DEVICE_REMOVED', siteId: s, at: at.toISOString() });
      return true;
    },

    async getDevice(databaseId: string, siteId: string) {
      await buffer.settle(); // throttled lastSyncAt and pending byte totals of this node
      return prisma.device.findUnique({ where: { databaseId_siteId: { databaseId, siteId: siteId.toLowerCase() } } });
    },

    /** Most recently synced first; opaque offset cursors. */
    async listDevices(databaseId: string, args: { first?: number | null; after?: string | null }) {
      const first = Math.min(Math.max(args.first ?? 50, 1), 500);
      const offset = decodeCursor(args.after);
      await buffer.settle();
      const [rows, totalCount] = await Promise.all([
        prisma.device.findMany({ where: { databaseId }, orderBy: [{ lastSyncAt: 'desc' }, { siteId: 'asc' }], skip: offset, take: first + 1 }),
        prisma.device.count({ where: { databaseId } }),
      ]);
      const nodes = rows.slice(0, first);
      return {
        totalCount,
        edges: nodes.map((node, i) => ({ cursor: encodeCursor(offset + i + 1), node })),
        pageInfo: {
          hasNextPage: rows.length > first,
          hasPreviousPage: offset > 0,
          startCursor: nodes.length > 0 ? encodeCursor(offset + 1) : null,
          endCursor: nodes.length > 0 ? encodeCursor(offset + nodes.length) : null,
        },
      };
    },
  };
  return service;
}
export type DevicesService = ReturnType<typeof createDevicesService>;

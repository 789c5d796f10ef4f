import { builder } from '../../builder.ts';
import { DeviceEventKind } from '../../pubsub.ts';
import type { DeviceEventPayload } from '../../pubsub.ts';
import type { GraphQLContext } from '../../context.ts';
import { computeBacklogs, readDeviceStates } from './device-sync-state.ts';
import type { DeviceBacklog, DeviceSyncState } from './device-sync-state.ts';

const DeviceErrorRef = builder.objectRef<{ code: string; message: string; at: Date }>('DeviceError').implement({
  fields: (t) => ({ code: t.exposeString('code'), message: t.exposeString('message'), at: t.expose('at', { type: 'DateTime' }) }),
});

const DeviceBacklogRef = builder.objectRef<DeviceBacklog>('DeviceBacklog').implement({
  description: 'Changes after the device\'s last download cursor, from other sites, before RLS filtering (an upper bound for users under ENFORCE)',
  fields: (t) => ({
    serverDbVersion: t.exposeFloat('serverDbVersion'),
    cursorDbVersion: t.exposeFloat('cursorDbVersion', { description: '0 when it never downloaded' }),
    versionsBehind: t.exposeFloat('versionsBehind'),
    changes: t.exposeInt('changes'),
    bytes: t.exposeFloat('bytes', { description: 'Encoded (uncompressed) payload bytes of those changes' }),
    exact: t.exposeBoolean('exact', { description: 'False when the scan budget stopped the count (then lower bounds)' }),
    resyncRequired: t.exposeBoolean('resyncRequired', {
      description: 'True when the device\'s cursor is below the compaction floor: its next sync is refused with resync_required and it downloads from scratch (docs/PROTOCOL.md "Compaction and the resync horizon"); the counts are then estimates',
    }),
  }),
});

/** Per request: the central database's device states, read once per database. */
const statesByRequest = new WeakMap<GraphQLContext, Map<string, Promise<Map<string, DeviceSyncState> | null>>>();
async function engineOf(ctx: GraphQLContext, databaseId: string) {
  try {
    return (await ctx.sync.databases.get(databaseId)).engine;
  } catch {
    return ctx.sync.databases.peek(databaseId) ?? null;
  }
}
function statesOf(ctx: GraphQLContext, databaseId: string): Promise<Map<string, DeviceSyncState> | null> {
  let m = statesByRequest.get(ctx);
  if (m === undefined) statesByRequest.set(ctx, (m = new Map()));
  let p = m.get(databaseId);
  if (p === undefined) {
    p = engineOf(ctx, databaseId).then((e) => (e === null ? null : readDeviceStates(e)));
    m.set(databaseId, p);
  }
  return p;
}
async function syncStateOf(ctx: GraphQLContext, databaseId: string, siteId: string): Promise<DeviceSyncState | null> {
  return (await statesOf(ctx, databaseId))?.get(siteId) ?? null;
}

/** Per request: the backlogs asked for in one tick are computed in one feed scan per database. */
const backlogsByRequest = new WeakMap<GraphQLContext, Map<string, { sites: Set<string>; started: boolean; result: Promise<Map<string, DeviceBacklog> | null> }>>();
function backlogOf(ctx: GraphQLContext, databaseId: string, siteId: string): Promise<DeviceBacklog | null> {
  let m = backlogsByRequest.get(ctx);
  if (m === undefined) backlogsByRequest.set(ctx, (m = new Map()));
  let batch = m.get(databaseId);
  if (batch === undefined || batch.started) {
    const sites = new Set<string>();
    const b = { sites, started: false, result: Promise.resolve(null as Map<string, DeviceBacklog> | null) };
    b.result = new Promise<void>((r) => setImmediate(r)).then(async () => {
      b.started = true;
      const engine = await engineOf(ctx, databaseId);
      if (engine === null) return null;
      const states = readDeviceStates(engine);
      return computeBacklogs(engine, [...sites].map((s) => ({ siteId: s, cursorDbVersion: states.get(s)?.cursor?.dbVersion ?? 0 })));
    });
    batch = b;
    m.set(databaseId, batch);
  }
  batch.sites.add(siteId);
  return batch.result.then((r) => r?.get(siteId) ?? null);
}

const DeviceRef = builder.prismaObject('Device', {
  description: 'A device (SQLite Sync site) that synced with this database',
  fields: (t) => ({
    siteId: t.exposeString('siteId'),
    userId: t.exposeString('userId', { nullable: true }),
    credentialKind: t.exposeString('credentialKind'),
    clientVersion: t.exposeString('clientVersion', { nullable: true }),
    schemaHash: t.exposeString('schemaHash', { nullable: true }),
    firstSeenAt: t.expose('firstSeenAt', { type: 'DateTime' }),
    lastSyncAt: t.expose('lastSyncAt', { type: 'DateTime' }),
    uploadBytes: t.float({ resolve: (d) => Number(d.uploadBytes) }),
    downloadBytes: t.float({ resolve: (d) => Number(d.downloadBytes) }),
    lastError: t.field({
      type: DeviceErrorRef,
      nullable: true,
      description: 'The last refusal of one of its uploads (e.g. schema_hash_unknown naming the tables); null when none or a later upload was accepted',
      resolve: async (d, _a, ctx) => (await syncStateOf(ctx, d.databaseId, d.siteId))?.lastError ?? null,
    }),
    refusedSchemaHash: t.string({
      nullable: true,
      description: 'Schema hash (decimal u64) of its last upload refused with schema_hash_unknown',
      resolve: async (d, _a, ctx) => (await syncStateOf(ctx, d.databaseId, d.siteId))?.refusedSchemaHash ?? null,
    }),
    downloadCursor: t.float({
      nullable: true,
      description: 'Server db_version after which its last download request asked for changes; null before its first',
      resolve: async (d, _a, ctx) => (await syncStateOf(ctx, d.databaseId, d.siteId))?.cursor?.dbVersion ?? null,
    }),
    backlog: t.field({
      type: DeviceBacklogRef,
      nullable: true,
      description: 'What it has not downloaded yet, as far as the server knows its cursor; null when the central database is not served',
      resolve: (d, _a, ctx) => backlogOf(ctx, d.databaseId, d.siteId),
    }),
  }),
});

type PageInfo = { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };

export const PageInfoRef = builder.objectRef<PageInfo>('PageInfo').implement({
  fields: (t) => ({
    hasNextPage: t.exposeBoolean('hasNextPage'),
    hasPreviousPage: t.exposeBoolean('hasPreviousPage'),
    startCursor: t.exposeString('startCursor', { nullable: true }),
    endCursor: t.exposeString('endCursor', { nullable: true }),
  }),
});

const DeviceEdgeRef = builder.objectRef<{ cursor: string; node: object }>('DeviceEdge').implement({
  fields: (t) => ({ cursor: t.exposeString('cursor'), node: t.field({ type: DeviceRef, resolve: (e) => e.node as never }) }),
});

const DeviceConnectionRef = builder.objectRef<{ totalCount: number; edges: { cursor: string; node: object }[]; pageInfo: PageInfo }>('DeviceConnection').implement({
  fields: (t) => ({
    totalCount: t.exposeInt('totalCount'),
    edges: t.field({ type: [DeviceEdgeRef], resolve: (c) => c.edges }),
    nodes: t.field({ type: [DeviceRef], resolve: (c) => c.edges.map((e) => e.node) as never }),
    pageInfo: t.field({ type: PageInfoRef, resolve: (c) => c.pageInfo }),
  }),
});

builder.prismaObjectFields('Database', (t) => ({
  devices: t.field({
    type: DeviceConnectionRef,
    args: { first: t.arg.int({ defaultValue: 50 }), after: t.arg.string() },
    resolve: (d, a, ctx) => ctx.services.devices.listDevices(d.id, { first: a.first ?? null, after: a.after ?? null }),
  }),
}));

const DeviceEventKindEnum = builder.enumType('DeviceEventKind', { values: Object.values(DeviceEventKind) });

const DeviceEventRef = builder.objectRef<DeviceEventPayload>('DeviceEvent').implement({
  fields: (t) => ({
    kind: t.field({ type: DeviceEventKindEnum, resolve: (e) => e.kind }),
    databaseId: t.exposeID('databaseId'),
    siteId: t.exposeString('siteId'),
    at: t.field({ type: 'DateTime', resolve: (e) => new Date(e.at) }),
    device: t.field({
      type: DeviceRef,
      nullable: true,
      description: 'Current state; null after REMOVED',
      resolve: (e, _a, ctx) => ctx.services.devices.getDevice(e.databaseId, e.siteId),
    }),
  }),
});

builder.mutationFields((t) => ({
  removeDevice: t.boolean({
    args: { databaseId: t.arg.id({ required: true }), siteId: t.arg.string({ required: true }) },
    resolve: (_r, a, ctx) => ctx.services.devices.removeDevice(String(a.databaseId), a.siteId),
  }),
}));

builder.subscriptionFields((t) => ({
  deviceEvents: t.field({
    type: DeviceEventRef,
    description: 'Devices registered, synced or removed',
    args: { databaseId: t.arg.id({ required: true }) },
    subscribe: async (_r, a, ctx) => {
      await ctx.services.databases.getDatabase(String(a.databaseId));
      return ctx.services.pubsub.subscribe('deviceEvent', String(a.databaseId));
    },
    resolve: (e) => e,
  }),
}));


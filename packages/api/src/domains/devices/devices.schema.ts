import { builder } from '../../builder.ts';
import { DeviceEventKind } from '../../pubsub.ts';
import type { DeviceEventPayload } from '../../pubsub.ts';

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


/**
 * GraphQL over the rejection log (rejection-log.ts; admin key only, like every root field):
 * `Database.rejections(first, after, filter)` pages the central database's log, newest first;
 * `Subscription.rejections(databaseId)` streams each entry once its merge committed (the
 * `changesRejected` pub/sub topic). Values are JSON in the log's encoding: `$int` / `$blob` /
 * `$real` tags for INTEGER, BLOB and non-finite REAL values.
 */
import { builder } from '../../builder.ts';
import { ApiError } from '../../errors.ts';
import { PageInfoRef } from '../devices/devices.schema.ts';
import type { GraphQLContext } from '../../context.ts';
import type { ChangesRejectedPayload } from '../../pubsub.ts';
import { toApiError } from './graphql/caller.ts';
import { PgCentralDatabase } from './pg-central.ts';
import { rejectionCursor, rejectionLogOf, rejectionReader, toRejectionJson } from './rejection-log.ts';
import type { RejectedOperation, RejectionFilter, RejectionJson, RejectionLogReader } from './rejection-log.ts';
import { SqliteCentral } from './sqlite-central.ts';
import { SyncError } from './sync-errors.ts';

type RejectionNode = RejectionJson & { databaseId: string };

interface RejectionConnection {
  totalCount: number;
  edges: { cursor: string; node: RejectionNode }[];
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
}

const CREDENTIAL_KIND = { apiKey: 'API_KEY', accessToken: 'ACCESS_TOKEN', jwt: 'JWT' } as const;

const RejectedOperationEnum = builder.enumType('RejectedOperation', {
  description: 'The operation the row transition amounted to (absent → alive INSERT, alive → alive UPDATE, alive → deleted DELETE)',
  values: ['INSERT', 'UPDATE', 'DELETE'] as const,
});

const RejectionRef = builder.objectRef<RejectionNode>('Rejection').implement({
  description: 'A change the merge refused on its own (the rest of its upload merged); an entry of the rejection log',
  fields: (t) => ({
    id: t.exposeID('id'),
    databaseId: t.exposeID('databaseId'),
    at: t.field({ type: 'DateTime', resolve: (r) => new Date(r.at) }),
    siteId: t.exposeString('siteId', { description: 'The uploading device (32 hex digits)' }),
    userId: t.exposeString('userId', { nullable: true, description: 'The user of an access token or JWT; null for API keys' }),
    credentialKind: t.string({ description: 'API_KEY, ACCESS_TOKEN or JWT (as Device.credentialKind)', resolve: (r) => CREDENTIAL_KIND[r.credentialKind] }),
    credentialId: t.exposeString('credentialId', { nullable: true }),
    table: t.exposeString('table'),
    pk: t.exposeString('pk', { description: 'Base64 of the primary-key blob (protocol encoding)' }),
    pkValues: t.field({ type: 'JSON', description: 'Primary-key column values, in key order ($int / $blob / $real tags)', resolve: (r) => r.pkValues }),
    operation: t.field({ type: RejectedOperationEnum, resolve: (r) => r.operation }),
    code: t.exposeString('code', { description: 'rls_denied, pk_type_mismatch or constraint_violation' }),
    policy: t.exposeString('policy', { nullable: true, description: 'The policy expression that denied, if any' }),
    reason: t.exposeString('reason'),
    values: t.field({ type: 'JSON', description: 'The rejected incoming column values by column ($int / $blob / $real tags)', resolve: (r) => r.values }),
  }),
});

const RejectionEdgeRef = builder.objectRef<RejectionConnection['edges'][number]>('RejectionEdge').implement({
  fields: (t) => ({ cursor: t.exposeString('cursor'), node: t.field({ type: RejectionRef, resolve: (e) => e.node }) }),
});

const RejectionConnectionRef = builder.objectRef<RejectionConnection>('RejectionConnection').implement({
  fields: (t) => ({
    totalCount: t.exposeInt('totalCount', { description: 'Entries matching the filter' }),
    edges: t.field({ type: [RejectionEdgeRef], resolve: (c) => c.edges }),
    nodes: t.field({ type: [RejectionRef], resolve: (c) => c.edges.map((e) => e.node) }),
    pageInfo: t.field({ type: PageInfoRef, resolve: (c) => c.pageInfo }),
  }),
});

const RejectionFilterInput = builder.inputType('RejectionFilter', {
  fields: (t) => ({
    table: t.string(),
    siteId: t.string({ description: '32 hex digits' }),
    userId: t.string(),
    operation: t.field({ type: RejectedOperationEnum }),
    code: t.string(),
    since: t.field({ type: 'DateTime', description: 'Entries at or after this time' }),
  }),
});

type Opt<T> = T | null | undefined;
type FilterArg = Opt<{ table?: Opt<string>; siteId?: Opt<string>; userId?: Opt<string>; operation?: Opt<RejectedOperation>; code?: Opt<string>; since?: Opt<Date> }>;

function toFilter(f: FilterArg): RejectionFilter {
  const out: RejectionFilter = {};
  if (f == null) return out;
  if (f.table != null) out.table = f.table;
  if (f.siteId != null) {
    if (!/^[0-9a-fA-F]{32}$/.test(f.siteId)) throw new ApiError('VALIDATION_FAILED', 'filter.siteId: must be 32 hex digits', { details: { field: 'filter.siteId' } });
    out.siteId = f.siteId.toLowerCase();
  }
  if (f.userId != null) out.userId = f.userId;
  if (f.operation != null) out.operation = f.operation;
  if (f.code != null) out.code = f.code;
  if (f.since != null) out.since = f.since;
  return out;
}

function matches(r: RejectionJson, f: RejectionFilter): boolean {
  return (f.table === undefined || r.table === f.table)
    && (f.siteId === undefined || r.siteId === f.siteId)
    && (f.userId === undefined || r.userId === f.userId)
    && (f.operation === undefined || r.operation === f.operation)
    && (f.code === undefined || r.code === f.code)
    && (f.since === undefined || Date.parse(r.at) >= f.since.getTime());
}

/**
 * The log of a database, through the sync service's registry (the connection the merge writes
 * with): a SQLite central's `offsync_rejections` (rejection-log.ts), a POSTGRES database's
 * `offsync.rejections` (pg-rejection-log.ts). While sync is disabled a SQLite log is read if the
 * file is still open, else `FORBIDDEN` says why (a POSTGRES log too: its pool is not opened then).
 */
async function logOf(ctx: GraphQLContext, databaseId: string): Promise<RejectionLogReader> {
  try {
    const db = await ctx.sync.databases.open(databaseId);
    if (db instanceof PgCentralDatabase) return db.central.rejections;
    if (db instanceof SqliteCentral) return rejectionReader(rejectionLogOf(db.engine));
    throw new SyncError('not_supported', `Database ${databaseId} keeps no rejection log`);
  } catch (e) {
    const open = e instanceof SyncError && e.code === 'sync_disabled' ? ctx.sync.databases.peek(databaseId) : undefined;
    if (open !== undefined) return rejectionReader(rejectionLogOf(open));
    throw toApiError(e);
  }
}

builder.prismaObjectFields('Database', (t) => ({
  rejections: t.field({
    type: RejectionConnectionRef,
    description: 'Changes the merge refused on their own (RLS, primary-key types, UNIQUE constraints), newest first; kept 30 days / 100,000 entries',
    args: { first: t.arg.int({ defaultValue: 50 }), after: t.arg.string(), filter: t.arg({ type: RejectionFilterInput }) },
    resolve: async (d, a, ctx) => {
      const first = a.first ?? 50;
      if (first < 0) throw new ApiError('VALIDATION_FAILED', 'first: must not be negative', { details: { field: 'first' } });
      const filter = toFilter(a.filter);
      const log = await logOf(ctx, d.id);
      let page;
      try {
        page = await log.list({ first, after: a.after ?? undefined, filter });
      } catch (e) {
        if (e instanceof RangeError) throw new ApiError('VALIDATION_FAILED', e.message, { details: { field: 'after' } });
        throw e;
      }
      const edges = page.nodes.map((n) => ({ cursor: rejectionCursor(n.id), node: { ...toRejectionJson(n), databaseId: d.id } }));
      return {
        totalCount: page.totalCount,
        edges,
        pageInfo: { hasNextPage: page.hasNextPage, hasPreviousPage: a.after != null, startCursor: edges[0]?.cursor ?? null, endCursor: page.endCursor },
      };
    },
  }),
}));

/**
 * One GraphQL event per entry of the `changesRejected` events, filtered. A plain iterator, not an
 * async generator: `return()` (the client unsubscribed) reaches the pub/sub subscription at
 * once, even while `next()` is waiting for an event, so no listener outlives its subscriber.
 */
function entriesOf(events: AsyncIterable<ChangesRejectedPayload>, databaseId: string, filter: RejectionFilter): AsyncIterableIterator<RejectionNode> {
  const source = events[Symbol.asyncIterator]();
  const queue: RejectionNode[] = [];
  let done = false;
  const end = (): IteratorResult<RejectionNode> => ({ done: true, value: undefined });
  const it: AsyncIterableIterator<RejectionNode> = {
    async next() {
      while (queue.length === 0) {
        if (done) return end();
        const r = await source.next();
        if (r.done === true) {
          done = true;
          return end();
        }
        for (const e of r.value.entries) if (matches(e, filter)) queue.push({ ...e, databaseId });
      }
      const value = queue.shift();
      return value === undefined ? end() : { done: false, value };
    },
    async return() {
      done = true;
      queue.length = 0;
      await source.return?.();
      return end();
    },
    [Symbol.asyncIterator]: () => it,
  };
  return it;
}

builder.subscriptionFields((t) => ({
  rejections: t.field({
    type: RejectionRef,
    description: 'Each change refused on its own, once the merge that refused it committed',
    args: { databaseId: t.arg.id({ required: true }), filter: t.arg({ type: RejectionFilterInput }) },
    subscribe: async (_r, a, ctx) => {
      const databaseId = String(a.databaseId);
      const filter = toFilter(a.filter);
      await ctx.services.databases.getDatabase(databaseId);
      return entriesOf(ctx.services.pubsub.subscribe('changesRejected', databaseId), databaseId, filter);
    },
    resolve: (r) => r,
  }),
}));

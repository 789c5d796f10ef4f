/**
 * GraphQL over the conflict log (conflict-log.ts; admin key only, like every root field):
 * `Database.conflicts(first, after, filter)` pages the writes merges let lose, newest first, with
 * both sides (user of each side resolved through the database's devices);
 * `restoreConflictValue` writes a losing value back as a new change every device receives;
 * `setConflictLog` turns recording off or on per database (`Database.conflictLog`). Values are
 * JSON in the rejection log's encoding (`$int` / `$blob` / `$real` tags).
 */
import type { SqlValue } from '@offsync/core';
import { builder } from '../../builder.ts';
import { ApiError } from '../../errors.ts';
import { PageInfoRef } from '../devices/devices.schema.ts';
import type { GraphQLContext } from '../../context.ts';
import { toApiError } from './graphql/caller.ts';
import { ConflictRestoreError, conflictCursor, conflictLogOf, restoreLosingWrite } from './conflict-log.ts';
import type { ConflictEntry, ConflictFilter, ConflictKind, ConflictLog, ConflictSideEntry } from './conflict-log.ts';
import { encodeSqlValue } from './central-log.ts';
import type { EncodedSqlValue } from './central-log.ts';
import { SyncError } from './sync-errors.ts';

interface SideNode {
  value: EncodedSqlValue;
  colVersion: number;
  cl: number;
  siteId: string;
  userId: string | null;
}

interface ConflictNode {
  id: number;
  databaseId: string;
  at: Date;
  table: string;
  pk: string;
  pkValues: EncodedSqlValue[];
  column: string | null;
  kind: ConflictKind;
  winner: SideNode;
  loser: SideNode;
  row: Record<string, EncodedSqlValue> | null;
  uploaderSiteId: string;
  uploaderUserId: string | null;
  restoredAt: Date | null;
}

interface ConflictConnection {
  totalCount: number;
  edges: { cursor: string; node: ConflictNode }[];
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
}

const KIND_ENUM = { tiebreak: 'TIEBREAK', superseded: 'SUPERSEDED', update_lost_to_delete: 'UPDATE_LOST_TO_DELETE', delete_over_update: 'DELETE_OVER_UPDATE' } as const;
type KindName = (typeof KIND_ENUM)[ConflictKind];
const KIND_OF: Record<KindName, ConflictKind> = { TIEBREAK: 'tiebreak', SUPERSEDED: 'superseded', UPDATE_LOST_TO_DELETE: 'update_lost_to_delete', DELETE_OVER_UPDATE: 'delete_over_update' };

const ConflictKindEnum = builder.enumType('ConflictKind', {
  description: 'How a concurrent write lost in a merge',
  values: {
    TIEBREAK: { description: 'Same col_version on both sides: the value order decided (LWW tiebreak)' },
    SUPERSEDED: { description: 'An older edit of the cell (lower col_version) lost to a newer one of another device' },
    UPDATE_LOST_TO_DELETE: { description: 'An edit of a cell arrived for a row a delete had ended' },
    DELETE_OVER_UPDATE: { description: 'A delete ended a row last written by another device (the loser is the row)' },
  } as const,
});

const ConflictSideRef = builder.objectRef<SideNode>('ConflictSide').implement({
  description: 'One side of a conflict: the value written and its clocks',
  fields: (t) => ({
    value: t.field({ type: 'JSON', nullable: true, description: 'The cell value ($int / $blob / $real tags); null for the row-level side of a delete', resolve: (s) => s.value }),
    colVersion: t.exposeInt('colVersion'),
    cl: t.exposeInt('cl', { description: 'Causal length of the row (odd: alive, even: deleted)' }),
    siteId: t.exposeString('siteId', { description: 'The device that wrote it (32 hex digits)' }),
    userId: t.exposeString('userId', { nullable: true, description: 'The user of that device (its device record), null for API keys or the server' }),
  }),
});

const ConflictRef = builder.objectRef<ConflictNode>('Conflict').implement({
  description: 'A write that lost to a concurrent one in a merge; an entry of the conflict log',
  fields: (t) => ({
    id: t.exposeID('id'),
    databaseId: t.exposeID('databaseId'),
    at: t.field({ type: 'DateTime', resolve: (c) => c.at }),
    table: t.exposeString('table'),
    pk: t.exposeString('pk', { description: 'Base64 of the primary-key blob (protocol encoding)' }),
    pkValues: t.field({ type: 'JSON', description: 'Primary-key column values, in key order', resolve: (c) => c.pkValues }),
    column: t.exposeString('column', { nullable: true, description: 'The cell; null for a row-level conflict (DELETE_OVER_UPDATE)' }),
    kind: t.field({ type: ConflictKindEnum, resolve: (c) => KIND_ENUM[c.kind] }),
    winner: t.field({ type: ConflictSideRef, resolve: (c) => c.winner }),
    loser: t.field({ type: ConflictSideRef, resolve: (c) => c.loser }),
    row: t.field({ type: 'JSON', nullable: true, description: 'DELETE_OVER_UPDATE: the row the delete removed (column → value)', resolve: (c) => c.row }),
    uploaderSiteId: t.exposeString('uploaderSiteId', { description: 'The device whose upload was being merged' }),
    uploaderUserId: t.exposeString('uploaderUserId', { nullable: true }),
    restoredAt: t.field({ type: 'DateTime', nullable: true, description: 'When restoreConflictValue wrote the losing value back', resolve: (c) => c.restoredAt }),
  }),
});

const ConflictEdgeRef = builder.objectRef<ConflictConnection['edges'][number]>('ConflictEdge').implement({
  fields: (t) => ({ cursor: t.exposeString('cursor'), node: t.field({ type: ConflictRef, resolve: (e) => e.node }) }),
});

const ConflictConnectionRef = builder.objectRef<ConflictConnection>('ConflictConnection').implement({
  fields: (t) => ({
    totalCount: t.exposeInt('totalCount', { description: 'Entries matching the filter' }),
    edges: t.field({ type: [ConflictEdgeRef], resolve: (c) => c.edges }),
    nodes: t.field({ type: [ConflictRef], resolve: (c) => c.edges.map((e) => e.node) }),
    pageInfo: t.field({ type: PageInfoRef, resolve: (c) => c.pageInfo }),
  }),
});

const ConflictFilterInput = builder.inputType('ConflictFilter', {
  fields: (t) => ({
    table: t.string(),
    key: t.string({ description: 'Primary key: a JSON array of the key values (e.g. ["t1"], [7]) or the text of a single-column key' }),
    siteId: t.string({ description: 'Either side written by this device (32 hex digits)' }),
    userId: t.string({ description: 'Either side written by a device of this user, or the uploading user' }),
    kind: t.field({ type: ConflictKindEnum }),
    since: t.field({ type: 'DateTime', description: 'Entries at or after this time' }),
  }),
});

const RestoreActionEnum = builder.enumType('ConflictRestoreAction', {
  values: {
    UPDATE: { description: 'The cell (or the row’s columns) was updated to the losing value' },
    INSERT: { description: 'The row was gone and was inserted again with the losing value' },
  } as const,
});

const RestoreConflictPayload = builder.objectRef<{ conflict: ConflictNode; action: 'UPDATE' | 'INSERT'; dbVersion: number }>('RestoreConflictPayload').implement({
  fields: (t) => ({
    conflict: t.field({ type: ConflictRef, resolve: (p) => p.conflict }),
    action: t.field({ type: RestoreActionEnum, resolve: (p) => p.action }),
    dbVersion: t.exposeInt('dbVersion', { description: 'Server db_version of the new change' }),
  }),
});

type Opt<T> = T | null | undefined;
type FilterArg = Opt<{ table?: Opt<string>; key?: Opt<string>; siteId?: Opt<string>; userId?: Opt<string>; kind?: Opt<KindName>; since?: Opt<Date> }>;

async function toFilter(ctx: GraphQLContext, databaseId: string, f: FilterArg): Promise<ConflictFilter> {
  const out: ConflictFilter = {};
  if (f == null) return out;
  if (f.table != null) out.table = f.table;
  if (f.key != null) out.key = f.key;
  if (f.siteId != null) {
    if (!/^[0-9a-fA-F]{32}$/.test(f.siteId)) throw new ApiError('VALIDATION_FAILED', 'filter.siteId: must be 32 hex digits', { details: { field: 'filter.siteId' } });
    out.siteId = f.siteId.toLowerCase();
  }
  if (f.userId != null) {
    out.userId = f.userId;
    const devices = await ctx.services.prisma.device.findMany({ where: { databaseId, userId: f.userId }, select: { siteId: true } });
    out.userSiteIds = devices.map((d) => d.siteId);
  }
  if (f.kind != null) out.kind = KIND_OF[f.kind];
  if (f.since != null) out.since = f.since;
  return out;
}

/** Entries as nodes, each side's user resolved through the database's devices. */
async function toNodes(ctx: GraphQLContext, databaseId: string, entries: readonly ConflictEntry[]): Promise<ConflictNode[]> {
  const sites = [...new Set(entries.flatMap((e) => [e.winner.siteId, e.loser.siteId]))];
  const devices = sites.length === 0 ? [] : await ctx.services.prisma.device.findMany({ where: { databaseId, siteId: { in: sites } }, select: { siteId: true, userId: true } });
  const userOf = new Map(devices.map((d) => [d.siteId, d.userId]));
  return entries.map((e) => {
    const side = (s: ConflictSideEntry): SideNode => ({
      value: encodeSqlValue(s.value),
      colVersion: s.colVersion,
      cl: s.cl,
      siteId: s.siteId,
      userId: userOf.get(s.siteId) ?? (s.siteId === e.uploaderSiteId ? e.uploaderUserId : null),
    });
    let row: Record<string, EncodedSqlValue> | null = null;
    if (e.row !== null) {
      row = {};
      for (const [k, v] of Object.entries(e.row) as [string, SqlValue][]) row[k] = encodeSqlValue(v);
    }
    return {
      id: e.id,
      databaseId,
      at: e.at,
      table: e.table,
      pk: Buffer.from(e.pk).toString('base64'),
      pkValues: e.pkValues.map(encodeSqlValue),
      column: e.column,
      kind: e.kind,
      winner: side(e.winner),
      loser: side(e.loser),
      row,
      uploaderSiteId: e.uploaderSiteId,
      uploaderUserId: e.uploaderUserId,
      restoredAt: e.restoredAt,
    };
  });
}

/** The log of a database's central file (the sync service's open engine); null for PostgreSQL databases. */
async function logOf(ctx: GraphQLContext, databaseId: string, kind: string): Promise<ConflictLog | null> {
  if (kind !== 'SQLITE') return null;
  try {
    return conflictLogOf((await ctx.sync.databases.get(databaseId)).engine);
  } catch (e) {
    const open = e instanceof SyncError && e.code === 'sync_disabled' ? ctx.sync.databases.peek(databaseId) : undefined;
    if (open !== undefined) return conflictLogOf(open);
    throw toApiError(e);
  }
}

const EMPTY: ConflictConnection = { totalCount: 0, edges: [], pageInfo: { hasNextPage: false, hasPreviousPage: false, startCursor: null, endCursor: null } };

builder.prismaObjectFields('Database', (t) => ({
  conflictLog: t.exposeBoolean('conflictLog', { description: 'Merges record writes that lost to concurrent ones in the conflict log (setConflictLog)' }),
  conflicts: t.field({
    type: ConflictConnectionRef,
    description: 'Writes that lost to concurrent ones in merges, newest first; kept 30 days / 100,000 entries unless configured',
    args: { first: t.arg.int({ defaultValue: 50 }), after: t.arg.string(), filter: t.arg({ type: ConflictFilterInput }) },
    resolve: async (d, a, ctx) => {
      const first = a.first ?? 50;
      if (first < 0) throw new ApiError('VALIDATION_FAILED', 'first: must not be negative', { details: { field: 'first' } });
      const filter = await toFilter(ctx, d.id, a.filter);
      const log = await logOf(ctx, d.id, d.kind);
      if (log === null) return EMPTY;
      let page;
      try {
        page = log.list({ first, after: a.after ?? undefined, filter });
      } catch (e) {
        if (e instanceof RangeError) throw new ApiError('VALIDATION_FAILED', e.message, { details: { field: 'after' } });
        throw e;
      }
      const nodes = await toNodes(ctx, d.id, page.nodes);
      const edges = nodes.map((node) => ({ cursor: conflictCursor(node.id), node }));
      return {
        totalCount: page.totalCount,
        edges,
        pageInfo: { hasNextPage: page.hasNextPage, hasPreviousPage: a.after != null, startCursor: edges[0]?.cursor ?? null, endCursor: page.endCursor },
      };
    },
  }),
}));

const RESTORE_CODE = { not_found: 'NOT_FOUND', table_not_synced: 'CONFLICT', column_missing: 'CONFLICT' } as const;

builder.mutationFields((t) => ({
  setConflictLog: t.prismaField({
    type: 'Database',
    description: 'Turns the conflict log of a database on or off (takes effect within the data plane’s cache lifetime, 2 s by default); entries already recorded are kept',
    args: { databaseId: t.arg.id({ required: true }), enabled: t.arg.boolean({ required: true }) },
    resolve: async (query, _r, { databaseId, enabled }, ctx) => {
      const db = await ctx.services.databases.getDatabase(String(databaseId));
      return ctx.services.prisma.database.update({ ...query, where: { id: db.id }, data: { conflictLog: enabled } });
    },
  }),
  restoreConflictValue: t.field({
    type: RestoreConflictPayload,
    description: 'Writes the losing value of a conflict back as a new change of the central database (col_version + 1, the server’s site), which syncs to every device; a row that is gone is inserted again',
    args: { databaseId: t.arg.id({ required: true }), conflictId: t.arg.id({ required: true }) },
    resolve: async (_r, a, ctx) => {
      const databaseId = String(a.databaseId);
      const id = Number(a.conflictId);
      if (!Number.isSafeInteger(id) || id < 1) throw new ApiError('VALIDATION_FAILED', 'conflictId: not a conflict id', { details: { field: 'conflictId' } });
      await ctx.services.databases.getDatabase(databaseId);
      let db;
      try {
        db = await ctx.sync.databases.get(databaseId);
      } catch (e) {
        throw toApiError(e);
      }
      let r;
      try {
        // The sync service's own connection: serialised with merges (both are synchronous sections).
        r = restoreLosingWrite(db.engine, id, Date.now());
      } catch (e) {
        if (e instanceof ConflictRestoreError) throw new ApiError(RESTORE_CODE[e.code], e.message, { details: { field: 'conflictId', reason: e.code } });
        throw e;
      }
      // Live subscribers and push learn of it as of a merge.
      ctx.sync.announceWrite(db, [r.entry.table]);
      const [conflict] = await toNodes(ctx, databaseId, [r.entry]);
      if (conflict === undefined) throw new Error('unreachable');
      return { conflict, action: r.action === 'insert' ? ('INSERT' as const) : ('UPDATE' as const), dbVersion: r.dbVersion };
    },
  }),
}));

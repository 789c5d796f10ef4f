/**
 * GraphQL sync for OffSync's own client: `pushChanges`, `pullChanges` and the live `changes`
 * subscription, with base64 payloads in the same format as the HTTP protocol (docs/PROTOCOL.md).
 * These fields skip the admin-only root scope: they accept the admin key OR a device credential
 * for the database (graphql/caller.ts), and RLS applies to users as over HTTP.
 */
import { builder } from '../../builder.ts';
import type { Cursor } from './download-pages.ts';
import { syncCaller, toApiError } from './graphql/caller.ts';
import { changeHubOf } from './graphql/change-hub.ts';
import { liveChanges } from './graphql/live-changes.ts';
import { liveSessionsOf } from './graphql/live-sessions.ts';
import type { ChangesBatch } from './graphql/live-changes.ts';
import { cursorArg, decodeBase64Payload, encodeBase64, pageBytesArg, windowArg } from './graphql/payload.ts';
import type { SyncStatus, VersionWindow } from './peer-state.ts';
import { toSyncError } from './sync-errors.ts';

interface SyncFailure {
  code: string;
  message: string;
  retryable: boolean;
}

interface PushResult extends SyncStatus {
  received: number;
  applied: number;
  dbVersion: number | null;
  failures: SyncFailure[];
}

const CursorRef = builder.objectRef<Cursor>('SyncCursor').implement({
  description: 'A position in the server change feed: the key (db_version, seq) of the last change received (exclusive lower bound of the next read)',
  fields: (t) => ({ dbVersion: t.exposeInt('dbVersion'), seq: t.exposeInt('seq') }),
});

const CursorInput = builder.inputType('SyncCursorInput', {
  description: 'A cursor returned by pullChanges / changes; absent = from the beginning',
  fields: (t) => ({ dbVersion: t.int({ required: true }), seq: t.int({ required: true }) }),
});

const WindowRef = builder.objectRef<VersionWindow>('SyncVersionWindow').implement({
  fields: (t) => ({ dbVersionMin: t.exposeInt('dbVersionMin'), dbVersionMax: t.exposeInt('dbVersionMax') }),
});

const FailureRef = builder.objectRef<SyncFailure>('SyncFailure').implement({
  description: 'Why a pushed payload was refused whole (sync error codes of docs/PROTOCOL.md)',
  fields: (t) => ({ code: t.exposeString('code'), message: t.exposeString('message'), retryable: t.exposeBoolean('retryable') }),
});

const PushResultRef = builder.objectRef<PushResult>('SyncPushResult').implement({
  description: 'SyncStatus after a push (device version space); on refusal the versions are unchanged and failures says why',
  fields: (t) => ({
    lastOptimisticVersion: t.exposeInt('lastOptimisticVersion'),
    lastConfirmedVersion: t.exposeInt('lastConfirmedVersion'),
    gaps: t.field({ type: [WindowRef], resolve: (r) => r.gaps }),
    received: t.exposeInt('received', { description: 'Changes in the payload' }),
    applied: t.exposeInt('applied', { description: 'Changes that won and were written' }),
    dbVersion: t.exposeInt('dbVersion', { nullable: true, description: 'Server db_version after the merge (null when refused)' }),
    failures: t.field({ type: [FailureRef], resolve: (r) => r.failures }),
  }),
});

const ChangesRef = builder.objectRef<ChangesBatch>('SyncChanges').implement({
  description: 'A batch of changes for one site, in server (db_version, seq) order, without its own changes, filtered by RLS',
  fields: (t) => ({
    payload: t.string({ nullable: true, description: 'Base64 payload (HTTP download format); null when there is nothing', resolve: (b) => encodeBase64(b.payload) }),
    changes: t.exposeInt('changes'),
    cursor: t.field({ type: CursorRef, description: 'Send this back as the cursor of the next pull / subscription', resolve: (b) => b.cursor }),
    final: t.exposeBoolean('final', { description: 'Nothing after cursor was left when this batch was built' }),
  }),
});

const siteArgs = builder.args((t) => ({
  databaseId: t.id({ required: true }),
  siteId: t.string({ required: true, description: "The device's site id (32 hex digits)" }),
}));

builder.mutationFields((t) => ({
  pushChanges: t.field({
    type: PushResultRef,
    skipTypeScopes: true,
    description: 'Merges one payload (base64, as uploaded over HTTP) atomically; admin key or device credential',
    args: { ...siteArgs, payload: t.arg.string({ required: true }), dbVersionMin: t.arg.int(), dbVersionMax: t.arg.int() },
    resolve: async (_r, a, ctx) => {
      const window = windowArg(a.dbVersionMin, a.dbVersionMax);
      const { db, site, principal } = await syncCaller(ctx, String(a.databaseId), a.siteId);
      ctx.sync.recordActivity(db, site, principal, { uploadBytes: a.payload.length, downloadBytes: 0 });
      try {
        const r = await ctx.sync.upload(db, site, decodeBase64Payload(a.payload), window, principal);
        return { ...r.status, received: r.received, applied: r.applied, dbVersion: r.dbVersion, failures: [] };
      } catch (e) {
        const err = toSyncError(e);
        if (err.status === 500 || err.code === 'server_busy' || err.code === 'invalid_request') throw toApiError(e);
        const failure = { code: err.code, message: err.detail ?? err.title, retryable: err.retryable };
        return { ...(await ctx.sync.status(db, site)), received: 0, applied: 0, dbVersion: null, failures: [failure] };
      }
    },
  }),
}));

builder.queryFields((t) => ({
  pullChanges: t.field({
    type: ChangesRef,
    skipTypeScopes: true,
    description: 'One page of changes after cursor (≈ maxBytes, capped at the server page size); admin key or device credential',
    args: { ...siteArgs, cursor: t.arg({ type: CursorInput }), maxBytes: t.arg.int() },
    resolve: async (_r, a, ctx) => {
      const after = cursorArg(a.cursor);
      const pageBytes = pageBytesArg(a.maxBytes, ctx.sync.pageBytes);
      const { db, site, principal } = await syncCaller(ctx, String(a.databaseId), a.siteId);
      try {
        const r = await ctx.sync.download(db, site, after, principal, { pageBytes, maxPages: 1 });
        const page = r.pages[0];
        ctx.sync.recordActivity(db, site, principal, { uploadBytes: 0, downloadBytes: base64Length(page?.payload) });
        if (page === undefined) return { payload: null, changes: 0, cursor: after, final: true };
        return { payload: page.payload ?? null, changes: page.rows, cursor: page.to, final: r.complete };
      } catch (e) {
        throw toApiError(e);
      }
    },
  }),
}));

builder.subscriptionFields((t) => ({
  changes: t.field({
    type: ChangesRef,
    skipTypeScopes: true,
    description:
      'Replays every change after cursor in pages, then streams new batches live (never the subscriber\'s own). The first batch with final = true marks the end of the replay (payload null if there was nothing). Resubscribe with the last cursor received: no gap, no duplicate. Ends with an error whose extensions.code is CREDENTIAL_REVOKED, CREDENTIAL_EXPIRED, DEVICE_REMOVED, SYNC_DISABLED or RLS_MODE_CHANGED within 2 s of that event',
    args: { ...siteArgs, cursor: t.arg({ type: CursorInput }), maxBytes: t.arg.int() },
    subscribe: async (_r, a, ctx) => {
      const after = cursorArg(a.cursor);
      const pageBytes = pageBytesArg(a.maxBytes, ctx.sync.pageBytes);
      const { db, site, principal } = await syncCaller(ctx, String(a.databaseId), a.siteId);
      ctx.sync.recordActivity(db, site, principal, { uploadBytes: 0, downloadBytes: 0 });
      const sessions = liveSessionsOf(ctx.services);
      // Traffic: base64 bytes of the payloads, reported every 15–30 s per stream (TRAFFIC_FLUSH_MS)
      // (one counter write per subscriber per interval, not per batch) and when the stream ends.
      const traffic = (bytes: number): void => ctx.sync.recordTraffic(db, site, { uploadBytes: 0, downloadBytes: bytes });
      return liveChanges({ sync: ctx.sync, hub: changeHubOf(ctx.services.pubsub), db, site, principal, after, pageBytes, sessions, traffic });
    },
    resolve: (batch) => batch,
  }),
}));

/** Bytes of the base64 text a payload travels as in GraphQL. */
function base64Length(payload: Uint8Array | null | undefined): number {
  return payload == null ? 0 : 4 * Math.ceil(payload.length / 3);
}

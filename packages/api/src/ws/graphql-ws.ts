/**
 * graphql-ws on the same HTTP server and path as Yoga. The credential comes from
 * `connectionParams.authorization` ("Bearer …") or `connectionParams.adminKey`. A connection is
 * accepted with the admin key, or with a device credential (API key, access token, JWT) valid
 * for `connectionParams.databaseId` — such a connection can only use the sync fields, which
 * authorize every operation again. Anything else is refused (close 4403) before any
 * subscription runs.
 *
 * A socket accepted with a device credential is a live session (domains/sync/graphql/
 * live-sessions.ts): when that credential is revoked or expires, its `changes` subscriptions end
 * with their GraphQL error first, then the socket is closed with 4401 and the reason
 * `CREDENTIAL_REVOKED` / `CREDENTIAL_EXPIRED` (docs/PROTOCOL.md "Live subscriptions end with their
 * credential").
 *
 * `changes` subscriptions take the fast path of live-fast-path.ts: batches are written to the
 * socket serialised once per batch (shared by the subscribers of a shared page) instead of one
 * GraphQL execution and one JSON.stringify per subscriber and event.
 */
import type { Server } from 'node:http';
import type { ExecutionArgs } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { YogaServerInstance } from 'graphql-yoga';
import type { GraphQLContext, Viewer } from '../context.ts';
import { extractBearer, resolveViewer } from '../context.ts';
import type { Services } from '../services.ts';
import type { SyncService } from '../domains/sync/sync.service.ts';
import { CREDENTIAL_CLOSE_CODE, liveSessionsOf } from '../domains/sync/graphql/live-sessions.ts';
import type { LiveEndCode } from '../domains/sync/graphql/live-sessions.ts';
import { changesShape, fastSchemaOf, fastSubscribe } from './live-fast-path.ts';
import type { ChangesShape, FastSocket } from './live-fast-path.ts';

/** Longest wait for a socket's subscriptions to send their final error before the 4401 close. */
const DRAIN_MS = 1000;

interface DrainableContext {
  readonly subscriptions: Record<string, unknown>;
  readonly extra: { socket: { close(code: number, reason: string): void } };
}

type Enveloped = ReturnType<YogaServerInstance<Record<string, unknown>, GraphQLContext>['getEnveloped']>;
type RootValue = { execute: Enveloped['execute']; subscribe: Enveloped['subscribe'] };

export function attachGraphqlWs(
  server: Server,
  path: string,
  yoga: YogaServerInstance<Record<string, unknown>, GraphQLContext>,
  services: Services,
  sync: Pick<SyncService, 'authenticate'>,
) {
  const wss = new WebSocketServer({ server, path });
  const viewers = new WeakMap<object, Viewer>();
  const sessions = liveSessionsOf(services);
  // Yoga's error masking (what its masked-errors plugin applies to a subscription error), for the
  // changes fast path; a JS field of the instance (TypeScript-private). Absent: the fast path
  // keeps the executor's stream to mask the end; null (masking off): errors pass as they are.
  const masking = (yoga as unknown as { maskedErrorsOpts?: { maskError(error: unknown, message: string): Error; errorMessage: string } | null }).maskedErrorsOpts;
  const mask = masking === undefined ? null : (error: unknown): unknown => (masking === null ? error : masking.maskError(error, masking.errorMessage));
  /** Socket context → unregisters its live session. */
  const registrations = new WeakMap<object, () => void>();
  /** Execution args of `changes` subscriptions on the fast path → where their batches go. */
  const fast = new WeakMap<object, { shape: ChangesShape; socket: FastSocket; id: string }>();
  /** Socket contexts waiting for their subscriptions to end before the close. */
  const closing = new Map<object, () => void>();

  /** Closes the socket once its subscriptions have sent their final messages (at most DRAIN_MS later). */
  const closeWhenDrained = (ctx: DrainableContext, code: LiveEndCode): void => {
    let done = false;
    const close = (): void => {
      if (done) return;
      done = true;
      clearTimeout(fallback);
      closing.delete(ctx);
      ctx.extra.socket.close(CREDENTIAL_CLOSE_CODE, code);
    };
    const attempt = (): void => {
      if (Object.keys(ctx.subscriptions).length === 0) close();
    };
    const fallback = setTimeout(close, DRAIN_MS);
    fallback.unref();
    closing.set(ctx, () => void setImmediate(attempt));
    setImmediate(attempt);
  };

  const disposable = useServer(
    {
      execute: (args: ExecutionArgs) => (args.rootValue as RootValue).execute(args),
      subscribe: (args: ExecutionArgs) => {
        const { subscribe } = args.rootValue as RootValue;
        const f = fast.get(args);
        const schema = f === undefined ? null : fastSchemaOf(args.schema);
        if (f === undefined || schema === null) return subscribe(args);
        return fastSubscribe(args, subscribe, schema, f.shape, f.socket, f.id, mask) as ReturnType<typeof subscribe>;
      },
      onConnect: async (ctx) => {
        // The upgrade request (headers, raw headers, parser state) is not needed past the
        // handshake: an idle socket should not keep it (memory per subscriber).
        (ctx.extra as { request?: unknown }).request = undefined;
        const params = ctx.connectionParams ?? {};
        const credential = extractBearer(params['authorization'] ?? params['Authorization']) ?? extractBearer(params['adminKey']);
        const viewer = await resolveViewer(services, credential);
        if (viewer !== null) {
          viewers.set(ctx, viewer);
          return true;
        }
        const databaseId = params['databaseId'];
        if (credential === null || typeof databaseId !== 'string') return false;
        const device = await sync.authenticate(databaseId, credential).catch(() => null);
        if (device === null) return false;
        viewers.set(ctx, null);
        if (device.credentialId !== undefined) {
          registrations.set(ctx, sessions.register({ databaseId, scope: 'socket', principal: device, end: (code) => closeWhenDrained(ctx, code) }));
        }
        return true;
      },
      onComplete: (ctx) => {
        closing.get(ctx)?.();
      },
      onClose: (ctx) => {
        registrations.get(ctx)?.();
        registrations.delete(ctx);
      },
      onSubscribe: async (ctx, id, payload) => {
        const viewer = viewers.get(ctx) ?? null;
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({ ...ctx, viewer, params: payload });
        const args: ExecutionArgs = {
          schema,
          operationName: payload.operationName ?? null,
          document: parse(payload.query),
          variableValues: payload.variables ?? null,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe } satisfies RootValue,
        };
        const errors = validate(args.schema, args.document);
        if (errors.length > 0) return errors;
        const shape = changesShape(args.document, args.operationName);
        if (shape !== null) fast.set(args, { shape, socket: ctx.extra.socket, id });
        return args;
      },
    },
    wss,
  );

  return {
    wss,
    async dispose() {
      for (const client of wss.clients) client.terminate();
      await disposable.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/**
 * `@offsync/client/sync`: a local-first SQLite database (better-sqlite3) that syncs with OffSync,
 * with the SQLite Sync SQL API on the connection and an async TypeScript API. See docs/CLIENT.md.
 */
export { openDatabase, OffSyncDatabase, DEFAULT_SERVER_URL } from './database.ts';
export type { ClientStatus, ErrorEvent, OffSyncEvents, OpenDatabaseOptions, StateEvent } from './database.ts';
export { TypedEmitter } from './emitter.ts';
export type { Listener } from './emitter.ts';
export { CONNECTION_EVENTS, CONNECTION_STATES, ConnectionMachine, nextState, TRANSITIONS } from './state-machine.ts';
export type { ConnectionEvent, ConnectionState } from './state-machine.ts';
export { backoffDelay, wait } from './backoff.ts';
export type { BackoffOptions } from './backoff.ts';
export { createFetchHttp, SyncError, SyncHttpError, SyncNetworkError, SyncProtocolError } from './http.ts';
export type { BlockingHttpFetch, HttpFetch, HttpRequest, HttpResponse } from './http.ts';
export { createBlockingHttp } from './blocking-http.ts';
export type { BlockingHttp } from './blocking-http.ts';
export { CLOUDSYNC_COMPAT_VERSION, INLINE_LIMIT, parseCheck, parseStatus } from './protocol.ts';
export { BlockingHttpTransport, HttpSyncTransport, NO_NETWORK_CONTEXT } from './transport.ts';
export { GraphqlSyncTransport, graphqlWsUrl, liveModeOf, SEQ_ALL, toDurableCursor, toFeedCursor } from './graphql-transport.ts';
export type { GraphqlTransportOptions, LiveMode } from './graphql-transport.ts';
export type { LiveHandle } from './live.ts';
export type { BlockingSyncTransport, ChangeNotice, PollingOptions, SubscribeOptions, Subscription, SyncTransport } from './transport.ts';
export { SyncSession, runBlocking, sendStatus } from './session.ts';
export type { Progress, ResyncResult, SessionOptions } from './session.ts';
export { isResyncRequired, RESYNC_REQUIRED } from './resync.ts';
export { IN_TRANSACTION, NEEDS_FILE } from './sql-functions.ts';
export type * from './types.ts';

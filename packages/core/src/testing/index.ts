/**
 * `@offsync/core/testing`: helpers for tests only (replicas on the real engine, the convergence
 * simulator, the harness running the real SQLite Sync extension, the engine conformance suite,
 * PostgreSQL test pools and contexts, fast-check run/seed settings). Never import from
 * production code (licence of the extension: docs/PROTOCOL.md §P7).
 */
export { TODOS_DDL, changesFor, clockRows, openReplica, syncOneWay, tableRows } from './replica.ts';
export { clockTables, dumpDatabase } from './db-dump.ts';
export { Star } from './star.ts';
export type { StarDevice } from './star.ts';
export { fcSeed, numRuns } from '../codec/test-arbitraries.ts';
export { clockLine, collect, liteToPg, normRows, openPgContext, openTestPool, pgClockRows, pgToLite } from '../adapters/postgres/testing.ts';
export type { PgCtx } from '../adapters/postgres/testing.ts';
export {
  ConvergenceError,
  HARNESS_DDL,
  HARNESS_K_DDL,
  HARNESS_TABLES,
  HARNESS_T_DDL,
  K_KEYS,
  ReplicaCluster,
  StarCluster,
  T_KEYS,
  VALUE_POOL,
  acquireReplica,
  applyLocalOp,
  drainReplicaPool,
  releaseReplica,
  assertConverged,
  normalisedClockRows,
  localOpArb,
  openHarnessReplica,
  opSql,
  prng,
  randomScenario,
  runScenario,
  runStarScenario,
  scenarioArb,
  snapshot,
  starScenarioArb,
  tagValue,
  typedRows,
} from './replica-harness.ts';
export type {
  ClusterOptions,
  LocalOp,
  Scenario,
  ScenarioResult,
  ScenarioArbOptions,
  SendMode,
  StarScenario,
  StarStep,
  Step,
  TableName,
} from './replica-harness.ts';
export {
  CHANGE_COLUMNS,
  EXTENSION_PACKAGE,
  ExtensionDb,
  G2A_STUB_SERVER,
  SyncXMLHttpRequest,
  clearXhrLog,
  closeExtension,
  openExtension,
  startServerInWorker,
  xhrLog,
} from './sqlite-wasm.ts';
export type {
  ChangeRow,
  ExtensionModule,
  G2aStubOptions,
  Row,
  ServerWorkerOptions,
  SqlParams,
  Sqlite3Static,
  StubRequest,
  StubUpload,
  SyncXhrOptions,
  WorkerServer,
  XhrEvent,
  XhrLogEntry,
} from './sqlite-wasm.ts';
export {
  CONFORMANCE_DDL,
  REMOTE_SITE,
  clockLines,
  collectChanges,
  plain,
  postgresEngineFactory,
  registerConvergence,
  registerEngineTests,
  remoteChange,
  sendChanges,
  sqliteEngineFactory,
  todoRows,
} from './engine-conformance.ts';
export type { ConformanceEngine, ConformanceFeedRequest, EngineFactory, EngineTestOptions } from './engine-conformance.ts';

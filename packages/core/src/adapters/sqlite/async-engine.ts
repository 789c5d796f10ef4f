/**
 * The SQLite engine behind the production engine contract (engine/contract.ts): every call runs
 * the synchronous `SyncEngine` at once (its fast path stays inside) and answers with a promise.
 *
 * One difference from the device-side `SyncEngine.commitAlter`: the contract refuses a changed
 * primary key (as the PostgreSQL engine does) instead of rebuilding the clocks, which would leave
 * the rows of the old keys alive on every device. The refusal rolls the whole alter back.
 */
import type { ApplyResult } from '../../engine/apply.ts';
import { primaryKeyChangeError } from '../../engine/contract.ts';
import type { ContractApplyOptions, ContractFeedRequest, ContractPayloadOptions, SyncEngineContract } from '../../engine/contract.ts';
import type { SyncEngine } from '../../engine/engine.ts';
import { CoreError, CoreErrorCode } from '../../errors.ts';
import { readTableSchema } from '../../schema/introspect.ts';
import type { Change } from '../../types.ts';

/** Savepoint around a contract alter (the engine's own `offsync_alter` nests inside it). */
const ALTER_SAVEPOINT = 'offsync_contract_alter';

const settle = <T>(fn: () => T): Promise<T> => {
  try {
    return Promise.resolve(fn());
  } catch (e) {
    return Promise.reject(e as Error);
  }
};

/** Wraps `engine` in the async production contract. */
export function asyncSqliteEngine(engine: SyncEngine): SyncEngineContract {
  /** Open alters: lower-case table name → its primary-key column names (lower case) at beginAlter. */
  const alters = new Map<string, string[]>();
  const pkOf = (table: string): string[] | undefined => readTableSchema(engine.driver, table)?.pkColumns.map((c) => c.name.toLowerCase());

  const beginAlter = (table: string): void => {
    const ctx = engine.table(table);
    const key = (ctx?.name ?? table).toLowerCase();
    if (ctx !== undefined && alters.has(key)) throw new CoreError(CoreErrorCode.INVALID_STATE, `cloudsync_begin_alter was already called for table ${ctx.name}`);
    engine.driver.exec(`SAVEPOINT ${ALTER_SAVEPOINT}`);
    try {
      engine.beginAlter(table);
    } catch (e) {
      engine.driver.exec(`ROLLBACK TO ${ALTER_SAVEPOINT}; RELEASE ${ALTER_SAVEPOINT}`);
      throw e;
    }
    alters.set(key, ctx?.schema.pkColumns.map((c) => c.name.toLowerCase()) ?? []);
  };

  const commitAlter = (table: string): void => {
    const name = engine.table(table)?.name ?? table;
    const key = name.toLowerCase();
    const oldPk = alters.get(key);
    if (oldPk === undefined) throw new CoreError(CoreErrorCode.INVALID_STATE, `cloudsync_begin_alter must be called before cloudsync_commit_alter (table ${table})`);
    alters.delete(key);
    const newPk = pkOf(name);
    if (newPk !== undefined && newPk.join(',') !== oldPk.join(',')) {
      // Undo the ALTER (and the dropped triggers), then let the engine close its alter on the
      // unchanged table: it finds nothing to do but re-record the same state.
      engine.driver.exec(`ROLLBACK TO ${ALTER_SAVEPOINT}; SAVEPOINT offsync_alter`);
      try {
        engine.commitAlter(name);
      } finally {
        engine.driver.exec(`RELEASE ${ALTER_SAVEPOINT}`);
      }
      throw primaryKeyChangeError(name, oldPk, newPk);
    }
    try {
      engine.commitAlter(name);
    } catch (e) {
      engine.driver.exec(`ROLLBACK TO ${ALTER_SAVEPOINT}; RELEASE ${ALTER_SAVEPOINT}`);
      throw e;
    }
    engine.driver.exec(`RELEASE ${ALTER_SAVEPOINT}`);
  };

  return {
    kind: 'sqlite',
    get siteId() {
      return engine.siteId;
    },
    init: (t, a, f) => settle(() => engine.init(t, a, f)),
    cleanup: (t) => settle(() => engine.cleanup(t)),
    beginAlter: (t) => settle(() => beginAlter(t)),
    commitAlter: (t) => settle(() => commitAlter(t)),
    schemaHash: () => settle(() => engine.schemaHash()),
    ddlSchemaHash: () => settle(() => engine.ddlSchemaHash()),
    knownSchemaHashes: () => settle(() => engine.knownSchemaHashes()),
    rememberSchemaHash: (h, kind) => settle(() => engine.rememberSchemaHash(h, kind)),
    dbVersion: () => settle(() => engine.dbVersion()),
    changes: (req: ContractFeedRequest = {}): AsyncIterable<Change> => {
      const { rowFilter, ...rest } = req;
      // Started at once (a synchronous snapshot of the feed's position), iterated lazily.
      const it = engine.changes(rowFilter === undefined ? rest : { ...rest, rowFilter: (t, pk, row) => rowFilter(t, pk, row) });
      return (async function* () {
        yield* it;
      })();
    },
    applyPayload: (p: Uint8Array, o?: ContractPayloadOptions): Promise<ApplyResult & { schemaHash: bigint }> => settle(() => engine.applyPayload(p, o)),
    applyChanges: (c: Iterable<Change>, o?: ContractApplyOptions): Promise<ApplyResult> => settle(() => engine.applyChanges(c, o)),
    close: () =>
      settle(() => {
        for (const key of alters.keys()) {
          alters.delete(key);
          engine.driver.exec(`ROLLBACK TO ${ALTER_SAVEPOINT}; RELEASE ${ALTER_SAVEPOINT}`);
        }
        engine.close();
      }),
  };
}

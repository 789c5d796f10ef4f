/**
 * Test harness for the real, unmodified SQLite Sync extension (`@sqliteai/sqlite-wasm`,
 * cloudsync 0.9.99, protocol generation G2a) under Node, network functions included.
 *
 * LICENCE: the extension is Elastic-License software (docs/PROTOCOL.md §P7). It is a
 * devDependency used by TESTS ONLY. Never import this module from production code, never copy or
 * vendor the extension's source.
 *
 * Two host shims make the network layer work (docs/PROTOCOL.md §P7), without touching any
 * package file:
 * 1. `instantiateWasm` instantiates the package's own `sqlite3.wasm` with the import
 *    `env.emscripten_is_main_browser_thread` returning 0, so Emscripten Fetch allows synchronous
 *    requests. All other imports are passed through untouched.
 * 2. A synchronous `XMLHttpRequest` on `globalThis` (extension/sync-xhr.ts), active from
 *    {@link openExtension} until {@link closeExtension}.
 *
 * The main thread blocks during each request, so any server the extension talks to must run in
 * another thread or process: see {@link startServerInWorker}.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { ExtensionDb, type Sqlite3Static } from './extension/db.ts';
import { installSyncXhr, uninstallSyncXhr, type SyncXhrOptions } from './extension/sync-xhr.ts';

export { ExtensionDb, CHANGE_COLUMNS } from './extension/db.ts';
export type { ChangeRow, Row, SqlParams, Sqlite3Static } from './extension/db.ts';
export { SyncXMLHttpRequest, clearXhrLog, xhrLog } from './extension/sync-xhr.ts';
export type { SyncXhrOptions, XhrEvent, XhrLogEntry } from './extension/sync-xhr.ts';
export { startServerInWorker } from './extension/server-worker.ts';
export type { ServerWorkerOptions, WorkerServer } from './extension/server-worker.ts';
export type { G2aStubOptions, StubRequest, StubUpload } from './extension/g2a-stub-server.ts';

/** Absolute path of the G2a relay stub, for `startServerInWorker(G2A_STUB_SERVER, 'createG2aStubServer')`. */
export const G2A_STUB_SERVER = fileURLToPath(new URL('./extension/g2a-stub-server.ts', import.meta.url));

/** The npm package whose Node build is loaded. */
export const EXTENSION_PACKAGE = '@sqliteai/sqlite-wasm';

/** The loaded extension runtime. One per process: the wasm module is loaded once and cached. */
export interface ExtensionModule {
  readonly sqlite3: Sqlite3Static;
  /** `cloudsync_version()`, e.g. `0.9.99`. */
  readonly cloudsyncVersion: string;
  /** SQLite library version, e.g. `3.50.4`. */
  readonly sqliteVersion: string;
  /**
   * Lines the runtime printed (stdout, stderr) and oo1 warnings. The start-up banner and the
   * `sqlite3_step() rc=` warnings (the error is thrown anyway) are only captured here.
   */
  readonly output: readonly string[];
  /** Opens a database (`:memory:` by default) with the extension auto-registered. */
  openDb(name?: string): ExtensionDb;
}

/** Lines swallowed instead of being forwarded to the console. */
const QUIET = /sqlite3_wasm_extra_init\(\)/;

let loading: Promise<ExtensionModule> | undefined;

/** The part of the `WebAssembly` global used here (the project's libs carry no WebAssembly types). */
type WasmImports = Record<string, Record<string, unknown>>;
interface WasmGlobal {
  compile(bytes: Uint8Array): Promise<object>;
  instantiate(module: object, imports: WasmImports): Promise<object>;
}

function wasmGlobal(): WasmGlobal {
  const wasm: unknown = Reflect.get(globalThis, 'WebAssembly');
  if (typeof wasm !== 'object' || wasm === null || !('compile' in wasm) || !('instantiate' in wasm)) {
    throw new Error('WebAssembly is not available');
  }
  return wasm as WasmGlobal;
}

async function load(): Promise<ExtensionModule> {
  const require = createRequire(import.meta.url);
  // Package exports map: "." → { node: "./node.mjs", … }, "./sqlite3.wasm" → the binary it loads.
  const { default: sqlite3InitModule } = await import('@sqliteai/sqlite-wasm');
  const WebAssembly = wasmGlobal();
  const wasmModule = await WebAssembly.compile(await readFile(require.resolve(`${EXTENSION_PACKAGE}/sqlite3.wasm`)));
  const output: string[] = [];
  const sink = (toConsole: (line: string) => void) => (line: string): void => {
    output.push(line);
    if (!QUIET.test(line)) toConsole(line);
  };
  let failInstantiate: (e: unknown) => void = () => undefined;
  const failed = new Promise<never>((_, fail) => {
    failInstantiate = fail;
  });
  const moduleArg = {
    print: sink((line) => console.log(line)),
    printErr: sink((line) => console.error(line)),
    instantiateWasm(
      imports: WasmImports,
      receive: (instance: object, module: object) => void,
    ): Record<string, never> {
      const env = { ...imports['env'], emscripten_is_main_browser_thread: (): number => 0 };
      WebAssembly.instantiate(wasmModule, { ...imports, env }).then(
        (instance) => receive(instance, wasmModule),
        (e: unknown) => failInstantiate(e),
      );
      return {};
    },
  };
  const sqlite3 = await Promise.race([sqlite3InitModule(moduleArg), failed]);
  // oo1 warns `sqlite3_step() rc= …` on every failing statement although it also throws: keep quiet.
  sqlite3.config.warn = (...args: unknown[]): void => {
    output.push(args.map(String).join(' '));
  };
  const probe = new ExtensionDb(sqlite3);
  let cloudsyncVersion: string;
  try {
    cloudsyncVersion = String(probe.value('SELECT cloudsync_version()'));
  } finally {
    probe.close();
  }
  return {
    sqlite3,
    cloudsyncVersion,
    sqliteVersion: sqlite3.version.libVersion,
    output,
    openDb: (name?: string) => new ExtensionDb(sqlite3, name),
  };
}

/**
 * Loads the extension once per process (later calls return the same module) and installs the
 * synchronous XMLHttpRequest polyfill on `globalThis`.
 */
export async function openExtension(options: SyncXhrOptions = {}): Promise<ExtensionModule> {
  installSyncXhr(options);
  loading ??= load().catch((e: unknown) => {
    loading = undefined;
    throw e;
  });
  return loading;
}

/**
 * Deactivates the harness: restores `globalThis.XMLHttpRequest` and stops the fetch worker. The
 * wasm module stays cached; a later {@link openExtension} re-installs the polyfill.
 */
export async function closeExtension(): Promise<void> {
  await uninstallSyncXhr();
}

/** Argument parsing, output and exit codes of the `offsync` CLI (docs/CONTROL-PLANE.md "Operator CLI"). */

/** Exit codes scripts can rely on. */
export const Exit = {
  OK: 0,
  /** The operation was refused or failed (GraphQL error, not found, schema issues, I/O). */
  FAILED: 1,
  /** Unknown command or option, missing argument. */
  USAGE: 2,
  /** The server did not answer (not running, wrong --url). */
  UNREACHABLE: 3,
  /** No admin key, or the server refused it. */
  UNAUTHORIZED: 4,
} as const;

export class CliError extends Error {
  readonly exitCode: number;
  readonly code: string;
  constructor(exitCode: number, code: string, message: string) {
    super(message);
    this.exitCode = exitCode;
    this.code = code;
  }
}

export const usageError = (message: string): CliError => new CliError(Exit.USAGE, 'USAGE', message);

export interface Parsed {
  positionals: string[];
  options: Map<string, string | true>;
}

/** `--name value`, `--name=value`; names in `booleans` take no value. `--` ends options. */
export function parseArgs(argv: readonly string[], booleans: ReadonlySet<string>): Parsed {
  const positionals: string[] = [];
  const options = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a === '-h') {
      options.set('help', true);
      continue;
    }
    if (!a.startsWith('--') || a === '--') {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    if (booleans.has(name)) {
      if (eq >= 0) throw usageError(`--${name} takes no value`);
      options.set(name, true);
      continue;
    }
    const value = eq >= 0 ? a.slice(eq + 1) : argv[++i];
    if (value === undefined) throw usageError(`--${name} needs a value`);
    options.set(name, value);
  }
  return { positionals, options };
}

export interface CommandSpec {
  /** e.g. `tables deploy`. */
  name: string;
  usage: string;
  summary: string;
  /** Value options allowed (without `--`). */
  options?: readonly string[];
  /** Flag options allowed besides `json` and `help`. */
  flags?: readonly string[];
  /** Longer help text. */
  details?: string;
}

export const COMMON_FLAGS = ['json', 'help'];

export function checkOptions(spec: CommandSpec, parsed: Parsed): void {
  const allowed = new Set([...(spec.options ?? []), ...(spec.flags ?? []), ...COMMON_FLAGS, 'url', 'admin-key']);
  for (const k of parsed.options.keys()) if (!allowed.has(k)) throw usageError(`unknown option --${k} for "offsync ${spec.name}" (see offsync ${spec.name} --help)`);
}

export function opt(parsed: Parsed, name: string): string | undefined {
  const v = parsed.options.get(name);
  return typeof v === 'string' ? v : undefined;
}

export function required(parsed: Parsed, name: string): string {
  const v = opt(parsed, name);
  if (v === undefined || v === '') throw usageError(`--${name} is required`);
  return v;
}

export function positional(parsed: Parsed, index: number, what: string): string {
  const v = parsed.positionals[index];
  if (v === undefined || v === '') throw usageError(`missing ${what}`);
  return v;
}

/** A table of rows for people: columns padded, header first. */
export function table(items: readonly object[], columns: readonly string[]): string {
  const rows = items as readonly Record<string, unknown>[];
  if (rows.length === 0) return '(none)\n';
  const cell = (v: unknown): string => (v === null || v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]): string => vals.map((v, i) => v.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return `${[line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join('\n')}\n`;
}

/**
 * An operator's schema change of a synced table (docs/PROTOCOL.md §P6 "Alteration"), from the
 * control plane (`alterTable`): beginAlter → the operator's ALTER TABLE statements → commitAlter,
 * atomically, on both kinds of database — SQLITE on the owner of the central file
 * (`withSchemaChange`: serialised with merges and scans, the sync connections told), POSTGRES
 * through the database's core engine (pg-tables.ts `alterPgTable`, one pinned transaction).
 *
 * The statements are SQL run in the customer's database with its credentials, so they are parsed
 * first and only a small grammar is accepted ({@link planAlter}); what runs is the statement
 * rebuilt from the parsed tokens (table and columns quoted, the table schema-qualified on
 * POSTGRES), never the text as sent:
 *
 *   ALTER TABLE <the table> ADD [COLUMN] [IF NOT EXISTS] <col> [<type>] [NOT NULL | NULL | DEFAULT <literal> | COLLATE <name>]…
 *   ALTER TABLE <the table> DROP [COLUMN] [IF EXISTS] <col> [RESTRICT]
 *   ALTER TABLE <the table> RENAME [COLUMN] <col> TO <col>
 *   ALTER TABLE <the table> ALTER [COLUMN] <col> SET DEFAULT <literal> | DROP DEFAULT | SET NOT NULL | DROP NOT NULL | [SET DATA] TYPE <type>
 *
 * with <literal> a number, a string (no backslash), NULL, TRUE or FALSE, and <type> type words
 * with an optional `(n[, m])` and `[]`. Anything else — another statement, another table, a table
 * rename, constraints, expressions (CHECK, USING, generated columns, function calls), CASCADE, a
 * change of a key column — is refused with ALTER_REFUSED (details.reason, details.statement) before
 * anything runs; a changed primary key is also caught after the statements ran (and rolled back).
 * A statement the database rejects is ALTER_FAILED (details.statement, details.message). Either
 * way nothing changed: the table syncs as before.
 *
 * On SQLITE the table's RLS policies (control plane) follow the alter as PostgreSQL's own follow
 * it on POSTGRES ({@link followPolicies}, {@link alterSqliteWithPolicies}): a DROP COLUMN a policy
 * depends on is refused (POLICY_DEPENDENCY), a RENAME COLUMN carries the policies along.
 */
import type { SyncEngine } from '../sync/sync-deps.ts';
import { ApiError, isApiError } from '../../errors.ts';
import type { DatabasesService } from '../databases/databases.service.ts';
import { isCoreError, readTableSchema } from '@offsync/core';
import { alterPgTable, pgDeviceDdl, PG_TABLES_SCHEMA } from './pg-tables.ts';
import { policyReferences, renamePolicyColumn, validateRlsExpression } from './rls-validate.ts';
import type { RlsOperation } from './rls-validate.ts';
import type { TableColumn } from './table-engine.ts';
import { rewritePolicyHistory } from '../sync/policy-history.ts';

/** Why a statement was refused (`details.reason` of ALTER_REFUSED). */
export const AlterRefusal = {
  /** The statement list is empty, too long, or a statement is too long. */
  INVALID_INPUT: 'INVALID_INPUT',
  /** Not SQL this grammar can read (unterminated quote, unknown character, backslash in a string). */
  SYNTAX: 'SYNTAX',
  /** Not an ALTER TABLE statement (DROP TABLE, UPDATE, …). */
  NOT_ALTER_TABLE: 'NOT_ALTER_TABLE',
  /** More than one statement in one string. */
  MULTIPLE_STATEMENTS: 'MULTIPLE_STATEMENTS',
  /** An ALTER TABLE of another table than the one named by `table` (or schema-qualified). */
  OTHER_TABLE: 'OTHER_TABLE',
  /** The table is not synced: alter it directly, no sync metadata to keep. */
  TABLE_NOT_SYNCED: 'TABLE_NOT_SYNCED',
  /** RENAME TO: the synced table keeps its name (devices address it by name). */
  TABLE_RENAME: 'TABLE_RENAME',
  /** A change of the primary key (a key column dropped, renamed or retyped, PRIMARY KEY constraints). */
  PRIMARY_KEY_CHANGE: 'PRIMARY_KEY_CHANGE',
  /** An ALTER TABLE form outside the accepted grammar (constraints, expressions, CASCADE, OWNER, …). */
  UNSUPPORTED: 'UNSUPPORTED',
  /** The table as altered breaks a §P6 rule (e.g. NOT NULL without DEFAULT); rolled back. */
  SCHEMA_INVALID: 'SCHEMA_INVALID',
  /**
   * SQLITE: an RLS policy of the table depends on the change — a DROP COLUMN of a column a policy
   * names (details.column, details.operations; refused before anything runs), or a policy that
   * validated before the alter and no longer does after it (details.operations, details.message;
   * rolled back). Change or remove the policy first (setRlsPolicy / removeRlsPolicy).
   */
  POLICY_DEPENDENCY: 'POLICY_DEPENDENCY',
} as const;
export type AlterRefusal = (typeof AlterRefusal)[keyof typeof AlterRefusal];

export const MAX_ALTER_STATEMENTS = 32;
export const MAX_ALTER_STATEMENT_CHARS = 4096;

export type AlterDialect = 'SQLITE' | 'POSTGRES';

/** The synced table an alter is planned against. */
export interface AlterTarget {
  /** Its name as the engine records it. */
  name: string;
  /** Key column names, in key order. */
  pk: readonly string[];
}

type Token =
  | { k: 'word'; v: string }
  | { k: 'ident'; v: string }
  | { k: 'string'; v: string }
  | { k: 'number'; v: string }
  | { k: 'punct'; v: string };

function refuse(reason: AlterRefusal, statement: number, message: string, extra: Record<string, unknown> = {}): never {
  throw new ApiError('ALTER_REFUSED', `statements[${statement}]: ${message}`, { details: { field: 'statements', statement, reason, ...extra } });
}

/** Tokens of one statement; comments dropped; SYNTAX on anything unexpected. */
export function tokenize(sql: string, statement = 0): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < sql.length) {
    const ch = sql[i] as string;
    if (/\s/.test(ch)) {
      i++;
    } else if (sql.startsWith('--', i)) {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? sql.length : nl + 1;
    } else if (sql.startsWith('/*', i)) {
      const end = sql.indexOf('*/', i + 2);
      if (end < 0) refuse('SYNTAX', statement, 'unterminated comment');
      i = end + 2;
    } else if (ch === "'" || ch === '"') {
      let v = '';
      let j = i + 1;
      for (;;) {
        if (j >= sql.length) refuse('SYNTAX', statement, `unterminated ${ch === "'" ? 'string' : 'quoted identifier'}`);
        const c = sql[j] as string;
        if (c === ch) {
          if (sql[j + 1] === ch) {
            v += ch;
            j += 2;
            continue;
          }
          break;
        }
        v += c;
        j++;
      }
      if (ch === "'" && v.includes('\\')) refuse('SYNTAX', statement, 'a string literal may not contain a backslash');
      if (ch === '"' && (v === '' || v.includes('\u0000'))) refuse('SYNTAX', statement, 'empty quoted identifier');
      out.push({ k: ch === "'" ? 'string' : 'ident', v });
      i = j + 1;
    } else if (/[0-9]/.test(ch) || (ch === '.' && /[0-9]/.test(sql[i + 1] ?? ''))) {
      const m = /^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/.exec(sql.slice(i)) as RegExpExecArray;
      if (/[A-Za-z_]/.test(sql[i + m[0].length] ?? '')) refuse('SYNTAX', statement, `unexpected characters after the number ${m[0]}`);
      out.push({ k: 'number', v: m[0] });
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(ch)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(sql.slice(i)) as RegExpExecArray;
      out.push({ k: 'word', v: m[0] });
      i += m[0].length;
    } else if ('(),.;[]-+'.includes(ch)) {
      out.push({ k: 'punct', v: ch });
      i++;
    } else {
      refuse('SYNTAX', statement, `unexpected character ${JSON.stringify(ch)}`);
    }
  }
  return out;
}

/** Words that end a type or start a constraint (never a column name unless quoted). */
const KEYWORDS = new Set([
  'ADD', 'ALTER', 'AS', 'CASCADE', 'CHECK', 'COLLATE', 'COLUMN', 'CONSTRAINT', 'DATA', 'DEFAULT', 'DROP', 'EXISTS', 'FALSE', 'FOREIGN', 'GENERATED',
  'IF', 'KEY', 'NOT', 'NULL', 'ON', 'ONLY', 'PRIMARY', 'REFERENCES', 'RENAME', 'RESTRICT', 'SET', 'TABLE', 'TO', 'TRUE', 'TYPE', 'UNIQUE', 'USING',
]);

/** Words never read as a bare column name (quote the name to use one). */
const IDENT_RESERVED = new Set(['CHECK', 'COLLATE', 'COLUMN', 'CONSTRAINT', 'DEFAULT', 'FOREIGN', 'IF', 'NOT', 'NULL', 'PRIMARY', 'REFERENCES', 'TO', 'UNIQUE']);

const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`;
const quoteString = (v: string): string => `'${v.replace(/'/g, "''")}'`;

class Reader {
  #i = 0;
  constructor(readonly tokens: Token[], readonly statement: number, readonly dialect: AlterDialect) {}

  peek(offset = 0): Token | undefined {
    return this.tokens[this.#i + offset];
  }

  done(): boolean {
    return this.#i >= this.tokens.length;
  }

  isWord(w: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t?.k === 'word' && t.v.toUpperCase() === w;
  }

  isPunct(p: string): boolean {
    const t = this.peek();
    return t?.k === 'punct' && t.v === p;
  }

  /** Consumes the keyword `w` when it is next. */
  take(w: string): boolean {
    if (!this.isWord(w)) return false;
    this.#i++;
    return true;
  }

  next(): Token | undefined {
    return this.tokens[this.#i++];
  }

  expect(w: string, reason: AlterRefusal = 'UNSUPPORTED'): void {
    if (!this.take(w)) this.fail(reason, `expected ${w}${this.near()}`);
  }

  near(): string {
    const t = this.peek();
    return t === undefined ? ' at the end' : ` near ${JSON.stringify(t.v)}`;
  }

  fail(reason: AlterRefusal, message: string): never {
    return refuse(reason, this.statement, message);
  }

  /** An identifier (bare word not a keyword, or quoted); the name as the database reads it. */
  ident(what: string): string {
    const t = this.peek();
    if (t?.k === 'ident') {
      this.#i++;
      return t.v;
    }
    if (t?.k === 'word' && !IDENT_RESERVED.has(t.v.toUpperCase())) {
      this.#i++;
      // PostgreSQL folds unquoted names to lower case; SQLite keeps them as written (and compares without case).
      return this.dialect === 'POSTGRES' ? t.v.toLowerCase() : t.v;
    }
    return this.fail('UNSUPPORTED', `expected ${what}${this.near()}`);
  }

  /** `<word>… [( n [, n] )] [<word>…] [[]]…`, rebuilt; empty when `optional` and there is none. */
  type(optional: boolean): string {
    const parts: string[] = [];
    const words = (): void => {
      while (this.peek()?.k === 'word' && !KEYWORDS.has((this.peek() as Token).v.toUpperCase())) parts.push((this.next() as Token).v.toUpperCase());
    };
    words();
    if (parts.length === 0) {
      if (optional) return '';
      this.fail('UNSUPPORTED', `expected a type${this.near()}`);
    }
    if (this.isPunct('(')) {
      this.next();
      const nums: string[] = [];
      for (;;) {
        const sign = this.isPunct('-') || this.isPunct('+') ? (this.next() as Token).v : '';
        const n = this.next();
        if (n?.k !== 'number' || !/^[0-9]+$/.test(n.v)) this.fail('UNSUPPORTED', 'a type takes integer arguments only');
        nums.push(sign === '-' ? `-${n.v}` : n.v);
        if (this.isPunct(',')) {
          this.next();
          continue;
        }
        if (!this.isPunct(')')) this.fail('UNSUPPORTED', `expected ) in the type${this.near()}`);
        this.next();
        break;
      }
      parts[parts.length - 1] += `(${nums.join(', ')})`;
      words();
    }
    let array = '';
    while (this.isPunct('[')) {
      this.next();
      const n = this.peek()?.k === 'number' ? (this.next() as Token).v : '';
      if (!this.isPunct(']')) this.fail('UNSUPPORTED', `expected ] in the type${this.near()}`);
      this.next();
      array += `[${n}]`;
    }
    return parts.join(' ') + array;
  }

  /** A constant: number (signed), string, NULL, TRUE, FALSE. */
  literal(): string {
    let sign = '';
    if (this.isPunct('-') || this.isPunct('+')) sign = (this.next() as Token).v === '-' ? '-' : '';
    const t = this.next();
    if (t?.k === 'number') return `${sign}${t.v}`;
    if (sign === '' && t?.k === 'string') return quoteString(t.v);
    if (sign === '' && t?.k === 'word' && ['NULL', 'TRUE', 'FALSE'].includes(t.v.toUpperCase())) return t.v.toUpperCase();
    return this.fail('UNSUPPORTED', 'DEFAULT takes a constant (a number, a string, NULL, TRUE or FALSE); expressions and function calls are refused');
  }
}

const sameName = (dialect: AlterDialect, a: string, b: string): boolean => (dialect === 'POSTGRES' ? a === b : a.toLowerCase() === b.toLowerCase());

/** What one planned statement does to the table's columns (what the table's RLS policies follow). */
export type AlterStep =
  | { kind: 'add'; column: string }
  | { kind: 'drop'; column: string }
  | { kind: 'rename'; from: string; to: string }
  | { kind: 'alter'; column: string };

/** One planned statement: the SQL to run (rebuilt) and what it does. */
export interface PlannedStatement { sql: string; step: AlterStep }

/** One statement → the statement to run (rebuilt), or ALTER_REFUSED. */
function planOne(sql: string, statement: number, target: AlterTarget, dialect: AlterDialect): PlannedStatement {
  const tokens = tokenize(sql, statement);
  const semi = tokens.findIndex((t) => t.k === 'punct' && t.v === ';');
  if (semi >= 0) {
    if (tokens.slice(semi).some((t) => !(t.k === 'punct' && t.v === ';'))) refuse('MULTIPLE_STATEMENTS', statement, 'one statement per string (send a list of statements)');
    tokens.splice(semi);
  }
  const r = new Reader(tokens, statement, dialect);
  if (!r.isWord('ALTER') || !r.isWord('TABLE', 1)) refuse('NOT_ALTER_TABLE', statement, 'only ALTER TABLE statements of the table are accepted');
  r.next();
  r.next();
  if (r.isWord('IF') || r.isWord('ONLY')) r.fail('UNSUPPORTED', `ALTER TABLE ${String(r.peek()?.v).toUpperCase()} is not accepted: name the table`);
  const first = r.peek();
  if (first === undefined || (first.k !== 'word' && first.k !== 'ident')) return r.fail('UNSUPPORTED', `expected the table name${r.near()}`);
  const named = first.k === 'ident' ? first.v : dialect === 'POSTGRES' ? first.v.toLowerCase() : first.v;
  r.next();
  if (r.isPunct('.')) refuse('OTHER_TABLE', statement, `name the table without a schema (the synced table ${target.name} of schema ${dialect === 'POSTGRES' ? PG_TABLES_SCHEMA : 'main'})`);
  if (!sameName(dialect, named, target.name)) refuse('OTHER_TABLE', statement, `the statement alters table ${named}, not ${target.name}`);
  const table = dialect === 'POSTGRES' ? `${quoteIdent(PG_TABLES_SCHEMA)}.${quoteIdent(target.name)}` : quoteIdent(target.name);
  const isKey = (col: string): boolean => target.pk.some((k) => k.toLowerCase() === col.toLowerCase());
  const keyRefused = (col: string, what: string): never => refuse('PRIMARY_KEY_CHANGE', statement, `column ${col} is part of the primary key of ${target.name}; ${what} would change the key, which a synced table cannot do (create a new table and copy the rows)`);
  let out: string;
  let step: AlterStep;
  if (r.take('ADD')) {
    if (r.isWord('PRIMARY') || r.isWord('CONSTRAINT') || r.isWord('UNIQUE') || r.isWord('FOREIGN') || r.isWord('CHECK')) {
      const pkLike = r.isWord('PRIMARY') || tokens.some((t) => t.k === 'word' && t.v.toUpperCase() === 'PRIMARY');
      r.fail(pkLike ? 'PRIMARY_KEY_CHANGE' : 'UNSUPPORTED', pkLike ? 'a synced table cannot change its primary key' : 'table constraints are not accepted (UNIQUE cannot hold across offline devices; CHECK and FOREIGN KEY are not added through sync)');
    }
    r.take('COLUMN');
    let ifNot = '';
    if (r.isWord('IF')) {
      r.next();
      r.expect('NOT');
      r.expect('EXISTS');
      ifNot = 'IF NOT EXISTS ';
    }
    const col = r.ident('a column name');
    const type = r.type(dialect === 'SQLITE');
    const cons: string[] = [];
    while (!r.done()) {
      if (r.take('NOT')) {
        r.expect('NULL');
        cons.push('NOT NULL');
      } else if (r.take('NULL')) {
        cons.push('NULL');
      } else if (r.take('DEFAULT')) {
        cons.push(`DEFAULT ${r.literal()}`);
      } else if (r.take('COLLATE')) {
        cons.push(`COLLATE ${quoteIdent(r.ident('a collation name'))}`);
      } else if (r.isWord('PRIMARY')) {
        r.fail('PRIMARY_KEY_CHANGE', 'a synced table cannot change its primary key');
      } else {
        r.fail('UNSUPPORTED', `column constraints other than NOT NULL, NULL, DEFAULT <constant> and COLLATE are not accepted${r.near()}`);
      }
    }
    out = `ALTER TABLE ${table} ADD COLUMN ${ifNot}${quoteIdent(col)}${type === '' ? '' : ` ${type}`}${cons.map((c) => ` ${c}`).join('')}`;
    step = { kind: 'add', column: col };
  } else if (r.take('DROP')) {
    if (r.isWord('CONSTRAINT') || r.isWord('PRIMARY')) r.fail('PRIMARY_KEY_CHANGE', 'dropping constraints is not accepted (a synced table keeps its primary key)');
    r.take('COLUMN');
    let ifExists = '';
    if (r.isWord('IF')) {
      r.next();
      r.expect('EXISTS');
      ifExists = 'IF EXISTS ';
    }
    const col = r.ident('a column name');
    if (isKey(col)) keyRefused(col, 'dropping it');
    if (r.isWord('CASCADE')) r.fail('UNSUPPORTED', 'CASCADE is refused: it drops other objects (views, constraints) that depend on the column');
    const restrict = r.take('RESTRICT') && dialect === 'POSTGRES' ? ' RESTRICT' : '';
    out = `ALTER TABLE ${table} DROP COLUMN ${ifExists}${quoteIdent(col)}${restrict}`;
    step = { kind: 'drop', column: col };
  } else if (r.take('RENAME')) {
    if (r.isWord('TO')) r.fail('TABLE_RENAME', `a synced table keeps its name (devices address ${target.name} by name)`);
    if (r.isWord('CONSTRAINT')) r.fail('UNSUPPORTED', 'renaming constraints is not accepted');
    r.take('COLUMN');
    const from = r.ident('a column name');
    r.expect('TO');
    const to = r.ident('the new column name');
    if (isKey(from)) keyRefused(from, 'renaming it');
    out = `ALTER TABLE ${table} RENAME COLUMN ${quoteIdent(from)} TO ${quoteIdent(to)}`;
    step = { kind: 'rename', from, to };
  } else if (r.take('ALTER')) {
    r.take('COLUMN');
    const col = r.ident('a column name');
    let action: string;
    if (r.take('SET')) {
      if (r.take('DEFAULT')) action = `SET DEFAULT ${r.literal()}`;
      else if (r.take('NOT')) {
        r.expect('NULL');
        action = 'SET NOT NULL';
      } else if (r.take('DATA')) {
        r.expect('TYPE');
        action = `TYPE ${r.type(false)}`;
      } else action = r.fail('UNSUPPORTED', `ALTER COLUMN … SET accepts DEFAULT <constant>, NOT NULL or DATA TYPE${r.near()}`);
    } else if (r.take('DROP')) {
      if (r.take('DEFAULT')) action = 'DROP DEFAULT';
      else if (r.take('NOT')) {
        r.expect('NULL');
        action = 'DROP NOT NULL';
      } else action = r.fail('UNSUPPORTED', `ALTER COLUMN … DROP accepts DEFAULT or NOT NULL${r.near()}`);
    } else if (r.take('TYPE')) {
      action = `TYPE ${r.type(false)}`;
    } else {
      action = r.fail('UNSUPPORTED', `ALTER COLUMN accepts SET DEFAULT, DROP DEFAULT, SET NOT NULL, DROP NOT NULL or TYPE${r.near()}`);
    }
    if (r.isWord('USING') || r.isWord('COLLATE')) r.fail('UNSUPPORTED', 'ALTER COLUMN … TYPE takes no USING expression or COLLATE here');
    if (isKey(col) && (action.startsWith('TYPE') || action === 'DROP NOT NULL')) keyRefused(col, 'changing its type or nullability');
    out = `ALTER TABLE ${table} ALTER COLUMN ${quoteIdent(col)} ${action}`;
    step = { kind: 'alter', column: col };
  } else {
    return r.fail('UNSUPPORTED', `only ADD COLUMN, DROP COLUMN, RENAME COLUMN and ALTER COLUMN are accepted${r.near()}`);
  }
  if (!r.done()) r.fail('UNSUPPORTED', `unexpected text after the statement${r.near()}`);
  return { sql: out, step };
}

/**
 * Validates the operator's statements against the synced table and returns the statements to
 * run, rebuilt from their tokens. Throws ALTER_REFUSED before anything runs.
 */
export function planAlter(statements: readonly string[], target: AlterTarget, dialect: AlterDialect): string[] {
  return planAlterSteps(statements, target, dialect).map((p) => p.sql);
}

/** {@link planAlter} with what each statement does to the columns. */
export function planAlterSteps(statements: readonly string[], target: AlterTarget, dialect: AlterDialect): PlannedStatement[] {
  if (statements.length === 0) refuse('INVALID_INPUT', 0, 'give at least one ALTER TABLE statement');
  if (statements.length > MAX_ALTER_STATEMENTS) refuse('INVALID_INPUT', MAX_ALTER_STATEMENTS, `at most ${MAX_ALTER_STATEMENTS} statements per call`);
  return statements.map((s, i) => {
    if (s.length > MAX_ALTER_STATEMENT_CHARS) refuse('INVALID_INPUT', i, `a statement has at most ${MAX_ALTER_STATEMENT_CHARS} characters`);
    return planOne(s, i, target, dialect);
  });
}

/** A statement the database rejected (ALTER_FAILED): nothing changed. */
export function alterFailed(statement: number, e: unknown): ApiError {
  const message = e instanceof Error ? e.message : String(e);
  return new ApiError('ALTER_FAILED', `statements[${statement}] failed, nothing was changed: ${message}`, { cause: e, details: { field: 'statements', statement, message } });
}

/** commitAlter's refusals (§P6 rules, a changed key) as ALTER_REFUSED; other errors unchanged. */
export function commitRefusal(e: unknown): unknown {
  if (!isCoreError(e)) return e;
  const reason: AlterRefusal = Array.isArray(e.details['before']) ? 'PRIMARY_KEY_CHANGE' : e.code === 'CORE_UNKNOWN_TABLE' ? 'TABLE_NOT_SYNCED' : 'SCHEMA_INVALID';
  return new ApiError('ALTER_REFUSED', `${e.message} (nothing was changed)`, { cause: e, details: { field: 'statements', reason } });
}

/** The table's columns and key as SQLite reports them now (core's introspection; none when it is gone). */
function shapeOf(engine: SyncEngine, table: string): { columns: TableColumn[]; pk: string[] } {
  const schema = readTableSchema(engine.driver, table);
  return { columns: schema?.columns ?? [], pk: (schema?.pkColumns ?? []).map((c) => c.name.toLowerCase()) };
}

/** An RLS policy of a SQLITE database's table (control plane, tables.service `setRlsPolicy`). */
export interface TablePolicy {
  /** The table as the policy names it. */
  table: string;
  operation: RlsOperation;
  expression: string;
}

/** A policy through an alter: `after` is its text once the statements ran (RENAME COLUMN carried along). */
export interface PolicyFollow extends TablePolicy {
  after: string;
}

/**
 * The table's RLS policies through the planned statements, in their order — what PostgreSQL does
 * with its own policies (a policy depends on the columns it names): a DROP COLUMN of a column a
 * policy names is refused (ALTER_REFUSED POLICY_DEPENDENCY, naming the column and the policies'
 * operations) before anything runs; a RENAME COLUMN a TO b makes every policy that named `a` name
 * `b` (rls-validate.ts `renamePolicyColumn`). Pure: the same statements over the same policies
 * give the same texts.
 */
export function followPolicies(plan: readonly PlannedStatement[], policies: readonly TablePolicy[], table: string): PolicyFollow[] {
  const out: PolicyFollow[] = policies.map((p) => ({ ...p, after: p.expression }));
  plan.forEach(({ step }, i) => {
    if (step.kind === 'drop') {
      const using = out.filter((p) => policyReferences(p.after, step.column)).map((p) => p.operation);
      if (using.length > 0) {
        const which = `RLS ${using.join(', ')} ${using.length === 1 ? 'policy' : 'policies'}`;
        refuse('POLICY_DEPENDENCY', i, `column ${step.column} of ${table} is named by its ${which}; change or remove the ${which} first (setRlsPolicy / removeRlsPolicy), then drop the column`, { column: step.column, operations: using });
      }
    } else if (step.kind === 'rename') {
      for (const p of out) p.after = renamePolicyColumn(p.after, step.from, step.to);
    }
  });
  return out;
}

/** Why `expression` does not validate against `columns` (rls-validate.ts), or undefined when it does. */
function invalidPolicy(table: string, columns: TableColumn[], operation: RlsOperation, expression: string): string | undefined {
  try {
    validateRlsExpression(table, columns, operation, expression);
    return undefined;
  } catch (e) {
    if (isApiError(e)) return e.message;
    throw e;
  }
}

/** The synced table an alter of `table` is planned against (TABLE_NOT_SYNCED when it is not synced). */
function syncedTarget(engine: SyncEngine, table: string): AlterTarget {
  const ctx = engine.table(table);
  if (ctx === undefined) refuse('TABLE_NOT_SYNCED', 0, `table ${table} is not synced (deployTables first; an unsynced table is altered directly)`);
  return { name: ctx.name, pk: ctx.schema.pkColumns.map((c) => c.name) };
}

/** The policies of `table` among `policies` (table names compare without case, as SQLite's). */
const policiesOfTable = (policies: readonly TablePolicy[], table: string): TablePolicy[] => policies.filter((p) => p.table.toLowerCase() === table.toLowerCase());

/**
 * The SQLite alter, synchronous on one connection: one transaction around beginAlter, the
 * statements and commitAlter. A failing statement (or a changed key) rolls the statements back,
 * lets commitAlter restore the tracking of the unchanged table, then fails the transaction.
 *
 * `policies` (the database's RLS policies; those of other tables are ignored) follow the
 * statements ({@link followPolicies}): after the statements ran, every policy that validated
 * against the columns before must validate against the new ones, else ALTER_REFUSED
 * POLICY_DEPENDENCY and everything is rolled back; the SELECT texts of `offsync_policy_history`
 * are renamed along in the same transaction. Returns the policies' new texts, which the caller
 * stores (alterTable stores them first).
 */
export function alterSqliteTable(engine: SyncEngine, table: string, statements: readonly string[], policies: readonly TablePolicy[] = []): { table: string; statements: string[]; policies: PolicyFollow[] } {
  const target = syncedTarget(engine, table);
  const name = target.name;
  const planned = planAlterSteps(statements, target, 'SQLITE');
  const plan = planned.map((p) => p.sql);
  const follow = followPolicies(planned, policiesOfTable(policies, name), name);
  const renames = planned.flatMap((p) => (p.step.kind === 'rename' ? [p.step] : []));
  const before = shapeOf(engine, name).columns;
  // A policy that was already broken is not the alter's doing (it denies as before).
  const heldBefore = follow.map((p) => invalidPolicy(name, before, p.operation, p.expression) === undefined);
  const pkBefore = target.pk.map((k) => k.toLowerCase());
  engine.driver.transaction(() => {
    engine.beginAlter(name);
    let failure: unknown;
    engine.driver.exec('SAVEPOINT offsync_operator_alter');
    try {
      plan.forEach((sql, i) => {
        try {
          engine.driver.exec(sql);
        } catch (e) {
          throw alterFailed(i, e);
        }
      });
      const { columns: after, pk } = shapeOf(engine, name);
      if (pk.join(',') !== pkBefore.join(',')) refuse('PRIMARY_KEY_CHANGE', plan.length - 1, `the primary key of ${name} would change (${pkBefore.join(', ')} -> ${pk.join(', ') || 'none'})`);
      const broken = follow.flatMap((p, k) => {
        const why = heldBefore[k] === true ? invalidPolicy(name, after, p.operation, p.after) : undefined;
        return why === undefined ? [] : [{ operation: p.operation, why }];
      });
      if (broken.length > 0) {
        const which = `RLS ${broken.map((b) => b.operation).join(', ')} ${broken.length === 1 ? 'policy' : 'policies'}`;
        refuse('POLICY_DEPENDENCY', plan.length - 1, `the ${which} of ${name} would no longer hold after the alter (${broken.map((b) => `${b.operation}: ${b.why}`).join('; ')}); change or remove the ${which} first (setRlsPolicy / removeRlsPolicy)`, {
          operations: broken.map((b) => b.operation),
          message: broken.map((b) => b.why).join('; '),
        });
      }
      if (renames.length > 0) rewritePolicyHistory(engine.driver, name, (select) => renames.reduce((x, r) => renamePolicyColumn(x, r.from, r.to), select));
      engine.driver.exec('RELEASE offsync_operator_alter');
    } catch (e) {
      failure = e;
      engine.driver.exec('ROLLBACK TO offsync_operator_alter; RELEASE offsync_operator_alter');
    }
    try {
      engine.commitAlter(name); // after a failure: the table as it was, its triggers back
    } catch (e) {
      throw commitRefusal(e);
    }
    if (failure !== undefined) throw failure;
  });
  return { table: name, statements: plan, policies: follow };
}

/** One synced table's SQLite CREATE TABLE statement, as devices create it. */
export interface DeviceTableDdl { table: string; sql: string }

/** The synced tables' CREATE TABLE texts of a SQLite central file, in sqlite_master order (the DDL-text hash's order). */
export function sqliteDeviceDdl(engine: SyncEngine): DeviceTableDdl[] {
  const synced = new Set(engine.syncedTables().map((t) => t.name.toLowerCase()));
  return engine.driver
    .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
    .all()
    .filter((r) => synced.has(String(r['name']).toLowerCase()))
    .map((r) => ({ table: String(r['name']), sql: String(r['sql']) }));
}

/** The control plane's RLS policies of a SQLITE database, as the alter reads and rewrites them. */
export interface AlterPolicies {
  /** Every policy of the database. */
  list(databaseId: string): Promise<TablePolicy[]>;
  /**
   * Sets each policy's expression from `from` to `to`, all or none; CONFLICT (nothing changed)
   * when one is no longer `from` (set or removed meanwhile).
   */
  replace(databaseId: string, changes: readonly { table: string; operation: RlsOperation; from: string; to: string }[]): Promise<void>;
}

/** What the alter and the device DDL need from the tables service. */
export interface AlterDeps {
  databases: Pick<DatabasesService, 'getDatabase' | 'pgSettings'>;
  /** SQLITE: the RLS policies, which follow an alter of their table. */
  policies: AlterPolicies;
  /** SQLITE: a schema change on the owner of the central file (CONNECTION_FAILED when the file is missing). */
  withSchemaChange<T>(databaseId: string, fn: (engine: SyncEngine) => T): Promise<T>;
  /** SQLITE: a read on the owner's connection. */
  readSchema<T>(databaseId: string, fn: (engine: SyncEngine) => T): Promise<T>;
}

export interface AlterResult {
  /** The table's name as synced. */
  table: string;
  /** The statements that ran (rebuilt). */
  statements: string[];
  /** Column-list schema hash after the alter (decimal u64). */
  schemaHash: string;
  /** DDL-text schema hash after the alter (decimal u64). */
  ddlSchemaHash: string;
}

/** The operator's alter (see the file comment); returns the hashes the database has now. */
export async function alterTable(deps: AlterDeps, databaseId: string, table: string, statements: readonly string[]): Promise<AlterResult> {
  const db = await deps.databases.getDatabase(databaseId);
  if (db.kind === 'POSTGRES') {
    const r = await alterPgTable(deps.databases.pgSettings(db), table, (target) => planAlter(statements, target, 'POSTGRES'));
    return { table: r.table, statements: r.statements, schemaHash: r.schemaHash.toString(), ddlSchemaHash: r.ddlSchemaHash.toString() };
  }
  return alterSqliteWithPolicies(deps, databaseId, table, statements);
}

/**
 * SQLITE: the alter with the table's RLS policies following it (docs/PROTOCOL.md §P6
 * "Alteration"). The policies live in the control plane and the table in the central file, so
 * there is no one transaction; the order keeps every moment in between failing closed:
 *
 * 1. Plan on the table as it is (a refusal — grammar, key, a dropped column a policy names —
 *    changes nothing, policies included).
 * 2. Store the renamed policy texts (only when a RENAME COLUMN changed one; CONFLICT when a policy
 *    changed meanwhile). Until the alter commits they name columns the table does not have yet:
 *    they fail to prepare and deny; a policy stored failing is never reported as an alter done.
 * 3. The alter in the central file (statements, re-validation of every policy, the history's
 *    SELECT texts), one transaction. Its schema change moves the policies' epoch
 *    (policy-history.ts `policyEpoch`), so the data plane reloads the texts of step 2; merges and
 *    scans in flight finished before it (withSchemaChange), so none evaluates an old text against
 *    the new columns (a swap rename would otherwise leak).
 * 4. When step 3 fails or is refused, the texts of step 2 are set back before the error is
 *    reported.
 *
 * A rename is not a change of who may see what: no renewal, no re-download.
 */
async function alterSqliteWithPolicies(deps: AlterDeps, databaseId: string, table: string, statements: readonly string[]): Promise<AlterResult> {
  const policies = await deps.policies.list(databaseId);
  const changed = await deps.readSchema(databaseId, (engine) => {
    const target = syncedTarget(engine, table);
    return followPolicies(planAlterSteps(statements, target, 'SQLITE'), policiesOfTable(policies, target.name), target.name).filter((p) => p.after !== p.expression);
  });
  if (changed.length > 0) await deps.policies.replace(databaseId, changed.map((p) => ({ table: p.table, operation: p.operation, from: p.expression, to: p.after })));
  try {
    return await deps.withSchemaChange(databaseId, (engine) => {
      const r = alterSqliteTable(engine, table, statements, policies);
      engine.reloadSchema();
      return { table: r.table, statements: r.statements, schemaHash: engine.schemaHash().toString(), ddlSchemaHash: engine.ddlSchemaHash().toString() };
    });
  } catch (e) {
    if (changed.length === 0) throw e;
    try {
      await deps.policies.replace(databaseId, changed.map((p) => ({ table: p.table, operation: p.operation, from: p.after, to: p.expression })));
    } catch (restore) {
      const why = restore instanceof Error ? restore.message : String(restore);
      const note = `; the RLS policies of ${table} could not be set back to their texts before the alter (they name the renamed columns and deny until set again: ${why})`;
      if (isApiError(e)) throw new ApiError(e.code, `${e.message}${note}`, { cause: e, details: { ...e.details, policiesRestored: false } });
      throw new AggregateError([e, restore], `alterTable failed${note}`);
    }
    throw e;
  }
}

/**
 * The CREATE TABLE statements devices create the synced tables with, in the order they must run
 * them: SQLITE the central file's own texts (sqlite_master), POSTGRES the statements the engine
 * derives (§P6 "DDL text"). A device created from them carries the database's DDL-text hash.
 */
export async function deviceDdl(deps: AlterDeps, databaseId: string): Promise<DeviceTableDdl[]> {
  const db = await deps.databases.getDatabase(databaseId);
  if (db.kind === 'POSTGRES') return pgDeviceDdl(deps.databases.pgSettings(db));
  return deps.readSchema(databaseId, sqliteDeviceDdl);
}

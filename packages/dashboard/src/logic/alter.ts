/**
 * The Alter table form's logic (Database Setup): the statements typed into the textarea, and
 * alterTable's refusals (docs/PROTOCOL.md §P6 "Alteration") in plain words.
 */
import { splitSqlStatements, splitTopLevel } from '@offsync/core/sql-text';

/**
 * The ALTER TABLE statements of the textarea, in order, as alterTable's `statements`: when the
 * text has a `;` (outside strings, quoted names and comments) statements end at `;` and may span
 * lines; otherwise each line is one statement. Blank and comment-only pieces are dropped, so an
 * empty textarea gives no statement (and nothing is sent).
 */
export function splitStatements(text: string): string[] {
  return splitSqlStatements(text, splitTopLevel(text, ';').length > 1 ? ';' : '\n');
}

/** alterTable's refusal as the server sends it: ALTER_REFUSED (`extensions.reason`) or ALTER_FAILED. */
export interface AlterRefusalInfo {
  code: 'ALTER_REFUSED' | 'ALTER_FAILED';
  /** ALTER_REFUSED's `extensions.reason` (absent for ALTER_FAILED). */
  reason?: string | undefined;
  /** 0-based index of the statement concerned (`extensions.statement`), when the server names one. */
  statement?: number | undefined;
  /** The server's message. */
  message: string;
}

/** One short sentence per ALTER_REFUSED reason (packages/api alter.ts `AlterRefusal`). */
const REASONS: Record<string, string> = {
  INVALID_INPUT: 'Give between 1 and 32 statements, each at most 4096 characters long.',
  SYNTAX: 'OffSync cannot read this statement: check its quotes and characters (no backslash in a string).',
  NOT_ALTER_TABLE: 'Only ALTER TABLE statements can run here.',
  MULTIPLE_STATEMENTS: 'This entry holds more than one statement: end each statement with ; or put it on its own line.',
  OTHER_TABLE: 'This statement alters another table: only this table can be altered here (name it without a schema).',
  TABLE_NOT_SYNCED: 'This table is not synced: alter it directly in the database.',
  TABLE_RENAME: 'A synced table cannot be renamed: devices address it by its name.',
  PRIMARY_KEY_CHANGE: 'The primary key cannot change: devices identify rows by it.',
  UNSUPPORTED: 'This kind of change is not supported: only ADD, DROP, RENAME and ALTER COLUMN, without constraints, expressions or CASCADE.',
  SCHEMA_INVALID: 'The table as altered could not sync (for example a NOT NULL column without a DEFAULT).',
  POLICY_DEPENDENCY: 'An RLS policy of this table depends on this column: change or remove the policy first (Client Integration, RLS policies), then alter the table.',
};

/** The sentence for a refusal: its reason's, the database's rejection for ALTER_FAILED, else a generic one. */
export function alterRefusalSentence(r: Pick<AlterRefusalInfo, 'code' | 'reason'>): string {
  if (r.code === 'ALTER_FAILED') return 'The database rejected this statement.';
  return (r.reason !== undefined ? REASONS[r.reason] : undefined) ?? 'The change was refused.';
}

/** What the form shows for a refusal: the sentence, the statement concerned (1-based, with its text), and that nothing changed. */
export interface AlterRefusalView {
  sentence: string;
  /** 1-based position and text of the statement concerned, when the server named one that was sent. */
  statement?: { position: number; text: string } | undefined;
  message: string;
}

export function describeAlterRefusal(r: AlterRefusalInfo, sent: readonly string[]): AlterRefusalView {
  const text = r.statement === undefined ? undefined : sent[r.statement];
  return {
    sentence: alterRefusalSentence(r),
    statement: r.statement === undefined || text === undefined ? undefined : { position: r.statement + 1, text },
    message: r.message,
  };
}

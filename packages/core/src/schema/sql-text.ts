/**
 * Splitting SQL text typed or written by an operator into statements (`offsync tables alter
 * --file`, the dashboard's Alter table form). Dependency-free so a browser bundle can import it
 * (`@offsync/core/sql-text`). It only finds where statements end: the server parses and rebuilds
 * every statement itself (api tables/alter.ts), so an odd piece here is refused there, never run.
 */

/**
 * The pieces of `text` between top-level `separator` characters: outside '…' strings, "…" quoted
 * names, `--` line comments and block comments (a `;` or line break inside them separates
 * nothing; the line break that ends a `--` comment still separates lines). A doubled quote is the
 * quote itself; an unterminated string or comment runs to the end.
 */
export function splitTopLevel(text: string, separator: ';' | '\n'): string[] {
  const out: string[] = [];
  let start = 0;
  let i = 0;
  while (i < text.length) {
    const ch = text[i] as string;
    if (ch === "'" || ch === '"') {
      let j = i + 1;
      while (j < text.length && !(text[j] === ch && text[j + 1] !== ch)) j += text[j] === ch ? 2 : 1;
      i = j + 1;
    } else if (text.startsWith('--', i)) {
      const nl = text.indexOf('\n', i);
      i = nl < 0 ? text.length : nl;
    } else if (text.startsWith('/*', i)) {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? text.length : end + 2;
    } else if (ch === separator) {
      out.push(text.slice(start, i));
      start = i + 1;
      i++;
    } else i++;
  }
  out.push(text.slice(start));
  return out;
}

/** What is left of a statement without its comments and white space (empty: nothing to run). */
export function sqlSubstance(statement: string): string {
  return statement.replace(/--[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '').trim();
}

/** The statements of `text` separated by `separator` ({@link splitTopLevel}), trimmed; blank and comment-only pieces dropped. */
export function splitSqlStatements(text: string, separator: ';' | '\n' = ';'): string[] {
  return splitTopLevel(text, separator)
    .map((s) => s.trim())
    .filter((s) => sqlSubstance(s) !== '');
}

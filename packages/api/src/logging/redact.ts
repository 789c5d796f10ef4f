/**
 * Redaction of everything that may carry a secret before it reaches a log line (issue 9, point 5):
 * GraphQL documents (`configureJwtProvider(secret: "…")`, `setExpoAccessToken(token: "…")`,
 * connection passwords), variables, error messages (graphql-js quotes offending values; driver
 * messages may hold `user:password@` URLs) and request paths (artifact URLs are credentials).
 * Structure stays readable: field and argument names, variable names and types are kept, values
 * are replaced by {@link REDACTED}.
 */
import { Kind, Lexer, parse, print, Source, TokenKind, visit } from 'graphql';
import type { ASTNode, ValueNode } from 'graphql';

export const REDACTED = '[redacted]';

/** Longest redacted document or message kept in a log entry (the rest is cut with `…`). */
export const MAX_LOGGED_TEXT = 2000;

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

const redactedLiteral: ValueNode = { kind: Kind.STRING, value: REDACTED };

/** Replaces a literal value (not a variable) by `"[redacted]"`, keeping lists' and objects' shape. */
function redactValueNode(node: ValueNode): ValueNode {
  switch (node.kind) {
    case Kind.VARIABLE:
    case Kind.NULL:
    case Kind.BOOLEAN:
      return node;
    case Kind.LIST:
      return { ...node, values: node.values.map(redactValueNode) };
    case Kind.OBJECT:
      return { ...node, fields: node.fields.map((f) => ({ ...f, value: redactValueNode(f.value) })) };
    default:
      // STRING, INT, FLOAT and ENUM (an unquoted secret parses as an enum value).
      return redactedLiteral;
  }
}

/**
 * A GraphQL document as one line with every literal value replaced by `"[redacted]"`
 * (arguments, directive arguments, variable defaults). Documents that do not parse are redacted
 * token by token ({@link redactTokens}). Never throws.
 */
export function redactQuery(text: string, max = MAX_LOGGED_TEXT): string {
  let doc: ASTNode;
  try {
    // Bounded: a log line never pays for parsing a huge document.
    doc = parse(new Source(text), { noLocation: true, maxTokens: 20_000 });
  } catch {
    return redactTokens(text, max);
  }
  const redacted = visit(doc, {
    Argument: (node) => ({ ...node, value: redactValueNode(node.value) }),
    VariableDefinition: (node) => (node.defaultValue === undefined ? undefined : { ...node, defaultValue: redactValueNode(node.defaultValue) }),
    // Descriptions of type-system definitions are not secrets, but nothing here needs them.
    StringValue: (node) => ({ ...node, value: REDACTED, block: false }),
  });
  return cut(oneLine(print(redacted)).replace(/\( /g, '(').replace(/ \)/g, ')'), max);
}

/**
 * Token-level redaction for text that is not a valid document: every string and number token is
 * replaced, and inside parentheses (arguments, variable definitions) every bare name that is not
 * a key (followed by `:`), a variable (after `$`) or `true`/`false`/`null`. The text after a
 * lexing error is dropped.
 */
export function redactTokens(text: string, max = MAX_LOGGED_TEXT): string {
  const lexer = new Lexer(new Source(text));
  const tokens: { kind: TokenKind; value: string }[] = [];
  let broken = false;
  try {
    for (let t = lexer.advance(); t.kind !== TokenKind.EOF; t = lexer.advance()) {
      tokens.push({ kind: t.kind, value: t.value ?? t.kind });
      if (tokens.length > 20_000) {
        broken = true;
        break;
      }
    }
  } catch {
    broken = true;
  }
  const out: string[] = [];
  let parens = 0;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    switch (t.kind) {
      case TokenKind.PAREN_L:
        parens++;
        out.push('(');
        break;
      case TokenKind.PAREN_R:
        parens = Math.max(0, parens - 1);
        out.push(')');
        break;
      case TokenKind.STRING:
      case TokenKind.BLOCK_STRING:
        out.push(`"${REDACTED}"`);
        break;
      case TokenKind.INT:
      case TokenKind.FLOAT:
        out.push(REDACTED);
        break;
      case TokenKind.NAME: {
        const key = tokens[i + 1]?.kind === TokenKind.COLON;
        const variable = tokens[i - 1]?.kind === TokenKind.DOLLAR;
        const keyword = t.value === 'true' || t.value === 'false' || t.value === 'null';
        out.push(parens > 0 && !key && !variable && !keyword ? REDACTED : t.value);
        break;
      }
      default:
        out.push(t.value);
    }
  }
  const joined = out.join(' ').replace(/\$ /g, '$').replace(/ ([:!,)\]])/g, '$1').replace(/([([]) /g, '$1').replace(/(\w) \(/g, '$1(');
  return cut(broken ? `${joined} …` : joined, max);
}

/**
 * GraphQL variables (or any JSON value) with every string and number replaced by
 * `"[redacted]"`; keys, booleans and null are kept. Arrays keep their first 10 items, nesting
 * stops at depth 8.
 */
export function redactVariables(value: unknown, depth = 0): unknown {
  if (value === null || typeof value === 'boolean' || value === undefined) return value;
  if (depth >= 8) return REDACTED;
  if (Array.isArray(value)) {
    const items = value.slice(0, 10).map((v) => redactVariables(v, depth + 1));
    return value.length > 10 ? [...items, `… ${value.length - 10} more`] : items;
  }
  if (typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, redactVariables(v, depth + 1)]));
  }
  return REDACTED;
}

/**
 * An error message safe to log, on one line: the values graphql-js quotes in its messages
 * (`found …`, `value: …`, `got invalid value …`), URL credentials (`//user:password@`) and
 * `password=`/`secret=`-style pairs are redacted.
 */
export function redactMessage(message: string, max = MAX_LOGGED_TEXT): string {
  let text = oneLine(message);
  text = text.replace(/(\/\/[^/\s:@]+):[^@\s/]*@/g, `$1:${REDACTED}@`);
  text = text.replace(/\b(password|passwd|pwd|secret|token|api[_-]?key|authorization)(\s*[=:]\s*)("(?:[^"\\]|\\.)*"|[^\s,;&]+)/gi, `$1$2${REDACTED}`);
  text = text.replace(/\b(Bearer)\s+[^\s,;]+/gi, `$1 ${REDACTED}`);
  text = text.replace(/\b(found|value:|got invalid value)\s+("(?:[^"\\]|\\.)*"|[{[].*$|[^\s;]+)/g, (_m, marker: string) => `${marker} ${REDACTED}`);
  return cut(text, max);
}

/** A request path safe to log: no query string, artifact tokens (single-use credentials) redacted. */
export function redactPath(path: string): string {
  const pathname = path.split('?')[0] ?? '';
  return cut(pathname.replace(/(\/_artifacts\/)[^/]+/, `$1${REDACTED}`), 300);
}

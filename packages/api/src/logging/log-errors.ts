/**
 * How failures reach the log (issue 9, point 11): a server fault (500, unexpected GraphQL error)
 * is ONE `error` entry carrying its cause — name, message, code and stack of the error, plus the
 * name/message of its `cause` chain; a client mistake (an {@link ApiError}: validation, not
 * found, refused) is ONE single-line `warn`. Everything passes through ./redact.ts first.
 */
import type { Logger } from '../deps.ts';
import { ApiError } from '../errors.ts';
import { redactMessage, redactQuery } from './redact.ts';

export interface ErrorDescription {
  name: string;
  message: string;
  code?: string;
  stack?: string;
  cause?: ErrorDescription;
}

/** Longest stack kept (frames beyond are cut). */
const MAX_STACK = 4000;

function codeOf(e: object): string | undefined {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' || typeof code === 'number' ? String(code) : undefined;
}

/**
 * A loggable description of `e`: name, redacted message, code, stack (once, on the outermost
 * error only) and the cause chain (up to 4 levels, without stacks).
 */
export function describeError(e: unknown, depth = 0): ErrorDescription {
  if (!(e instanceof Error)) {
    return { name: typeof e, message: redactMessage(typeof e === 'string' ? e : safeString(e)) };
  }
  const out: ErrorDescription = { name: e.name || 'Error', message: redactMessage(e.message) };
  const code = codeOf(e);
  if (code !== undefined) out.code = code;
  if (depth === 0 && typeof e.stack === 'string') {
    // The stack's first line repeats the (unredacted) message: keep only the frames.
    const frames = e.stack.split('\n').filter((l) => /^\s+at /.test(l)).map((l) => l.trim());
    if (frames.length > 0) out.stack = frames.join(' | ').slice(0, MAX_STACK);
  }
  const cause = (e as { cause?: unknown }).cause ?? (e as { originalError?: unknown }).originalError;
  if (cause !== undefined && cause !== null && cause !== e && depth < 4) out.cause = describeError(cause, depth + 1);
  return out;
}

function safeString(v: unknown): string {
  try {
    return String(v);
  } catch {
    return '[unprintable]';
  }
}

/** `logError(message, error)` of the data plane and sync handler: one entry with the cause. */
export function logErrorWith(logger: Logger): (message: string, error: unknown) => void {
  return (message, error) => logger.error(message, { error: describeError(error) });
}

// ---------------------------------------------------------------------------------------------
// Yoga's logger

interface GraphQLErrorLike {
  message: string;
  path?: readonly (string | number)[];
  source?: { body: string };
  originalError?: unknown;
  extensions?: Record<string, unknown>;
}

function isGraphQLErrorLike(v: unknown): v is GraphQLErrorLike {
  return v instanceof Error && ('originalError' in v || 'extensions' in v) && 'path' in v;
}

/** The deepest error of an `originalError`/`cause` chain that is not a GraphQL wrapper. */
function innermost(e: GraphQLErrorLike): unknown {
  let current: unknown = e;
  for (let i = 0; i < 6; i++) {
    const next = (current as { originalError?: unknown } | null)?.originalError;
    if (next === undefined || next === null) break;
    current = next;
  }
  return current;
}

function findApiError(e: unknown): ApiError | undefined {
  let current: unknown = e;
  for (let i = 0; i < 6 && current !== null && current !== undefined; i++) {
    if (current instanceof ApiError) return current;
    current = (current as { originalError?: unknown }).originalError ?? (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function operationOf(e: GraphQLErrorLike): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (e.path !== undefined && e.path.length > 0) out['path'] = e.path.join('.');
  if (typeof e.source?.body === 'string') out['query'] = redactQuery(e.source.body);
  return out;
}

function argText(arg: unknown): string {
  if (arg instanceof Error) return `${arg.name}: ${arg.message}`;
  if (typeof arg === 'string') return arg;
  return safeString(arg);
}

/** Writes one yoga log call as one entry of `logger`. */
function logYogaError(logger: Logger, args: unknown[]): void {
  for (const arg of args) {
    if (isGraphQLErrorLike(arg) || arg instanceof ApiError) {
      const api = findApiError(arg);
      if (api !== undefined) {
        // A client mistake reported on purpose (errors.ts): one line, no stack.
        logger.warn('graphql: request refused', { code: api.code, message: redactMessage(api.message), ...(isGraphQLErrorLike(arg) ? operationOf(arg) : {}) });
      } else if (isGraphQLErrorLike(arg)) {
        logger.error('graphql: operation failed', { ...operationOf(arg), error: describeError(innermost(arg)) });
      }
      return;
    }
    if (arg instanceof Error) {
      logger.error('graphql: error', { error: describeError(arg) });
      return;
    }
  }
  logger.error(redactMessage(args.map(argText).join(' ')));
}

/** Yoga's `logging` option over the server's {@link Logger}: redacted, one entry per call. */
export function yogaLogger(logger: Logger) {
  const line = (args: unknown[]): string => redactMessage(args.map(argText).join(' '));
  return {
    debug: () => {},
    info: (...args: unknown[]) => logger.info(line(args)),
    warn: (...args: unknown[]) => logger.warn(line(args)),
    error: (...args: unknown[]) => logYogaError(logger, args),
  };
}

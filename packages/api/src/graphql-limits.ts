/**
 * GraphQL limits for every caller and transport (HTTP and graphql-ws; issue 9, point 4;
 * docs/CONTROL-PLANE.md "Security model"). One Yoga/envelop plugin:
 *
 * 1. Parse: documents larger than `maxQueryBytes` or with more than `maxTokens` tokens are refused
 *    before any AST is built (graphql-js stops lexing at the limit).
 * 2. Validate, before graphql-js's own rules run (so a refused bomb costs one cheap walk): at most
 *    `maxAliases` aliases (fragments expanded), at most `maxFields` expanded field selections,
 *    introspection (`__schema`, `__type`) only for trusted callers (see {@link IntrospectionMode}),
 *    `__schema` at most once per operation, introspection nested at most
 *    `introspectionMaxDepth` fields and `introspectionMaxLists` list fields deep (the standard
 *    introspection query needs 3 lists: `types → fields → args`).
 * 3. Then the graphql-armor depth and cost rules for the rest of the document.
 * 4. Untrusted callers get no "Did you mean …?" suggestions (validation and execution errors).
 *
 * Every refusal is a GraphQL error with a stable `extensions.code` ({@link GraphQLLimitCode}).
 *
 * Validation is cached here, per (schema, document, may introspect, rules): the result depends only
 * on those (limits and mode are fixed per plugin), so an admin's result is never served to another
 * trust level. Documents are keyed by identity in a WeakMap: Yoga's parser cache hands out the same
 * DocumentNode for the same source (and bounds how many live), so a repeated operation (every
 * `pushChanges`) skips graphql-js validation. What depends on the request still runs every time:
 * `onRefused` per refused operation, suggestion stripping for untrusted callers. Yoga's own
 * validation cache must stay off (app.ts): it is keyed without the caller and runs after this
 * plugin, so it could override a refusal with another caller's result.
 */
import { costLimitRule } from '@escape.tech/graphql-armor-cost-limit';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { Kind, parse } from 'graphql';
import type { DocumentNode, ExecutionResult, FieldNode, FragmentDefinitionNode, GraphQLError, GraphQLSchema, OperationDefinitionNode, ParseOptions, SelectionSetNode, Source, ValidationContext, ValidationRule } from 'graphql';
import { createGraphQLError } from 'graphql-yoga';
import type { Plugin } from 'graphql-yoga';

/** Stable `extensions.code` of every refusal (never renamed or reused). */
export const GraphQLLimitCode = {
  /** The query document is larger than `maxQueryBytes`. */
  QUERY_TOO_LARGE: 'QUERY_TOO_LARGE',
  /** The query document has more than `maxTokens` tokens. */
  TOO_MANY_TOKENS: 'TOO_MANY_TOKENS',
  /** More than `maxAliases` aliases (fragments expanded). */
  TOO_MANY_ALIASES: 'TOO_MANY_ALIASES',
  /** Nested deeper than `maxDepth` (or, in introspection, `introspectionMaxDepth`/`introspectionMaxLists`). */
  QUERY_TOO_DEEP: 'QUERY_TOO_DEEP',
  /** Costlier than `maxCost`, expands to more than `maxFields` fields, or selects `__schema` twice. */
  QUERY_TOO_COMPLEX: 'QUERY_TOO_COMPLEX',
  /** `__schema`/`__type` from a caller that may not introspect. */
  INTROSPECTION_DISABLED: 'INTROSPECTION_DISABLED',
} as const;
export type GraphQLLimitCode = (typeof GraphQLLimitCode)[keyof typeof GraphQLLimitCode];

const LIMIT_CODES = new Set<string>(Object.values(GraphQLLimitCode));

/**
 * Who may introspect (and get field suggestions): `admin` (default) = callers with the admin key
 * (GraphiQL with the key in its Headers tab), `all` = everyone, `off` = nobody.
 * `npm run contracts` prints the schema without a server and is unaffected.
 */
export type IntrospectionMode = 'admin' | 'all' | 'off';

export interface GraphQLLimits {
  /** Bytes of the query document (default 64 KiB). */
  maxQueryBytes?: number;
  /** Lexical tokens of the query document (default 3000). */
  maxTokens?: number;
  /** Aliases per operation, fragments expanded (default 20). */
  maxAliases?: number;
  /** Field selections per operation, fragments expanded (default 5000). */
  maxFields?: number;
  /** graphql-armor depth outside `__schema` (default 12). */
  maxDepth?: number;
  /** graphql-armor cost outside `__schema` (default 5000). */
  maxCost?: number;
  /** Field depth below `__schema`/`__type` (default 20; the standard introspection query needs 15). */
  introspectionMaxDepth?: number;
  /** Nested list fields below `__schema`/`__type` (default 3). */
  introspectionMaxLists?: number;
}

export const DEFAULT_GRAPHQL_LIMITS: Required<GraphQLLimits> = {
  maxQueryBytes: 64 * 1024,
  maxTokens: 3000,
  maxAliases: 20,
  maxFields: 5000,
  maxDepth: 12,
  maxCost: 5000,
  introspectionMaxDepth: 20,
  introspectionMaxLists: 3,
};

/**
 * A refusal. Built with Yoga's `createGraphQLError` (Yoga's instance of graphql-js, which may be a
 * different copy than ours under a bundler), so Yoga sends it as is instead of masking it.
 */
export function limitError(code: GraphQLLimitCode, message: string, node?: FieldNode | OperationDefinitionNode): GraphQLError {
  return createGraphQLError(message, { ...(node === undefined ? {} : { nodes: [node] }), extensions: { code, http: { status: 400 } } });
}

type ParseFn = (source: string | Source, options?: ParseOptions) => DocumentNode;

/** graphql-js `parse` (or Yoga's `parseFn`) with the size and token limits (refusals carry their code). */
export function limitedParse(source: string | Source, options: ParseOptions | undefined, limits: Required<GraphQLLimits>, parseFn: ParseFn = parse): DocumentNode {
  const body = typeof source === 'string' ? source : source.body;
  // UTF-16 length ≤ byte length ≤ 3 × UTF-16 length: measure exactly only near the limit.
  const bytes = body.length * 3 <= limits.maxQueryBytes ? body.length : Buffer.byteLength(body, 'utf8');
  if (bytes > limits.maxQueryBytes) {
    throw limitError(GraphQLLimitCode.QUERY_TOO_LARGE, `Query document is ${bytes} bytes; at most ${limits.maxQueryBytes} are accepted.`);
  }
  try {
    return parseFn(source, { ...options, maxTokens: limits.maxTokens });
  } catch (e) {
    // graphql-js 16 says "more that N tokens"; both spellings are matched.
    if (e instanceof Error && /Document contains more (?:than|that) \d+ tokens/.test(e.message)) {
      throw limitError(GraphQLLimitCode.TOO_MANY_TOKENS, `Query document has more than ${limits.maxTokens} tokens.`);
    }
    throw e;
  }
}

const INTROSPECTION_LISTS = new Set(['types', 'fields', 'args', 'inputFields', 'interfaces', 'possibleTypes', 'enumValues', 'directives']);

interface Walk {
  /** Selections visited, fragment spreads included (a spread-only fragment tree costs too). */
  visits: number;
  aliases: number;
  fields: number;
  schemaKeys: Set<string>;
  introspection: FieldNode | undefined;
  introDepth: number;
  introLists: number;
  deepest: FieldNode | undefined;
}

class Stop extends Error {
  constructor(readonly error: GraphQLError) {
    super(error.message);
  }
}

/**
 * One walk over an operation with fragments expanded (cycles cut; `NoFragmentCyclesRule`
 * reports them): the first limit exceeded, or undefined. Stops as soon as a count is exceeded, so
 * its cost is bounded by the limits, not by the document.
 */
export function checkOperation(
  operation: OperationDefinitionNode,
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
  limits: Required<GraphQLLimits>,
  mayIntrospect: boolean,
  introspectionMode: IntrospectionMode,
): GraphQLError | undefined {
  const w: Walk = { visits: 0, aliases: 0, fields: 0, schemaKeys: new Set(), introspection: undefined, introDepth: 0, introLists: 0, deepest: undefined };
  const onPath = new Set<string>();
  const walk = (set: SelectionSetNode, root: boolean, intro: boolean, depth: number, lists: number): void => {
    for (const sel of set.selections) {
      if (++w.visits > 2 * limits.maxFields) throw new Stop(limitError(GraphQLLimitCode.QUERY_TOO_COMPLEX, `Query expands to more than ${2 * limits.maxFields} selections.`));
      if (sel.kind === Kind.INLINE_FRAGMENT) {
        walk(sel.selectionSet, root, intro, depth, lists);
        continue;
      }
      if (sel.kind === Kind.FRAGMENT_SPREAD) {
        const name = sel.name.value;
        const fragment = fragments.get(name);
        if (fragment === undefined || onPath.has(name)) continue;
        onPath.add(name);
        walk(fragment.selectionSet, root, intro, depth, lists);
        onPath.delete(name);
        continue;
      }
      if (++w.fields > limits.maxFields) throw new Stop(limitError(GraphQLLimitCode.QUERY_TOO_COMPLEX, `Query expands to more than ${limits.maxFields} fields.`, sel));
      if (sel.alias !== undefined && ++w.aliases > limits.maxAliases) {
        throw new Stop(limitError(GraphQLLimitCode.TOO_MANY_ALIASES, `Query uses more than ${limits.maxAliases} aliases.`, sel));
      }
      const name = sel.name.value;
      let inIntro = intro;
      let d = depth;
      let l = lists;
      if (root && (name === '__schema' || name === '__type')) {
        if (!mayIntrospect) {
          const why = introspectionMode === 'off' ? 'Introspection is disabled on this server.' : 'Introspection requires the admin key.';
          throw new Stop(limitError(GraphQLLimitCode.INTROSPECTION_DISABLED, why, sel));
        }
        if (name === '__schema') {
          w.schemaKeys.add(sel.alias?.value ?? name);
          if (w.schemaKeys.size > 1) throw new Stop(limitError(GraphQLLimitCode.QUERY_TOO_COMPLEX, '__schema may be selected once per operation.', sel));
        }
        inIntro = true;
        d = 1;
        l = 0;
      } else if (intro) {
        d = depth + 1;
        if (INTROSPECTION_LISTS.has(name)) l = lists + 1;
      }
      if (inIntro) {
        if (d > limits.introspectionMaxDepth) {
          throw new Stop(limitError(GraphQLLimitCode.QUERY_TOO_DEEP, `Introspection depth limit of ${limits.introspectionMaxDepth} exceeded.`, sel));
        }
        if (l > limits.introspectionMaxLists) {
          throw new Stop(limitError(GraphQLLimitCode.QUERY_TOO_DEEP, `Introspection nests more than ${limits.introspectionMaxLists} lists (depth limit).`, sel));
        }
      }
      if (sel.selectionSet !== undefined) walk(sel.selectionSet, false, inIntro, d, l);
    }
  };
  try {
    walk(operation.selectionSet, true, false, 0, 0);
  } catch (e) {
    if (e instanceof Stop) return e.error;
    throw e;
  }
  return undefined;
}

/** Checks every operation of a document; the refusals (at most one per operation). */
export function checkDocument(document: DocumentNode, limits: Required<GraphQLLimits>, mayIntrospect: boolean, mode: IntrospectionMode): GraphQLError[] {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const def of document.definitions) if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
  const errors: GraphQLError[] = [];
  for (const def of document.definitions) {
    if (def.kind !== Kind.OPERATION_DEFINITION) continue;
    const error = checkOperation(def, fragments, limits, mayIntrospect, mode);
    if (error !== undefined) errors.push(error);
  }
  return errors;
}

const SUGGESTION = /\s*Did you mean [^?]*\?/g;

/** The error without graphql-js's "Did you mean …?" hints (same locations, path, extensions). */
export function withoutSuggestions<E extends Error>(error: E | GraphQLError): E | GraphQLError {
  if (!('extensions' in error) || !error.message.includes('Did you mean')) return error;
  return createGraphQLError(error.message.replace(SUGGESTION, ''), {
    ...(error.nodes === undefined ? {} : { nodes: error.nodes }),
    ...(error.source === undefined ? {} : { source: error.source }),
    ...(error.positions === undefined ? {} : { positions: error.positions }),
    ...(error.path === undefined ? {} : { path: error.path }),
    ...(error.originalError === undefined || error.originalError === null ? {} : { originalError: error.originalError }),
    extensions: error.extensions,
  });
}

/** Armor's refusal (a plain GraphQLError) as a coded one. */
function recode(code: GraphQLLimitCode) {
  return (context: ValidationContext | null, error: GraphQLError): void => {
    context?.reportError(limitError(code, error.message.replace(/^Syntax Error: /, '')));
  };
}

export interface GraphQLLimitsPluginOptions {
  limits?: GraphQLLimits;
  introspection?: IntrospectionMode;
  /** Whether an HTTP request carries the admin key (awaited once per request, before parsing). */
  isAdminRequest(request: Request): Promise<boolean>;
  /**
   * Whether an envelop context belongs to an admin when it says so itself (graphql-ws puts the
   * viewer into the context at connection time); undefined = look at its `request`.
   */
  isAdminContext(context: Record<string, unknown>): boolean | undefined;
  /** Called once per refused operation (e.g. a one-line `warn`). */
  onRefused?(error: GraphQLError): void;
}

/** The plugin (see the module comment). */
export function graphqlLimitsPlugin(options: GraphQLLimitsPluginOptions): Plugin {
  const limits: Required<GraphQLLimits> = { ...DEFAULT_GRAPHQL_LIMITS, ...definedOnly(options.limits ?? {}) };
  const mode = options.introspection ?? 'admin';
  const admins = new WeakMap<Request, boolean>();
  const trusted = (context: unknown): boolean => {
    if (mode === 'all') return true;
    if (mode === 'off' || typeof context !== 'object' || context === null) return false;
    const own = options.isAdminContext(context as Record<string, unknown>);
    if (own !== undefined) return own;
    const request = (context as { request?: unknown }).request;
    return typeof request === 'object' && request !== null && admins.get(request as Request) === true;
  };
  const armorDepth = maxDepthRule({ n: limits.maxDepth, ignoreIntrospection: true, propagateOnRejection: false, onReject: [recode(GraphQLLimitCode.QUERY_TOO_DEEP)] });
  const armorCost = costLimitRule({ maxCost: limits.maxCost, ignoreIntrospection: true, propagateOnRejection: false, onReject: [recode(GraphQLLimitCode.QUERY_TOO_COMPLEX)] });
  const cache = new ValidationCache();
  const stripResult = (result: ExecutionResult): ExecutionResult | undefined => {
    if (result.errors === undefined || !result.errors.some((e) => e.message.includes('Did you mean'))) return undefined;
    return { ...result, errors: result.errors.map(withoutSuggestions) };
  };
  return {
    async onParams({ request }) {
      if (mode === 'admin' && !admins.has(request)) admins.set(request, await options.isAdminRequest(request));
    },
    onParse({ parseFn, setParseFn }) {
      setParseFn((source, parseOptions) => limitedParse(source, parseOptions, limits, parseFn));
    },
    onValidate({ context, params, addValidationRule, setResult, validateFn, setValidationFn }) {
      const mayIntrospect = trusted(context);
      const entry = cache.entry(params.schema, params.documentAST);
      const level = mayIntrospect ? 1 : 0;
      const refused = (entry.checked[level] ??= checkDocument(params.documentAST, limits, mayIntrospect, mode));
      if (refused.length > 0) {
        // graphql-js's own rules never run on a refused document.
        setResult(refused);
      } else {
        addValidationRule(armorDepth);
        addValidationRule(armorCost);
        setValidationFn(cache.validate(params.schema, params.documentAST, entry, level, validateFn));
      }
      return ({ result, setResult: replace }) => {
        for (const e of result) {
          const code = (e as Partial<GraphQLError>).extensions?.['code'];
          if (typeof code === 'string' && LIMIT_CODES.has(code)) options.onRefused?.(e);
        }
        if (!mayIntrospect && result.some((e) => e.message.includes('Did you mean'))) replace(result.map(withoutSuggestions));
      };
    },
    onExecute({ args }) {
      if (trusted(args.contextValue)) return undefined;
      return {
        onExecuteDone({ result, setResult }) {
          if (Symbol.asyncIterator in result) return;
          const stripped = stripResult(result);
          if (stripped !== undefined) setResult(stripped);
        },
      };
    },
  };
}

type ValidateFn = (schema: GraphQLSchema, documentAST: DocumentNode, rules?: readonly ValidationRule[], typeInfo?: unknown, options?: unknown) => readonly GraphQLError[];

interface CacheEntry {
  /** checkDocument's refusals, by trust level (0 = may not introspect, 1 = may). */
  checked: [GraphQLError[]?, GraphQLError[]?];
  /** graphql-js's result, by trust level and rule list. */
  validated: Map<string, readonly GraphQLError[]>;
}

/** Rule lists cached per document and trust level at most (see `ValidationCache.validate`). */
const MAX_RULE_LISTS = 4;

/**
 * Validation results per (schema, document, trust level, rules), see the module comment. Both
 * levels are pure functions of their key: nothing of the request (context, variables) enters them.
 * Weak keys only: an entry lives as long as Yoga's parser cache keeps its document.
 */
class ValidationCache {
  readonly #bySchema = new WeakMap<GraphQLSchema, WeakMap<DocumentNode, CacheEntry>>();
  readonly #ruleIds = new WeakMap<ValidationRule, number>();
  #nextRuleId = 0;

  entry(schema: GraphQLSchema, document: DocumentNode): CacheEntry {
    let byDocument = this.#bySchema.get(schema);
    if (byDocument === undefined) this.#bySchema.set(schema, (byDocument = new WeakMap()));
    let entry = byDocument.get(document);
    if (entry === undefined) byDocument.set(document, (entry = { checked: [], validated: new Map() }));
    return entry;
  }

  /** `validateFn` answering from `entry` for this trust level and the rules it is called with. */
  validate(forSchema: GraphQLSchema, forDocument: DocumentNode, entry: CacheEntry, level: 0 | 1, validateFn: ValidateFn): ValidateFn {
    return (schema, documentAST, rules, typeInfo, options) => {
      // Called with anything else than the entry's (schema, document) and plain rules: not cached.
      if (schema !== forSchema || documentAST !== forDocument || rules === undefined || typeInfo !== undefined || options !== undefined) {
        return validateFn(schema, documentAST, rules, typeInfo, options);
      }
      const key = `${level}:${this.#rulesKey(rules)}`;
      let result = entry.validated.get(key);
      if (result === undefined) {
        result = validateFn(schema, documentAST, rules);
        // Bounded: rule lists that change per request (a fresh closure each time) are simply not cached.
        if (entry.validated.size < MAX_RULE_LISTS) entry.validated.set(key, result);
      }
      return result;
    };
  }

  #rulesKey(rules: readonly ValidationRule[]): string {
    let key = '';
    for (const rule of rules) {
      let id = this.#ruleIds.get(rule);
      if (id === undefined) this.#ruleIds.set(rule, (id = this.#nextRuleId++));
      key += `${id},`;
    }
    return key;
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

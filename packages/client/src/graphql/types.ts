/**
 * Structural type of the generated documents (`TypedDocumentString` of the client preset with
 * `documentMode: 'string'`): the operation text plus phantom result/variables types.
 */
export interface TypedDocument<TResult, TVariables> {
  /** Phantom: carries the types; never set at runtime. */
  readonly __apiType?: (variables: TVariables) => TResult;
  toString(): string;
}

export type ResultOf<D> = D extends TypedDocument<infer R, infer _V> ? R : never;
export type VariablesOf<D> = D extends TypedDocument<infer _R, infer V> ? V : never;

/** `variables` may be omitted when the operation has no required variables. */
export type VariablesArg<V> = Record<string, never> extends V ? [variables?: V] : [variables: V];

/** Header values: fixed, or computed per request (e.g. a tracing id). */
export type HeadersInit = Readonly<Record<string, string>> | (() => Readonly<Record<string, string>>);

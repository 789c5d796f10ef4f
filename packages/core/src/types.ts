/**
 * Value model shared by the codec, the merge and the storage adapters.
 *
 * SQLite storage classes map to JS types without ambiguity, because the merge tiebreak
 * (docs/PROTOCOL.md §P5) and the wire encoding (§P4) both depend on the storage class:
 *
 * | SQLite  | JS           |
 * |---------|--------------|
 * | INTEGER | `bigint`     |
 * | REAL    | `number`     |
 * | TEXT    | `string`     |
 * | BLOB    | `Uint8Array` |
 * | NULL    | `null`       |
 *
 * Adapters read with 64-bit safe integers and bind `bigint` as INTEGER and `number` as REAL.
 */
export type SqlValue = null | bigint | number | string | Uint8Array;

/** The CRDT algorithms a table can be initialised with (docs/PROTOCOL.md §P5). */
export const CrdtAlgorithm = {
  /** Causal-length set: the default, last-writer-wins per cell with delete/resurrect by causal length. */
  CLS: 'cls',
  /** Grow-only set: local UPDATE/DELETE forbidden; merges always upsert. */
  GOS: 'gos',
} as const;
export type CrdtAlgorithm = (typeof CrdtAlgorithm)[keyof typeof CrdtAlgorithm];

/** Sentinel column name of the row-level (causal length) clock on the wire. */
export const RIP_SENTINEL = '__[RIP]__';

/**
 * One change as it travels in a payload row (docs/PROTOCOL.md §P4), in wire order.
 * Clock fields are plain numbers: every clock is < 2^53 in practice, and the decoder refuses
 * larger ones rather than losing precision.
 */
export interface Change {
  /** Table name. */
  tbl: string;
  /** Encoded primary key (§P4), carried as opaque bytes, never re-encoded. */
  pk: Uint8Array;
  /** Column name, or {@link RIP_SENTINEL} for the row clock. */
  col: string;
  /** The cell's value (NULL for the sentinel). */
  val: SqlValue;
  /** Per-cell Lamport counter. */
  colVersion: number;
  /** db_version of the producer (its own version space). */
  dbVersion: number;
  /** 16-byte origin site id. */
  siteId: Uint8Array;
  /** Causal length of the row: odd alive, even deleted. */
  cl: number;
  /** Order inside the producing transaction. */
  seq: number;
}

/**
 * Why a device's schema hash is unknown (docs/PROTOCOL.md "Schema mismatch refusals"). A schema
 * hash is one FNV-1a value over every synced table's column list (name, affinity, key flag), so
 * the server cannot read the device's columns out of it; it CAN recompute the hash of likely
 * variants of its own schema and see which one the device's hash equals:
 *
 * - the device syncs only some of the server's tables;
 * - one table lacks one of the server's columns (the server added it, the device did not);
 * - one column has another type affinity on the device.
 *
 * Anything else (an extra column on the device, a renamed column, several differences) is
 * reported as "differs" with the server's tables and expected hash.
 */
import { columnListSchemaHash } from '@offsync/core';
import type { SyncEngine } from './sync-deps.ts';

type HashTable = Parameters<typeof columnListSchemaHash>[0][number];

export interface SchemaDiagnosis {
  /** The device's hash (decimal u64). */
  deviceHash: string;
  /** The server's current column-list hash (decimal u64): what a device with the deployed schema sends. */
  expectedHash: string;
  /** Synced tables of the server, in name order. */
  tables: string[];
  /** What differs, when the server could tell: `{ table, column?, kind }`. */
  differences: SchemaDifference[];
  /** One line for people: names the tables and, when known, the columns. */
  message: string;
}

export interface SchemaDifference {
  table: string;
  column?: string;
  /** `table_missing`: the device does not sync this table; `column_missing`: its table lacks the column; `type_differs`: other affinity. */
  kind: 'table_missing' | 'column_missing' | 'type_differs';
  /** For `type_differs`: the affinity word the device's hash matches. */
  deviceAffinity?: string;
}

/** Type words whose affinity covers each §P6 class (`columnListAffinity`). */
const AFFINITY_TYPES: Record<string, string> = { integer: 'INTEGER', text: 'TEXT', blob: 'BLOB', real: 'REAL', numeric: 'NUMERIC' };

/** Largest table count for which every subset is tried (2^n hashes). */
const MAX_SUBSET_TABLES = 10;

function serverTables(engine: SyncEngine): HashTable[] {
  return engine.syncedTables().flatMap((s) => {
    const t = engine.table(s.name);
    return t === undefined ? [] : [{ name: t.name, columns: t.schema.columns.map((c) => ({ name: c.name, type: c.type, pk: c.pk > 0 })) }];
  });
}

function findDifferences(tables: HashTable[], target: bigint): SchemaDifference[] {
  // Subsets: the device syncs only some tables.
  if (tables.length > 1 && tables.length <= MAX_SUBSET_TABLES) {
    const full = (1 << tables.length) - 1;
    for (let mask = 1; mask < full; mask++) {
      const kept = tables.filter((_t, i) => (mask & (1 << i)) !== 0);
      if (columnListSchemaHash(kept) === target) return tables.filter((_t, i) => (mask & (1 << i)) === 0).map((t) => ({ table: t.name, kind: 'table_missing' as const }));
    }
  }
  for (let i = 0; i < tables.length; i++) {
    const t = tables[i] as HashTable;
    const withTable = (columns: HashTable['columns']): HashTable[] => tables.map((x, j) => (j === i ? { name: t.name, columns } : x));
    for (let c = 0; c < t.columns.length; c++) {
      const col = t.columns[c] as HashTable['columns'][number];
      if (!col.pk && columnListSchemaHash(withTable(t.columns.filter((_x, k) => k !== c))) === target) return [{ table: t.name, column: col.name, kind: 'column_missing' }];
      for (const [affinity, type] of Object.entries(AFFINITY_TYPES)) {
        if (columnListSchemaHash(withTable(t.columns.map((x, k) => (k === c ? { ...x, type } : x)))) === target) {
          return [{ table: t.name, column: col.name, kind: 'type_differs', deviceAffinity: affinity }];
        }
      }
    }
  }
  return [];
}

function describe(d: SchemaDifference): string {
  if (d.kind === 'table_missing') return `the device does not sync table ${d.table}`;
  if (d.kind === 'column_missing') return `the device's table ${d.table} lacks column ${d.column ?? ''}`;
  return `column ${d.table}.${d.column ?? ''} has another type on the device (affinity ${d.deviceAffinity ?? '?'})`;
}

/** Compares `deviceHash` with variants of the server's synced tables; never throws. */
export function diagnoseSchemaHash(engine: SyncEngine, deviceHash: bigint): SchemaDiagnosis {
  const tables = serverTables(engine);
  const expected = columnListSchemaHash(tables);
  const differences = findDifferences(tables, deviceHash);
  const list = tables.map((t) => `${t.name}(${t.columns.map((c) => c.name).join(', ')})`).join(', ');
  const what = differences.length > 0 ? `${differences.map(describe).join('; ')}.` : 'The device\'s synced tables differ from the server\'s (a column added, removed or renamed, or another type); the server cannot tell which.';
  return {
    deviceHash: deviceHash.toString(),
    expectedHash: expected.toString(),
    tables: tables.map((t) => t.name),
    differences,
    message: `${what} Server tables: ${list === '' ? '(none)' : list}; expected schema hash ${expected} (0.8 – 0.9.99 clients: ${engine.ddlSchemaHash()}). Deploy the same tables on both sides (deployTables) or migrate the device.`,
  };
}

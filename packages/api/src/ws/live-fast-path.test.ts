/**
 * The `changes` fast path writes what a GraphQL execution of the same selection would: for the
 * shapes it accepts, its JSON equals JSON.stringify of executing the document; anything it cannot
 * reproduce exactly is left to the plain path (null shape).
 */
import { buildSchema, execute, parse } from 'graphql';
import { expect, test } from 'vitest';
import type { ChangesBatch } from '../domains/sync/graphql/live-changes.ts';
import { changesShape, nextTailOnce, serialise, serialisedOnce } from './live-fast-path.ts';

const schema = buildSchema(`
  type SyncCursor { dbVersion: Int! seq: Int! }
  type SyncChanges { payload: String changes: Int! cursor: SyncCursor! final: Boolean! }
  type Query { x: Int }
  type Subscription { changes(databaseId: ID!, siteId: String!, cursor: Int): SyncChanges! other: Int }
`);

const batches: ChangesBatch[] = [
  { payload: new Uint8Array([1, 2, 3, 250, 0, 34]), changes: 3, cursor: { dbVersion: 12, seq: 4 }, final: true },
  { payload: null, changes: 0, cursor: { dbVersion: 0, seq: 0 }, final: false },
];

/** What executing the document over the batch gives (payload resolved to base64 as the schema does). */
function executed(source: string, batch: ChangesBatch): string {
  const changes = { ...batch, payload: batch.payload === null ? null : Buffer.from(batch.payload).toString('base64') };
  const result = execute({ schema, document: parse(source), rootValue: { changes }, variableValues: { db: 'd', site: 's' } });
  return JSON.stringify(result);
}

const accepted = [
  // The client's document (packages/client): a fragment.
  `fragment F on SyncChanges { payload changes final cursor { dbVersion seq } }
   subscription Changes($db: ID!, $site: String!) { changes(databaseId: $db, siteId: $site) { ...F } }`,
  // The bench's: inline selection.
  `subscription($db: ID!, $site: String!) { changes(databaseId: $db, siteId: $site) { payload changes cursor { dbVersion seq } final } }`,
  // Aliases, __typename, inline fragments, a field selected twice with merged sub-selections.
  `subscription($db: ID!, $site: String!) { live: changes(databaseId: $db, siteId: $site) {
     __typename n: changes ... on SyncChanges { cursor { seq } } cursor { __typename v: dbVersion } final p: payload } }`,
];

test('accepted shapes serialise exactly as an execution of the document does', () => {
  for (const source of accepted) {
    const doc = parse(source);
    const shape = changesShape(doc, doc.definitions.length > 1 ? 'Changes' : undefined);
    expect(shape, source).not.toBeNull();
    for (const b of batches) expect(serialise(b, shape!), source).toBe(executed(source, b));
  }
});

test('anything the fast path cannot reproduce is left to GraphQL', () => {
  const refused = [
    `subscription($db: ID!, $site: String!, $x: Boolean!) { changes(databaseId: $db, siteId: $site) { payload @include(if: $x) } }`,
    `subscription($db: ID!, $site: String!) { changes(databaseId: $db, siteId: $site) { payload } other }`,
    `subscription { other }`,
    `query { x }`,
    `subscription($db: ID!, $site: String!) { changes(databaseId: $db, siteId: $site) { payload unknown } }`,
    `subscription($db: ID!, $site: String!) { changes(databaseId: $db, siteId: $site) { ...Missing } }`,
    `subscription($db: ID!, $site: String!) { changes(databaseId: $db, siteId: $site) { a: payload a: changes } }`,
    `subscription($db: ID!, $site: String!) { changes(databaseId: $db, siteId: $site) { cursor } }`,
  ];
  for (const source of refused) expect(changesShape(parse(source), undefined), source).toBeNull();
  // Two operations and no name: not identifiable here.
  expect(changesShape(parse(`subscription A { other } subscription B { other }`), undefined)).toBeNull();
});

test('one serialisation per batch object and shape', () => {
  const shape = changesShape(parse(accepted[1] ?? ''), undefined)!;
  const b = batches[0]!;
  const first = serialisedOnce(b, shape);
  expect(serialisedOnce(b, shape)).toBe(first);
  expect(serialisedOnce({ ...b, changes: 99 }, shape)).not.toBe(first);
});

test('the bytes every subscriber\'s frame copies are the UTF-8 of the serialisation and the closing brace, encoded once per batch and shape', () => {
  const shapes = [changesShape(parse(accepted[0] ?? ''), 'Changes')!, changesShape(parse(accepted[1] ?? ''), undefined)!];
  expect(shapes[0]!.id).not.toBe(shapes[1]!.id);
  // Alternating batches and shapes: the one-entry memo never answers for another batch or shape.
  for (let round = 0; round < 2; round++) {
    for (const shape of shapes) {
      for (const b of batches) {
        const bytes = nextTailOnce(b, shape);
        expect(bytes.toString('utf8')).toBe(`${serialise(b, shape)}}`);
        expect(nextTailOnce(b, shape)).toBe(bytes);
        expect(nextTailOnce({ ...b }, shape)).not.toBe(bytes);
      }
    }
  }
});

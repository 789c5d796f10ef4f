/**
 * Codegen plugin (loaded by the root codegen.ts): emits `operations.ts`, a map from each operation
 * in `src/graphql/operations/*.graphql` to its kind and generated `TypedDocumentString`, so the API
 * client's convenience methods are derived from the documents instead of written by hand.
 */
import type { PluginFunction } from '@graphql-codegen/plugin-helpers';
import type { OperationDefinitionNode } from 'graphql';

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

export const operationMapPlugin: PluginFunction = (_schema, documents) => {
  const ops: OperationDefinitionNode[] = [];
  for (const source of documents) {
    for (const def of source.document?.definitions ?? []) {
      if (def.kind !== 'OperationDefinition') continue;
      if (def.name === undefined) throw new Error(`anonymous operation in ${source.location ?? '?'}: every operation needs a name`);
      ops.push(def);
    }
  }
  ops.sort((a, b) => (a.name?.value ?? '').localeCompare(b.name?.value ?? ''));
  const docs = ops.map((op) => `${op.name?.value ?? ''}Document`);
  const lines = [
    '/* eslint-disable */',
    '/** Every operation of src/graphql/operations, by method name. Generated: do not edit. */',
    `import { ${docs.join(', ')} } from './graphql.ts';`,
    '',
    'export const operations = {',
    ...ops.map((op, i) => `  ${lowerFirst(op.name?.value ?? '')}: { kind: '${op.operation}', document: ${docs[i] ?? ''} },`),
    '} as const;',
    '',
  ];
  return lines.join('\n');
};

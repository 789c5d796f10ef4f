/**
 * GraphQL Code Generator: the committed schema (packages/api/schema.graphql, never a running
 * server) + the client's operations → packages/client/src/generated/ (client preset, string
 * documents for plain fetch). Run `npm run generate -w @offsync/client`.
 * OFFSYNC_CODEGEN_OUT redirects the output (the client's check:generated writes to a temp dir).
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CodegenConfig } from '@graphql-codegen/cli';
import { operationMapPlugin } from './packages/client/scripts/operation-map-plugin.ts';

const root = dirname(fileURLToPath(import.meta.url));
const out = (process.env['OFFSYNC_CODEGEN_OUT'] ?? resolve(root, 'packages/client/src/generated')).replace(/\/?$/, '/');
const documents = resolve(root, 'packages/client/src/graphql/operations/*.graphql');
const OPERATION_MAP = 'offsync-operation-map';

const shared = {
  useTypeImports: true,
  enumType: 'string-literal',
  importExtension: '.ts',
  strictScalars: true,
  scalars: {
    ID: 'string',
    DateTime: 'string',
    JSON: 'unknown',
    BigInt: 'string',
  },
  avoidOptionals: { field: true, inputValue: false, object: true, defaultValue: false },
  skipTypename: true,
} as const;

const config: CodegenConfig = {
  schema: resolve(root, 'packages/api/schema.graphql'),
  documents,
  ignoreNoDocuments: false,
  emitLegacyCommonJSImports: false,
  silent: true,
  pluginLoader: async (name: string) => (name.endsWith(OPERATION_MAP) ? { plugin: operationMapPlugin } : import(name)),
  generates: {
    [out]: {
      preset: 'client',
      presetConfig: { fragmentMasking: false },
      config: { ...shared, documentMode: 'string' },
    },
    [`${out}operations.ts`]: {
      plugins: [OPERATION_MAP],
      config: shared,
    },
  },
};

export default config;

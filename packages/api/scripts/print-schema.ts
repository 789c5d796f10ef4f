/** Prints the GraphQL contract to packages/api/schema.graphql (or the path given as argv[2]). */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { lexicographicSortSchema, printSchema } from 'graphql';
import { schema } from '../src/schema/index.ts';

const out = process.argv[2] ?? fileURLToPath(new URL('../schema.graphql', import.meta.url));
writeFileSync(out, `${printSchema(lexicographicSortSchema(schema))}\n`);

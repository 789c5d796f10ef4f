/** Scalars and root types. Every root field requires the admin key (type-level scope). */
import { GraphQLError, Kind } from 'graphql';
import type { ValueNode } from 'graphql';
import { builder } from '../builder.ts';

function parseDate(value: unknown): Date {
  if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) throw new GraphQLError('DateTime must be an ISO-8601 string');
  return new Date(value);
}

builder.scalarType('DateTime', {
  description: 'ISO-8601 date-time, UTC',
  serialize: (value) => (value instanceof Date ? value.toISOString() : new Date(value).toISOString()),
  parseValue: parseDate,
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.STRING) throw new GraphQLError('DateTime must be a string');
    return parseDate(ast.value);
  },
});

function literalToValue(ast: ValueNode): unknown {
  switch (ast.kind) {
    case Kind.STRING: case Kind.BOOLEAN: case Kind.ENUM: return ast.value;
    case Kind.INT: case Kind.FLOAT: return Number(ast.value);
    case Kind.NULL: return null;
    case Kind.LIST: return ast.values.map(literalToValue);
    case Kind.OBJECT: return Object.fromEntries(ast.fields.map((f) => [f.name.value, literalToValue(f.value)]));
    default: throw new GraphQLError('Variables are not supported inside JSON literals');
  }
}

builder.scalarType('JSON', {
  description: 'Arbitrary JSON value',
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: literalToValue,
});

const admin = { admin: true } as const;
builder.queryType({ authScopes: admin });
builder.mutationType({ authScopes: admin });
builder.subscriptionType({ authScopes: admin });

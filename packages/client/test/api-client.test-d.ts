/**
 * Type-level tests of the generated API client: checked by `tsc -p tsconfig.json` (typecheck) and
 * by `vitest --typecheck`. Variables and results of every call are the generated types.
 */
import { describe, expectTypeOf, test } from 'vitest';
import { createApiClient, CreateProjectDocument, DatabasesDocument, ProjectsDocument } from '../src/index.ts';
import type {
  AccessTokenFieldsFragment, ApiClient, ClientErrorCode, CreateProjectMutation, CreateProjectMutationVariables, DatabaseKind,
  DeviceEventsSubscription, ProjectsQuery, ResultOf, TablesQuery, VariablesOf,
} from '../src/index.ts';

declare const client: ApiClient;

describe('generated API client types', () => {
  test('documents carry their result and variables types', () => {
    expectTypeOf<ResultOf<typeof CreateProjectDocument>>().toEqualTypeOf<CreateProjectMutation>();
    expectTypeOf<VariablesOf<typeof CreateProjectDocument>>().toEqualTypeOf<CreateProjectMutationVariables>();
    expectTypeOf<CreateProjectMutationVariables['kind']>().toEqualTypeOf<DatabaseKind>();
    expectTypeOf<DatabaseKind>().toEqualTypeOf<'POSTGRES' | 'SQLITE'>();
  });

  test('execute: typed variables and result', () => {
    expectTypeOf(client.execute(CreateProjectDocument, { name: 'a', kind: 'SQLITE' })).resolves.toEqualTypeOf<CreateProjectMutation>();
    expectTypeOf(client.execute(ProjectsDocument)).resolves.toEqualTypeOf<ProjectsQuery>();
    // @ts-expect-error kind is required
    void client.execute(CreateProjectDocument, { name: 'a' });
    // @ts-expect-error not a DatabaseKind
    void client.execute(CreateProjectDocument, { name: 'a', kind: 'MYSQL' });
    // @ts-expect-error unknown variable
    void client.execute(CreateProjectDocument, { name: 'a', kind: 'SQLITE', extra: 1 });
    // @ts-expect-error variables are required when the operation has required ones
    void client.execute(DatabasesDocument);
  });

  test('convenience methods mirror the operations', () => {
    expectTypeOf(client.projects()).resolves.toEqualTypeOf<ProjectsQuery>();
    expectTypeOf(client.tables).parameter(0).toMatchTypeOf<{ databaseId: string }>();
    expectTypeOf(client.tables({ databaseId: 'd' })).resolves.toEqualTypeOf<TablesQuery>();
    expectTypeOf(client.deviceEvents({ databaseId: 'd' })).toEqualTypeOf<AsyncIterableIterator<DeviceEventsSubscription>>();
    // @ts-expect-error databaseId is an ID (string)
    void client.tables({ databaseId: 1 });
    // @ts-expect-error no such operation
    void client.dropEverything();
  });

  test('results are precise: nullable fields stay nullable, scalars are mapped', async () => {
    const { createProject } = await client.createProject({ name: 'a', kind: 'SQLITE' });
    expectTypeOf(createProject.createdAt).toEqualTypeOf<string>();
    const { database } = await client.databaseAuth({ databaseId: 'd' });
    expectTypeOf(database.auth.accessTokens[0]).toEqualTypeOf<AccessTokenFieldsFragment | undefined>();
    expectTypeOf<NonNullable<typeof database.auth.accessTokens[0]>['attributes']>().toEqualTypeOf<unknown>();
    expectTypeOf<NonNullable<typeof database.auth.accessTokens[0]>['expiresAt']>().toEqualTypeOf<string | null>();
    const { usage } = await client.usage({ projectId: 'p' });
    expectTypeOf(usage.uploadBytes).toEqualTypeOf<number>();
  });

  test('error codes are a closed union', () => {
    expectTypeOf<ClientErrorCode>().toEqualTypeOf<'CLIENT_NETWORK' | 'CLIENT_UNAUTHENTICATED' | 'CLIENT_VALIDATION' | 'CLIENT_SERVER' | 'CLIENT_DOMAIN'>();
    expectTypeOf(createApiClient).parameter(0).toHaveProperty('webSocketImpl');
  });
});

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestContext, providers, stopEmbeddedPg } from '../../../test/helpers.ts';
import type { TestContext } from '../../../test/helpers.ts';

afterAll(stopEmbeddedPg);

describe.each(providers)('projects on %s', (provider) => {
  let ctx: TestContext;
  beforeAll(async () => { ctx = await createTestContext(provider); });
  afterAll(async () => { await ctx.dispose(); });

  test('create, list, get', async () => {
    const p = await ctx.services.projects.createProject({ name: 'My App', kind: 'SQLITE' });
    expect(p.id).toMatch(/^prj_/);
    expect(await ctx.services.projects.listProjects()).toEqual([expect.objectContaining({ id: p.id, name: 'My App', kind: 'SQLITE' })]);
    expect((await ctx.services.projects.getProject(p.id)).name).toBe('My App');
  });

  test('validation and not found', async () => {
    await expect(ctx.services.projects.createProject({ name: '', kind: 'SQLITE' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(ctx.services.projects.createProject({ name: 'x', kind: 'MYSQL' as never })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(ctx.services.projects.getProject('prj_nope')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestContext, providers, siteId, stopEmbeddedPg } from '../../../test/helpers.ts';
import type { TestContext } from '../../../test/helpers.ts';

afterAll(stopEmbeddedPg);

describe.each(providers)('push on %s', (provider) => {
  let ctx: TestContext;
  let databaseId: string;
  beforeAll(async () => {
    ctx = await createTestContext(provider);
    const p = await ctx.services.projects.createProject({ name: 'p', kind: 'SQLITE' });
    databaseId = (await ctx.services.databases.createDatabase({ projectId: p.id, name: 'd' })).id;
  });
  afterAll(async () => { await ctx.dispose(); });

  test('Expo access token is encrypted at rest and write-only', async () => {
    const { push } = ctx.services;
    expect(await push.getPushSettings(databaseId)).toMatchObject({ enabled: false, expoAccessTokenConfigured: false });
    await push.setExpoAccessToken(databaseId, 'expo-secret-token-123');
    const row = await ctx.deps.prisma.database.findUnique({ where: { id: databaseId } });
    expect(row?.expoAccessTokenEnc).not.toContain('expo-secret-token-123');
    expect(await push.getExpoAccessToken(databaseId)).toBe('expo-secret-token-123');
    expect(await push.getPushSettings(databaseId)).toMatchObject({ expoAccessTokenConfigured: true });
    await push.deleteExpoAccessToken(databaseId);
    expect(await push.getExpoAccessToken(databaseId)).toBeNull();
  });

  test('device push tokens upsert by Expo token and are validated', async () => {
    const { push, databases } = ctx.services;
    const s = siteId();
    await push.registerPushToken(databaseId, { expoToken: 'ExponentPushToken[abc]', deviceId: 'dev-1', siteId: s, platform: 'ios' });
    await push.registerPushToken(databaseId, { expoToken: 'ExponentPushToken[abc]', deviceId: 'dev-1', siteId: s, platform: 'android' });
    expect(await push.listPushTokens(databaseId)).toEqual([expect.objectContaining({ expoToken: 'ExponentPushToken[abc]', platform: 'android', siteId: s })]);
    await expect(push.registerPushToken(databaseId, { expoToken: 'nope', deviceId: 'd', siteId: s, platform: 'ios' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(push.registerPushToken(databaseId, { expoToken: 'ExponentPushToken[x]', deviceId: 'd', siteId: s, platform: 'web' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await databases.setOffSync(databaseId, true);
    expect(await push.getPushSettings(databaseId)).toMatchObject({ enabled: true, registeredTokens: 1 });
  });
});

/** Expo push (docs/PROTOCOL.md §P2): device tokens and the optional Expo access token (encrypted). */
import type { ServiceDeps } from '../../deps.ts';
import { ApiError } from '../../errors.ts';
import { validateSecret, validateText } from '../../validation.ts';
import type { DatabasesService } from '../databases/databases.service.ts';
import { validateSiteId } from '../devices/devices.service.ts';

export interface PushTokenInput { expoToken: string; deviceId: string; siteId: string; platform: string }

export function createPushService(deps: ServiceDeps, databases: DatabasesService) {
  const { prisma, secretBox } = deps;
  const now = () => new Date(deps.clock.now());

  return {
    async getPushSettings(databaseId: string) {
      const db = await databases.getDatabase(databaseId);
      const registeredTokens = await prisma.pushToken.count({ where: { databaseId } });
      return {
        enabled: db.offSyncEnabled && registeredTokens > 0,
        registeredTokens,
        expoAccessTokenConfigured: db.expoAccessTokenEnc !== null,
        expoAccessTokenUpdatedAt: db.expoAccessTokenUpdatedAt,
      };
    },
    async setExpoAccessToken(databaseId: string, token: string) {
      await databases.getDatabase(databaseId);
      const value = validateSecret('token', token.trim(), 10);
      await prisma.database.update({ where: { id: databaseId }, data: { expoAccessTokenEnc: secretBox.encrypt(value), expoAccessTokenUpdatedAt: now() } });
      return true;
    },
    async deleteExpoAccessToken(databaseId: string) {
      await databases.getDatabase(databaseId);
      await prisma.database.update({ where: { id: databaseId }, data: { expoAccessTokenEnc: null, expoAccessTokenUpdatedAt: now() } });
      return true;
    },
    /** For the push sender: the decrypted Expo access token, or null. */
    async getExpoAccessToken(databaseId: string): Promise<string | null> {
      const db = await databases.getDatabase(databaseId);
      return db.expoAccessTokenEnc === null ? null : secretBox.decrypt(db.expoAccessTokenEnc);
    },
    /** For the data plane (`PUT …/notifications/tokens`): upsert by Expo token. */
    async registerPushToken(databaseId: string, input: PushTokenInput) {
      await databases.getDatabase(databaseId);
      if (!/^Expo(nent)?PushToken\[[^\]]{1,200}\]$/.test(input.expoToken)) {
        throw new ApiError('VALIDATION_FAILED', 'expoToken: must look like ExponentPushToken[…]', { details: { field: 'expoToken' } });
      }
      if (input.platform !== 'ios' && input.platform !== 'android') {
        throw new ApiError('VALIDATION_FAILED', 'platform: must be ios or android', { details: { field: 'platform' } });
      }
      const data = { deviceId: validateText('deviceId', input.deviceId, 256), siteId: validateSiteId(input.siteId), platform: input.platform };
      return prisma.pushToken.upsert({
        where: { databaseId_expoToken: { databaseId, expoToken: input.expoToken } },
        create: { databaseId, expoToken: input.expoToken, ...data },
        update: data,
      });
    },
    listPushTokens(databaseId: string) {
      return prisma.pushToken.findMany({ where: { databaseId }, orderBy: [{ createdAt: 'asc' }, { expoToken: 'asc' }] });
    },
  };
}
export type PushService = ReturnType<typeof createPushService>;

import { builder } from '../../builder.ts';

type PushSettings = { enabled: boolean; registeredTokens: number; expoAccessTokenConfigured: boolean; expoAccessTokenUpdatedAt: Date | null };
const PushSettingsRef = builder.objectRef<PushSettings>('PushNotifications').implement({
  description: 'Expo push (silent data pushes that tell devices to sync). The Expo access token is write-only',
  fields: (t) => ({
    enabled: t.exposeBoolean('enabled', { description: 'OffSync enabled and at least one device registered a push token' }),
    registeredTokens: t.exposeInt('registeredTokens'),
    expoAccessTokenConfigured: t.exposeBoolean('expoAccessTokenConfigured'),
    expoAccessTokenUpdatedAt: t.expose('expoAccessTokenUpdatedAt', { type: 'DateTime', nullable: true }),
  }),
});

builder.prismaObjectFields('Database', (t) => ({
  pushNotifications: t.field({ type: PushSettingsRef, resolve: (d, _a, ctx) => ctx.services.push.getPushSettings(d.id) }),
}));

builder.mutationFields((t) => ({
  setExpoAccessToken: t.boolean({
    args: { databaseId: t.arg.id({ required: true }), token: t.arg.string({ required: true }) },
    resolve: (_r, a, ctx) => ctx.services.push.setExpoAccessToken(String(a.databaseId), a.token),
  }),
  deleteExpoAccessToken: t.boolean({
    args: { databaseId: t.arg.id({ required: true }) },
    resolve: (_r, a, ctx) => ctx.services.push.deleteExpoAccessToken(String(a.databaseId)),
  }),
}));

/** The push domain: Expo push tokens of devices and change notifications. */
export { createPushService } from './push.service.ts';
export type { PushService, PushTokenInput } from './push.service.ts';

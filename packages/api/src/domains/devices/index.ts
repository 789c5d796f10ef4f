/** The devices domain: the device registry (sites seen, credentials), per-device sync state and backlogs. */
export { CredentialKind, createDevicesService, validateSiteId } from './devices.service.ts';
export type { DeviceSeen, DevicesService } from './devices.service.ts';
export { computeBacklogs, readDeviceStates, trackDeviceSyncState } from './device-sync-state.ts';
export type { DeviceBacklog, DeviceSyncState } from './device-sync-state.ts';

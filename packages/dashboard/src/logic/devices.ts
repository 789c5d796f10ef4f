/** The Devices list kept live from `deviceEvents` (REGISTERED / SYNCED carry the device; REMOVED drops it). */
import type { DeviceFieldsFragment, DeviceEventKind } from '@offsync/client';

export interface DeviceEventLike {
  kind: DeviceEventKind;
  siteId: string;
  device?: DeviceFieldsFragment | null | undefined;
}

/** Newest sync first; an updated device moves to the top. */
export function applyDeviceEvent(list: readonly DeviceFieldsFragment[], event: DeviceEventLike): DeviceFieldsFragment[] {
  const rest = list.filter((d) => d.siteId !== event.siteId);
  if (event.kind === 'REMOVED') return rest;
  if (event.device == null) return [...list];
  return sortDevices([event.device, ...rest]);
}

export function sortDevices(list: readonly DeviceFieldsFragment[]): DeviceFieldsFragment[] {
  return [...list].sort((a, b) => Date.parse(b.lastSyncAt) - Date.parse(a.lastSyncAt) || a.siteId.localeCompare(b.siteId));
}

import { expect, test } from 'vitest';
import { ConfigError, loadLimitsConfig, loadPrebuiltPagesConfig, prebuiltPagesOption } from './config.ts';
import { PrebuiltPages } from './domains/sync/prebuilt-pages.ts';

test('quota and busy-timeout settings: defaults, overrides, invalid values refused', () => {
  expect(loadLimitsConfig({})).toEqual({
    rateLimitPerSecond: 20,
    rateLimitBurst: 60,
    maxConcurrentUploadsPerCredential: 4,
    maxPendingUploadBytesPerCredential: 64 * 1024 * 1024,
    controlPlaneBusyTimeoutMs: 5000,
  });
  expect(loadLimitsConfig({ OFFSYNC_RATE_LIMIT_PER_SECOND: '0', OFFSYNC_MAX_CONCURRENT_UPLOADS: '1', OFFSYNC_CONTROL_PLANE_BUSY_TIMEOUT_MS: '250' })).toMatchObject({
    rateLimitPerSecond: 0,
    maxConcurrentUploadsPerCredential: 1,
    controlPlaneBusyTimeoutMs: 250,
  });
  expect(() => loadLimitsConfig({ OFFSYNC_RATE_LIMIT_BURST: '0' })).toThrow(ConfigError);
  expect(() => loadLimitsConfig({ OFFSYNC_MAX_PENDING_UPLOAD_BYTES: '12.5' })).toThrow(ConfigError);
});

test('prebuilt download pages: auto by default (on with one node, off with a shared store), on, off, a memory cap', () => {
  const MiB = 1024 * 1024;
  const auto = loadPrebuiltPagesConfig({});
  expect(auto).toEqual({ mode: 'auto', maxBytes: 64 * MiB });
  expect(prebuiltPagesOption(auto, false)).toEqual({ maxBytes: 64 * MiB });
  expect(prebuiltPagesOption(auto, true)).toBe(false);
  const on = loadPrebuiltPagesConfig({ OFFSYNC_PREBUILT_PAGES: 'ON', OFFSYNC_PREBUILT_PAGES_MAX_MB: '8' });
  expect(prebuiltPagesOption(on, true)).toEqual({ maxBytes: 8 * MiB });
  // One database holds at most a quarter of the cap (the defaults: 64 and 16 MiB).
  const caps = (o: ReturnType<typeof prebuiltPagesOption>) => (o === false ? undefined : new PrebuiltPages(o));
  expect(caps(prebuiltPagesOption(on, true))).toMatchObject({ maxBytes: 8 * MiB, maxBytesPerDatabase: 2 * MiB });
  expect(caps(prebuiltPagesOption(auto, false))).toMatchObject({ maxBytes: 64 * MiB, maxBytesPerDatabase: 16 * MiB });
  expect(new PrebuiltPages()).toMatchObject({ maxBytes: 64 * MiB, maxBytesPerDatabase: 16 * MiB });
  const off = loadPrebuiltPagesConfig({ OFFSYNC_PREBUILT_PAGES: 'off' });
  expect(prebuiltPagesOption(off, false)).toBe(false);
  expect(() => loadPrebuiltPagesConfig({ OFFSYNC_PREBUILT_PAGES: 'yes' })).toThrow(ConfigError);
  expect(() => loadPrebuiltPagesConfig({ OFFSYNC_PREBUILT_PAGES_MAX_MB: '0' })).toThrow(ConfigError);
});

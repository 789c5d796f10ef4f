import { expect, test } from 'vitest';
import { ConfigError, loadLimitsConfig } from './config.ts';

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

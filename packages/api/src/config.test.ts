import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { loadConfig, loadOrCreateServerKey, loadTrafficRetentionConfig } from './config.ts';

test('defaults', () => {
  const c = loadConfig({});
  expect(c).toMatchObject({ port: 4000, host: '127.0.0.1', databaseUrl: undefined, secretKey: null, adminKey: null, billingPeriodStartDay: 1, publicUrl: 'http://127.0.0.1:4000' });
});

test('relative paths resolve against INIT_CWD (npm start at the repo root)', () => {
  const c = loadConfig({ INIT_CWD: '/srv/offsync', DATABASE_URL: 'file:./cp.db' });
  expect(c.dataDir).toBe('/srv/offsync/data');
  expect(c.databaseUrl).toBe('file:/srv/offsync/cp.db');
});

test('validation', () => {
  expect(() => loadConfig({ PORT: 'abc' })).toThrow(/PORT/);
  expect(() => loadConfig({ DATABASE_URL: 'mysql://x' })).toThrow(/DATABASE_URL/);
  expect(() => loadConfig({ OFFSYNC_SECRET_KEY: 'short' })).toThrow(/32 bytes/);
  expect(() => loadConfig({ BILLING_PERIOD_START_DAY: '31' })).toThrow(/BILLING/);
  expect(loadConfig({ DATABASE_URL: 'postgres://u@h/db', PORT: '0' }).databaseUrl).toBe('postgres://u@h/db');
});

test('server key is generated once with 0600 permissions', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'offsync-cfg-'));
  const a = loadOrCreateServerKey({ dataDir, secretKey: null });
  const b = loadOrCreateServerKey({ dataDir, secretKey: null });
  expect(a.created).toBe(true);
  expect(b.created).toBe(false);
  expect(Buffer.from(b.key).equals(Buffer.from(a.key))).toBe(true);
  expect(statSync(join(dataDir, 'server.key')).mode & 0o777).toBe(0o600);
});

test('traffic retention: defaults, overrides, and hours kept at least as long as minutes', () => {
  const day = 86_400_000;
  expect(loadTrafficRetentionConfig({})).toEqual({ minuteMs: 7 * day, hourMs: 90 * day, intervalMs: 3_600_000 });
  expect(loadTrafficRetentionConfig({ OFFSYNC_METRICS_MINUTE_RETENTION_DAYS: '2', OFFSYNC_METRICS_HOUR_RETENTION_DAYS: '30' })).toMatchObject({ minuteMs: 2 * day, hourMs: 30 * day });
  expect(() => loadTrafficRetentionConfig({ OFFSYNC_METRICS_MINUTE_RETENTION_DAYS: '10', OFFSYNC_METRICS_HOUR_RETENTION_DAYS: '5' })).toThrow(/at least/);
  expect(() => loadTrafficRetentionConfig({ OFFSYNC_METRICS_MINUTE_RETENTION_DAYS: '0' })).toThrow(/between 1 and/);
});

/** Send/receive logic against a scripted transport: windows, send_dbversion rules, check shapes, cursor rules. */
import { afterAll, expect, test } from 'vitest';
import { parseCheck, runBlocking, SyncProtocolError } from '../src/sync/index.ts';
import type { BlockingSyncTransport, HttpResponse, PullBatch, PullRequest, PushChunk, SyncStatus } from '../src/sync/index.ts';
import { device, removeTempDirs } from './helpers.ts';

const status = (v: number, extra: Partial<SyncStatus> = {}): SyncStatus => ({ lastOptimisticVersion: v, lastConfirmedVersion: v, gaps: [], ...extra });

function scripted(replies: { push?: (c: PushChunk) => SyncStatus | null; pull?: (r: PullRequest) => PullBatch; status?: () => SyncStatus | null }) {
  const log: Array<{ op: string; arg?: unknown }> = [];
  const t: BlockingSyncTransport = {
    push: (c) => (log.push({ op: 'push', arg: { min: c.dbVersionMin, max: c.dbVersionMax } }), (replies.push ?? (() => status(c.dbVersionMax)))(c)),
    pull: (r) => (log.push({ op: 'pull', arg: r }), (replies.pull ?? (() => ({ kind: 'empty' })))(r)),
    download: () => {
      throw new Error('no downloads here');
    },
    status: () => (log.push({ op: 'status' }), (replies.status ?? (() => null))()),
  };
  return { t, log };
}

test('windows tile contiguously from send_dbversion + 1; send_dbversion takes the server value, capped at what was sent', () => {
  const d = device({ maxChunkBytes: 200 });
  try {
    for (let i = 0; i < 6; i++) d.db.prepare('INSERT INTO todos (id, title) VALUES (?, ?)').run(`k${i}`, 'x'.repeat(120));
    const { t, log } = scripted({ push: (c) => status(c.dbVersionMax + 100) }); // a server claiming too much
    const r = runBlocking(d.session.send(), t);
    const windows = log.filter((l) => l.op === 'push').map((l) => l.arg as { min: number; max: number });
    expect(windows.length).toBeGreaterThan(1);
    expect(windows[0]?.min).toBe(1);
    for (let i = 1; i < windows.length; i++) expect(windows[i]?.min).toBe((windows[i - 1]?.max ?? 0) + 1);
    expect(d.settings.get('send_dbversion')).toBe(windows[windows.length - 1]?.max);
    expect(r.localVersion).toBe(windows[windows.length - 1]?.max);
    // Nothing pending now: a status call instead of an upload.
    const again = scripted({ status: () => status(r.localVersion) });
    expect(runBlocking(d.session.send(), again.t)).toMatchObject({ status: 'synced', serverVersion: r.localVersion });
    expect(again.log.map((l) => l.op)).toEqual(['status']);
  } finally {
    void d.close();
  }
});

test('a server answering a lower lastOptimisticVersion gets a resend; failures.apply stops without moving send_dbversion', () => {
  const d = device();
  try {
    d.db.exec(`INSERT INTO todos (id) VALUES ('a'), ('b'), ('c')`);
    const lower = scripted({ push: () => status(0) });
    const r = runBlocking(d.session.send(), lower.t);
    expect(r.status).toBe('out-of-sync');
    expect(d.settings.get('send_dbversion')).toBe(0);
    const failure = { code: 'apply_failed', message: 'nope', retryable: false };
    const refused = scripted({ push: () => status(0, { failures: { apply: failure } }) });
    const r2 = runBlocking(d.session.send(), refused.t);
    expect(r2.lastFailure).toEqual(failure);
    expect(d.settings.get('send_dbversion')).toBe(0);
    expect(refused.log[0]?.arg).toEqual({ min: 1, max: r.localVersion });
  } finally {
    void d.close();
  }
});

test('a brand-new database with nothing to send makes no request', () => {
  const d = device();
  try {
    const { t, log } = scripted({});
    expect(runBlocking(d.session.send(), t)).toEqual({ status: 'synced', localVersion: 0, serverVersion: 0 });
    expect(runBlocking(d.session.hasUnsent(), t)).toBe(false);
    expect(log).toEqual([]);
  } finally {
    void d.close();
  }
});

test('receive: a 202 SyncStatus is "not ready", a non-final batch without nextCursor is an error', () => {
  const d = device();
  try {
    const notReady = scripted({ pull: () => ({ kind: 'notReady', status: status(0) }) });
    expect(runBlocking(d.session.receive(), notReady.t)).toMatchObject({ rows: 0, complete: false, notReady: true });
    const bad = scripted({ pull: () => ({ kind: 'pages', pages: [], final: false }) });
    expect(() => runBlocking(d.session.receive(), bad.t)).toThrow(SyncProtocolError);
    expect(d.settings.cursor()).toEqual({ dbVersion: 0, seq: 0 });
  } finally {
    void d.close();
  }
});

test('parseCheck understands the five G3 reply shapes', () => {
  const res = (body: string, status = 200): HttpResponse => ({ status, statusText: '', headers: {}, body: new TextEncoder().encode(body) });
  expect(parseCheck(res(''))).toEqual({ kind: 'empty' });
  expect(parseCheck(res('{"lastOptimisticVersion":1,"lastConfirmedVersion":1,"gaps":[]}', 202))).toEqual({ kind: 'notReady', status: status(1) });
  expect(parseCheck(res('{"url":"http://x/a"}'))).toEqual({ kind: 'pages', pages: [{ url: 'http://x/a' }], final: true });
  expect(parseCheck(res('{"data":{"payload":"AQID","watermark":9,"final":true}}'))).toEqual({
    kind: 'pages', pages: [{ payload: new Uint8Array([1, 2, 3]), watermark: 9 }], final: true, watermark: 9,
  });
  expect(parseCheck(res('{"data":{"chunks":[{"url":"u1","cursor":1},{"url":"u2","cursor":2}],"final":false,"nextCursor":2}}'))).toEqual({
    kind: 'pages', pages: [{ url: 'u1', cursor: 1 }, { url: 'u2', cursor: 2 }], final: false, nextCursor: 2,
  });
  expect(() => parseCheck(res('{"data":{"chunks":[{"url":"u1"}],"final":false}}'))).toThrow(/nextCursor/);
  expect(() => parseCheck(res('{"failures":{"check":{"code":"x","message":"stop","retryable":false}}}'))).toThrow('stop');
});

afterAll(() => removeTempDirs());

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createStaticDashboardHandler } from './static-dashboard.ts';

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }

function get(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

function serve(dir: string): Promise<{ port: number; close(): Promise<void> }> {
  const handler = createStaticDashboardHandler({ dir });
  const server = createServer(async (req, res) => {
    if (!(await handler(req, res))) res.writeHead(404).end('next handler');
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((r) => server.close(() => r())),
  })));
}

describe('static dashboard handler', () => {
  let dir: string;
  let port: number;
  let close: () => Promise<void>;
  const js = `console.log(${JSON.stringify('x'.repeat(5000))});`;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'offsync-dash-'));
    mkdirSync(join(dir, 'assets'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>OffSync</title><div id="root"></div>');
    writeFileSync(join(dir, 'assets', 'index-abc.js'), js);
    writeFileSync(join(dir, 'assets', 'index-abc.css'), 'body{}');
    writeFileSync(join(dir, 'robots.txt'), 'User-agent: *');
    writeFileSync(join(tmpdir(), 'offsync-dash-secret.txt'), 'secret');
    ({ port, close } = await serve(dir));
  });
  afterAll(async () => {
    await close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('/ serves index.html, revalidated, with the CSP', async () => {
    const r = await get(port, '/');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(r.headers['cache-control']).toBe('no-cache');
    expect(r.headers['content-security-policy']).toContain("default-src 'self'");
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.body.toString()).toContain('<div id="root">');
  });

  test('hashed assets: content type, immutable cache, gzip when accepted, identity otherwise', async () => {
    const gz = await get(port, '/assets/index-abc.js', { 'accept-encoding': 'gzip, br' });
    expect(gz.status).toBe(200);
    expect(gz.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(gz.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gz.headers['vary']).toBe('Accept-Encoding');
    expect(Number(gz.headers['content-length'])).toBe(gz.body.length);
    expect(gunzipSync(gz.body).toString()).toBe(js);
    const plain = await get(port, '/assets/index-abc.js');
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body.toString()).toBe(js);
    const refused = await get(port, '/assets/index-abc.js', { 'accept-encoding': 'gzip;q=0' });
    expect(refused.headers['content-encoding']).toBeUndefined();
    expect((await get(port, '/assets/index-abc.css')).headers['content-type']).toBe('text/css; charset=utf-8');
    expect((await get(port, '/robots.txt')).headers['cache-control']).toBe('no-cache');
  });

  test('ETag: If-None-Match gets 304 without a body; HEAD gets headers only', async () => {
    const first = await get(port, '/assets/index-abc.js');
    const etag = String(first.headers['etag']);
    expect(etag).toMatch(/^".+"$/);
    const again = await get(port, '/assets/index-abc.js', { 'if-none-match': etag });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    const head = await get(port, '/assets/index-abc.js', {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    expect(Number(head.headers['content-length'])).toBe(js.length);
  });

  test('SPA fallback: unknown routes asking for HTML get index.html; others fall through', async () => {
    const route = await get(port, '/databases/db_1/devices', { accept: 'text/html,application/xhtml+xml' });
    expect(route.status).toBe(200);
    expect(route.body.toString()).toContain('<div id="root">');
    expect((await get(port, '/databases/db_1/devices', { accept: 'application/json' })).body.toString()).toBe('next handler');
    expect((await get(port, '/assets/missing.js', { accept: 'text/html' })).body.toString()).toBe('next handler');
    expect((await get(port, '/v2/cloudsync/x', { accept: 'text/html' })).body.toString()).toBe('next handler');
    expect((await get(port, '/graphql', { accept: 'text/html' })).body.toString()).toBe('next handler');
    expect((await get(port, '/', {}, 'POST')).body.toString()).toBe('next handler');
  });

  test('never leaves its directory', async () => {
    for (const path of ['/../offsync-dash-secret.txt', '/%2e%2e/offsync-dash-secret.txt', '/assets/%2e%2e%2f%2e%2e%2foffsync-dash-secret.txt', '/%00index.html']) {
      const r = await get(port, path);
      expect(r.body.toString(), path).not.toContain('secret');
    }
  });

  test('without a build, / explains how to build it (503)', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'offsync-dash-empty-'));
    const s = await serve(empty);
    try {
      const r = await get(s.port, '/');
      expect(r.status).toBe(503);
      expect(r.body.toString()).toContain('npm run build -w @offsync/dashboard');
    } finally {
      await s.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

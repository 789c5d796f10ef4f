/**
 * Bounded clocks and payload budgets over HTTP (issue 9, docs/PROTOCOL.md "Limits"): a poisoned
 * clock is refused whole and the database keeps downloading for everyone; a decompression bomb
 * is refused with 413 without expanding it.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { checksum48, encodePayload, MAX_CLOCK } from '@offsync/core';
import { openSyncDatabase } from '@offsync/core/sqlite';
import { clockTables } from '@offsync/core/testing';
import { listenTestServer } from './sync-fixtures/server.ts';
import type { TestServer } from './sync-fixtures/server.ts';
import { call, insertTodos, newDevice, ownPayload, ROWS_SQL, siteHex } from './sync-fixtures/devices.ts';
import type { Device } from './sync-fixtures/devices.ts';

const MiB = 1024 * 1024;
let t: TestServer & { origin: string };
beforeAll(async () => {
  t = await listenTestServer({ databases: [{ id: 'clocks' }, { id: 'bombs' }] });
});
afterAll(async () => t.close());

const g2a = (db: string, site: string): string => `${t.origin}/v2/cloudsync/${db}.sqlite/${site}`;
const codeOf = (r: { json(): unknown }): string | undefined => (r.json() as { errors: Array<{ code: string }> }).errors[0]?.code;

async function upload(db: string, site: string, payload: Uint8Array) {
  const url = (await call('GET', `${g2a(db, site)}/upload`)).text;
  const put = await call('PUT', url, { key: null, body: payload });
  if (put.status !== 200) return put;
  return call('POST', `${g2a(db, site)}/apply`, { json: { url } });
}

/** One G2a download of everything for `d`, applied to it; returns the rows it then has. */
async function downloadInto(db: string, d: Device): Promise<unknown[]> {
  const check = await call('POST', `${g2a(db, siteHex(d))}/check`, { json: { dbVersion: 0, seq: 0 } });
  expect(check.status).toBe(200);
  if (check.text !== '') {
    const page = await call('GET', check.text, { key: null });
    expect(page.status).toBe(200);
    d.applyPayload(page.bytes);
  }
  return d.driver.prepare(ROWS_SQL).all();
}

function centralDump(db: string): unknown {
  const e = t.handler.service.databases.peek(db) ?? openSyncDatabase(t.pathOf(db));
  return {
    rows: e.driver.prepare(ROWS_SQL).all(),
    clock: e.dbVersion(),
    ...clockTables(e, 'todos'),
  };
}

describe('bounded clocks', () => {
  test('an upload with db_version 2^53-1 is refused with a stable code; the database still downloads for everyone', async () => {
    const honest = newDevice();
    insertTodos(honest, 3, 'h');
    expect((await upload('clocks', siteHex(honest), ownPayload(honest)!)).status).toBe(200);
    const before = centralDump('clocks');

    const attacker = newDevice();
    insertTodos(attacker, 2, 'evil');
    const changes = [...attacker.changes({ localOnly: true })].map((c) => ({ ...c, dbVersion: Number.MAX_SAFE_INTEGER }));
    const poisoned = encodePayload(changes, { schemaHash: attacker.schemaHash() })!;
    const r = await upload('clocks', siteHex(attacker), poisoned);
    expect(r.status).toBe(400);
    expect(codeOf(r)).toBe('invalid_payload');
    expect(JSON.stringify(r.json())).toContain('clock bound');
    expect(centralDump('clocks')).toEqual(before);

    // Just under the bound is accepted (a clock at MAX_CLOCK is legal) and the server's own clock stays safe.
    const edge = newDevice();
    insertTodos(edge, 1, 'edge');
    const atBound = encodePayload([...edge.changes({ localOnly: true })].map((c) => ({ ...c, dbVersion: MAX_CLOCK - 10 })), { schemaHash: edge.schemaHash() })!;
    expect((await upload('clocks', siteHex(edge), atBound)).status).toBe(200);
    expect(Number.isSafeInteger((t.handler.service.databases.peek('clocks') ?? openSyncDatabase(t.pathOf('clocks'))).dbVersion())).toBe(true);

    // Every other device still downloads, and honest uploads still merge.
    const reader = newDevice();
    expect((await downloadInto('clocks', reader)).map((x) => (x as { id: string }).id)).toEqual(['edge000000', 'h000000', 'h000001', 'h000002']);
    honest.driver.exec("UPDATE todos SET title = 'later' WHERE id = 'h000000'");
    expect((await upload('clocks', siteHex(honest), ownPayload(honest)!)).status).toBe(200);
    const again = newDevice();
    const rows = (await downloadInto('clocks', again)) as Array<{ id: string; title: string }>;
    expect(rows.find((x) => x.id === 'h000000')?.title).toBe('later');
  });
});

/** A ~1 MiB LZ4 block that really expands to `size` bytes (one literal, one run-length match, 5 final literals). */
function lz4Bomb(size: number): Uint8Array {
  const rest = size - 1 - 5 - 4 - 15;
  const k = Math.floor(rest / 255);
  const out = new Uint8Array(1 + 1 + 2 + k + 1 + 6);
  out.set([0x1f, 0x41, 1, 0]);
  out.fill(255, 4, 4 + k);
  out[4 + k] = rest - 255 * k;
  out[5 + k] = 0x50;
  out.fill(0x42, 6 + k);
  return out;
}

function wrap(body: Uint8Array, expandedSize: number, nrows: number): Uint8Array {
  const out = new Uint8Array(32 + body.length);
  out.set(body, 32);
  const v = new DataView(out.buffer);
  out.set([0x43, 0x4c, 0x53, 0x59, 2, 1, 1, 4]);
  v.setUint32(8, expandedSize);
  v.setUint16(12, 9);
  v.setUint32(14, nrows);
  const sum = checksum48(body);
  v.setUint16(26, Number(sum >> 32n));
  v.setUint32(28, Number(sum & 0xffffffffn));
  return out;
}

describe('payload budgets', () => {
  test('a 1 MiB upload that expands to 256 MiB is refused with 413 payload_too_large, quickly and without the memory', async () => {
    const bomb = wrap(lz4Bomb(256 * MiB), 256 * MiB, 4_000_000);
    expect(bomb.length).toBeLessThan(1.01 * MiB);
    const site = siteHex(newDevice());
    const before = process.memoryUsage();
    const t0 = performance.now();
    const r = await upload('bombs', site, bomb);
    const elapsed = performance.now() - t0;
    const after = process.memoryUsage();
    expect(r.status).toBe(413);
    expect(codeOf(r)).toBe('payload_too_large');
    expect(after.rss - before.rss).toBeLessThan(64 * MiB);
    expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(64 * MiB);
    expect(after.heapUsed - before.heapUsed).toBeLessThan(64 * MiB);
    expect(elapsed).toBeLessThan(10_000); // very generous on a loaded 2-core machine; the old path took 17 s and GBs

    // The same bytes with a header that understates the expansion: refused as malformed (400).
    const liar = await upload('bombs', site, wrap(lz4Bomb(256 * MiB), 40 * MiB, 1000));
    expect([liar.status, codeOf(liar)]).toEqual([400, 'invalid_payload']);

    // Nothing changed and the database still takes honest uploads.
    const d = newDevice();
    insertTodos(d, 2);
    expect((await upload('bombs', siteHex(d), ownPayload(d)!)).status).toBe(200);
    expect((await downloadInto('bombs', newDevice())).length).toBe(2);
  });
});

/**
 * Bounded clocks (docs/PROTOCOL.md "Limits"): a change with a clock beyond MAX_CLOCK is refused
 * whole with CORE_CLOCK_OUT_OF_RANGE, nothing is written, and the database keeps downloading
 * for every other replica; the local clock never leaves the safe-integer range; a damaged
 * stored clock is left out of downloads (reported) instead of failing them.
 */
import { describe, expect, test } from 'vitest';
import { encodePayload, MAX_CLOCK } from '../codec/payload.ts';
import { CoreErrorCode, isCoreError } from '../errors.ts';
import type { CoreError } from '../errors.ts';
import { openReplica, tableRows } from '../testing/replica.ts';
import type { Change } from '../types.ts';
import { cellsTableName } from './sql-gen.ts';
import { SyncEngine } from './engine.ts';
import { dumpDatabase } from '../testing/db-dump.ts';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isCoreError(e) ? e.code : `not a CoreError: ${String(e)}`;
  }
  return undefined;
}

/** The rows a device would upload, with the clock field `field` of the first one replaced. */
function ownChangesWith(device: SyncEngine, field: 'dbVersion' | 'colVersion' | 'cl' | 'seq', value: number): Change[] {
  const changes = [...device.changes({})];
  changes[0] = { ...changes[0]!, [field]: value };
  return changes;
}

/** Downloads everything `server` has for `device` through an encoded payload (the streaming encoder downloads use). */
function download(server: SyncEngine, device: SyncEngine): number {
  const enc = server.payloadEncoder();
  for (const ch of server.changes({ excludeSiteId: device.siteId })) enc.add(ch);
  const p = enc.finish();
  return p === null ? 0 : device.applyPayload(p).applied;
}

describe('clock bounds', () => {
  test.each(['dbVersion', 'colVersion', 'cl', 'seq'] as const)('an upload with %s = 2^53-1 is refused whole; the server still downloads for everyone', (field) => {
    const server = openReplica();
    const honest = openReplica();
    const attacker = openReplica();
    const reader = openReplica();
    honest.driver.exec("INSERT INTO todos (id, title) VALUES ('h1', 'honest')");
    server.applyPayload(honest.encodeChanges([...honest.changes({})])!);
    const before = dumpDatabase(server);

    attacker.driver.exec("INSERT INTO todos (id, title) VALUES ('a1', 'poison'), ('a2', 'more')");
    const poisoned = encodePayload(ownChangesWith(attacker, field, Number.MAX_SAFE_INTEGER), { schemaHash: 0n })!;
    expect(codeOf(() => server.applyPayload(poisoned))).toBe(CoreErrorCode.CLOCK_OUT_OF_RANGE);
    expect(dumpDatabase(server)).toEqual(before); // nothing written, clock unchanged

    // Everyone still downloads, and the server keeps merging.
    expect(download(server, reader)).toBeGreaterThan(0);
    expect(tableRows(reader, 'todos').map((r) => r['id'])).toEqual(['h1']);
    honest.driver.exec("UPDATE todos SET title = 'again' WHERE id = 'h1'");
    server.applyPayload(honest.encodeChanges([...honest.changes({ after: { dbVersion: 1, seq: Number.MAX_SAFE_INTEGER } })])!);
    download(server, reader);
    expect(tableRows(reader, 'todos').map((r) => r['title'])).toEqual(['again']);
    expect(Number.isSafeInteger(server.dbVersion())).toBe(true);
  });

  test('a clock exactly at MAX_CLOCK is accepted; the server clock stays safe and downloads still decode', () => {
    const server = openReplica();
    const device = openReplica();
    const reader = openReplica();
    device.driver.exec("INSERT INTO todos (id, title) VALUES ('m', 'max')");
    const changes = [...device.changes({})].map((c) => ({ ...c, dbVersion: MAX_CLOCK, colVersion: MAX_CLOCK }));
    server.applyPayload(encodePayload(changes, { schemaHash: 0n })!);
    expect(server.dbVersion()).toBe(MAX_CLOCK);
    server.driver.exec("INSERT INTO todos (id, title) VALUES ('local', 'after')"); // the clock moves on by one
    expect(server.dbVersion()).toBe(MAX_CLOCK + 1);
    expect(Number.isSafeInteger(server.dbVersion())).toBe(true);
    // The download carries the server's db_version (beyond MAX_CLOCK): the reader must be told so explicitly.
    const enc = server.payloadEncoder();
    for (const ch of server.changes({})) enc.add(ch);
    const page = enc.finish()!;
    expect(codeOf(() => reader.applyPayload(page))).toBe(CoreErrorCode.CLOCK_OUT_OF_RANGE);
    reader.applyPayload(page, { limits: { maxClock: Number.MAX_SAFE_INTEGER } });
    expect(tableRows(reader, 'todos').map((r) => r['id'])).toEqual(['local', 'm']);
  });

  test('a merge that would take a damaged local clock past 2^53-1 is refused and changes nothing', () => {
    const server = openReplica();
    const device = openReplica();
    server.driver.exec(`UPDATE offsync_clock SET v = ${2n ** 53n} WHERE id = 1`);
    const before = dumpDatabase(server);
    device.driver.exec("INSERT INTO todos (id) VALUES ('x')");
    expect(codeOf(() => server.applyPayload(device.encodeChanges([...device.changes({})])!))).toBe(CoreErrorCode.CLOCK_OUT_OF_RANGE);
    expect(dumpDatabase(server)).toEqual(before);
  });

  test('a damaged stored clock is left out of downloads and reported; the rest still downloads', () => {
    const reported: Array<{ code: string; tbl: string }> = [];
    const server = openReplica();
    const device = openReplica();
    device.driver.exec("INSERT INTO todos (id, title) VALUES ('ok', 'fine'), ('bad', 'damaged')");
    server.applyPayload(device.encodeChanges([...device.changes({})])!);
    // Materialise explicit cell clocks, then damage one beyond the safe range (as an old server could have).
    server.driver.exec("UPDATE todos SET title = title || '!' ");
    server.foldPending(); // the clock tables hold local writes once the write log is folded
    const cells = `"${cellsTableName('todos')}"`;
    const n = server.driver.prepare(`UPDATE ${cells} SET col_version = ? WHERE (rid, col) IN (SELECT rid, col FROM ${cells} ORDER BY rid, col LIMIT 1)`).run(2n ** 60n);
    expect(n).toBe(1);
    const feed = [...server.changes({})];
    expect(feed.some((c) => !Number.isSafeInteger(c.colVersion))).toBe(true);

    const errors: string[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => void errors.push(args.join(' '));
    let page: Uint8Array | null;
    try {
      const enc = server.payloadEncoder();
      for (const ch of feed) enc.add(ch);
      expect(enc.skipped).toBe(1);
      page = enc.finish();
    } finally {
      console.error = original;
    }
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(CoreErrorCode.PAYLOAD_BAD_VALUE);
    const reader = openReplica();
    expect(reader.applyPayload(page!).received).toBe(feed.length - 1);

    // A custom reporter replaces the console line.
    const quiet = openReplica();
    quiet.driver.exec("INSERT INTO todos (id) VALUES ('q')");
    const custom = new SyncEngine(quiet.driver, {
      randomBytes: (k) => new Uint8Array(k).fill(3),
      onInvalidStoredChange: (e: CoreError, c: Change) => void reported.push({ code: e.code, tbl: c.tbl }),
    });
    const enc = custom.payloadEncoder();
    enc.add({ ...[...custom.changes({})][0]!, dbVersion: Number.NaN });
    expect(reported).toEqual([{ code: CoreErrorCode.PAYLOAD_BAD_VALUE, tbl: 'todos' }]);
    expect(enc.finish()).toBeNull();
  });
});

/**
 * Proves the test harness around the real SQLite Sync extension (cloudsync 0.9.99, G2a): local
 * payload exchange, and a full network round trip A → stub server (in a worker) → B.
 * The extension is used here under its licence's test-only allowance (docs/PROTOCOL.md §P7).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { G2A_STUB_SERVER, SyncXMLHttpRequest, clearXhrLog, closeExtension, openExtension, startServerInWorker, xhrLog } from '@offsync/core/testing';
import type { ExtensionDb, ExtensionModule, StubRequest, StubUpload, WorkerServer } from '@offsync/core/testing';

const TODOS = `CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0)`;
const ROWS = 'SELECT id, title, done FROM todos ORDER BY id';

let ext: ExtensionModule;
let server: WorkerServer;

function makeDb(): ExtensionDb {
  const db = ext.openDb();
  db.exec(TODOS);
  db.exec(`SELECT cloudsync_init('todos')`);
  return db;
}

beforeAll(async () => {
  ext = await openExtension({ timeoutMs: 10_000 });
  server = await startServerInWorker(G2A_STUB_SERVER, 'createG2aStubServer', {
    options: { apiKey: 'TESTKEY123' },
  });
});

afterAll(async () => {
  await server.close();
  await closeExtension();
});

test('loads the unmodified 0.9.99 build and maps values to the value model', async () => {
  expect(ext.cloudsyncVersion).toBe('0.9.99');
  expect(ext.output.some((l) => l.includes('sqlite3_wasm_extra_init'))).toBe(true);
  expect(await openExtension()).toBe(ext);
  const db = ext.openDb();
  try {
    const row = db.get(`SELECT 1 AS i, 9007199254740993 AS big, 1.5 AS r, 'x' AS t, x'00ff' AS b, NULL AS n`);
    expect(row).toEqual({ i: 1n, big: 9007199254740993n, r: 1.5, t: 'x', b: new Uint8Array([0, 255]), n: null });
    expect(db.value('SELECT ? + 1', [41n])).toBe(42n);
    expect(db.value('SELECT :a || :b', { ':a': 'a', ':b': 'b' })).toBe('ab');
    expect(db.value('SELECT 1 WHERE 0')).toBeUndefined();
  } finally {
    db.close();
  }
});

test('local payload exchange A → B with payloadEncode / payloadApply', () => {
  const a = makeDb();
  const b = makeDb();
  try {
    a.exec(`INSERT INTO todos(id, title, done) VALUES ('a1', 'milk', 0), ('a2', 'eggs', 1)`);
    const changes = a.changes();
    expect(changes.map((c) => [c.col_name, c.seq])).toEqual([['title', 0n], ['done', 1n], ['title', 2n], ['done', 3n]]);
    expect(Buffer.from(changes[0]?.site_id ?? []).toString('hex')).toBe(a.siteIdHex());
    const payload = a.payloadEncode();
    expect(payload).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(payload ?? []).subarray(0, 4).toString('latin1')).toBe('CLSY');
    expect(a.payloadEncode('0')).toBeNull();
    expect(b.payloadApply(payload ?? new Uint8Array())).toBe(4);
    expect(b.all(ROWS)).toEqual(a.all(ROWS));
    expect(b.all(ROWS)).toEqual([{ id: 'a1', title: 'milk', done: 0n }, { id: 'a2', title: 'eggs', done: 1n }]);
  } finally {
    a.close();
    b.close();
  }
});

test('network: A sends to the stub server, B checks and receives A\'s rows', async () => {
  await server.call({ type: 'clear' });
  clearXhrLog();
  const a = makeDb();
  const b = makeDb();
  const conn = `${server.origin}/testdb.sqlite?apikey=TESTKEY123`;
  try {
    a.exec(`INSERT INTO todos(id, title, done) VALUES ('a1', 'milk', 0), ('a2', 'eggs', 1)`);
    a.exec('UPDATE todos SET done = 1 WHERE id = ?', ['a1']);
    a.value('SELECT cloudsync_network_init(?)', [conn]);
    b.value('SELECT cloudsync_network_init(?)', [conn]);
    expect(a.value('SELECT cloudsync_network_has_unsent_changes()')).toBe(1n);
    expect(a.value('SELECT cloudsync_network_send_changes()')).toBeNull();
    expect(a.value('SELECT cloudsync_network_has_unsent_changes()')).toBe(0n);

    const siteA = a.siteIdHex();
    const base = `/v2/cloudsync/testdb.sqlite/${siteA}`;
    const sent = (await server.call({ type: 'log' })) as StubRequest[];
    expect(sent.map((r) => `${r.method} ${r.path.replace(/-[^/]*\.bin$/, '.bin')} ${r.status}`)).toEqual([
      `GET ${base}/upload 200`,
      'PUT /blobs/up.bin 200',
      `POST ${base}/apply 200`,
    ]);
    const [upload, put, apply] = sent;
    expect(upload?.headers).toMatchObject({ accept: 'sqlc/plain', authorization: 'Bearer TESTKEY123' });
    expect(put?.headers).toMatchObject({ accept: 'text/plain', 'content-type': 'application/octet-stream' });
    expect(put?.headers['authorization']).toBeUndefined();
    expect(put?.bodyHeadHex.startsWith(Buffer.from('CLSY').toString('hex'))).toBe(true);
    expect(put?.path).toBe(new URL(upload?.reply ?? '').pathname);
    expect(apply?.headers).toMatchObject({ authorization: 'Bearer TESTKEY123', 'content-type': 'application/json' });
    expect(JSON.parse(apply?.bodyText ?? '')).toEqual({ url: upload?.reply, dbVersionMin: 0, dbVersionMax: 3 });
    const uploads = (await server.call({ type: 'uploads' })) as StubUpload[];
    expect(uploads).toHaveLength(1);
    expect(uploads[0]?.bytes.length).toBe(put?.bodyLength);

    expect(b.value('SELECT cloudsync_network_check_changes()')).toBe(4n);
    expect(b.all(ROWS)).toEqual([{ id: 'a1', title: 'milk', done: 1n }, { id: 'a2', title: 'eggs', done: 1n }]);
    expect(b.all(ROWS)).toEqual(a.all(ROWS));
    expect(b.value('SELECT cloudsync_network_check_changes()')).toBe(0n); // nothing new

    const siteB = b.siteIdHex();
    const received = ((await server.call({ type: 'log' })) as StubRequest[]).slice(3);
    expect(received.map((r) => `${r.method} ${r.path.replace(/-[^/]*\.bin$/, '.bin')} ${r.reply === '' ? 'empty' : 'url'}`)).toEqual([
      `POST /v2/cloudsync/testdb.sqlite/${siteB}/check url`,
      'GET /blobs/dl.bin empty',
      `POST /v2/cloudsync/testdb.sqlite/${siteB}/check empty`,
    ]);
    expect(JSON.parse(received[0]?.bodyText ?? '')).toEqual({ dbVersion: 0, seq: 0 });
    expect(received[1]?.headers['authorization']).toBeUndefined();

    // The client-side log of the XHR polyfill saw the same six requests.
    expect(xhrLog().map((e) => `${e.method} ${e.status}`)).toEqual([
      'GET 200', 'PUT 200', 'POST 200', 'POST 200', 'GET 200', 'POST 200',
    ]);
    expect(xhrLog()[1]?.bodyLength).toBe(put?.bodyLength);
  } finally {
    a.close();
    b.close();
  }
});

test('network: multi-megabyte payloads travel both ways', async () => {
  await server.call({ type: 'clear' });
  const a = makeDb();
  const b = makeDb();
  const conn = `${server.origin}/big.sqlite?apikey=TESTKEY123`;
  try {
    a.exec('BEGIN');
    for (let i = 0; i < 600; i++) {
      // random hex does not compress well, so the payload stays large after LZ4
      a.exec('INSERT INTO todos(id, title) VALUES (?, ?)', [`r${i}`, randomBytes(2048).toString('hex')]);
    }
    a.exec('COMMIT');
    a.value('SELECT cloudsync_network_init(?)', [conn]);
    b.value('SELECT cloudsync_network_init(?)', [conn]);
    a.value('SELECT cloudsync_network_send_changes()');
    const uploads = (await server.call({ type: 'uploads' })) as StubUpload[];
    expect(uploads[0]?.bytes.length).toBeGreaterThan(2_000_000);
    expect(b.value('SELECT cloudsync_network_check_changes()')).toBe(1200n);
    expect(xhrLog().at(-1)?.responseLength).toBe(uploads[0]?.bytes.length);
    expect(b.value('SELECT count(*) FROM todos')).toBe(600n);
    expect(b.all(ROWS)).toEqual(a.all(ROWS));
  } finally {
    a.close();
    b.close();
  }
});

test('the XMLHttpRequest polyfill on its own: sync request, headers, text and arraybuffer', () => {
  const XHR: unknown = Reflect.get(globalThis, 'XMLHttpRequest');
  expect(XHR).toBe(SyncXMLHttpRequest);
  const xhr = new SyncXMLHttpRequest();
  const events: string[] = [];
  xhr.onreadystatechange = () => events.push(`rs${xhr.readyState}`);
  xhr.onload = (e) => events.push(`load${e.loaded}`);
  xhr.open('GET', `${server.origin}/v2/cloudsync/x.sqlite/${'0'.repeat(32)}/upload`, false);
  xhr.setRequestHeader('Authorization', 'Bearer TESTKEY123');
  xhr.send(null);
  expect(xhr.status).toBe(200);
  expect(xhr.statusText).toBe('OK');
  expect(xhr.getResponseHeader('Content-Type')).toBe('text/plain');
  expect(xhr.getAllResponseHeaders()).toMatch(/^content-type: text\/plain\r\n/m);
  expect(xhr.responseText).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/blobs\/up-/);
  expect(xhr.responseURL).toBe(`${server.origin}/v2/cloudsync/x.sqlite/${'0'.repeat(32)}/upload`);
  expect(events).toEqual(['rs4', `load${xhr.responseText.length}`]);
  const put = new SyncXMLHttpRequest();
  put.open('PUT', xhr.responseText, false);
  put.responseType = 'arraybuffer';
  put.send(new Uint8Array([1, 2, 3]).subarray(1));
  expect(put.status).toBe(200);
  expect(put.response).toBeInstanceOf(ArrayBuffer);
  const get = new SyncXMLHttpRequest();
  get.open('GET', xhr.responseText, false);
  get.responseType = 'arraybuffer';
  get.send();
  expect([...new Uint8Array(get.response as ArrayBuffer)]).toEqual([2, 3]);
});

test('network errors surface as SQL errors (wrong key → Unauthorized, dead port → failure)', () => {
  const a = makeDb();
  try {
    a.exec(`INSERT INTO todos(id) VALUES ('x')`);
    a.value('SELECT cloudsync_network_init(?)', [`${server.origin}/testdb.sqlite?apikey=WRONG`]);
    expect(() => a.value('SELECT cloudsync_network_send_changes()')).toThrow(/Unauthorized/);
    a.value('SELECT cloudsync_network_init(?)', ['http://127.0.0.1:1/testdb.sqlite?apikey=TESTKEY123']);
    expect(() => a.value('SELECT cloudsync_network_send_changes()')).toThrow();
    expect(xhrLog().at(-1)?.error).toBeDefined();
  } finally {
    a.close();
  }
});

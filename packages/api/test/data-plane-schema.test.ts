/**
 * Schema-hash history (issue 4 item 4) through the real app over G3: deployed tables record
 * their hashes; strict mode refuses an unknown hash with the standard message and changes
 * nothing; lenient mode (OFFSYNC_SCHEMA_HASH_MODE=lenient) accepts it, remembers it in the
 * history, and stamps it into that device's downloads.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { centralRows, setupDatabase, startApp, TestDevice } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';

// Same columns, another type affinity: a different column-list schema hash, compatible rows.
const OTHER_DDL = "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, user_id TEXT NOT NULL DEFAULT '', title BLOB NOT NULL DEFAULT '')";

for (const mode of ['strict', 'lenient'] as const) {
  describe(`${mode} mode`, () => {
    let t: RunningApp;
    let db: { databaseId: string; apiKey: string };
    beforeAll(async () => {
      t = await startApp({ schemaHashMode: mode });
      db = await setupDatabase(t);
    });
    afterAll(async () => t.dispose());

    test('the deployed schema is known; a device with the same schema syncs', async () => {
      const d = new TestDevice(t, db.databaseId, db.apiKey);
      d.exec("INSERT INTO todos (id, title) VALUES ('s1', 'same')");
      expect((await d.upload()).body['failures']).toBeUndefined();
      const engine = await t.app.sync.databases.get(db.databaseId);
      expect(engine.engine.knownSchemaHashes()).toContain(d.engine.schemaHash());
    });

    test(mode === 'strict' ? 'an unknown hash is refused with the standard message' : 'an unknown hash is accepted and remembered', async () => {
      const d = new TestDevice(t, db.databaseId, db.apiKey, OTHER_DDL);
      const hash = d.engine.schemaHash();
      const central = (await t.app.sync.databases.get(db.databaseId)).engine;
      expect(central.isKnownSchemaHash(hash)).toBe(false);
      const before = centralRows(t, db.databaseId);
      d.exec("INSERT INTO todos (id, title) VALUES ('o1', 'other schema')");
      const r = await d.upload();
      expect(r.status).toBe(200);
      if (mode === 'strict') {
        const failure = (r.body['failures'] as { apply?: { code: string; message: string } } | undefined)?.apply;
        expect(failure?.code).toBe('schema_hash_unknown');
        // The standard message first; then what differs (schema-diagnosis.ts): here title's affinity.
        expect(failure?.message.startsWith(`Cannot apply the received payload because the schema hash is unknown ${hash}. `)).toBe(true);
        expect(failure?.message).toContain('column todos.title has another type on the device (affinity blob)');
        expect(centralRows(t, db.databaseId)).toEqual(before);
        expect(central.isKnownSchemaHash(hash)).toBe(false);
      } else {
        expect(r.body['failures']).toBeUndefined();
        expect(centralRows(t, db.databaseId)).toContainEqual(expect.objectContaining({ id: 'o1' }));
        expect(central.knownSchemaHashes()).toContain(hash);
        // Remembered for the device: its downloads carry its own hash, so its client accepts them.
        const peer = new TestDevice(t, db.databaseId, db.apiKey);
        peer.exec("INSERT INTO todos (id, title) VALUES ('p1', 'from peer')");
        await peer.upload();
        expect((await d.download()).status).toBe(200);
        expect(d.rows()).toContainEqual(expect.objectContaining({ id: 'p1' }));
      }
    });
  });
}

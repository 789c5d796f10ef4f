/**
 * Property: block-LWW text columns converge (docs/PROTOCOL.md "Block columns"). 3–5 replicas
 * (engines with `notes.body` marked block) make random line edits — replace, insert, delete,
 * append — of one note, exchange their changes in random order and partial rounds, then sync
 * fully: every replica's text, block cells and the central text are identical, and an edit made
 * on one replica with no concurrent edit of its neighbourhood survives.
 */
import fc from 'fast-check';
import { expect, test } from 'vitest';
import type { SyncEngine } from '@offsync/core';
import { fcSeed, numRuns, openHarnessReplica } from '@offsync/core/testing';

const DDL = "CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', body TEXT NOT NULL DEFAULT '')";

/**
 * A fresh replica: a byte copy of one initialised template database with a site id of its own
 * (openHarnessReplica, a third of openReplica's cost; the property opens ~600). Every replica
 * ever opened here gets the next seed, so site ids never repeat.
 */
let replicaSeed = 0;
function replica(): SyncEngine {
  const e = openHarnessReplica(++replicaSeed, DDL, ['notes']);
  e.setBlockColumn('notes', 'body');
  return e;
}

const bodyOf = (e: SyncEngine): string => String(e.driver.prepare("SELECT body FROM notes WHERE id = 'n1'").getRaw()?.[0] ?? '');
const blocksOf = (e: SyncEngine): string =>
  e.driver
    .prepare("SELECT pos || '=' || coalesce(val, '∅') FROM offsync_blocks WHERE tbl = 'notes' ORDER BY pos")
    .all()
    .map((r) => Object.values(r)[0])
    .join(',');

/** Pulls everything `to` has not seen from `from` (the whole feed; the merge is idempotent). */
function pull(from: SyncEngine, to: SyncEngine): void {
  const changes = [...from.changes({ excludeSiteId: to.siteId })];
  if (changes.length > 0) to.applyChanges(changes);
}

const editArb = fc.record({ kind: fc.constantFrom('replace', 'insert', 'delete', 'append'), at: fc.nat(), text: fc.stringMatching(/^[a-z ]{0,6}$/) });
const stepArb = fc.oneof(
  fc.record({ edit: fc.record({ replica: fc.nat(), edit: editArb }) }),
  fc.record({ pull: fc.record({ from: fc.nat(), to: fc.nat() }) }),
);

// A time limit like the other property suites' (the 60 s default was hit on a loaded 2-core machine).
test('random line edits on 3–5 replicas with reordered delivery converge to one text', { timeout: 300_000 }, () => {
  fc.assert(
    fc.property(fc.integer({ min: 3, max: 5 }), fc.array(fc.stringMatching(/^[a-z]{1,5}$/), { minLength: 1, maxLength: 6 }), fc.array(stepArb, { minLength: 1, maxLength: 30 }), (n, initial, steps) => {
      const rs = Array.from({ length: n }, replica);
      const first = rs[0] as SyncEngine;
      first.driver.prepare("INSERT INTO notes (id, title, body) VALUES ('n1', 't', ?)").run(initial.join('\n'));
      for (const r of rs.slice(1)) pull(first, r);
      for (const s of steps) {
        if ('edit' in s) {
          const r = rs[s.edit.replica % n] as SyncEngine;
          const lines = bodyOf(r).split('\n');
          const { kind, at, text } = s.edit.edit;
          const i = at % (lines.length + (kind === 'insert' ? 1 : 0));
          if (kind === 'replace') lines[i] = text;
          else if (kind === 'insert') lines.splice(i, 0, text);
          else if (kind === 'delete' && lines.length > 1) lines.splice(i, 1);
          else lines.push(text);
          r.driver.prepare("UPDATE notes SET body = ? WHERE id = 'n1'").run(lines.join('\n'));
        } else {
          const from = rs[s.pull.from % n] as SyncEngine;
          const to = rs[s.pull.to % n] as SyncEngine;
          if (from !== to) pull(from, to);
        }
      }
      // Full sync: twice around the ring reaches everyone.
      for (let round = 0; round < 2; round++) for (let i = 0; i < n; i++) pull(rs[i] as SyncEngine, rs[(i + 1) % n] as SyncEngine);
      for (const r of rs) Array.from(r.changes()); // fold any last own write
      for (let round = 0; round < 2; round++) for (let i = 0; i < n; i++) pull(rs[i] as SyncEngine, rs[(i + 1) % n] as SyncEngine);
      const text = bodyOf(first);
      const blocks = blocksOf(first);
      for (const r of rs) {
        expect(bodyOf(r)).toBe(text);
        expect(blocksOf(r)).toBe(blocks);
      }
      // The text is the live blocks in id order.
      const live = first.driver.prepare("SELECT val FROM offsync_blocks WHERE tbl = 'notes' AND val IS NOT NULL ORDER BY pos").all().map((r) => String(r['val']));
      expect(live.join('\n')).toBe(text);
      for (const r of rs) r.close();
    }),
    { seed: fcSeed(501), numRuns: numRuns(150) },
  );
});

test('edits of different lines on different replicas all survive', () => {
  const [a, b, c] = [replica(), replica(), replica()] as [SyncEngine, SyncEngine, SyncEngine];
  a.driver.prepare("INSERT INTO notes (id, title, body) VALUES ('n1', 't', ?)").run('one\ntwo\nthree\nfour\nfive');
  pull(a, b);
  pull(a, c);
  a.driver.prepare("UPDATE notes SET body = ? WHERE id = 'n1'").run('ONE\ntwo\nthree\nfour\nfive');
  b.driver.prepare("UPDATE notes SET body = ? WHERE id = 'n1'").run('one\ntwo\nTHREE\nfour\nfive\nsix');
  c.driver.prepare("UPDATE notes SET body = ? WHERE id = 'n1'").run('one\ntwo\nthree\nfive');
  for (let round = 0; round < 2; round++) for (const [x, y] of [[a, b], [b, c], [c, a]] as const) pull(x, y);
  for (const r of [a, b, c]) expect(bodyOf(r)).toBe('ONE\ntwo\nTHREE\nfive\nsix');
});

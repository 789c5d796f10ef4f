/**
 * Metadata under insert/delete churn (issue 11, item 4): a server and two devices; each of 10
 * rounds one device inserts N rows and the other deletes as many older ones, both sync. Prints the
 * server's CRDT metadata bytes per live row before and after compaction at the devices' min
 * acknowledged version, and a fresh copy's (a device that downloaded from 0). Bytes = dbstat
 * payload of the clock tables, their indexes and the tombstone tables.
 * Run: `npx tsx bench/compaction.bench.ts [N]` (default N = 1000).
 */
import type { SyncEngine } from '../src/index.ts';
import { openReplica } from '../src/testing/index.ts';

const N = Number(process.argv[2] ?? 1000);
const META = /(__crdt_rows|__crdt_cells|^offsync_tombstones$|^offsync_prior$|^offsync_evictions$|^offsync_blocks)/;
function metadataBytes(e: SyncEngine): number {
  e.foldPending();
  let sum = 0;
  for (const r of e.driver.prepare('SELECT name, sum(payload) AS p FROM dbstat GROUP BY name').all()) if (META.test(String(r['name']))) sum += Number(r['p']);
  return sum;
}
const server = openReplica();
const devs = [openReplica(), openReplica()].map((e) => ({ e, sent: 0, recv: 0 }));
const sync = (d: (typeof devs)[number]): void => {
  const up = [...d.e.changes({ localOnly: true, after: { dbVersion: d.sent, seq: Number.MAX_SAFE_INTEGER } })];
  d.sent = d.e.dbVersion();
  if (up.length > 0) server.applyChanges(up);
  const at = server.dbVersion();
  const down = [...server.changes({ excludeSiteId: d.e.siteId, after: { dbVersion: d.recv, seq: Number.MAX_SAFE_INTEGER } })];
  if (down.length > 0) d.e.applyChanges(down);
  d.recv = at;
};
const [a, b] = devs as [(typeof devs)[number], (typeof devs)[number]];
let next = 0;
const live: string[] = [];
for (let round = 0; round < 10; round++) {
  const ins = a.e.driver.prepare("INSERT INTO todos (id, title) VALUES (?, 'churn')");
  a.e.driver.transaction(() => {
    for (let i = 0; i < N; i++) {
      const id = `row-${String(next++).padStart(8, '0')}`;
      ins.run(id);
      live.push(id);
    }
  });
  sync(a);
  sync(b);
  const del = b.e.driver.prepare('DELETE FROM todos WHERE id = ?');
  b.e.driver.transaction(() => {
    for (const id of live.splice(0, round === 0 ? 0 : N)) del.run(id);
  });
  sync(b);
  sync(a);
}
for (const d of devs) sync(d);
const rows = live.length;
const before = metadataBytes(server);
const r = server.compact({ upTo: Math.min(...devs.map((d) => d.recv)) });
const after = metadataBytes(server);
const fresh = openReplica();
fresh.applyChanges([...server.changes({ after: { dbVersion: 0, seq: 0 } })]);
const copy = metadataBytes(fresh);
const per = (x: number): string => `${(x / rows).toFixed(1)} B/row`;
console.log(`churn: 10 rounds, N = ${N}, ${rows} live rows, ${r.rows} tombstones compacted`);
console.log(`server before compaction  ${per(before)}  (${(before / copy).toFixed(2)}× fresh copy)`);
console.log(`server after compaction   ${per(after)}  (${(after / copy).toFixed(2)}× fresh copy)`);
console.log(`fresh copy (from 0)       ${per(copy)}`);

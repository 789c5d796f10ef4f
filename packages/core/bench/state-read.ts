/**
 * Micro-bench of the change-by-change merge's reads (apply.ts `Merge.enterRow`, the tie's value
 * read) on a table like bench/apply-profile.ts's after a local update of every row, in µs of CPU
 * per row (best of REPS, variants rotated): `rowState` as table-context.ts prepares it, with fewer
 * cell probes (rowState1/2), the record alone, `SELECT ?` (the per-call floor), the cells by
 * join or group_concat, and set-based reads of many keys in one statement (a VALUES list of
 * 16/64 keys with rowState's columns, with the joined values, and `stateByPk`'s shape).
 * `BENCH_ROWS=50000 npx tsx bench/state-read.ts`. Never fails on timings.
 */
import { openSyncDatabase } from '@offsync/core/sqlite';
import { encodePk } from '@offsync/core';

const N = Number(process.env['BENCH_ROWS'] ?? 100_000);
const e = openSyncDatabase(':memory:', { wal: false });
e.driver.exec("CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, note TEXT)");
e.init('todos');
const ids = Array.from({ length: N }, (_, i) => `018f${i.toString(16).padStart(8, '0')}-7c3a-4b1e-9d2f-${(i * 7919).toString(16).padStart(12, '0')}`);
const ins = e.driver.prepare('INSERT INTO todos (id, title, done, note) VALUES (?, ?, ?, ?)');
e.driver.exec('BEGIN');
for (let i = 0; i < N; i++) ins.run(ids[i] as string, `todo number ${i}`, BigInt(i % 2), i % 3 === 0 ? null : `note ${i}`);
e.driver.exec('COMMIT');
e.driver.exec("UPDATE todos SET title = 'B' || title");
e.foldPending();
const pks = ids.map((k) => encodePk([k]));
const cpu = (f: () => void): number => {
  const c0 = process.cpuUsage();
  f();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
};
const r = '"todos__crdt_rows"';
const c = '"todos__crdt_cells"';
const cols = [1, 2, 3];
const stateCols = `CASE WHEN r.cl <> 0 THEN r.cl END, r.sent, r.icv, r.db_version, r.seq, r.site, CASE WHEN r.pk IS NULL OR r.cl = 0 THEN EXISTS (SELECT 1 FROM ${c} x WHERE x.rid = r.rid) END${cols.map((id) => `, (SELECT x.col_version FROM ${c} x WHERE x.rid = r.rid AND x.col = ${id})`).join('')}, r.rid`;
const one = e.driver.prepare(`SELECT ${stateCols} FROM (SELECT ? AS k) q LEFT JOIN ${r} r ON r.pk = q.k`);
const tie = e.driver.prepare('SELECT "title" FROM todos WHERE id = ?');
const w = `(CASE hex(substr(k.pk, 1, 2)) WHEN '010B' THEN 1 WHEN '0113' THEN 2 WHEN '011B' THEN 3 WHEN '0123' THEN 4 END)`;
const chunk = (n: number, vals: boolean) =>
  e.driver.prepare(`WITH k(i, pk) AS (VALUES ${Array.from({ length: n }, (_, i) => `(${i}, ?)`).join(', ')})
    SELECT k.i, ${stateCols}${vals ? `, b.id IS NOT NULL, b.title, b.done, b.note` : ''} FROM k LEFT JOIN ${r} r ON r.pk = k.pk${vals ? ` LEFT JOIN todos b ON b.id = CAST(substr(k.pk, 3 + ${w}) AS TEXT)` : ''}`);
const recOnly = e.driver.prepare(`SELECT r.cl, r.sent, r.icv, r.db_version, r.seq, r.site, r.rid FROM ${r} r WHERE r.pk = ?`);
const gc = e.driver.prepare(`SELECT CASE WHEN r.cl <> 0 THEN r.cl END, r.sent, r.icv, r.db_version, r.seq, r.site, (SELECT group_concat(x.col || ',' || x.col_version) FROM ${c} x WHERE x.rid = r.rid), r.rid FROM (SELECT ? AS k) q LEFT JOIN ${r} r ON r.pk = q.k`);
const jn = e.driver.prepare(`SELECT CASE WHEN r.cl <> 0 THEN r.cl END, r.sent, r.icv, r.db_version, r.seq, r.site, r.rid, x.col, x.col_version FROM (SELECT ? AS k) q LEFT JOIN ${r} r ON r.pk = q.k LEFT JOIN ${c} x ON x.rid = r.rid`);
const nop = e.driver.prepare('SELECT ?');
const f = (x: string) => `CAST(${x} AS REAL)`;
const realCols = `CASE WHEN r.cl <> 0 THEN ${f('r.cl')} END, ${f('r.sent')}, ${f('r.icv')}, ${f('r.db_version')}, ${f('r.seq')}, ${f('r.site')}, CASE WHEN r.pk IS NULL OR r.cl = 0 THEN EXISTS (SELECT 1 FROM ${c} x WHERE x.rid = r.rid) END${cols.map((id) => `, (SELECT ${f('x.col_version')} FROM ${c} x WHERE x.rid = r.rid AND x.col = ${id})`).join('')}, ${f('r.rid')}`;
const oneReal = e.driver.prepare(`SELECT ${realCols} FROM (SELECT ? AS k) q LEFT JOIN ${r} r ON r.pk = q.k`);
const oneNoSub = e.driver.prepare(`SELECT CASE WHEN r.cl <> 0 THEN ${f('r.cl')} END, ${f('r.sent')}, ${f('r.icv')}, ${f('r.db_version')}, ${f('r.seq')}, ${f('r.site')}, ${f('r.rid')} FROM (SELECT ? AS k) q LEFT JOIN ${r} r ON r.pk = q.k`);
const one1 = e.driver.prepare(`SELECT ${stateCols.replace(/, \(SELECT x\.col_version FROM "todos__crdt_cells" x WHERE x\.rid = r\.rid AND x\.col = [23]\)/g, '')} FROM (SELECT ? AS k) q LEFT JOIN ${r} r ON r.pk = q.k`);
const one2 = e.driver.prepare(`SELECT ${stateCols.replace(/, \(SELECT x\.col_version FROM "todos__crdt_cells" x WHERE x\.rid = r\.rid AND x\.col = [3]\)/g, '')} FROM (SELECT ? AS k) q LEFT JOIN ${r} r ON r.pk = q.k`);
console.log(one1.getRaw(pks[3] as Uint8Array), one2.getRaw(pks[3] as Uint8Array));
const byPk = (n: number) => {
  const g = (x: string) => `CAST(${x} AS REAL)`;
  const rec = (x: string) => `CASE WHEN r.cl <> 0 THEN ${x} END`;
  const s = e.driver.prepare(`WITH k(i, pk) AS (VALUES ${Array.from({ length: n }, (_, i) => `(${i}.0, ?)`).join(', ')})
    SELECT k.i, ${['r.cl', 'r.sent', 'r.icv', 'r.db_version', 'r.seq', 'r.site'].map((x) => rec(g(x))).join(', ')}, ${g('x.col')}, ${g('x.col_version')}, ${g('x.db_version')}, ${g('x.seq')}, ${g('x.site')}, CASE WHEN ${w} IS NULL THEN NULL WHEN b.id IS NOT NULL THEN 1.0 ELSE 0.0 END, b.title, b.done, b.note
    FROM k LEFT JOIN ${r} r ON r.pk = k.pk LEFT JOIN ${c} x ON x.rid = r.rid LEFT JOIN todos b ON b.id = CAST(substr(k.pk, 3 + ${w}) AS TEXT)`);
  return () => { for (let at = 0; at + n <= N; at += n) for (const row of s.iterateRaw(...pks.slice(at, at + n))) sink += row.length; };
};
const direct = e.driver.prepare(`SELECT ${realCols} FROM ${r} r WHERE r.pk = ?`);
let sink = 0;
const per = (s: ReturnType<typeof e.driver.prepare>, xs: readonly unknown[]) => () => { for (const x of xs) sink += s.getRaw(x as Uint8Array) === undefined ? 0 : 1; };
const chunked = (n: number, vals: boolean) => { const s = chunk(n, vals); return () => { for (let at = 0; at + n <= N; at += n) for (const row of s.iterateRaw(...pks.slice(at, at + n))) sink += row.length; }; };
const variants: [string, () => void][] = [
  ['rowState', per(one, pks)], ['rowState1', per(one1, pks)], ['rowState2', per(one2, pks)], ['rowStateReal', per(oneReal, pks)], ['recReal', per(oneNoSub, pks)], ['directReal', per(direct, pks)], ['tie', per(tie, ids)], ['recOnly', per(recOnly, pks)], ['groupConcat', per(gc, pks)], ['nop', per(nop, pks)],
  ['join', () => { for (const pk of pks) for (const row of jn.iterateRaw(pk)) sink += row.length; }],
  ['chunk64', chunked(64, false)], ['chunk64+vals', chunked(64, true)], ['chunk16', chunked(16, false)], ['stateByPk64', byPk(64)], ['stateByPk256', byPk(256)], ['rowState+tie', () => { per(one, pks)(); per(tie, ids)(); }],
];
console.log(one.getRaw(pks[5] as Uint8Array));
const best = new Map<string, number>();
for (let rep = 0; rep < Number(process.env['REPS'] ?? 5); rep++) {
  e.driver.exec('BEGIN');
  for (let k = 0; k < variants.length; k++) {
    const [name, f] = variants[(k + rep) % variants.length] as [string, () => void];
    const t = cpu(f);
    best.set(name, Math.min(best.get(name) ?? Infinity, (t * 1000) / N));
  }
  e.driver.exec('COMMIT');
}
console.log([...best].map(([k, v]) => `${k} ${v.toFixed(2)}`).join('  '), sink > 0 ? '' : '!');
e.close();

/**
 * A tiny todo CLI that syncs through OffSync. Run it in two terminals with different files:
 *
 *   OFFSYNC_DATABASE_ID=db_… OFFSYNC_API_KEY=osk_… npx tsx todo.ts alice.db
 *   OFFSYNC_DATABASE_ID=db_… OFFSYNC_API_KEY=osk_… npx tsx todo.ts bob.db
 *
 * Commands: `add <title>`, `done <n>`, `rm <n>`, `ls`, `sync`, `quit`. Live mode is on: what one
 * terminal writes shows up in the other within about a second.
 */
import { createInterface } from 'node:readline/promises';
import { openDatabase } from '@offsync/client/sync';

const file = process.argv[2] ?? 'todo.db';
const databaseId = process.env['OFFSYNC_DATABASE_ID'];
const apiKey = process.env['OFFSYNC_API_KEY'];
if (databaseId === undefined || apiKey === undefined) {
  console.error('set OFFSYNC_DATABASE_ID and OFFSYNC_API_KEY (see README.md)');
  process.exit(1);
}

const todo = openDatabase(file, { serverUrl: process.env['OFFSYNC_URL'] ?? 'http://127.0.0.1:4000', databaseId, apiKey, pollMs: 1000 });
const { db } = todo;
db.exec(`CREATE TABLE IF NOT EXISTS todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0)`);
db.prepare(`SELECT cloudsync_init('todos')`).get();

interface Todo {
  id: string;
  title: string;
  done: number;
}
const list = (): Todo[] => db.prepare('SELECT id, title, done FROM todos ORDER BY id').all() as Todo[];
const show = (): void => {
  const rows = list();
  if (rows.length === 0) console.log('  (nothing to do)');
  rows.forEach((t, i) => console.log(`  ${i + 1}. [${t.done ? 'x' : ' '}] ${t.title}`));
};
const nth = (arg: string): Todo | undefined => list()[Number(arg) - 1];

todo.on('state', (e) => console.log(`\n[sync] ${e.state}`));
todo.on('changes', (c) => {
  console.log(`\n[sync] ${c.rows} change(s) received`);
  show();
});
todo.on('error', (e) => console.log(`\n[sync] ${e.retryable ? 'retrying after' : 'error:'} ${e.error.message}`));
todo.start();

const rl = createInterface({ input: process.stdin, output: process.stdout });
console.log(`todo list in ${file}, site ${todo.siteId}. Commands: add <title> | done <n> | rm <n> | ls | sync | quit`);
for (;;) {
  const line = (await rl.question('> ')).trim();
  const [cmd = '', ...rest] = line.split(' ');
  const arg = rest.join(' ');
  if (cmd === 'quit' || cmd === 'exit') break;
  if (cmd === 'add' && arg !== '') db.prepare('INSERT INTO todos (id, title) VALUES (cloudsync_uuid(), ?)').run(arg);
  else if (cmd === 'done') db.prepare('UPDATE todos SET done = 1 - done WHERE id = ?').run(nth(arg)?.id ?? '');
  else if (cmd === 'rm') db.prepare('DELETE FROM todos WHERE id = ?').run(nth(arg)?.id ?? '');
  else if (cmd === 'sync') console.log(JSON.stringify(await todo.sync()));
  else if (cmd !== 'ls') console.log('commands: add <title> | done <n> | rm <n> | ls | sync | quit');
  show();
}
rl.close();
await todo.close();

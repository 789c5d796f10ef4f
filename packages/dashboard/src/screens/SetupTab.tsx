/** Database Setup: the connection card, then (when healthy) the table picker, Deploy Changes and Alter table. */
import { useState } from 'react';
import type { AlterTableMutation, DatabaseConnectionFieldsFragment, TableFieldsFragment } from '@offsync/client';
import { alterRefusal, blockColumnRefusals, refusedTables } from '../api.ts';
import { formatRelative } from '../format.ts';
import { useApi, useAsync } from '../hooks.ts';
import { describeAlterRefusal, splitStatements } from '../logic/alter.ts';
import type { AlterRefusalView } from '../logic/alter.ts';
import { blockCandidates, canSelect, deployOutcome, deployPlan, deselectAll, filterTables, initialSelection, selectAll, toggle, toggleBlockColumn } from '../logic/tables.ts';
import type { TableOutcome } from '../logic/tables.ts';
import { Button, Card, ConfirmDialog, ErrorBox, Modal, Spinner, StatusDot, useAction } from '../ui/components.tsx';
import { ConnectionForm, emptyConnection, toConnectionInput } from './ConnectionForm.tsx';
import type { DatabaseDetails } from './DatabaseView.tsx';

export function SetupTab({ database, onDatabase, reloadDatabase }: { database: DatabaseDetails; onDatabase: (db: DatabaseDetails) => void; reloadDatabase: () => Promise<void> }) {
  const healthy = database.connection.status === 'OK';
  return (
    <div className="stack">
      <ConnectionCard database={database} onDatabase={onDatabase} />
      {healthy ? <TablePicker databaseId={database.id} kind={database.kind} extensionInstalled={database.connection.extensionInstalled} onDeployed={reloadDatabase} /> : null}
    </div>
  );
}

function ConnectionCard({ database, onDatabase }: { database: DatabaseDetails; onDatabase: (db: DatabaseDetails) => void }) {
  const api = useApi();
  const c: DatabaseConnectionFieldsFragment = database.connection;
  const [editing, setEditing] = useState(false);
  const [restoring, setRestoring] = useState(false);
  const check = useAction(async () => {
    const r = await api.databaseConnection({ id: database.id });
    onDatabase({ ...database, connection: r.database.connection });
  });
  const postgres = database.kind === 'POSTGRES';
  const actions = (
    <>
      <Button className="btn-small" busy={check.busy} busyLabel="Checking…" onClick={() => void check.run()}>Check again</Button>
      {postgres && c.status === 'OK' && <Button className="btn-small" onClick={() => setEditing(true)}>Edit</Button>}
    </>
  );
  return (
    <Card title="Connection" actions={actions} className="connection-card">
      <dl className="facts">
        <div><dt>Host</dt><dd>{c.host ?? (postgres ? '—' : 'OffSync server (local file)')}</dd></div>
        <div><dt>Port</dt><dd>{c.port ?? '—'}</dd></div>
        <div><dt>Database</dt><dd className="break">{c.database ?? '—'}</dd></div>
        <div><dt>Status</dt><dd>{c.status === 'OK' ? <StatusDot tone="ok">Connected</StatusDot> : <StatusDot tone="error">{c.status === 'FILE_MISSING' ? 'File missing' : 'Not connected'}</StatusDot>}</dd></div>
      </dl>
      <p className="muted">Checked {formatRelative(c.checkedAt)}</p>
      <ErrorBox error={check.error} />
      {c.status !== 'OK' && (
        <div className="alert alert-warn" role="alert">
          <strong>{c.error?.message ?? 'The database cannot be reached.'}</strong>
          {postgres ? (
            <>
              <span>Check the host, port and credentials OffSync uses to reach your PostgreSQL server.</span>
              <Button variant="primary" className="btn-small" onClick={() => setEditing(true)}>Configure Connection</Button>
            </>
          ) : c.status === 'FILE_MISSING' ? (
            <>
              <span>Sync refuses this database until you accept the file as it is now (a missing file is re-created empty).</span>
              <Button variant="primary" className="btn-small" onClick={() => setRestoring(true)}>Restore Connection</Button>
            </>
          ) : (
            <span>Check that the server can read and write its DATA_DIR, then check again.</span>
          )}
        </div>
      )}
      {c.status === 'OK' && !c.extensionInstalled && postgres && (
        <div className="alert alert-warn" role="note">
          <strong>The OffSync metadata schema (<code>offsync</code>) is not installed in this database yet.</strong>
          <span>It is created when you deploy the first table; if tables were deployed before, it was dropped: see docs/CONTROL-PLANE.md, “POSTGRES databases”.</span>
        </div>
      )}
      {editing && <ConnectionSheet database={database} onClose={() => setEditing(false)} onSaved={(next) => { setEditing(false); onDatabase(next); }} />}
      {restoring && (
        <ConfirmDialog title="Restore connection?" confirmLabel="Restore Connection" busyLabel="Restoring…" onCancel={() => setRestoring(false)} onConfirm={async () => {
          const r = await api.restoreConnection({ databaseId: database.id });
          onDatabase({ ...database, ...r.restoreConnection });
          setRestoring(false);
        }}>
          <p>OffSync accepts the database file as it is now. Devices that synced the old file keep their data and upload it again.</p>
        </ConfirmDialog>
      )}
    </Card>
  );
}

function ConnectionSheet({ database, onClose, onSaved }: { database: DatabaseDetails; onClose: () => void; onSaved: (db: DatabaseDetails) => void }) {
  const api = useApi();
  const c = database.connection;
  const [draft, setDraft] = useState({ ...emptyConnection, host: c.host ?? '', port: String(c.port ?? 5432), database: c.database ?? '' });
  const action = useAction(async () => {
    const r = await api.configureConnection({ databaseId: database.id, connection: toConnectionInput(draft) });
    onSaved({ ...database, ...r.configureConnection });
  });
  return (
    <Modal title="Connection settings" onClose={onClose} wide>
      <form className="form" onSubmit={(e) => { e.preventDefault(); void action.run(); }}>
        <ConnectionForm value={draft} onChange={setDraft} passwordHint="The stored password is never shown; leave it empty to keep it." />
        <ErrorBox error={action.error} />
        <div className="dialog-actions">
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" busy={action.busy} busyLabel="Connecting…">Save and connect</Button>
        </div>
      </form>
    </Modal>
  );
}

export function TablePicker({ databaseId, kind, extensionInstalled, onDeployed }: { databaseId: string; kind: 'SQLITE' | 'POSTGRES'; extensionInstalled: boolean; onDeployed?: () => void | Promise<void> }) {
  const api = useApi();
  const [chosen, setChosen] = useState<Set<string> | null>(null);
  const [filter, setFilter] = useState('');
  const [outcome, setOutcome] = useState<TableOutcome[] | null>(null);
  /** Block columns picked for tables not synced yet (sent with Deploy Changes when they are added). */
  const [blocks, setBlocks] = useState<Map<string, string[]>>(new Map());
  /** The synced table whose Alter table form is open. */
  const [altering, setAltering] = useState<string | null>(null);
  const state = useAsync(async () => {
    const r = await api.tables({ databaseId });
    setChosen(initialSelection(r.database.tables.nodes));
    return r.database.tables.nodes;
  }, [api, databaseId]);
  const tables: TableFieldsFragment[] = state.data ?? [];
  const selection = chosen ?? new Set<string>();
  const visible = filterTables(tables, filter);
  const plan = deployPlan(tables, selection, blocks);
  const blockColumnsOf = (name: string): string[] => tables.find((t) => t.name === name)?.blockColumns ?? [];
  const deploy = useAction(async () => {
    setOutcome(null);
    try {
      const r = await api.deployTables({ databaseId, tables: plan.tables, ...(plan.options.length > 0 ? { options: plan.options } : {}) });
      setOutcome(deployOutcome(plan, r.deployTables));
      state.setData(r.deployTables.tables.nodes);
      setChosen(initialSelection(r.deployTables.tables.nodes));
      setBlocks(new Map());
      await onDeployed?.();
    } catch (e) {
      const refused = [...refusedTables(e), ...blockColumnRefusals(e)];
      if (refused.length > 0) setOutcome(deployOutcome(plan, { refused }));
      throw e;
    }
  });

  if (state.data === undefined) return state.error ? <ErrorBox error={state.error} onRetry={() => void state.reload()} /> : <Spinner label="Loading tables…" />;
  return (
    <Card title="Tables to sync" className="table-picker" actions={<Button className="btn-small" onClick={() => void state.reload()}>Refresh</Button>}>
      {tables.length === 0 ? (
        <p className="muted">
          This database has no tables yet. Create them in {kind === 'SQLITE' ? 'the database file (with your app’s migrations or the sqlite3 shell)' : 'PostgreSQL (schema public)'}, then refresh.
          {kind === 'SQLITE' && !extensionInstalled ? ' OffSync adds its metadata when you deploy the first table.' : ''}
        </p>
      ) : (
        <>
          <div className="picker-toolbar">
            <label htmlFor="table-filter" className="visually-hidden">Filter tables</label>
            <input id="table-filter" type="search" placeholder="Filter tables" value={filter} onChange={(e) => setFilter(e.target.value)} />
            <span className="muted" aria-live="polite" data-testid="selected-count">{selection.size} of {tables.length} selected</span>
            <Button className="btn-small" onClick={() => setChosen(selectAll(selection, visible))}>Select All</Button>
            <Button className="btn-small" onClick={() => setChosen(deselectAll(selection, visible))}>Deselect All</Button>
          </div>
          <ul className="table-list">
            {visible.map((t) => {
              const id = `table-${t.name}`;
              const selectable = canSelect(t, selection);
              return (
                <li key={t.name} className={t.schemaIssues.length > 0 ? 'has-issues' : undefined}>
                  <input type="checkbox" id={id} checked={selection.has(t.name)} disabled={!selectable} onChange={() => setChosen(toggle(selection, t.name))} aria-describedby={t.schemaIssues.length > 0 ? `${id}-issues` : undefined} />
                  <label htmlFor={id}>
                    <span className="table-name">{t.name}</span>
                    <span className="muted"> {t.columns.length} columns</span>
                  </label>
                  {t.enabled && <span className="badge badge-on">Enabled</span>}
                  {t.selected && !t.enabled && <span className="badge badge-off">Deployed</span>}
                  {t.selected && <Button className="btn-small" aria-label={`Alter table ${t.name}`} onClick={() => setAltering(t.name)}>Alter table</Button>}
                  {t.selected && t.blockColumns.length > 0 && (
                    <p className="block-columns" data-testid={`block-columns-${t.name}`}>
                      Block columns: {t.blockColumns.map((c, i) => <span key={c}>{i > 0 ? ', ' : ''}<code>{c}</code></span>)}
                    </p>
                  )}
                  {!t.selected && selection.has(t.name) && kind === 'SQLITE' && (
                    <BlockColumnPicker table={t} picked={blocks.get(t.name) ?? []} onToggle={(column) => setBlocks(toggleBlockColumn(blocks, t.name, column, t.columns.map((c) => c.name)))} />
                  )}
                  {t.schemaIssues.length > 0 && (
                    <ul className="issues" id={`${id}-issues`} aria-label={`Schema issues of ${t.name}`}>
                      {t.schemaIssues.map((i) => <li key={i.rule + i.message}>{i.message}</li>)}
                    </ul>
                  )}
                </li>
              );
            })}
            {visible.length === 0 && <li className="muted">No table matches “{filter}”.</li>}
          </ul>
        </>
      )}
      {outcome !== null && outcome.length > 0 && (
        <div className="deploy-result" role="status" aria-label="Deploy result">
          <h4>Deploy result</h4>
          <ul>
            {outcome.map((o) => (
              <li key={o.table} className={`outcome-${o.result}`}>
                <strong>{o.table}</strong>: {o.result === 'added' ? `now synced${blockColumnsOf(o.table).length > 0 ? ` (block columns: ${blockColumnsOf(o.table).join(', ')})` : ''}` : o.result === 'removed' ? 'no longer synced' : o.result === 'refused' ? `refused — ${o.message}` : 'not deployed (another table was refused; nothing changed)'}
              </li>
            ))}
          </ul>
        </div>
      )}
      <ErrorBox error={deploy.error} />
      {altering !== null && (
        <AlterTableSheet databaseId={databaseId} table={altering} onClose={() => setAltering(null)}
          onAltered={(node) => state.setData(tables.map((t) => (t.name === node.name ? node : t)))} />
      )}
      <div className="card-footer">
        <span className="muted">{plan.changed ? `${plan.add.length} to add, ${plan.remove.length} to remove${plan.options.length > 0 ? `, block columns on ${plan.options.length}` : ''}` : 'No changes to deploy'}</span>
        <Button variant="primary" busy={deploy.busy} busyLabel="Deploying…" disabled={!plan.changed} onClick={() => void deploy.run()}>Deploy Changes</Button>
      </div>
    </Card>
  );
}

/**
 * Block columns of a table about to be added (SQLITE databases): TEXT columns outside the primary
 * key whose text devices merge line by line (docs/PROTOCOL.md "Block columns"). A synced table
 * keeps its block columns; to change them, remove the table and add it again.
 */
function BlockColumnPicker({ table, picked, onToggle }: { table: TableFieldsFragment; picked: readonly string[]; onToggle: (column: string) => void }) {
  const candidates = blockCandidates(table.columns);
  const id = `blocks-${table.name}`;
  return (
    <fieldset className="block-picker" aria-describedby={`${id}-hint`}>
      <legend>Block columns of {table.name}</legend>
      {candidates.length === 0 ? (
        <span className="muted" id={`${id}-hint`}>No TEXT column outside the primary key.</span>
      ) : (
        <>
          {candidates.map((c) => (
            <label key={c.name} className="block-choice">
              <input type="checkbox" checked={picked.includes(c.name)} onChange={() => onToggle(c.name)} aria-label={`Block column ${c.name} of ${table.name}`} />
              <code>{c.name}</code>
            </label>
          ))}
          <span className="muted hint" id={`${id}-hint`}>Line-by-line merge: edits of different lines by different devices both survive. Devices must call <code>cloudsync_set_column</code> with <code>'algo', 'block'</code> too. Fixed once deployed.</span>
        </>
      )}
    </fieldset>
  );
}

/**
 * Alter table (a synced table): ALTER TABLE statements run by alterTable in one transaction
 * (docs/PROTOCOL.md §P6 "Alteration"); shows the statements that ran and the new schema hashes,
 * or the refusal in plain words with the statement it concerns. Nothing is sent without a statement.
 */
function AlterTableSheet({ databaseId, table, onClose, onAltered }: { databaseId: string; table: string; onClose: () => void; onAltered: (table: TableFieldsFragment) => void }) {
  const api = useApi();
  const [text, setText] = useState('');
  const [result, setResult] = useState<AlterTableMutation['alterTable'] | null>(null);
  const [refusal, setRefusal] = useState<AlterRefusalView | null>(null);
  const statements = splitStatements(text);
  const alter = useAction(async () => {
    if (statements.length === 0) return;
    setResult(null);
    setRefusal(null);
    try {
      const r = await api.alterTable({ databaseId, table, statements });
      setResult(r.alterTable);
      setText('');
      onAltered(r.alterTable.table);
    } catch (e) {
      const info = alterRefusal(e);
      if (info === undefined) throw e;
      setRefusal(describeAlterRefusal(info, statements));
    }
  });
  const id = `alter-${table}`;
  return (
    <Modal title={`Alter table ${table}`} onClose={() => !alter.busy && onClose()} wide>
      <form className="form alter-form" onSubmit={(e) => { e.preventDefault(); if (statements.length > 0) void alter.run(); }}>
        <p className="muted">
          ADD COLUMN, DROP COLUMN, RENAME COLUMN or ALTER COLUMN of <code>{table}</code> (not its primary key), one statement per line or separated by <code>;</code>.
          They run in one transaction: all or nothing. Devices on the old schema keep syncing.
        </p>
        <label htmlFor={id}>ALTER TABLE statements</label>
        <textarea id={id} rows={5} value={text} onChange={(e) => setText(e.target.value)} placeholder={`ALTER TABLE ${table} ADD COLUMN due TEXT`} spellCheck={false} data-autofocus />
        <span className="muted" aria-live="polite">{statements.length === 0 ? 'No statement yet' : `${statements.length} ${statements.length === 1 ? 'statement' : 'statements'}`}</span>
        {refusal !== null && (
          <div className="alert alert-error" role="alert" aria-label="Alter refused">
            <strong>{refusal.sentence}</strong>
            {refusal.statement !== undefined && <span>Statement {refusal.statement.position}: <code>{refusal.statement.text}</code></span>}
            <span>{refusal.message}</span>
            <span>Nothing was changed.</span>
          </div>
        )}
        <ErrorBox error={alter.error} />
        {result !== null && (
          <div className="deploy-result alter-result" role="status" aria-label="Alter result">
            <h4>{result.table.name} altered</h4>
            <p>Statements that ran:</p>
            <ol>{result.statements.map((s, i) => <li key={i}><code>{s}</code></li>)}</ol>
            <dl className="facts">
              <div><dt>Schema hash</dt><dd><code>{result.schemaHash}</code></dd></div>
              <div><dt>DDL schema hash</dt><dd><code>{result.ddlSchemaHash}</code></dd></div>
            </dl>
          </div>
        )}
        <div className="dialog-actions">
          <Button onClick={onClose} disabled={alter.busy}>Close</Button>
          <Button type="submit" variant="primary" busy={alter.busy} busyLabel="Altering…" disabled={statements.length === 0}>Alter table</Button>
        </div>
      </form>
    </Modal>
  );
}

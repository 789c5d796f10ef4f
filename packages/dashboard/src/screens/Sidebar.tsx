/** Left panel: projects and their databases with OffSync status, new project / database, the billing-period usage. */
import { useEffect, useState } from 'react';
import type { FormEvent } from 'react';
import type { DatabaseKind, ProjectQuery, UsageQuery } from '@offsync/client';
import { formatBytes, formatDate } from '../format.ts';
import { useApi, useAsync } from '../hooks.ts';
import { Button, ErrorBox, Modal, Spinner, useAction } from '../ui/components.tsx';
import { ConnectionForm, emptyConnection, toConnectionInput } from './ConnectionForm.tsx';
import type { ConnectionDraft } from './ConnectionForm.tsx';

type Project = ProjectQuery['project'];

export interface SidebarData {
  projects: Project[];
  usage: UsageQuery['usage'][];
}

export function Sidebar({ id, open, selected, revision, onSelect }: { id: string; open: boolean; selected: string | null; revision: number; onSelect: (databaseId: string) => void }) {
  const api = useApi();
  const state = useAsync<SidebarData>(async () => {
    const { projects } = await api.projects();
    const full = await Promise.all(projects.map((p) => api.project({ id: p.id }).then((r) => r.project)));
    const usage = await Promise.all(projects.map((p) => api.usage({ projectId: p.id }).then((r) => r.usage)));
    return { projects: full, usage };
  }, [api, revision]);
  // The usage summary follows traffic: reloaded every 15 s while the page is visible.
  useEffect(() => {
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') void state.reload();
    }, 15_000);
    return () => clearInterval(timer);
  }, [state.reload]);
  const [creatingProject, setCreatingProject] = useState(false);
  const [creatingIn, setCreatingIn] = useState<Project | null>(null);

  return (
    <aside id={id} className={`sidebar${open ? ' sidebar-open' : ''}`} aria-label="Projects and databases">
      <div className="sidebar-head">
        <h2>Projects</h2>
        <Button variant="ghost" className="btn-small" onClick={() => setCreatingProject(true)}>+ New project</Button>
      </div>
      {state.loading && state.data === undefined && <Spinner />}
      <ErrorBox error={state.error} onRetry={() => void state.reload()} />
      {state.data?.projects.length === 0 && <p className="muted">No projects yet. Create one to add databases.</p>}
      <ul className="project-list">
        {state.data?.projects.map((p) => (
          <li key={p.id}>
            <div className="project-name">
              <span>{p.name}</span>
              <span className="badge badge-kind">{p.kind === 'SQLITE' ? 'SQLite' : 'PostgreSQL'}</span>
            </div>
            <ul className="database-list" aria-label={`Databases of ${p.name}`}>
              {p.databases.map((d) => (
                <li key={d.id}>
                  <button type="button" className={`database-link${selected === d.id ? ' active' : ''}`} aria-current={selected === d.id ? 'page' : undefined} onClick={() => onSelect(d.id)}>
                    <span className="database-name">{d.name}</span>
                    <span className={`badge ${d.offSync.enabled ? 'badge-on' : 'badge-off'}`}>{d.offSync.enabled ? 'OffSync on' : 'Not enabled'}</span>
                  </button>
                </li>
              ))}
              <li>
                <button type="button" className="btn btn-ghost btn-small add-database" onClick={() => setCreatingIn(p)}>+ New database</button>
              </li>
            </ul>
          </li>
        ))}
      </ul>
      {state.data && state.data.projects.length > 0 && <UsageSummary usage={state.data.usage} />}
      {creatingProject && (
        <NewProjectDialog
          onClose={() => setCreatingProject(false)}
          onCreated={() => {
            setCreatingProject(false);
            void state.reload();
          }}
        />
      )}
      {creatingIn !== null && (
        <NewDatabaseDialog
          project={creatingIn}
          onClose={() => setCreatingIn(null)}
          onCreated={(databaseId) => {
            setCreatingIn(null);
            void state.reload();
            onSelect(databaseId);
          }}
        />
      )}
    </aside>
  );
}

export function UsageSummary({ usage }: { usage: readonly UsageQuery['usage'][] }) {
  const up = usage.reduce((s, u) => s + u.uploadBytes, 0);
  const down = usage.reduce((s, u) => s + u.downloadBytes, 0);
  const first = usage[0];
  return (
    <section className="usage" aria-labelledby="usage-title">
      <h2 id="usage-title">Usage this billing period</h2>
      {first && <p className="muted">{formatDate(first.periodStart)} – {formatDate(first.periodEnd)}</p>}
      <p className="usage-total" data-testid="usage-total">{formatBytes(up + down)}</p>
      <p className="muted">total data transferred ({formatBytes(up)} up, {formatBytes(down)} down)</p>
    </section>
  );
}

function NewProjectDialog({ onClose, onCreated }: { onClose: () => void; onCreated: () => void }) {
  const api = useApi();
  const [name, setName] = useState('');
  const [kind, setKind] = useState<DatabaseKind>('SQLITE');
  const action = useAction(async () => {
    await api.createProject({ name: name.trim(), kind });
    onCreated();
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run();
  };
  return (
    <Modal title="New project" onClose={onClose}>
      <form onSubmit={submit} className="form">
        <label htmlFor="project-name">Project name</label>
        <input id="project-name" value={name} onChange={(e) => setName(e.target.value)} required data-autofocus />
        <fieldset>
          <legend>Workspace type</legend>
          <label className="radio"><input type="radio" name="kind" checked={kind === 'SQLITE'} onChange={() => setKind('SQLITE')} /> SQLite (files managed by OffSync)</label>
          <label className="radio"><input type="radio" name="kind" checked={kind === 'POSTGRES'} onChange={() => setKind('POSTGRES')} /> PostgreSQL (your server)</label>
        </fieldset>
        <ErrorBox error={action.error} />
        <div className="dialog-actions">
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" busy={action.busy} busyLabel="Creating…" disabled={name.trim() === ''}>Create project</Button>
        </div>
      </form>
    </Modal>
  );
}

function NewDatabaseDialog({ project, onClose, onCreated }: { project: Project; onClose: () => void; onCreated: (databaseId: string) => void }) {
  const api = useApi();
  const [name, setName] = useState('');
  const [connection, setConnection] = useState<ConnectionDraft>(emptyConnection);
  const postgres = project.kind === 'POSTGRES';
  const action = useAction(async () => {
    const r = await api.createDatabase({ projectId: project.id, name: name.trim(), ...(postgres ? { connection: toConnectionInput(connection) } : {}) });
    onCreated(r.createDatabase.id);
  });
  return (
    <Modal title={`New database in ${project.name}`} onClose={onClose} wide={postgres}>
      <form onSubmit={(e) => { e.preventDefault(); void action.run(); }} className="form">
        <label htmlFor="database-name">Database name</label>
        <input id="database-name" value={name} onChange={(e) => setName(e.target.value)} required data-autofocus />
        {postgres ? <ConnectionForm value={connection} onChange={setConnection} /> : <p className="muted">OffSync creates the SQLite database file on the server.</p>}
        <ErrorBox error={action.error} />
        <div className="dialog-actions">
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" busy={action.busy} busyLabel="Creating…" disabled={name.trim() === ''}>Create database</Button>
        </div>
      </form>
    </Modal>
  );
}

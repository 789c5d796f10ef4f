/** Rejections: changes the merge refused on their own (RLS, key types, UNIQUE), newest first, live. */
import type { RejectionFieldsFragment } from '@offsync/client';
import { formatDateTime, shortId } from '../format.ts';
import { useApi, useAsync, useSubscription } from '../hooks.ts';
import { Card, ErrorBox, Spinner } from '../ui/components.tsx';
import { LiveBadge } from './DevicesTab.tsx';

export function RejectionsTab({ databaseId }: { databaseId: string }) {
  const api = useApi();
  const state = useAsync(async () => {
    const r = await api.rejections({ databaseId, first: 50 });
    return { nodes: r.database.rejections.nodes, total: r.database.rejections.totalCount };
  }, [api, databaseId]);
  const live = useSubscription(() => api.liveRejections({ databaseId }), (r) => {
    state.setData((current) => ({ nodes: [r.rejections, ...(current?.nodes ?? []).filter((n) => n.id !== r.rejections.id)].slice(0, 200), total: (current?.total ?? 0) + 1 }));
  }, [api, databaseId]);
  const rows: readonly RejectionFieldsFragment[] = state.data?.nodes ?? [];
  return (
    <Card title="Rejected changes" actions={<LiveBadge status={live.status} />}>
      <p className="muted">Each change the server refused while the rest of its upload merged. Kept 30 days.</p>
      <ErrorBox error={live.error} />
      {state.data === undefined ? (state.error ? <ErrorBox error={state.error} onRetry={() => void state.reload()} /> : <Spinner />) : rows.length === 0 ? <p className="muted">No rejected changes.</p> : (
        <div className="table-scroll">
          <table className="data-table">
            <caption className="visually-hidden">Rejected changes</caption>
            <thead><tr><th scope="col">When</th><th scope="col">Table</th><th scope="col">Operation</th><th scope="col">Reason</th><th scope="col">Device</th><th scope="col">User</th></tr></thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.id}>
                  <td>{formatDateTime(r.at)}</td><td>{r.table}</td><td>{r.operation}</td>
                  <td><code>{r.code}</code> {r.reason}{r.policy ? <span className="muted"> (policy: {r.policy})</span> : null}</td>
                  <td><code title={r.siteId}>{shortId(r.siteId)}</code></td><td>{r.userId ?? '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Card>
  );
}

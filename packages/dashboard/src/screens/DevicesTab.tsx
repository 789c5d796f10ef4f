/** Devices: the list (first 100, newest sync first), kept live by `deviceEvents`; Remove with confirmation. */
import { useContext, useState } from 'react';
import type { DeviceFieldsFragment } from '@offsync/client';
import { formatBytes, formatRelative, shortId } from '../format.ts';
import { ChangedContext, useApi, useAsync, useSubscription } from '../hooks.ts';
import { applyDeviceEvent, sortDevices } from '../logic/devices.ts';
import { Button, Card, ConfirmDialog, ErrorBox, Spinner, StatusDot } from '../ui/components.tsx';

export function DevicesTab({ databaseId }: { databaseId: string }) {
  const api = useApi();
  const trafficChanged = useContext(ChangedContext);
  const state = useAsync(async () => {
    const r = await api.devices({ databaseId, first: 100 });
    return { nodes: sortDevices(r.database.devices.nodes), total: r.database.devices.totalCount };
  }, [api, databaseId]);
  const live = useSubscription(() => api.deviceEvents({ databaseId }), (e) => {
    trafficChanged();
    state.setData((current) => {
      const nodes = applyDeviceEvent(current?.nodes ?? [], e.deviceEvents);
      const before = current?.nodes.length ?? 0;
      return { nodes, total: (current?.total ?? 0) + (nodes.length - before) };
    });
  }, [api, databaseId]);
  const [removing, setRemoving] = useState<DeviceFieldsFragment | null>(null);

  return (
    <Card title="Devices" actions={<LiveBadge status={live.status} />}>
      <ErrorBox error={live.error} />
      {state.data === undefined ? (state.error ? <ErrorBox error={state.error} onRetry={() => void state.reload()} /> : <Spinner label="Loading devices…" />) : state.data.nodes.length === 0 ? (
        <p className="muted" data-testid="no-devices">No device has synced yet. Devices appear here as soon as they sync.</p>
      ) : (
        <>
          <p className="muted">{state.data.total} device{state.data.total === 1 ? '' : 's'}</p>
          <div className="table-scroll">
            <table className="data-table" data-testid="devices">
              <caption className="visually-hidden">Devices</caption>
              <thead>
                <tr><th scope="col">Site ID</th><th scope="col">Last sync</th><th scope="col">User</th><th scope="col">Client version</th><th scope="col">Schema hash</th><th scope="col">Traffic</th><th scope="col"><span className="visually-hidden">Actions</span></th></tr>
              </thead>
              <tbody>
                {state.data.nodes.map((d) => (
                  <tr key={d.siteId} data-site-id={d.siteId}>
                    <td><code title={d.siteId}>{shortId(d.siteId)}</code></td>
                    <td>{formatRelative(d.lastSyncAt)}</td>
                    <td>{d.userId ?? <span className="muted">{d.credentialKind === 'API_KEY' ? 'API key' : d.credentialKind}</span>}</td>
                    <td>{d.clientVersion ?? '—'}</td>
                    <td><code title={d.schemaHash ?? undefined}>{shortId(d.schemaHash)}</code></td>
                    <td>↑ {formatBytes(d.uploadBytes)} · ↓ {formatBytes(d.downloadBytes)}</td>
                    <td><Button variant="ghost" className="btn-small" onClick={() => setRemoving(d)} aria-label={`Remove device ${shortId(d.siteId)}`}>Remove</Button></td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
      {removing && (
        <ConfirmDialog title="Remove device?" confirmLabel="Remove device" busyLabel="Removing…" danger onCancel={() => setRemoving(null)} onConfirm={async () => {
          await api.removeDevice({ databaseId, siteId: removing.siteId });
          state.setData((current) => ({ nodes: (current?.nodes ?? []).filter((d) => d.siteId !== removing.siteId), total: Math.max(0, (current?.total ?? 1) - 1) }));
          setRemoving(null);
        }}>
          <p>Device <code>{shortId(removing.siteId)}</code> is forgotten and its live connection ends. If it syncs again it reappears as a new device.</p>
        </ConfirmDialog>
      )}
    </Card>
  );
}

export function LiveBadge({ status }: { status: 'connecting' | 'live' | 'error' }) {
  return status === 'live' ? <StatusDot tone="ok">Live</StatusDot> : status === 'error' ? <StatusDot tone="error">Not live</StatusDot> : <StatusDot tone="warn">Connecting…</StatusDot>;
}

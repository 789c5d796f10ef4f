/**
 * Artifact transfers (no credentials, docs/PROTOCOL.md §P1): `PUT` of an uploaded payload into
 * its slot, `GET` of a download package built on demand from the change feed.
 */
import { ArtifactStore } from '../artifacts.ts';
import { SyncError } from '../sync-errors.ts';
import type { SyncHttpState } from './context.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readBody, sendBytes, sendEmpty } from './io.ts';

export async function putArtifact(state: SyncHttpState, token: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { artifacts, service } = state;
  const slot = await artifacts.checkUploadSlot(token);
  const bytes = await readBody(req, artifacts.maxUploadBytes);
  await artifacts.storeUpload(token, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  service.recordTraffic(slot.db, slot.site, { uploadBytes: bytes.length, downloadBytes: 0 });
  sendEmpty(res);
}

export async function getArtifact(state: SyncHttpState, token: string, res: ServerResponse): Promise<void> {
  const { artifacts, service } = state;
  const { claims, principal } = await artifacts.openDownload(token);
  const db = await service.open(claims.db);
  const schemaHash = BigInt(claims.h);
  const from = ArtifactStore.cursorOf(claims.from);
  let r = await service.download(db, claims.site, from, principal, { to: ArtifactStore.cursorOf(claims.to), pageBytes: Number.MAX_SAFE_INTEGER, schemaHash });
  // Every change of the range was re-versioned since the check: send the next page instead.
  if (r.pages.length === 0) r = await service.download(db, claims.site, from, principal, { schemaHash });
  const payload = r.pages[0]?.payload;
  if (payload === undefined) throw new SyncError('artifact_used', 'the package is empty now; check again');
  sendBytes(res, payload);
  service.recordTraffic(claims.db, claims.site, { uploadBytes: 0, downloadBytes: payload.length });
}

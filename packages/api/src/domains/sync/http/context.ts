/** Shared state of the sync HTTP handler and the per-request context of API calls. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ArtifactStore } from '../artifacts.ts';
import type { Central } from '../central.ts';
import type { ChunkBatches } from '../chunk-batches.ts';
import type { Generation, Principal } from '../sync-deps.ts';
import type { SyncService } from '../sync.service.ts';
import type { G3Cursors } from './g3-cursors.ts';
import type { PrebuiltPages } from '../prebuilt-pages.ts';
import type { CredentialQuotas, QuotaLimits } from './quotas.ts';

export interface SyncHttpLimits extends QuotaLimits {
  /** JSON bodies of API calls (default 1 MiB). */
  maxJsonBodyBytes: number;
  /** G2b/G3 `apply` bodies, which may carry an inline base64 blob (default 48 MiB). */
  maxInlineBodyBytes: number;
  /** G3 downloads up to this encoded size are returned inline (default 128 KiB). */
  inlineDownloadBytes: number;
  /** G3 chunks per `/check` reply when the client sends no `maxChunks` (default 16). */
  defaultMaxChunks: number;
  /**
   * G3 `check`: pages are sent inline (base64 in the reply) while they fit this many bytes in
   * total — one pass over the feed and no artifact round trip; larger downloads get chunk URLs.
   * 0 = always URLs.
   */
  inlineChunksBytes: number;
  /**
   * G3 `check`: the first page of a drain that starts at the durable cursor is cut at this many
   * bytes, the following ones `slowStartGrowth` times the previous, up to the service's page size
   * (default 128 KiB, as `inlineDownloadBytes`, so a small download stays one inline reply). 0 = off.
   */
  slowStartBytes: number;
  /** Growth of the page budget page to page under slow start (default 2). */
  slowStartGrowth: number;
  /** Uploaded-but-not-applied bytes per credential (default 64 MiB; the server-wide cap stays 512 MiB). */
  maxPendingUploadBytesPerCredential: number;
}

export interface SyncHttpState {
  /** The one sync service: every data-plane call of the protocol goes through its methods. */
  service: SyncService;
  artifacts: ArtifactStore;
  cursors: G3Cursors;
  /** G3 chunked batches being assembled (in the shared store). */
  batches: ChunkBatches;
  limits: SyncHttpLimits;
  /** Request rate and concurrent uploads per credential (docs/PROTOCOL.md "Quotas"). */
  quotas: CredentialQuotas;
  /** G3 `/check` pages built ahead for the request a reply calls for next (prebuilt-pages.ts); undefined: off. */
  prebuilt?: PrebuiltPages | undefined;
  publicUrl: string | undefined;
}

export interface ApiCall {
  req: IncomingMessage;
  res: ServerResponse;
  state: SyncHttpState;
  generation: Generation;
  db: Central;
  /** Lower-case 32 hex digits. */
  site: string;
  principal: Principal;
  /** Origin artifact URLs are built on. */
  origin: string;
  /** G3 `X-CloudSync-Capabilities` contains `check-chunks`. */
  chunks: boolean;
}

/**
 * Artifact URLs (docs/PROTOCOL.md §P1): upload slots (`PUT`) and download packages (`GET`)
 * are fetched WITHOUT credentials, so their URLs are unguessable (128-bit nonce), HMAC-SHA256
 * signed with a server secret, short-lived and single-use. Nonces, uploaded bytes and the
 * principal a download was issued to live in the shared store (shared-store.ts): this process's
 * memory by default, Redis with `REDIS_URL`, so a URL issued by one node works on any other and
 * single use holds across nodes — the PUT claims its slot with SET NX, `apply` takes the bytes and
 * `GET` the download descriptor with GETDEL (docs/PROTOCOL.md "Artifact URLs").
 *
 * Pending bytes (PUT, not yet applied) are capped server-wide and per credential (the slot
 * remembers the quota key of the principal it was issued to; docs/PROTOCOL.md "Quotas"): one
 * tenant filling its share gets 429 `quota_exceeded`, the others keep uploading.
 *
 * URL: `{origin}/v2/cloudsync/_artifacts/{base64url(claims)}.{base64url(hmac)}`.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Cursor } from './download-pages.ts';
import { quotaKeyOf, rateKeyOf } from './http/quotas.ts';
import { MemorySharedStore } from './shared-store.ts';
import type { SharedStore } from './shared-store.ts';
import type { Principal } from './sync-deps.ts';
import { SyncError } from './sync-errors.ts';

export const ARTIFACT_PATH_PREFIX = '/v2/cloudsync/_artifacts/';

export interface UploadClaims {
  k: 'u';
  db: string;
  site: string;
  exp: number;
  n: string;
}

export interface DownloadClaims {
  k: 'd';
  db: string;
  site: string;
  exp: number;
  n: string;
  /** Exclusive lower bound (server version space). */
  from: [number, number];
  /** Inclusive upper bound. */
  to: [number, number];
  /** Schema hash (decimal u64) stamped into the package. */
  h: string;
}

export type ArtifactClaims = UploadClaims | DownloadClaims;

/** What the store keeps for an upload slot until it is used: who it counts against. */
interface SlotRecord {
  /** Quota key of the credential the slot was issued to (pending bytes). */
  o?: string;
  /** Its concurrent-upload key (per device for API keys, see http/quotas.ts). */
  r?: string;
}

export interface ArtifactOptions {
  /** HMAC key (≥ 32 random bytes recommended). */
  secret: string | Uint8Array;
  /** Lifetime of a URL (default 5 minutes). */
  ttlMs?: number;
  /** Largest payload accepted by an upload PUT (default 32 MiB). */
  maxUploadBytes?: number;
  /** Bytes of uploaded-but-not-applied payloads held at once (default 512 MiB); beyond: 503. */
  maxPendingBytes?: number;
  /** The same per credential (default 64 MiB); beyond: 429 `quota_exceeded`. */
  maxPendingBytesPerCredential?: number;
  /** Where nonces, bytes and descriptors live (default: this process's memory). */
  store?: SharedStore;
  now?: () => number;
}

const b64url = (b: Uint8Array | string): string => Buffer.from(b).toString('base64url');

/** Store keys (shared-store.ts) of one nonce. */
const slotKey = (n: string): string => `a:s:${n}`;
const putKey = (n: string): string => `a:p:${n}`;
const bytesKey = (n: string): string => `a:b:${n}`;
const downloadKey = (n: string): string => `a:d:${n}`;
/** Ledgers of pending bytes: server-wide, per credential. */
const ALL_PENDING = 'a:l:*';
const ownerPending = (owner: string): string => `a:l:o:${owner}`;

export class ArtifactStore {
  readonly #secret: Uint8Array;
  readonly ttlMs: number;
  readonly maxUploadBytes: number;
  readonly #maxPending: number;
  readonly #maxPendingPerOwner: number;
  readonly #now: () => number;
  readonly #store: SharedStore;
  /** Pending bytes server-wide as last read from the store (metrics). */
  #lastPending = 0;

  constructor(opts: ArtifactOptions) {
    this.#secret = typeof opts.secret === 'string' ? new TextEncoder().encode(opts.secret) : opts.secret;
    if (this.#secret.length < 16) throw new Error('artifact secret must be at least 16 bytes');
    this.ttlMs = opts.ttlMs ?? 5 * 60_000;
    this.maxUploadBytes = opts.maxUploadBytes ?? 32 * 1024 * 1024;
    this.#maxPending = opts.maxPendingBytes ?? 512 * 1024 * 1024;
    this.#maxPendingPerOwner = opts.maxPendingBytesPerCredential ?? 64 * 1024 * 1024;
    this.#now = opts.now ?? Date.now;
    this.#store = opts.store ?? new MemorySharedStore({ now: this.#now });
  }

  #sign(body: string): string {
    return createHmac('sha256', this.#secret).update(`offsync-artifact-v1.${body}`).digest('base64url');
  }

  #url(claims: ArtifactClaims, origin: string): string {
    const body = b64url(JSON.stringify(claims));
    return `${origin}${ARTIFACT_PATH_PREFIX}${body}.${this.#sign(body)}`;
  }

  /** Time left for a URL's keys (they outlive it by a second, so a key never expires before its URL). */
  #left(exp: number): number {
    return Math.max(1, exp - this.#now()) + 1000;
  }

  /**
   * An upload slot for `site` of `db`. With the principal asking for it, the slot counts against
   * that credential's pending bytes, and no slot is issued while they are full.
   */
  async issueUpload(origin: string, db: string, site: string, principal?: Principal): Promise<string> {
    const owner = principal === undefined ? undefined : quotaKeyOf(db, principal);
    if (owner !== undefined) await this.#assertOwnerFits(owner, 1);
    const exp = this.#now() + this.ttlMs;
    const slot: SlotRecord = {};
    if (owner !== undefined) slot.o = owner;
    const uploader = principal === undefined ? undefined : rateKeyOf(db, principal, site);
    if (uploader !== undefined) slot.r = uploader;
    const n = randomBytes(16).toString('hex');
    await this.#store.set(slotKey(n), JSON.stringify(slot), this.#left(exp));
    return this.#url({ k: 'u', db, site, exp, n }, origin);
  }

  async issueDownload(origin: string, c: Omit<DownloadClaims, 'k' | 'exp' | 'n'>, principal: Principal): Promise<string> {
    const exp = this.#now() + this.ttlMs;
    const n = randomBytes(16).toString('hex');
    await this.#store.set(downloadKey(n), JSON.stringify(principal), this.#left(exp));
    return this.#url({ k: 'd', ...c, exp, n }, origin);
  }

  /** Verifies a token (the last path segment of an artifact URL): signature, then expiry. */
  verify(token: string): ArtifactClaims {
    const dot = token.indexOf('.');
    if (dot <= 0) throw new SyncError('artifact_invalid');
    const body = token.slice(0, dot);
    // Compare the text, not the decoded bytes: base64url has several spellings of the same bytes,
    // and only the canonical one this server issued is accepted.
    const sig = Buffer.from(token.slice(dot + 1), 'latin1');
    const want = Buffer.from(this.#sign(body), 'latin1');
    if (sig.length !== want.length || !timingSafeEqual(sig, want)) throw new SyncError('artifact_invalid');
    let claims: ArtifactClaims;
    try {
      claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as ArtifactClaims;
    } catch {
      throw new SyncError('artifact_invalid');
    }
    if (typeof claims.exp !== 'number' || claims.exp < this.#now()) throw new SyncError('artifact_expired');
    if (typeof claims.n !== 'string') throw new SyncError('artifact_invalid');
    return claims;
  }

  /** Token of an artifact URL given by a client (`{"url":…}`), or undefined. */
  static tokenOf(url: string): string | undefined {
    let path: string;
    try {
      path = new URL(url, 'http://x').pathname;
    } catch {
      return undefined;
    }
    const i = path.indexOf(ARTIFACT_PATH_PREFIX);
    if (i < 0) return undefined;
    const token = path.slice(i + ARTIFACT_PATH_PREFIX.length);
    return token.length > 0 && !token.includes('/') ? token : undefined;
  }

  /** The slot record of an upload nonce that has not received its PUT yet, else `artifact_used`. */
  async #openSlot(n: string): Promise<SlotRecord> {
    const [raw, put] = await Promise.all([this.#store.get(slotKey(n)), this.#store.get(putKey(n))]);
    if (raw === undefined) throw new SyncError('artifact_used', 'This artifact URL is no longer valid');
    if (put !== undefined) throw new SyncError('artifact_used');
    return JSON.parse(raw.toString('utf8')) as SlotRecord;
  }

  /** Claims of an upload slot that may still receive a PUT (before reading the body). */
  async checkUploadSlot(token: string): Promise<UploadClaims> {
    const c = this.verify(token);
    if (c.k !== 'u') throw new SyncError('artifact_invalid');
    await this.#openSlot(c.n);
    return c;
  }

  async #assertFits(slot: SlotRecord, bytes: number): Promise<void> {
    if (bytes > this.maxUploadBytes) throw new SyncError('payload_too_large', `payload larger than ${this.maxUploadBytes} bytes`);
    if (slot.o !== undefined) await this.#assertOwnerFits(slot.o, bytes);
    const all = await this.#store.ledgerRead(ALL_PENDING, this.#now());
    this.#lastPending = all.bytes;
    if (all.bytes + bytes > this.#maxPending) throw new SyncError('server_busy', 'too many pending uploads, retry later');
  }

  /**
   * Before reading a PUT body: the slot may receive `bytes` more pending bytes (per credential:
   * 429 `quota_exceeded`; server-wide: 503 `server_busy`). Returns the slot's concurrent-upload key.
   */
  async checkUploadFits(token: string, bytes: number): Promise<string | undefined> {
    const c = this.verify(token);
    if (c.k !== 'u') throw new SyncError('artifact_invalid');
    const slot = await this.#openSlot(c.n);
    await this.#assertFits(slot, bytes);
    return slot.r;
  }

  /** Stores the bytes of a PUT to an upload slot (once, on whichever node: the PUT claims the slot with SET NX). */
  async storeUpload(token: string, bytes: Uint8Array): Promise<UploadClaims> {
    const c = this.verify(token);
    if (c.k !== 'u') throw new SyncError('artifact_invalid');
    const slot = await this.#openSlot(c.n);
    await this.#assertFits(slot, bytes.length);
    const left = this.#left(c.exp);
    if (!(await this.#store.setIfAbsent(putKey(c.n), '1', left))) throw new SyncError('artifact_used');
    await this.#store.set(bytesKey(c.n), bytes, left);
    await this.#store.ledgerSet(ALL_PENDING, c.n, bytes.length, c.exp);
    if (slot.o !== undefined) await this.#store.ledgerSet(ownerPending(slot.o), c.n, bytes.length, c.exp);
    this.#lastPending += bytes.length;
    return c;
  }

  /**
   * Throws `quota_exceeded` when `owner` cannot hold `bytes` more pending bytes (expired uploads
   * do not count); `Retry-After` is the time until its oldest pending upload expires (at most
   * 60 s: an apply frees it sooner).
   */
  async #assertOwnerFits(owner: string, bytes: number): Promise<void> {
    const now = this.#now();
    const p = await this.#store.ledgerRead(ownerPending(owner), now);
    if (p.bytes + bytes <= this.#maxPendingPerOwner) return;
    const oldest = p.oldestExpiry ?? now;
    throw new SyncError('quota_exceeded', `more than ${this.#maxPendingPerOwner} bytes of pending uploads with this credential`, {
      retryAfterSeconds: Math.min(60, Math.max(1, Math.ceil((oldest - now) / 1000))),
    });
  }

  /** Takes (single use, across nodes: GETDEL) the payload uploaded to `url` by `site` for `db`. */
  async takeUpload(url: string, db: string, site: string): Promise<Uint8Array> {
    const token = ArtifactStore.tokenOf(url);
    if (token === undefined) throw new SyncError('artifact_invalid', 'url is not an upload URL of this server');
    const c = this.verify(token);
    if (c.k !== 'u') throw new SyncError('artifact_invalid');
    if (c.db !== db || c.site !== site) throw new SyncError('artifact_mismatch');
    const bytes = await this.#store.take(bytesKey(c.n));
    if (bytes === undefined) {
      const [slot, put] = await Promise.all([this.#store.get(slotKey(c.n)), this.#store.get(putKey(c.n))]);
      if (slot === undefined) throw new SyncError('artifact_used', 'This artifact URL is no longer valid');
      if (put !== undefined) throw new SyncError('artifact_used');
      throw new SyncError('artifact_invalid', 'nothing was uploaded to this URL');
    }
    const slot = await this.#store.get(slotKey(c.n));
    const owner = slot === undefined ? undefined : (JSON.parse(slot.toString('utf8')) as SlotRecord).o;
    // The PUT claim stays until the URL expires: no second PUT to this slot.
    await this.#store.delete(slotKey(c.n));
    await this.#store.ledgerRemove(ALL_PENDING, c.n);
    if (owner !== undefined) await this.#store.ledgerRemove(ownerPending(owner), c.n);
    this.#lastPending = Math.max(0, this.#lastPending - bytes.length);
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Opens (single use, across nodes: GETDEL) a download artifact: its claims and the principal it was issued to. */
  async openDownload(token: string): Promise<{ claims: DownloadClaims; principal: Principal }> {
    const c = this.verify(token);
    if (c.k !== 'd') throw new SyncError('artifact_invalid');
    const raw = await this.#store.take(downloadKey(c.n));
    if (raw === undefined) throw new SyncError('artifact_used');
    return { claims: c, principal: JSON.parse(raw.toString('utf8')) as Principal };
  }

  /** Kind of the artifact a token names (for routing PUT vs GET), or undefined when malformed. */
  kindOf(token: string): 'u' | 'd' | undefined {
    try {
      return this.verify(token).k;
    } catch {
      return undefined;
    }
  }

  /** Pending upload bytes server-wide as last read from the store (a gauge; cheap, no store call). */
  stats(): { pendingBytes: number } {
    return { pendingBytes: this.#lastPending };
  }

  /** Pending uploads server-wide, read from the store (tests, diagnostics). */
  async readStats(): Promise<{ pendingBytes: number; pendingUploads: number }> {
    const all = await this.#store.ledgerRead(ALL_PENDING, this.#now());
    this.#lastPending = all.bytes;
    return { pendingBytes: all.bytes, pendingUploads: all.members };
  }

  /** Cursor helpers for download claims. */
  static cursorOf(t: [number, number]): Cursor {
    return { dbVersion: t[0], seq: t[1] };
  }
}

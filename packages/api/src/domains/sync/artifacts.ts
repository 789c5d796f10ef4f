/**
 * Artifact URLs (protocol reference A.0): upload slots (`PUT`) and download packages (`GET`)
 * are fetched WITHOUT credentials, so their URLs are unguessable (128-bit nonce), HMAC-SHA256
 * signed with a server secret, short-lived and single-use. Nonces, uploaded bytes and the
 * principal a download was issued to live in memory only: a restart invalidates pending URLs,
 * and clients simply start over.
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

interface Entry {
  exp: number;
  state: 'issued' | 'uploaded' | 'used';
  bytes?: Uint8Array;
  principal?: Principal;
  /** Quota key of the credential an upload slot was issued to (pending bytes). */
  owner?: string;
  /** Its concurrent-upload key (per device for API keys, see http/quotas.ts). */
  uploader?: string;
}

/** Pending uploads of one credential. */
interface OwnerPending {
  bytes: number;
  entries: Set<Entry>;
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
  now?: () => number;
}

const b64url = (b: Uint8Array | string): string => Buffer.from(b).toString('base64url');

export class ArtifactStore {
  readonly #secret: Uint8Array;
  readonly ttlMs: number;
  readonly maxUploadBytes: number;
  readonly #maxPending: number;
  readonly #maxPendingPerOwner: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();
  readonly #pendingByOwner = new Map<string, OwnerPending>();
  #pendingBytes = 0;
  #nextSweep = 0;

  constructor(opts: ArtifactOptions) {
    this.#secret = typeof opts.secret === 'string' ? new TextEncoder().encode(opts.secret) : opts.secret;
    if (this.#secret.length < 16) throw new Error('artifact secret must be at least 16 bytes');
    this.ttlMs = opts.ttlMs ?? 5 * 60_000;
    this.maxUploadBytes = opts.maxUploadBytes ?? 32 * 1024 * 1024;
    this.#maxPending = opts.maxPendingBytes ?? 512 * 1024 * 1024;
    this.#maxPendingPerOwner = opts.maxPendingBytesPerCredential ?? 64 * 1024 * 1024;
    this.#now = opts.now ?? Date.now;
  }

  #sign(body: string): string {
    return createHmac('sha256', this.#secret).update(`offsync-artifact-v1.${body}`).digest('base64url');
  }

  #issue(claims: ArtifactClaims, origin: string, entry: Entry): string {
    this.#sweep();
    const body = b64url(JSON.stringify(claims));
    this.#entries.set(claims.n, entry);
    return `${origin}${ARTIFACT_PATH_PREFIX}${body}.${this.#sign(body)}`;
  }

  /**
   * An upload slot for `site` of `db`. With the principal asking for it, the slot counts against
   * that credential's pending bytes, and no slot is issued while they are full.
   */
  issueUpload(origin: string, db: string, site: string, principal?: Principal): string {
    const owner = principal === undefined ? undefined : quotaKeyOf(db, principal);
    if (owner !== undefined) this.#assertOwnerFits(owner, 1);
    const exp = this.#now() + this.ttlMs;
    const entry: Entry = { exp, state: 'issued' };
    if (owner !== undefined) entry.owner = owner;
    const uploader = principal === undefined ? undefined : rateKeyOf(db, principal, site);
    if (uploader !== undefined) entry.uploader = uploader;
    return this.#issue({ k: 'u', db, site, exp, n: randomBytes(16).toString('hex') }, origin, entry);
  }

  issueDownload(origin: string, c: Omit<DownloadClaims, 'k' | 'exp' | 'n'>, principal: Principal): string {
    const exp = this.#now() + this.ttlMs;
    return this.#issue({ k: 'd', ...c, exp, n: randomBytes(16).toString('hex') }, origin, { exp, state: 'issued', principal });
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
    return claims;
  }

  #entry(claims: ArtifactClaims): Entry {
    const e = this.#entries.get(claims.n);
    if (e === undefined) throw new SyncError('artifact_used', 'This artifact URL is no longer valid');
    if (e.state === 'used') throw new SyncError('artifact_used');
    return e;
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

  /** Claims of an upload slot that may still receive a PUT (before reading the body). */
  checkUploadSlot(token: string): UploadClaims {
    const c = this.verify(token);
    if (c.k !== 'u') throw new SyncError('artifact_invalid');
    const e = this.#entry(c);
    if (e.state !== 'issued') throw new SyncError('artifact_used');
    return c;
  }

  /**
   * Before reading a PUT body: the slot may receive `bytes` more pending bytes (per credential:
   * 429 `quota_exceeded`; server-wide: 503 `server_busy`). Returns the slot's concurrent-upload key.
   */
  checkUploadFits(token: string, bytes: number): string | undefined {
    const e = this.#entry(this.checkUploadSlot(token));
    if (bytes > this.maxUploadBytes) throw new SyncError('payload_too_large', `payload larger than ${this.maxUploadBytes} bytes`);
    if (e.owner !== undefined) this.#assertOwnerFits(e.owner, bytes);
    if (this.#pendingBytes + bytes > this.#maxPending) throw new SyncError('server_busy', 'too many pending uploads, retry later');
    return e.uploader;
  }

  /** Stores the bytes of a PUT to an upload slot (once). */
  storeUpload(token: string, bytes: Uint8Array): UploadClaims {
    const c = this.checkUploadSlot(token);
    const e = this.#entry(c);
    if (bytes.length > this.maxUploadBytes) throw new SyncError('payload_too_large', `payload larger than ${this.maxUploadBytes} bytes`);
    if (e.owner !== undefined) this.#assertOwnerFits(e.owner, bytes.length);
    if (this.#pendingBytes + bytes.length > this.#maxPending) throw new SyncError('server_busy', 'too many pending uploads, retry later');
    e.state = 'uploaded';
    e.bytes = bytes;
    this.#pendingBytes += bytes.length;
    if (e.owner !== undefined) {
      const p = this.#pendingByOwner.get(e.owner) ?? { bytes: 0, entries: new Set<Entry>() };
      p.bytes += bytes.length;
      p.entries.add(e);
      this.#pendingByOwner.set(e.owner, p);
    }
    return c;
  }

  /**
   * Throws `quota_exceeded` when `owner` cannot hold `bytes` more pending bytes. Its expired
   * uploads are released first; `Retry-After` is the time until its oldest pending upload
   * expires (at most 60 s: an apply frees it sooner).
   */
  #assertOwnerFits(owner: string, bytes: number): void {
    const p = this.#pendingByOwner.get(owner);
    if (p === undefined) return;
    const now = this.#now();
    for (const e of p.entries) if (e.exp < now) this.#release(e);
    if (p.bytes + bytes <= this.#maxPendingPerOwner) return;
    let oldest = Number.POSITIVE_INFINITY;
    for (const e of p.entries) oldest = Math.min(oldest, e.exp);
    throw new SyncError('quota_exceeded', `more than ${this.#maxPendingPerOwner} bytes of pending uploads with this credential`, {
      retryAfterSeconds: Math.min(60, Math.max(1, Math.ceil((oldest - now) / 1000))),
    });
  }

  /** Takes (single use) the payload uploaded to `url` by `site` for `db`. */
  takeUpload(url: string, db: string, site: string): Uint8Array {
    const token = ArtifactStore.tokenOf(url);
    if (token === undefined) throw new SyncError('artifact_invalid', 'url is not an upload URL of this server');
    const c = this.verify(token);
    if (c.k !== 'u') throw new SyncError('artifact_invalid');
    if (c.db !== db || c.site !== site) throw new SyncError('artifact_mismatch');
    const e = this.#entry(c);
    if (e.state !== 'uploaded' || e.bytes === undefined) throw new SyncError('artifact_invalid', 'nothing was uploaded to this URL');
    const bytes = e.bytes;
    this.#release(e);
    return bytes;
  }

  /** Opens (single use) a download artifact: its claims and the principal it was issued to. */
  openDownload(token: string): { claims: DownloadClaims; principal: Principal } {
    const c = this.verify(token);
    if (c.k !== 'd') throw new SyncError('artifact_invalid');
    const e = this.#entry(c);
    const principal = e.principal;
    this.#release(e);
    if (principal === undefined) throw new SyncError('artifact_invalid');
    return { claims: c, principal };
  }

  /** Kind of the artifact a token names (for routing PUT vs GET), or undefined when malformed. */
  kindOf(token: string): 'u' | 'd' | undefined {
    try {
      return this.verify(token).k;
    } catch {
      return undefined;
    }
  }

  #release(e: Entry): void {
    if (e.bytes !== undefined) {
      this.#pendingBytes -= e.bytes.length;
      const p = e.owner === undefined ? undefined : this.#pendingByOwner.get(e.owner);
      if (p !== undefined && p.entries.delete(e)) {
        p.bytes -= e.bytes.length;
        if (p.entries.size === 0 && e.owner !== undefined) this.#pendingByOwner.delete(e.owner);
      }
    }
    delete e.bytes;
    delete e.principal;
    e.state = 'used';
  }

  /** Forgets entries whose URL expired (their tokens fail verification anyway). */
  #sweep(): void {
    const now = this.#now();
    if (now < this.#nextSweep) return;
    this.#nextSweep = now + 10_000;
    for (const [n, e] of this.#entries) {
      if (e.exp < now) {
        this.#release(e);
        this.#entries.delete(n);
      }
    }
  }

  /** Pending uploads and open URLs (for tests and metrics). */
  stats(): { entries: number; pendingBytes: number; pendingCredentials: number } {
    return { entries: this.#entries.size, pendingBytes: this.#pendingBytes, pendingCredentials: this.#pendingByOwner.size };
  }

  /** Cursor helpers for download claims. */
  static cursorOf(t: [number, number]): Cursor {
    return { dbVersion: t[0], seq: t[1] };
  }
}

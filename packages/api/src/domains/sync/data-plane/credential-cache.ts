/**
 * A brief cache of verified sync credentials, so a busy device does not cost a control-plane
 * query (and a JWT verification) per request (docs/PROTOCOL.md "Quotas" → control plane).
 *
 * - Key: database id + SHA-256 of the credential (the secret itself is never kept as a key).
 * - Only successes are cached (a refusal is re-checked each time: a key created a moment ago
 *   or a JWT provider just configured works at once); failures to verify are never cached.
 * - An entry lives at most `ttlMs` (≤ 1 s) and never past the credential's own expiry.
 * - Revocations and JWT provider changes in this process drop the entries at once
 *   (`AuthService.onCredentialsChanged`); the TTL bounds what another process may still accept.
 * - Concurrent lookups of one credential share one verification; the map is bounded (LRU).
 */
import { sha256Hex } from '../../../crypto.ts';
import type { Principal } from '../sync-deps.ts';

export const MAX_CREDENTIAL_TTL_MS = 1000;

interface Entry {
  key: string;
  databaseId: string;
  at: number;
  value: Promise<Principal | null>;
  /** Known once the verification resolved. */
  expiresAt?: number;
}

export interface CredentialCache {
  /** The cached principal for `credential` in `databaseId`, else `verify()` (its success cached). */
  get(databaseId: string, credential: string, verify: () => Promise<Principal | null>): Promise<Principal | null>;
  /** Drops one credential (by the SHA-256 hex of its secret), every credential of a database, or all. */
  invalidate(change?: { databaseId: string; hash?: string }): void;
  readonly size: number;
}

export function createCredentialCache(opts: { ttlMs?: number; now: () => number; maxEntries?: number }): CredentialCache {
  const ttl = Math.min(opts.ttlMs ?? MAX_CREDENTIAL_TTL_MS, MAX_CREDENTIAL_TTL_MS);
  const max = opts.maxEntries ?? 50_000;
  const entries = new Map<string, Entry>();
  const drop = (e: Entry): void => {
    if (entries.get(e.key) === e) entries.delete(e.key);
  };
  return {
    get(databaseId, credential, verify) {
      if (ttl <= 0) return verify();
      const hash = sha256Hex(credential);
      const key = `${databaseId} ${hash}`;
      const now = opts.now();
      const hit = entries.get(key);
      if (hit !== undefined && now >= hit.at && now - hit.at < ttl && (hit.expiresAt === undefined || hit.expiresAt > now)) return hit.value;
      if (hit !== undefined) entries.delete(key);
      const value = verify();
      const entry: Entry = { key, databaseId, at: now, value };
      entries.set(key, entry);
      if (entries.size > max) entries.delete(entries.keys().next().value ?? key);
      value.then(
        (p) => {
          if (p === null) drop(entry);
          else if (p.expiresAt !== undefined) entry.expiresAt = p.expiresAt;
        },
        () => drop(entry),
      );
      return value;
    },
    invalidate(change) {
      if (change === undefined) entries.clear();
      else if (change.hash !== undefined) entries.delete(`${change.databaseId} ${change.hash}`);
      else for (const e of entries.values()) if (e.databaseId === change.databaseId) entries.delete(e.key);
    },
    get size() {
      return entries.size;
    },
  };
}

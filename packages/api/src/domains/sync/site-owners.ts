/**
 * Device identity (docs/PROTOCOL.md "Device identity"): a site id belongs to the principal that
 * first used it. Stored IN the central database (table `offsync_site_owners`, next to
 * `offsync_peers`), so every process sharing the file sees the same owner; the first claim wins
 * (`INSERT … ON CONFLICT DO NOTHING`, then read back) and an owner never changes.
 *
 * Owner keys: `user:<userId>` for access tokens and JWTs (two credentials of one user share
 * their sites), `apiKey` for every API-key holder of the database and the admin key (one trusted
 * principal per database).
 */
import type { SyncEngine } from './sync-deps.ts';

const DDL = `CREATE TABLE IF NOT EXISTS offsync_site_owners (
  site_id BLOB PRIMARY KEY NOT NULL,
  owner TEXT NOT NULL,
  first_seen INTEGER NOT NULL
) WITHOUT ROWID`;

/** The owner key of a principal (`principalKey`); undefined for a user credential without a user id (never owns a site). */
export { principalKey as ownerKeyOf } from './sync-deps.ts';

export class SiteOwners {
  readonly #engine: SyncEngine;

  constructor(engine: SyncEngine) {
    this.#engine = engine;
    engine.driver.exec(DDL);
  }

  /** The owner key of `siteId` (32 lower-case hex digits), or undefined when nobody used it yet. */
  ownerOf(siteId: string): string | undefined {
    const r = this.#engine.driver.prepare('SELECT owner FROM offsync_site_owners WHERE site_id = ?').getRaw(new Uint8Array(Buffer.from(siteId, 'hex')));
    return r === undefined ? undefined : String(r[0]);
  }

  /**
   * Claims `siteId` for `owner` unless someone already has; returns the owner after the claim
   * (the caller's key when it won or already owned the site). A read first, so the common case
   * (known site) writes nothing.
   */
  claim(siteId: string, owner: string, now = Date.now()): string {
    const cur = this.ownerOf(siteId);
    if (cur !== undefined) return cur;
    this.#engine.driver
      .prepare('INSERT INTO offsync_site_owners (site_id, owner, first_seen) VALUES (?, ?, ?) ON CONFLICT(site_id) DO NOTHING')
      .run(new Uint8Array(Buffer.from(siteId, 'hex')), owner, BigInt(now));
    // Another process may have claimed it between the read and the insert: read the winner.
    return this.ownerOf(siteId) ?? owner;
  }

  /** {@link claim} of each `[siteId, owner]` in order, in one transaction (one commit); the owners after. */
  claimAll(claims: ReadonlyArray<readonly [siteId: string, owner: string]>, now = Date.now()): string[] {
    return this.#engine.driver.transaction(() => claims.map(([site, owner]) => this.claim(site, owner, now)));
  }
}

const byEngine = new WeakMap<SyncEngine, SiteOwners>();

/** The site-owner registry of a central database engine (table created on first use). */
export function siteOwnersOf(engine: SyncEngine): SiteOwners {
  let owners = byEngine.get(engine);
  if (owners === undefined) {
    owners = new SiteOwners(engine);
    byEngine.set(engine, owners);
  }
  return owners;
}

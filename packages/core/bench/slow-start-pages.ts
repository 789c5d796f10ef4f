/**
 * The slow-start pages of a fresh device's initial sync, as the benches cut them: the server's
 * pages grow ×2 — here 4,096 changes, then ×2 — and are cut between rows (a row's consecutive
 * changes stay in one page).
 */
import type { Change } from '@offsync/core';

export function slowStartPages(changes: readonly Change[], first = 4096): Change[][] {
  const pages: Change[][] = [];
  for (let at = 0, size = first; at < changes.length; size *= 2) {
    let end = Math.min(changes.length, at + size);
    while (end < changes.length && Buffer.compare((changes[end] as Change).pk, (changes[end - 1] as Change).pk) === 0) end++;
    pages.push(changes.slice(at, end));
    at = end;
  }
  return pages;
}

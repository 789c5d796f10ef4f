/**
 * Silent Expo pushes after merges (docs/PROTOCOL.md §P2): every registered token of the
 * database gets `{ to, data: { cloudSyncEvent: 'check' }, _contentAvailable: true, priority:
 * 'high' }` — except tokens of the site whose upload caused the merge. Merges are debounced per
 * database (a burst sends one push per device: a device is notified when at least one merge in
 * the burst came from another site), messages are batched (≤ 100 per request, Expo's limit),
 * and requests are retried with exponential backoff on network errors, 429 and 5xx. The Expo
 * access token, when configured for the database, is sent as Bearer. Tickets reporting
 * `DeviceNotRegistered` delete that token.
 */
import type { Services } from '../../../services.ts';

export const DEFAULT_EXPO_PUSH_URL = 'https://exp.host/--/api/v2/push/send';

export interface PushOptions {
  url: string;
  /** Per-database debounce window (default 500 ms). */
  debounceMs: number;
  /** Attempts per request (default 4). */
  maxAttempts: number;
  /** First retry delay, doubled each time (default 250 ms). */
  backoffMs: number;
  fetch: typeof fetch;
}

export interface ExpoMessage {
  to: string;
  data: { cloudSyncEvent: 'check' };
  _contentAvailable: true;
  priority: 'high';
}

const BATCH = 100;

export function createPushNotifier(services: Services, opts: PushOptions, logError: (message: string, error: unknown) => void) {
  const pending = new Map<string, { origins: Set<string>; timer: NodeJS.Timeout }>();
  const inflight = new Set<Promise<void>>();
  const abort = new AbortController();

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      abort.signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });

  async function post(databaseId: string, messages: ExpoMessage[], accessToken: string | null): Promise<void> {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (accessToken !== null) headers['authorization'] = `Bearer ${accessToken}`;
    for (let attempt = 1; ; attempt++) {
      if (abort.signal.aborted) return;
      let retry: string;
      try {
        const res = await opts.fetch(opts.url, { method: 'POST', headers, body: JSON.stringify(messages), signal: abort.signal });
        const text = await res.text();
        if (res.ok) return void (await dropUnregistered(databaseId, messages, text));
        if (res.status !== 429 && res.status < 500) throw new Error(`Expo push refused: HTTP ${res.status} ${text.slice(0, 200)}`);
        retry = `HTTP ${res.status}`;
      } catch (e) {
        if (abort.signal.aborted) return;
        if (e instanceof Error && e.message.startsWith('Expo push refused')) throw e;
        retry = e instanceof Error ? e.message : String(e);
      }
      if (attempt >= opts.maxAttempts) throw new Error(`Expo push failed after ${attempt} attempts: ${retry}`);
      await sleep(opts.backoffMs * 2 ** (attempt - 1));
    }
  }

  async function dropUnregistered(databaseId: string, messages: ExpoMessage[], text: string): Promise<void> {
    let tickets: unknown;
    try {
      tickets = (JSON.parse(text) as { data?: unknown }).data;
    } catch {
      return;
    }
    if (!Array.isArray(tickets)) return;
    const gone = messages
      .filter((_m, i) => {
        const t: unknown = tickets[i];
        return typeof t === 'object' && t !== null && Reflect.get(t, 'status') === 'error' && Reflect.get(Reflect.get(t, 'details') ?? {}, 'error') === 'DeviceNotRegistered';
      })
      .map((m) => m.to);
    if (gone.length > 0) await services.prisma.pushToken.deleteMany({ where: { databaseId, expoToken: { in: gone } } });
  }

  async function send(databaseId: string, origins: ReadonlySet<string>): Promise<void> {
    const tokens = await services.push.listPushTokens(databaseId);
    // Notified: devices that at least one merge of the burst did not come from.
    const to = tokens.filter((t) => [...origins].some((o) => o !== t.siteId)).map((t) => t.expoToken);
    if (to.length === 0) return;
    const accessToken = await services.push.getExpoAccessToken(databaseId);
    const messages = to.map((token): ExpoMessage => ({ to: token, data: { cloudSyncEvent: 'check' }, _contentAvailable: true, priority: 'high' }));
    for (let i = 0; i < messages.length; i += BATCH) await post(databaseId, messages.slice(i, i + BATCH), accessToken);
  }

  function flush(databaseId: string): void {
    const p = pending.get(databaseId);
    if (p === undefined) return;
    pending.delete(databaseId);
    const run = send(databaseId, p.origins).catch((e: unknown) => logError(`push: notifying devices of ${databaseId} failed`, e));
    inflight.add(run);
    void run.finally(() => inflight.delete(run));
  }

  return {
    /** A merge from `originSiteId` committed changes: notify the other devices (debounced). */
    changed(databaseId: string, originSiteId: string): void {
      if (abort.signal.aborted) return;
      const p = pending.get(databaseId);
      if (p !== undefined) p.origins.add(originSiteId);
      else pending.set(databaseId, { origins: new Set([originSiteId]), timer: setTimeout(() => flush(databaseId), opts.debounceMs) });
    },
    /** Sends what is pending now and waits for every request in flight. */
    async flushAll(): Promise<void> {
      for (const [id, p] of [...pending]) {
        clearTimeout(p.timer);
        flush(id);
      }
      await Promise.all([...inflight]);
    },
    /** Drops pending pushes and aborts requests in flight. */
    async dispose(): Promise<void> {
      for (const p of pending.values()) clearTimeout(p.timer);
      pending.clear();
      abort.abort();
      await Promise.all([...inflight]);
    },
  };
}
export type PushNotifier = ReturnType<typeof createPushNotifier>;

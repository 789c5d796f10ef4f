import { afterEach, expect, test, vi } from 'vitest';
import type { Services } from '../../../services.ts';
import { createPushNotifier } from './push.ts';

afterEach(() => {
  vi.useRealTimers();
});

/** A notifier over stub services: three registered devices, one fetch recorder. */
function setup() {
  const tokens = [
    { siteId: 'a', expoToken: 'ExponentPushToken[a]' },
    { siteId: 'b', expoToken: 'ExponentPushToken[b]' },
    { siteId: 'c', expoToken: 'ExponentPushToken[c]' },
  ];
  const services = {
    push: { listPushTokens: async () => tokens, getExpoAccessToken: async () => null },
    prisma: { pushToken: { deleteMany: async () => ({ count: 0 }) } },
  } as unknown as Services;
  const posts: string[][] = [];
  const fetchStub = (async (_url: string, init: { body: string }) => {
    posts.push((JSON.parse(init.body) as Array<{ to: string }>).map((m) => m.to));
    return new Response(JSON.stringify({ data: [] }), { status: 200 });
  }) as unknown as typeof fetch;
  const notifier = createPushNotifier(services, { url: 'http://127.0.0.1:9/push', debounceMs: 500, maxAttempts: 1, backoffMs: 1, fetch: fetchStub }, () => {});
  return { notifier, posts };
}

test('merges inside the debounce window coalesce into one push; a later merge opens a new window', async () => {
  vi.useFakeTimers();
  const { notifier, posts } = setup();
  notifier.changed('db', 'a');
  await vi.advanceTimersByTimeAsync(200);
  notifier.changed('db', 'a');
  await vi.advanceTimersByTimeAsync(200);
  expect(posts).toEqual([]); // still inside the window opened by the first merge
  await vi.advanceTimersByTimeAsync(150);
  await notifier.flushAll();
  expect(posts).toEqual([['ExponentPushToken[b]', 'ExponentPushToken[c]']]);
  notifier.changed('db', 'b');
  await vi.advanceTimersByTimeAsync(499);
  expect(posts).toHaveLength(1);
  await vi.advanceTimersByTimeAsync(1);
  await notifier.flushAll();
  expect(posts[1]).toEqual(['ExponentPushToken[a]', 'ExponentPushToken[c]']);
  await notifier.dispose();
});

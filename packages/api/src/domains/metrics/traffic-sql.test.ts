import { describe, expect, test } from 'vitest';
import { coverRange, TRAFFIC_LEVELS } from './traffic-sql.ts';

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const size = (level: string): number => TRAFFIC_LEVELS.find((l) => l.level === level)?.ms as number;

describe('coverRange', () => {
  test('covers exactly the minutes whose start is in the range, each once, with whole buckets of the coarsest size', () => {
    let seed = 11;
    const rnd = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    const t0 = Date.parse('2025-06-14T00:00:00Z');
    for (let i = 0; i < 3000; i++) {
      // Ends anywhere: on and off minute, hour and day boundaries; lengths from 0 to 4 days.
      const align = [1, 1000, MIN, HOUR, DAY][rnd(5)] as number;
      const from = t0 + Math.floor(rnd(2 * DAY) / align) * align + (rnd(4) === 0 ? 1 : 0);
      const to = from + [rnd(2 * MIN), rnd(3 * HOUR), rnd(4 * DAY), Math.floor(rnd(4 * DAY) / HOUR) * HOUR][rnd(4)]!;
      const segments = coverRange(from, to);
      let at = Math.ceil(from / MIN) * MIN;
      const end = Math.max(at, Math.ceil(to / MIN) * MIN);
      for (const s of segments) {
        expect(s.from).toBe(at); // contiguous, in order, starting at the first minute in range
        expect(s.to).toBeGreaterThan(s.from);
        expect(s.from % size(s.level)).toBe(0); // whole buckets of their size
        expect(s.to % size(s.level)).toBe(0);
        at = s.to;
      }
      expect(at).toBe(end); // up to the first minute at or after `to`
      // Coarsest: no minute segment holds a whole hour, no hour segment a whole day.
      for (const s of segments) {
        if (s.level === 'minute') expect(Math.ceil(s.from / HOUR) * HOUR + HOUR > s.to).toBe(true);
        if (s.level === 'hour') expect(Math.ceil(s.from / DAY) * DAY + DAY > s.to).toBe(true);
      }
    }
  });

  test('examples', () => {
    const t = Date.parse('2025-06-14T00:00:00Z');
    expect(coverRange(t + 30_000, t + 90_000)).toEqual([{ level: 'minute', from: t + MIN, to: t + 2 * MIN }]);
    expect(coverRange(t + 1, t + 1000)).toEqual([]); // no minute starts in it
    expect(coverRange(t - 5 * MIN, t + DAY + HOUR + 1)).toEqual([
      { level: 'minute', from: t - 5 * MIN, to: t },
      { level: 'day', from: t, to: t + DAY },
      { level: 'hour', from: t + DAY, to: t + DAY + HOUR },
      { level: 'minute', from: t + DAY + HOUR, to: t + DAY + HOUR + MIN },
    ]);
  });
});

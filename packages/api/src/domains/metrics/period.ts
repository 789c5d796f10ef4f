/** Billing periods start on a configurable day of month (1–28), UTC; calendar month by default. */
export const UsagePeriod = { CURRENT: 'CURRENT', PREVIOUS: 'PREVIOUS' } as const;
export type UsagePeriod = (typeof UsagePeriod)[keyof typeof UsagePeriod];

export function billingPeriod(nowMs: number, startDay: number, period: UsagePeriod): { start: Date; end: Date } {
  const now = new Date(nowMs);
  let y = now.getUTCFullYear();
  let m = now.getUTCMonth();
  if (now.getUTCDate() < startDay) m -= 1;
  if (period === 'PREVIOUS') m -= 1;
  const start = new Date(Date.UTC(y, m, startDay));
  y = start.getUTCFullYear();
  m = start.getUTCMonth();
  return { start, end: new Date(Date.UTC(y, m + 1, startDay)) };
}

// Pure lever arithmetic: the period a lever reads, and its formula over (subscription, bucket) sums.
import { DateTime } from 'luxon';
import { Decimal, ZERO } from '../../core/decimal.js';

export const FORMULAS = ['total', 'per_bucket', 'unique_buckets'] as const;
export type Formula = (typeof FORMULAS)[number];
export const PERIODS = ['subscription', 'all_time', 'rolling'] as const;
export type Period = (typeof PERIODS)[number];
export const RENEWALS = ['day', 'week', 'month', 'year'] as const;
export type Renewal = (typeof RENEWALS)[number];

export interface LeverConfig {
  product: string;
  lever: string;
  meteringIds: string[];
  formula: Formula;
  period: Period;
  /** For period "rolling": the window length. */
  windowSeconds: number | null;
}

export interface Subscription {
  id: string;
  product: string;
  startedAt: number;
  renew: Renewal;
  timeZone: string;
}

export interface Range {
  from: number;
  to: number;
}

/** The subscription period containing `now`, counted from the start in the subscription's zone (DST-safe). */
export function currentPeriod(sub: Subscription, now: number): Range {
  const unit = `${sub.renew}s` as 'days' | 'weeks' | 'months' | 'years';
  const anchor = DateTime.fromMillis(sub.startedAt, { zone: sub.timeZone });
  if (now < sub.startedAt) return { from: sub.startedAt, to: anchor.plus({ [unit]: 1 }).toMillis() };
  // Each boundary is anchor + k units, so a start on the 31st stays on month ends.
  let k = Math.max(0, Math.floor(DateTime.fromMillis(now, { zone: sub.timeZone }).diff(anchor, unit).get(unit)));
  while (anchor.plus({ [unit]: k + 1 }).toMillis() <= now) k++;
  while (k > 0 && anchor.plus({ [unit]: k }).toMillis() > now) k--;
  return { from: anchor.plus({ [unit]: k }).toMillis(), to: anchor.plus({ [unit]: k + 1 }).toMillis() };
}

/** Usage not tied to a known subscription is read over the calendar month (UTC) for period "subscription". */
export function calendarMonth(now: number): Range {
  const start = DateTime.fromMillis(now, { zone: 'UTC' }).startOf('month');
  return { from: start.toMillis(), to: start.plus({ months: 1 }).toMillis() };
}

export interface Cell {
  /** Subscription id, or null when the record named none. */
  subscription: string | null;
  bucket: string | null;
  usage: Decimal;
}

export interface LeverUsage {
  total: Decimal;
  byBucket: Map<string, Decimal>;
  bySubscription: Map<string, Array<{ usage: Decimal; bucket: string | null }>>;
}

/** Applies a formula. Records without a subscription are listed under the customer id, as Planship does. */
export function applyFormula(formula: Formula, cells: Cell[], customerId: string): LeverUsage {
  const total = cells.reduce((a, c) => a.plus(c.usage), new Decimal(0));
  const byBucket = new Map<string, Decimal>();
  const bySubscription = new Map<string, Array<{ usage: Decimal; bucket: string | null }>>();
  const sorted = [...cells].sort((a, b) => (a.subscription ?? '').localeCompare(b.subscription ?? '') || (a.bucket ?? '').localeCompare(b.bucket ?? ''));
  if (formula === 'total') {
    byBucket.set('null', total);
    for (const c of sorted) {
      const key = c.subscription ?? customerId;
      const list = bySubscription.get(key) ?? [{ usage: ZERO, bucket: null }];
      list[0] = { usage: list[0].usage.plus(c.usage), bucket: null };
      bySubscription.set(key, list);
    }
    return { total, byBucket, bySubscription };
  }
  for (const c of sorted) {
    const b = c.bucket ?? 'null';
    byBucket.set(b, (byBucket.get(b) ?? ZERO).plus(c.usage));
    const key = c.subscription ?? customerId;
    const list = bySubscription.get(key) ?? [];
    const same = list.find((x) => x.bucket === c.bucket);
    if (same) same.usage = same.usage.plus(c.usage);
    else list.push({ usage: c.usage, bucket: c.bucket });
    bySubscription.set(key, list);
  }
  if (formula === 'unique_buckets') {
    const distinct = new Set(cells.filter((c) => c.bucket !== null && !c.usage.isZero()).map((c) => c.bucket));
    return { total: new Decimal(distinct.size), byBucket, bySubscription };
  }
  return { total, byBucket, bySubscription };
}

/** LeverUsage as JSON text with exact integers (sums may pass 2^53). */
export function leverUsageJson(u: LeverUsage): string {
  const n = (d: Decimal) => d.toFixed();
  const buckets = [...u.byBucket].map(([k, v]) => `${JSON.stringify(k)}:${n(v)}`).join(',');
  const subs = [...u.bySubscription].map(([k, list]) => `${JSON.stringify(k)}:[${list.map((x) => `{"usage":${n(x.usage)},"bucket":${JSON.stringify(x.bucket)}}`).join(',')}]`).join(',');
  return `{"total":${n(u.total)},"by_bucket":{${buckets}},"by_subscription":{${subs}}}`;
}

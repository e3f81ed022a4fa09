// Merging partial aggregates: the one place rollups, raw-edge scans and query results combine.
import { Decimal, ZERO, formatDecimal } from '../../core/decimal.js';
import type { Aggregation } from '../meters/meters.types.js';
import type { Partial, RollupDelta } from './usage.types.js';

/** Digits kept after the point by AVG, rounded half-even (the only division meterd does). */
export const AVG_FRACTION_DIGITS = 18;

export const emptyPartial = (): Partial => ({
  count: 0,
  sum: ZERO,
  min: null,
  max: null,
  latestTime: -1,
  latestSeq: -1,
  latestValue: null,
});

export function partialOf(value: Decimal | null, time: number, seq: number): Partial {
  return { count: 1, sum: value ?? ZERO, min: value, max: value, latestTime: time, latestSeq: seq, latestValue: value };
}

/** Merges b into a, returning a. */
export function mergeInto(a: Partial, b: Partial): Partial {
  a.count += b.count;
  a.sum = a.sum.plus(b.sum);
  if (b.min !== null && (a.min === null || b.min.lt(a.min))) a.min = b.min;
  if (b.max !== null && (a.max === null || b.max.gt(a.max))) a.max = b.max;
  if (b.latestTime > a.latestTime || (b.latestTime === a.latestTime && b.latestSeq > a.latestSeq)) {
    a.latestTime = b.latestTime;
    a.latestSeq = b.latestSeq;
    a.latestValue = b.latestValue;
  }
  return a;
}

export const clonePartial = (p: Partial): Partial => ({ ...p });

/** The answer a meter gives for a merged partial; null when there is nothing to report (MIN of no events). */
export function valueOf(aggregation: Aggregation, p: Partial, uniques?: Set<string>): Decimal | null {
  switch (aggregation) {
    case 'COUNT':
      return new Decimal(p.count);
    case 'SUM':
      return p.sum;
    case 'AVG':
      return p.count === 0 ? null : p.sum.div(p.count).toDecimalPlaces(AVG_FRACTION_DIGITS, Decimal.ROUND_HALF_EVEN);
    case 'MIN':
      return p.min;
    case 'MAX':
      return p.max;
    case 'LATEST':
      return p.latestValue;
    case 'UNIQUE_COUNT':
      return new Decimal(uniques?.size ?? 0);
  }
}

export const deltaKey = (d: Pick<RollupDelta, 'meterId' | 'subject' | 'groupKey' | 'bucket'>) =>
  `${d.meterId}\u0000${d.subject}\u0000${d.groupKey}\u0000${d.bucket}`;

/** Combines deltas of one batch that land in the same bucket, so each bucket is written once. */
export function combineDeltas(deltas: Iterable<RollupDelta>): { rollups: RollupDelta[]; uniques: RollupDelta[] } {
  const byKey = new Map<string, RollupDelta>();
  const uniques = new Map<string, RollupDelta>();
  for (const d of deltas) {
    if (d.unique !== undefined) {
      uniques.set(`${deltaKey(d)}\u0000${d.unique}`, d);
    }
    const k = deltaKey(d);
    const cur = byKey.get(k);
    if (cur) mergeInto(cur.partial, d.partial);
    else byKey.set(k, { ...d, partial: clonePartial(d.partial), unique: undefined });
  }
  return { rollups: [...byKey.values()], uniques: [...uniques.values()] };
}

export const serializeDecimal = (d: Decimal | null): string | null => (d === null ? null : formatDecimal(d));

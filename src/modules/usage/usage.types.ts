import type { Decimal } from '../../core/decimal.js';

/**
 * What any number of events contribute to one (meter, subject, group, bucket): enough to
 * answer every aggregation and to merge with other partials exactly.
 */
export interface Partial {
  count: number;
  sum: Decimal;
  min: Decimal | null;
  max: Decimal | null;
  latestTime: number;
  latestSeq: number;
  latestValue: Decimal | null;
}

/** One event's (or several merged events') contribution to a rollup bucket. */
export interface RollupDelta {
  meterId: string;
  subject: string;
  /** Canonical JSON of the dimension values, "{}" when the meter has none. */
  groupKey: string;
  /** UTC hour the event falls in, epoch ms. */
  bucket: number;
  partial: Partial;
  /** For UNIQUE_COUNT meters: the distinct value's canonical text. */
  unique?: string;
}

export interface RollupRow {
  subject: string;
  groupKey: string;
  bucket: number;
  partial: Partial;
}

export interface UniqueRow {
  subject: string;
  groupKey: string;
  bucket: number;
  value: string;
}

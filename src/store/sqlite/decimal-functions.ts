// Exact decimal arithmetic inside SQLite statements, so a rollup is updated by one upsert instead of
// a read and a write. Amounts are stored as canonical decimal text; integers small enough for a
// double add natively, anything else goes through decimal.js.
import type Database from 'better-sqlite3';
import { Decimal, formatDecimal } from '../../core/decimal.js';

/** Integers a double holds exactly, with room to add two of them. */
export const SMALL_INT = /^-?\d{1,15}$/;

export function decAdd(a: string, b: string): string {
  if (SMALL_INT.test(a) && SMALL_INT.test(b)) return String(Number(a) + Number(b));
  return formatDecimal(new Decimal(a).plus(b));
}

export function decCompare(a: string, b: string): number {
  if (SMALL_INT.test(a) && SMALL_INT.test(b)) return Number(a) - Number(b);
  return new Decimal(a).cmp(b);
}

export const decMin = (a: string, b: string) => (decCompare(a, b) <= 0 ? a : b);
export const decMax = (a: string, b: string) => (decCompare(a, b) >= 0 ? a : b);

/** Decimal text as SQLite stores it: small integers as INTEGER (added natively), the rest as exact TEXT. */
export function sqlValue(v: string | null): string | bigint | null {
  // A BigInt: better-sqlite3 binds every JS number as REAL, which the upsert's integer path skips.
  return v !== null && SMALL_INT.test(v) ? BigInt(v) : v;
}

export function registerDecimalFunctions(db: Database.Database) {
  // safeIntegers: INTEGER arguments arrive as BigInt and go back as INTEGER (a number would be REAL).
  const opts = { deterministic: true, directOnly: true, safeIntegers: true } as const;
  // Stored as sqlValue stores it, so a sum back below 10^15 is added natively again.
  db.function('dec_add', opts, (a: unknown, b: unknown) => sqlValue(decAdd(String(a), String(b))));
  // NULL means "no value yet": the other side wins.
  db.function('dec_min', opts, (a: unknown, b: unknown) => (a === null ? b : b === null ? a : decCompare(String(a), String(b)) <= 0 ? a : b));
  db.function('dec_max', opts, (a: unknown, b: unknown) => (a === null ? b : b === null ? a : decCompare(String(a), String(b)) >= 0 ? a : b));
}

/**
 * Exact aggregates for amounts stored as decimal text (usage queries merge rollups in SQL).
 * NULLs are skipped like SQLite's own SUM/MIN/MAX; a group with no values gives NULL.
 */
export function registerDecimalAggregates(db: Database.Database) {
  const opts = { deterministic: true, directOnly: true } as const;
  db.aggregate('dec_sum', {
    ...opts,
    start: () => null as Decimal | null,
    step: (acc: Decimal | null, v: unknown) => (v === null ? acc : acc === null ? new Decimal(String(v)) : acc.plus(String(v))),
    result: (acc: Decimal | null) => (acc === null ? null : formatDecimal(acc)),
  });
  const extreme = (keep: (c: number) => boolean) => ({
    ...opts,
    start: () => null as string | null,
    step: (acc: string | null, v: unknown) => (v === null ? acc : acc === null ? String(v) : keep(decCompare(String(v), acc)) ? String(v) : acc),
  });
  db.aggregate('dec_min_agg', extreme((c) => c < 0));
  db.aggregate('dec_max_agg', extreme((c) => c > 0));
}

// Exact decimal arithmetic inside SQLite statements, so a rollup is updated by one upsert instead of
// a read and a write. Amounts are stored as canonical decimal text; integers small enough for a
// double add natively, anything else goes through decimal.js.
import type Database from 'better-sqlite3';
import { Decimal, formatDecimal } from '../../core/decimal.js';

const SMALL_INT = /^-?\d{1,15}$/;

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

export function registerDecimalFunctions(db: Database.Database) {
  const opts = { deterministic: true, directOnly: true } as const;
  db.function('dec_add', opts, (a: unknown, b: unknown) => decAdd(String(a), String(b)));
  // NULL means "no value yet": the other side wins.
  db.function('dec_min', opts, (a: unknown, b: unknown) => (a === null ? b : b === null ? a : decCompare(String(a), String(b)) <= 0 ? a : b));
  db.function('dec_max', opts, (a: unknown, b: unknown) => (a === null ? b : b === null ? a : decCompare(String(a), String(b)) >= 0 ? a : b));
}

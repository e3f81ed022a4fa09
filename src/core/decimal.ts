// Usage amounts are exact decimals end to end: decimal.js with enough precision that a
// sum of many amounts never rounds. Values are serialised as plain decimal strings.
import { Decimal as DecimalJs } from 'decimal.js';

export const Decimal = DecimalJs.clone({
  precision: 80,
  rounding: DecimalJs.ROUND_HALF_EVEN,
  toExpNeg: -1000,
  toExpPos: 1000,
});
export type Decimal = InstanceType<typeof Decimal>;

export const ZERO = new Decimal(0);
export const ONE = new Decimal(1);

/** Most fractional digits an event amount may carry (documented in the README). */
export const MAX_FRACTION_DIGITS = 18;
/** Largest magnitude of one event amount: 10^20 (exclusive). */
const MAX_ABS_EXPONENT = 20;
/** A JSON number identifies one decimal unambiguously only up to 15 significant digits. */
const MAX_JSON_NUMBER_DIGITS = 15;

const DECIMAL_STRING = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

export type AmountResult = { ok: true; value: Decimal } | { ok: false; error: string };

/**
 * Reads an amount from event data: a decimal string ("12.5", "1e3") or a JSON number.
 * JSON numbers reach us as IEEE doubles, so one is accepted only when its shortest form has at
 * most 15 significant digits: then it is exactly the decimal the client wrote. Anything longer
 * must be sent as a string, which is exact at any length.
 */
export function parseAmount(raw: unknown): AmountResult {
  let value: Decimal;
  if (typeof raw === 'number') {
    if (!Number.isFinite(raw)) return { ok: false, error: 'amount must be a finite number' };
    const text = String(raw);
    value = new Decimal(text);
    if (value.precision(false) > MAX_JSON_NUMBER_DIGITS && !Number.isSafeInteger(raw)) {
      return { ok: false, error: `number ${text} has more than ${MAX_JSON_NUMBER_DIGITS} significant digits; send it as a decimal string to keep it exact` };
    }
    if (Number.isInteger(raw) && !Number.isSafeInteger(raw)) {
      return { ok: false, error: `integer ${text} is beyond 2^53 and cannot be exact as a JSON number; send it as a decimal string` };
    }
  } else if (typeof raw === 'string') {
    const s = raw.trim();
    if (s.length === 0 || s.length > 128 || !DECIMAL_STRING.test(s)) {
      return { ok: false, error: `"${truncate(raw)}" is not a decimal number` };
    }
    value = new Decimal(s);
  } else {
    return { ok: false, error: `expected a number or a decimal string, got ${describe(raw)}` };
  }
  // e is the decimal exponent: |value| >= 1e20 exactly when e >= 20 (zero has e = 0); no abs() copy.
  if (value.e >= MAX_ABS_EXPONENT) return { ok: false, error: 'amount magnitude must be below 1e20' };
  if (value.decimalPlaces() > MAX_FRACTION_DIGITS) {
    return { ok: false, error: `amount has more than ${MAX_FRACTION_DIGITS} fractional digits` };
  }
  // Normalise -0 to 0 so equal amounts serialise equally.
  if (value.isZero()) value = ZERO;
  return { ok: true, value };
}

/** Canonical text of a decimal: no exponent, no trailing zeros. */
export const formatDecimal = (d: Decimal): string => (d.isZero() ? '0' : d.toFixed());

export const dec = (s: string | number): Decimal => new Decimal(s);

function truncate(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : typeof v;
}

// Time is a domain type: half-open [from, to) in UTC epoch milliseconds inside,
// IANA zones only at the edges. Windows follow local midnight, so a DST day is 23 or 25 hours.
import { DateTime, IANAZone } from 'luxon';

export const WINDOW_SIZES = ['MINUTE', 'HOUR', 'DAY', 'MONTH'] as const;
export type WindowSize = (typeof WINDOW_SIZES)[number];

export const HOUR_MS = 3_600_000;
export const MINUTE_MS = 60_000;

/** Earliest and latest instants meterd accepts anywhere (years 1970..9999). */
export const MIN_TIME_MS = 0;
export const MAX_TIME_MS = 253_402_300_799_999;

/** The number written by `n` ASCII digits at `i`, or -1 when one is not a digit. */
function digits(text: string, i: number, n: number): number {
  let v = 0;
  for (let k = i; k < i + n; k++) {
    const c = text.charCodeAt(k) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

/**
 * An RFC 3339 date-time with a mandatory offset, as epoch ms: YYYY-MM-DD, "T", "t" or a space,
 * hh:mm:ss, an optional fraction of 1-9 digits (truncated to milliseconds), then "Z", "z" or
 * +hh:mm/-hh:mm. Read character by character: this runs for every ingested event.
 */
export function parseInstant(text: unknown): number | undefined {
  if (typeof text !== 'string' || text.length > 40 || text.length < 20) return undefined;
  const y = digits(text, 0, 4), month = digits(text, 5, 2), day = digits(text, 8, 2);
  const hour = digits(text, 11, 2), minute = digits(text, 14, 2), second = digits(text, 17, 2);
  const sep = text[10];
  if (y < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return undefined;
  if (text[4] !== '-' || text[7] !== '-' || (sep !== 'T' && sep !== 't' && sep !== ' ') || text[13] !== ':' || text[16] !== ':') return undefined;
  let i = 19;
  let ms = 0;
  if (text[i] === '.') {
    let end = i + 1;
    while (end < text.length && digits(text, end, 1) >= 0) end++;
    const n = end - i - 1;
    if (n < 1 || n > 9) return undefined;
    ms = digits(text, i + 1, Math.min(n, 3)) * (n === 1 ? 100 : n === 2 ? 10 : 1);
    i = end;
  }
  let offsetMin = 0;
  const z = text[i];
  if (z === 'Z' || z === 'z') {
    if (text.length !== i + 1) return undefined;
  } else if (z === '+' || z === '-') {
    if (text.length !== i + 6 || text[i + 3] !== ':') return undefined;
    const oh = digits(text, i + 1, 2), om = digits(text, i + 4, 2);
    if (oh < 0 || om < 0 || oh > 23 || om > 59) return undefined;
    offsetMin = (z === '-' ? -1 : 1) * (oh * 60 + om);
  } else {
    return undefined;
  }
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return undefined;
  // Years before 1900 are before MIN_TIME_MS whatever the offset, and Date.UTC would read 0-99 as 1900-1999.
  if (y < 1900) return undefined;
  const base = Date.UTC(y, month - 1, day, hour, minute, second, ms);
  // Date.UTC rolls 31 February into March; refuse such dates.
  const check = new Date(base);
  if (check.getUTCDate() !== day || check.getUTCMonth() !== month - 1) return undefined;
  const t = base - offsetMin * MINUTE_MS;
  if (t < MIN_TIME_MS || t > MAX_TIME_MS) return undefined;
  return t;
}

export const formatInstant = (ms: number): string => new Date(ms).toISOString();

/**
 * Whether text that parseInstant accepted is already what formatInstant writes for it (UTC "Z",
 * milliseconds, "T"), so it need not be written again. (Years below 1000, which parseInstant refuses,
 * are left out.)
 */
export const isFormattedInstant = (text: string): boolean =>
  text.length === 24 && text[10] === 'T' && text[19] === '.' && text[23] === 'Z' && text[0] !== '0';

/**
 * Zones found valid. Luxon's IANAZone.isValidZone builds a new Intl.DateTimeFormat on every call, an
 * ICU object whose native memory V8 frees only when it gets round to collecting the wrapper: checking
 * the zone of every usage query that way grew the server by ~200 MB over 7,600 queries
 * (bench/query-memory.ts). The IANA names are a few hundred, so the valid ones are kept; an invalid
 * name is checked again each time (it fails before ICU builds a formatter).
 */
const validZones = new Set<string>();

export function isValidZone(zone: unknown): zone is string {
  if (typeof zone !== 'string' || zone.length > 64) return false;
  if (validZones.has(zone)) return true;
  if (!IANAZone.isValidZone(zone)) return false;
  validZones.add(zone);
  return true;
}

export interface Window {
  start: number;
  end: number;
}

/** Start of the window of `size` in `zone` that contains `t`. */
export function truncate(t: number, size: WindowSize, zone: string): number {
  switch (size) {
    case 'MINUTE':
      return t - mod(t, MINUTE_MS);
    case 'HOUR': {
      // Local hours are not UTC hours in zones with :30 or :45 offsets.
      const dt = DateTime.fromMillis(t, { zone });
      return dt.startOf('hour').toMillis();
    }
    case 'DAY':
      return DateTime.fromMillis(t, { zone }).startOf('day').toMillis();
    case 'MONTH':
      return DateTime.fromMillis(t, { zone }).startOf('month').toMillis();
  }
}

/** The window after the one starting at `start` (local calendar arithmetic for DAY and MONTH). */
export function nextWindowStart(start: number, size: WindowSize, zone: string): number {
  switch (size) {
    case 'MINUTE':
      return start + MINUTE_MS;
    case 'HOUR':
      return start + HOUR_MS;
    case 'DAY':
      return DateTime.fromMillis(start, { zone }).plus({ days: 1 }).startOf('day').toMillis();
    case 'MONTH':
      return DateTime.fromMillis(start, { zone }).plus({ months: 1 }).startOf('month').toMillis();
  }
}

/**
 * The windows covering [from, to), clipped to the range: the first and last window may be
 * partial when `from`/`to` fall inside a window. Without a size, one window for the whole range.
 */
export function windowsOf(from: number, to: number, size: WindowSize | undefined, zone: string, max = Infinity): Window[] {
  if (!size) return [{ start: from, end: to }];
  const out: Window[] = [];
  let start = truncate(from, size, zone);
  while (start < to && out.length < max) {
    const next = nextWindowStart(start, size, zone);
    out.push({ start: Math.max(start, from), end: Math.min(next, to) });
    start = next;
  }
  return out;
}

export const floorHour = (t: number) => t - mod(t, HOUR_MS);
export const ceilHour = (t: number) => (mod(t, HOUR_MS) === 0 ? t : floorHour(t) + HOUR_MS);

function mod(a: number, b: number): number {
  return ((a % b) + b) % b;
}

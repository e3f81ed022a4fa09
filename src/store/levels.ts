// Rollup levels, shared by the engines. Every level follows from the events a transaction stores (stored
// there as pending contributions and folded into the levels in bulk, see sqlite/pending-rollups.ts and
// postgres/pending.ts); the hourly one is the source of truth for the others:
//   rollups              per subject, UTC hour, group
//   rollups_subject_day  per subject, UTC day, all groups merged (month-long per-customer queries)
//   rollups_subject_week per subject, UTC week from Monday, all groups merged (PostgreSQL only, see
//                        SUBJECT_WEEK_LEVEL)
//   rollups_total        per UTC hour and group, all subjects merged (queries over every subject)
//   rollup_uniques       distinct values per subject, UTC hour, group
//   rollup_uniques_days  distinct values per group and UTC month, with a bit per day seen
// The coarser levels cost little at ingest (a commit's events fall into few of their rows) and a
// query plans which level answers which part of its range (planSources), so answers never depend on it.
import { mergeInto } from '../modules/usage/partial.js';
import type { RollupAggregation, WindowRollupRow, WindowUniqueRow } from './store.js';

export const DAY_MS = 86_400_000;
export const dayOf = (bucket: number) => Math.floor(bucket / DAY_MS) * DAY_MS;
export const WEEK_MS = 7 * DAY_MS;
/** Weeks start on Monday, 00:00 UTC; the first Monday after the epoch is 1970-01-05. */
export const WEEK_OFFSET_MS = 4 * DAY_MS;
export const weekOf = (bucket: number) => Math.floor((bucket - WEEK_OFFSET_MS) / WEEK_MS) * WEEK_MS + WEEK_OFFSET_MS;

/** The UTC month of a bucket (its first instant) and the bit of its day in rollup_uniques_days.days. */
export function monthDayBit(bucket: number): { month: number; bit: number } {
  const d = new Date(bucket);
  return { month: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1), bit: 1 << (d.getUTCDate() - 1) };
}

export interface RollupLevel {
  table: string;
  /** Key columns after the meter's series number (see sqlite/series.ts and postgres/series.ts). */
  key: Array<'subject' | 'bucket' | 'group_key'>;
}

export const HOUR_LEVEL: RollupLevel = { table: 'rollups', key: ['subject', 'bucket', 'group_key'] };
export const SUBJECT_DAY_LEVEL: RollupLevel = { table: 'rollups_subject_day', key: ['subject', 'bucket'] };
export const TOTAL_LEVEL: RollupLevel = { table: 'rollups_total', key: ['bucket', 'group_key'] };
/**
 * PostgreSQL only. A month over every subject from the day level reads ~30 rows per subject, and
 * PostgreSQL's heap keeps them in the order folds wrote them, not in key order, so a read touches a
 * page per few rows (bench B4b at 10M events: 30,000 rows, seq scan of every meter's rows, 22-35 ms).
 * SQLite's day table is stored in key order (WITHOUT ROWID): one meter's month is a contiguous range
 * there (B4b 9.5 ms p99), so it saves its writers the extra level.
 */
export const SUBJECT_WEEK_LEVEL: RollupLevel = { table: 'rollups_subject_week', key: ['subject', 'bucket'] };
/** Every table holding a meter's rollups on both engines (what a meter's deletion or rebuild clears). */
export const ROLLUP_TABLES = [...[HOUR_LEVEL, SUBJECT_DAY_LEVEL, TOTAL_LEVEL].map((l) => l.table), 'rollup_uniques', 'rollup_uniques_days'];
export const POSTGRES_ROLLUP_TABLES = [...ROLLUP_TABLES, SUBJECT_WEEK_LEVEL.table];

export interface Source {
  level: RollupLevel;
  from: number;
  to: number;
}

/** At most this many separate reads per query; beyond it the hourly level answers alone. */
export const MAX_SOURCES = 64;

/**
 * Which level answers which part of [from, to). Every subject merged: the total level. Groups merged:
 * whole UTC weeks that lie inside one window from the week level (`weeks`: the engine keeps one),
 * whole UTC days inside one window from the day level, the hours around them from the hourly
 * level. Otherwise the hourly level.
 */
export function planSources(a: RollupAggregation, from: number, weeks = false): Source[] {
  const to = a.toBucket;
  if (!a.bySubject && a.subjects === undefined) return [{ level: TOTAL_LEVEL, from, to }];
  const hours = [{ level: HOUR_LEVEL, from, to }];
  if (a.byGroup !== false) return hours;
  const coarse: Source[] = [];
  const add = (level: RollupLevel, f: number, t: number) => {
    if (t <= f) return;
    const last = coarse[coarse.length - 1];
    if (last && last.level === level && last.to === f) last.to = t;
    else coarse.push({ level, from: f, to: t });
  };
  for (const d of wholeDays(a, from)) {
    // Whole weeks of the window's whole days; days before and after them.
    const weekFrom = weekOf(d.from) === d.from ? d.from : weekOf(d.from) + WEEK_MS;
    const weekTo = weekOf(d.to);
    if (weeks && weekTo > weekFrom) {
      add(SUBJECT_DAY_LEVEL, d.from, weekFrom);
      add(SUBJECT_WEEK_LEVEL, weekFrom, weekTo);
      add(SUBJECT_DAY_LEVEL, weekTo, d.to);
    } else add(SUBJECT_DAY_LEVEL, d.from, d.to);
  }
  const out = withHoursAround(coarse, from, to);
  return out.length === 0 || out.length > MAX_SOURCES ? hours : out;
}

/** The whole UTC days [from, to) inside each window (a window's own range cut to [from, toBucket)). */
export function wholeDays(a: RollupAggregation, from: number): Array<{ window: number; from: number; to: number }> {
  const starts = a.windowStarts;
  const out = [];
  for (let i = 0; i < starts.length; i++) {
    const windowFrom = Math.max(starts[i], from);
    const windowTo = Math.min(i + 1 < starts.length ? starts[i + 1] : a.toBucket, a.toBucket);
    const dayFrom = Math.ceil(windowFrom / DAY_MS) * DAY_MS;
    const dayTo = Math.floor(windowTo / DAY_MS) * DAY_MS;
    if (dayTo > dayFrom) out.push({ window: i, from: dayFrom, to: dayTo });
  }
  return out;
}

/** Sorted, disjoint day sources with hourly sources for the gaps of [from, to) between them. */
export function withHoursAround(days: Source[], from: number, to: number): Source[] {
  if (days.length === 0) return [];
  const out: Source[] = [];
  let cursor = from;
  for (const d of days) {
    if (d.from > cursor) out.push({ level: HOUR_LEVEL, from: cursor, to: d.from });
    out.push(d);
    cursor = d.to;
  }
  if (cursor < to) out.push({ level: HOUR_LEVEL, from: cursor, to });
  return out;
}

/** Per UTC month: window index -> bits of the window's whole days in that month. */
export function monthMasks(days: Array<{ window: number; from: number; to: number }>): Map<number, Record<number, number>> {
  const months = new Map<number, Record<number, number>>();
  for (const d of days) {
    for (let t = d.from; t < d.to; t += DAY_MS) {
      const { month, bit } = monthDayBit(t);
      const m = months.get(month) ?? months.set(month, {}).get(month)!;
      m[d.window] = (m[d.window] ?? 0) | bit;
    }
  }
  return months;
}

/**
 * Distinct values over every subject: the whole UTC days of each window from the per-month day bits
 * (as masks per month), the hours around them from the hourly level. null: the hourly level alone.
 */
export function planUniques(a: RollupAggregation, from: number): { masks: Map<number, Record<number, number>>; hours: Source[] } | null {
  if (a.bySubject || a.subjects !== undefined) return null;
  const days = wholeDays(a, from);
  const all = withHoursAround(days.map((d) => ({ level: SUBJECT_DAY_LEVEL, from: d.from, to: d.to })), from, a.toBucket);
  if (days.length === 0 || all.length > MAX_SOURCES) return null;
  return { masks: monthMasks(days), hours: all.filter((s) => s.level === HOUR_LEVEL) };
}

const windowKey = (r: { window: number; subject: string; groupKey: string }) => `${r.window}\u0000${r.subject}\u0000${r.groupKey}`;

/** Adds a row read from one source to the rows of a query, merged per (window, subject, group). */
export function mergeWindowRow(into: Map<string, WindowRollupRow>, row: WindowRollupRow): void {
  const key = windowKey(row);
  const m = into.get(key);
  if (m) mergeInto(m.partial, row.partial);
  else into.set(key, row);
}

/** Adds a distinct value read from one source to those of a query, once per (window, subject, group). */
export function addUniqueRow(into: Map<string, WindowUniqueRow>, row: WindowUniqueRow): void {
  into.set(`${windowKey(row)}\u0000${row.value}`, row);
}

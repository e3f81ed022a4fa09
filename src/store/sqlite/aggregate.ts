// Rollups merged per window inside SQLite, so a usage query reads one row per (window, subject,
// group) instead of every hourly bucket. Amounts are decimal text: canonical integers are summed
// and compared by SQLite itself (exact int64, overflow raises), the rest by the exact dec_* aggregates.
import type Database from 'better-sqlite3';
import { Decimal } from '../../core/decimal.js';
import { emptyPartial } from '../../modules/usage/partial.js';
import type { Partial } from '../../modules/usage/usage.types.js';
import { partsOf, type Parts, type RollupAggregation, type WindowRollupRow, type WindowUniqueRow } from '../store.js';
import { SERIES_OF } from './series.js';
import { addUniqueRow, mergeWindowRow, planSources, planUniques, type RollupLevel } from '../levels.js';

interface AggRow {
  bucket?: bigint;
  subject: string;
  group_key: string;
  count: bigint;
  /** SQLite's own SUM: exact when it comes back as an integer (every input was one). */
  native_sum?: bigint | number | null;
  int_sum?: bigint | null;
  dec_sum?: string | null;
  int_min?: bigint | null;
  dec_min?: string | null;
  int_max?: bigint | null;
  dec_max?: string | null;
  latest?: string | null;
}

export interface AggShape {
  level: RollupLevel;
  bySubject: boolean;
  /** Keep group keys apart; otherwise every row has group key ''. */
  byGroup: boolean;
  /** Group by bucket too (several windows): buckets are then merged into windows in JS. */
  byBucket: boolean;
  withSubjects: boolean;
  /**
   * How sums are added: 'native' by SQLite alone (exact only when every amount is an INTEGER, which
   * the answer's type tells), 'split' integers natively and the rest by dec_sum, 'decimal' all by
   * dec_sum (after an int64 overflow).
   */
  sum: 'native' | 'split' | 'decimal';
  parts: Parts;
}

/**
 * Amounts that fit 15 digits are stored as INTEGER, the rest (fractions, big integers) as canonical
 * decimal text, which the exact dec_* aggregates take.
 */
const isInt = (col: string) => `typeof(${col}) = 'integer'`;
const TIME_DIGITS = 16;
const SEQ_DIGITS = 20;

// Rows are read by bucket range through the primary key (series, bucket, ...); with a subject
// filter, through the (subject, bucket) index, named because the planner would rather filter a range
// of every subject than look rows up from an index that does not cover them.
const rowsOf = (table: string, withSubjects: boolean) => withSubjects
  ? `${table} r INDEXED BY ${table}_subject WHERE r.series = ${SERIES_OF} AND r.subject IN (SELECT value FROM json_each(@subjects)) AND r.bucket >= @from AND r.bucket < @to`
  : `${table} r WHERE r.series = ${SERIES_OF} AND r.bucket >= @from AND r.bucket < @to`;

export function aggregateSql(a: AggShape): string {
  const sumInt = a.sum === 'split' ? isInt('r.sum') : '0';
  const sums = a.sum === 'native'
    ? ['SUM(r.sum) AS native_sum']
    : [`SUM(r.sum) FILTER (WHERE ${sumInt}) AS int_sum`, `dec_sum(r.sum) FILTER (WHERE NOT (${sumInt})) AS dec_sum`];
  const hasSubject = a.level.key.includes('subject');
  const group = a.byGroup && a.level.key.includes('group_key');
  const columns = [
    a.byBucket ? 'r.bucket AS bucket' : null,
    `${a.bySubject ? 'r.subject' : "''"} AS subject`,
    `${group ? 'r.group_key' : "''"} AS group_key`,
    'SUM(r.count) AS count',
    ...(a.parts.sum ? sums : []),
    ...(a.parts.min ? [`MIN(r.min) FILTER (WHERE ${isInt('r.min')}) AS int_min`, `dec_min_agg(r.min) FILTER (WHERE NOT (${isInt('r.min')})) AS dec_min`] : []),
    ...(a.parts.max ? [`MAX(r.max) FILTER (WHERE ${isInt('r.max')}) AS int_max`, `dec_max_agg(r.max) FILTER (WHERE NOT (${isInt('r.max')})) AS dec_max`] : []),
    // The latest of a group: the greatest (time, seq), zero-padded so text order is numeric order.
    a.parts.latest ? `MAX(printf('%0${TIME_DIGITS}d%0${SEQ_DIGITS}d', r.latest_time, r.latest_seq) || coalesce('v' || r.latest_value, 'n')) AS latest` : null,
  ].filter((c) => c !== null);
  const groupBy = [a.byBucket ? 'r.bucket' : null, a.bySubject ? 'r.subject' : null, group ? 'r.group_key' : null].filter((c) => c !== null);
  const from = `SELECT ${columns.join(', ')} FROM ${rowsOf(a.level.table, hasSubject && a.withSubjects)}`;
  // HAVING: without GROUP BY an aggregate answers one row even over no rows.
  return `${from} ${groupBy.length > 0 ? `GROUP BY ${groupBy.join(', ')}` : ''} HAVING COUNT(*) > 0`;
}

export const uniquesSql = (a: Pick<AggShape, 'bySubject' | 'byGroup' | 'byBucket' | 'withSubjects'>) =>
  `SELECT DISTINCT ${a.byBucket ? 'r.bucket' : '0'} AS bucket, ${a.bySubject ? 'r.subject' : "''"} AS subject, ${a.byGroup ? 'r.group_key' : "''"} AS group_key, r.value AS value
    FROM ${rowsOf('rollup_uniques', a.withSubjects)}`;

/**
 * Distinct values over every subject for the whole UTC days of one month: a seek on the month, then
 * the rows in key order (value, group), so GROUP BY value streams without sorting. Rows are kept when
 * one of the asked days (the bits of @mask) saw the value.
 */
const UNIQUE_DAYS_SQL = (byGroup: boolean, withDays: boolean) => `
  SELECT r.value, ${byGroup ? 'r.group_key' : "''"}${withDays ? ', r.days' : ''} FROM rollup_uniques_days r
  WHERE r.series = ${SERIES_OF} AND r.month = @month AND (r.days & @mask) != 0
  ${byGroup || withDays ? '' : 'GROUP BY r.value'}`;

export class RollupAggregator {
  private readonly statements = new Map<string, Database.Statement<Record<string, unknown>, AggRow>>();
  private readonly uniqueStatements = new Map<string, Database.Statement<Record<string, unknown>, { bucket: number; subject: string; group_key: string; value: string }>>();

  private readonly dayBitStatements = new Map<string, Database.Statement<Record<string, unknown>, unknown[]>>();

  private dayBits(byGroup: boolean, withDays: boolean) {
    const sql = UNIQUE_DAYS_SQL(byGroup, withDays);
    let statement = this.dayBitStatements.get(sql);
    if (!statement) this.dayBitStatements.set(sql, (statement = this.db.prepare<Record<string, unknown>, unknown[]>(sql).raw(true)));
    return statement;
  }

  uniques(tenantId: string, a: RollupAggregation): WindowUniqueRow[] {
    const starts = a.windowStarts;
    if (starts.length === 0) return [];
    const from = Math.max(a.fromBucket, starts[0]);
    const byGroup = a.byGroup !== false;
    const shape = { bySubject: a.bySubject, byGroup, byBucket: starts.length > 1, withSubjects: a.subjects !== undefined };
    const plan = planUniques(a, from);
    if (!plan) return this.hourlyUniques(tenantId, a, shape, { from, to: a.toBucket });

    const out = new Map<string, WindowUniqueRow>();
    for (const [month, masks] of plan.masks) {
      const windows = Object.entries(masks).map(([win, mask]) => [Number(win), mask] as const);
      const params = { tenant: tenantId, meter: a.meterId, month };
      if (windows.length === 1) {
        const [window, mask] = windows[0];
        for (const [value, groupKey] of this.dayBits(byGroup, false).all({ ...params, mask }) as [string, string][]) {
          addUniqueRow(out, { window, subject: '', groupKey, value });
        }
        continue;
      }
      // Several windows in the month (DAY windows, say): one pass, each row given to the windows its days meet.
      const all = windows.reduce((m, [, mask]) => m | mask, 0);
      for (const [value, groupKey, days] of this.dayBits(byGroup, true).all({ ...params, mask: all }) as [string, string, number][]) {
        for (const [window, mask] of windows) if ((days & mask) !== 0) addUniqueRow(out, { window, subject: '', groupKey, value });
      }
    }
    for (const h of plan.hours) for (const r of this.hourlyUniques(tenantId, a, { ...shape, byBucket: true }, h)) addUniqueRow(out, r);
    return [...out.values()];
  }

  private hourlyUniques(tenantId: string, a: RollupAggregation, shape: Parameters<typeof uniquesSql>[0], range: { from: number; to: number }): WindowUniqueRow[] {
    const starts = a.windowStarts;
    const key = JSON.stringify(shape);
    let s = this.uniqueStatements.get(key);
    if (!s) this.uniqueStatements.set(key, (s = this.db.prepare(uniquesSql(shape))));
    const rows = s.all(this.params(tenantId, a, range));
    if (!shape.byBucket) return rows.map((r) => ({ window: 0, subject: r.subject, groupKey: r.group_key, value: r.value }));
    const out = new Map<string, WindowUniqueRow>();
    for (const r of rows) addUniqueRow(out, { window: lastAtOrBefore(starts, r.bucket), subject: r.subject, groupKey: r.group_key, value: r.value });
    return [...out.values()];
  }

  private params(tenantId: string, a: RollupAggregation, range = { from: Math.max(a.fromBucket, a.windowStarts[0]), to: a.toBucket }) {
    return {
      tenant: tenantId,
      meter: a.meterId,
      from: range.from,
      to: range.to,
      ...(a.subjects ? { subjects: JSON.stringify(a.subjects) } : {}),
    };
  }

  constructor(private readonly db: Database.Database) {}

  private statement(shape: AggShape) {
    const key = JSON.stringify({ ...shape, level: shape.level.table });
    let s = this.statements.get(key);
    if (!s) {
      s = this.db.prepare<Record<string, unknown>, AggRow>(aggregateSql(shape)).safeIntegers(true);
      this.statements.set(key, s);
    }
    return s;
  }

  run(tenantId: string, a: RollupAggregation): WindowRollupRow[] {
    const starts = a.windowStarts;
    if (starts.length === 0) return [];
    const sources = planSources(a, Math.max(a.fromBucket, starts[0]));
    const byBucket = starts.length > 1;
    const shape = { bySubject: a.bySubject, byGroup: a.byGroup !== false, byBucket, withSubjects: a.subjects !== undefined, sum: 'native' as const, parts: partsOf(a.aggregation) };
    if (sources.length === 1 && !byBucket) {
      return this.rows({ ...shape, level: sources[0].level }, this.params(tenantId, a, sources[0]))
        .map((r) => ({ window: 0, subject: r.subject, groupKey: r.group_key, partial: partialOf(r) }));
    }
    // Several windows or several sources: rows are merged per window here.
    const merged = new Map<string, WindowRollupRow>();
    for (const source of sources) {
      for (const r of this.rows({ ...shape, level: source.level }, this.params(tenantId, a, source))) {
        const window = byBucket ? lastAtOrBefore(starts, Number(r.bucket)) : 0;
        mergeWindowRow(merged, { window, subject: r.subject, groupKey: r.group_key, partial: partialOf(r) });
      }
    }
    return [...merged.values()];
  }

  /**
   * SQLite's SUM first: it answers an integer exactly when every amount was one. A group that held a
   * fraction comes back as a float, and the query is then asked again with exact decimal sums.
   */
  private rows(shape: AggShape, params: Record<string, unknown>): AggRow[] {
    try {
      const rows = this.statement(shape).all(params);
      if (shape.sum !== 'native' || rows.every((r) => typeof r.native_sum !== 'number')) return rows;
      return this.statement({ ...shape, sum: 'split' }).all(params);
    } catch (e) {
      if (!/integer overflow/i.test((e as Error).message)) throw e;
      return this.statement({ ...shape, sum: 'decimal' }).all(params);
    }
  }
}

function lastAtOrBefore(starts: number[], t: number): number {
  let lo = 0, hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid] <= t) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

const dec = (v: bigint | string | null | undefined) => (v === null || v === undefined ? null : new Decimal(v.toString()));

/** The lesser (or greater) of the integer part and the decimal part of a group's MIN (or MAX). */
function pick(a: Decimal | null, b: Decimal | null, lesser: boolean): Decimal | null {
  if (a === null) return b;
  if (b === null) return a;
  return lesser === a.lte(b) ? a : b;
}

function partialOf(r: AggRow): Partial {
  const p = emptyPartial();
  p.count = Number(r.count);
  if (r.native_sum !== undefined) p.sum = dec(r.native_sum as bigint | null) ?? p.sum;
  else if (r.int_sum !== undefined) {
    const int = dec(r.int_sum);
    p.sum = int && r.dec_sum ? int.plus(r.dec_sum) : (int ?? dec(r.dec_sum) ?? p.sum);
  }
  if (r.int_min !== undefined) p.min = pick(dec(r.int_min), dec(r.dec_min), true);
  if (r.int_max !== undefined) p.max = pick(dec(r.int_max), dec(r.dec_max), false);
  if (r.latest) {
    const value = r.latest.slice(TIME_DIGITS + SEQ_DIGITS);
    p.latestTime = Number(r.latest.slice(0, TIME_DIGITS));
    p.latestSeq = Number(r.latest.slice(TIME_DIGITS, TIME_DIGITS + SEQ_DIGITS));
    p.latestValue = value === 'n' ? null : new Decimal(value.slice(1));
  }
  return p;
}

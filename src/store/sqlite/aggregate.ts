// Rollups merged per window inside SQLite, so a usage query reads one row per (window, subject,
// group) instead of every hourly bucket. Amounts are decimal text: canonical integers are summed
// and compared by SQLite itself (exact int64, overflow raises), the rest by the exact dec_* aggregates.
import type Database from 'better-sqlite3';
import { Decimal } from '../../core/decimal.js';
import { emptyPartial } from '../../modules/usage/partial.js';
import type { Partial } from '../../modules/usage/usage.types.js';
import { partsOf, type Parts, type RollupAggregation, type WindowRollupRow, type WindowUniqueRow } from '../store.js';
import { addUniqueRow, mergeWindowRow, planSources, planUniques, type RollupLevel } from '../levels.js';

interface AggRow {
  bucket?: bigint;
  subject: string;
  group_key: string;
  count: bigint;
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
  /** false sends every sum through dec_sum (the fallback after an int64 overflow). */
  intSum: boolean;
  parts: Parts;
}

/** An INTEGER, or text that round-trips through a 64-bit integer: a canonical integer SQLite can add exactly. */
const isInt = (col: string) => `(typeof(${col}) = 'integer' OR CAST(CAST(${col} AS INTEGER) AS TEXT) = ${col})`;
const TIME_DIGITS = 16;
const SEQ_DIGITS = 20;

// Rows are read subject by subject through the primary key (subject, bucket, ...): a range seek per
// subject reads only the range, in key order, where the bucket index would cost a lookup per row.
// Without a subject filter the subjects come from a skip scan of the primary key.
const SUBJECTS_GIVEN = 'subj(s) AS (SELECT DISTINCT value FROM json_each(@subjects))';
const skipScan = (table: string) => `subj(s) AS (
    SELECT (SELECT min(subject) FROM ${table} WHERE tenant_id = @tenant AND meter_id = @meter)
    UNION ALL
    SELECT (SELECT min(subject) FROM ${table} WHERE tenant_id = @tenant AND meter_id = @meter AND subject > subj.s) FROM subj WHERE subj.s IS NOT NULL)`;
const RANGE = 'r.tenant_id = @tenant AND r.meter_id = @meter AND r.subject = subj.s AND r.bucket >= @from AND r.bucket < @to';

export function aggregateSql(a: AggShape): string {
  const sumInt = a.intSum ? isInt('r.sum') : '0';
  const hasSubject = a.level.key.includes('subject');
  const group = a.byGroup && a.level.key.includes('group_key');
  const columns = [
    a.byBucket ? 'r.bucket AS bucket' : null,
    `${a.bySubject ? 'r.subject' : "''"} AS subject`,
    `${group ? 'r.group_key' : "''"} AS group_key`,
    'SUM(r.count) AS count',
    ...(a.parts.sum ? [`SUM(CAST(r.sum AS INTEGER)) FILTER (WHERE ${sumInt}) AS int_sum`, `dec_sum(r.sum) FILTER (WHERE NOT (${sumInt})) AS dec_sum`] : []),
    ...(a.parts.min ? [`MIN(CAST(r.min AS INTEGER)) FILTER (WHERE ${isInt('r.min')}) AS int_min`, `dec_min_agg(r.min) FILTER (WHERE NOT (${isInt('r.min')})) AS dec_min`] : []),
    ...(a.parts.max ? [`MAX(CAST(r.max AS INTEGER)) FILTER (WHERE ${isInt('r.max')}) AS int_max`, `dec_max_agg(r.max) FILTER (WHERE NOT (${isInt('r.max')})) AS dec_max`] : []),
    // The latest of a group: the greatest (time, seq), zero-padded so text order is numeric order.
    a.parts.latest ? `MAX(printf('%0${TIME_DIGITS}d%0${SEQ_DIGITS}d', r.latest_time, r.latest_seq) || coalesce('v' || r.latest_value, 'n')) AS latest` : null,
  ].filter((c) => c !== null);
  const groupBy = [a.byBucket ? 'r.bucket' : null, a.bySubject ? 'r.subject' : null, group ? 'r.group_key' : null].filter((c) => c !== null);
  const from = hasSubject
    ? `WITH RECURSIVE ${a.withSubjects ? SUBJECTS_GIVEN : skipScan(a.level.table)} SELECT ${columns.join(', ')} FROM subj CROSS JOIN ${a.level.table} r WHERE ${RANGE}`
    : `SELECT ${columns.join(', ')} FROM ${a.level.table} r WHERE r.tenant_id = @tenant AND r.meter_id = @meter AND r.bucket >= @from AND r.bucket < @to`;
  // HAVING: without GROUP BY an aggregate answers one row even over no rows.
  return `${from} ${groupBy.length > 0 ? `GROUP BY ${groupBy.join(', ')}` : ''} HAVING COUNT(*) > 0`;
}

export const uniquesSql = (a: Pick<AggShape, 'bySubject' | 'byGroup' | 'byBucket' | 'withSubjects'>) =>
  `WITH RECURSIVE ${a.withSubjects ? SUBJECTS_GIVEN : skipScan('rollup_uniques')}
    SELECT DISTINCT ${a.byBucket ? 'r.bucket' : '0'} AS bucket, ${a.bySubject ? 'r.subject' : "''"} AS subject, ${a.byGroup ? 'r.group_key' : "''"} AS group_key, r.value AS value
    FROM subj CROSS JOIN rollup_uniques r WHERE ${RANGE}`;

/**
 * Distinct values over every subject, for the whole UTC days of each window, from the per-month day
 * bits: one (window, month, bits of the window's days in that month) row per window and month it touches.
 */
const UNIQUE_DAYS_SQL = (byGroup: boolean) => `
  WITH w(win, month, mask) AS MATERIALIZED (
    SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(@windows))
  SELECT DISTINCT w.win AS win, ${byGroup ? 'r.group_key' : "''"} AS group_key, r.value AS value
  FROM w JOIN rollup_uniques_days r ON r.tenant_id = @tenant AND r.meter_id = @meter AND r.month = w.month AND (r.days & w.mask) != 0`;

export class RollupAggregator {
  private readonly statements = new Map<string, Database.Statement<Record<string, unknown>, AggRow>>();
  private readonly uniqueStatements = new Map<string, Database.Statement<Record<string, unknown>, { bucket: number; subject: string; group_key: string; value: string }>>();

  private readonly dayBitStatements = new Map<string, Database.Statement<Record<string, unknown>, [number, string, string]>>();

  uniques(tenantId: string, a: RollupAggregation): WindowUniqueRow[] {
    const starts = a.windowStarts;
    if (starts.length === 0) return [];
    const from = Math.max(a.fromBucket, starts[0]);
    const byGroup = a.byGroup !== false;
    const shape = { bySubject: a.bySubject, byGroup, byBucket: starts.length > 1, withSubjects: a.subjects !== undefined };
    const plan = planUniques(a, from);
    if (!plan) return this.hourlyUniques(tenantId, a, shape, { from, to: a.toBucket });

    const out = new Map<string, WindowUniqueRow>();
    const sql = UNIQUE_DAYS_SQL(byGroup);
    let statement = this.dayBitStatements.get(sql);
    if (!statement) this.dayBitStatements.set(sql, (statement = this.db.prepare<Record<string, unknown>, [number, string, string]>(sql).raw(true)));
    const windows = [...plan.masks].flatMap(([month, masks]) => Object.entries(masks).map(([win, mask]) => [Number(win), month, mask]));
    for (const [window, groupKey, value] of statement.all({ tenant: tenantId, meter: a.meterId, windows: JSON.stringify(windows) })) {
      addUniqueRow(out, { window, subject: '', groupKey, value });
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
    const shape = { bySubject: a.bySubject, byGroup: a.byGroup !== false, byBucket, withSubjects: a.subjects !== undefined, intSum: true, parts: partsOf(a.aggregation) };
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

  private rows(shape: AggShape, params: Record<string, unknown>): AggRow[] {
    try {
      return this.statement(shape).all(params);
    } catch (e) {
      if (!/integer overflow/i.test((e as Error).message)) throw e;
      return this.statement({ ...shape, intSum: false }).all(params);
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
  if (r.int_sum !== undefined) p.sum = (dec(r.int_sum) ?? p.sum).plus(r.dec_sum ?? 0);
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

// Rollups merged per window inside PostgreSQL (NUMERIC is exact), so a usage query reads one row
// per (window, subject, group) instead of every hourly bucket. width_bucket finds a bucket's window:
// the last start at or before it. Which level answers which part of the range: ../levels.ts.
import type pg from 'pg';
import { addUniqueRow, planSources, planUniques, type RollupLevel, type Source } from '../levels.js';
import { partialFromRow, type PartialColumns } from '../rows.js';
import { SERIES_OF } from './series.js';
import { checkMetersVersion, partsOf, type Parts, type RollupAggregation, type WindowRollupRow, type WindowUniqueRow } from '../store.js';

const LATEST_ORDER = 'ORDER BY latest_time DESC, latest_seq DESC';

interface Shape {
  /** The levels and ranges one statement reads (planSources), merged in it. */
  sources: Source[];
  bySubject: boolean;
  byGroup: boolean;
  withSubjects: boolean;
  parts: Parts;
  /** Add the pending column (see reader). */
  check: boolean;
}

/**
 * Whether any contribution is still pending, as the read's own snapshot sees it: false means every
 * fold of what was committed before the statement is in the rows it read (a fold deletes pending rows
 * and updates the rollups in one transaction), so a read needs no check of its own first. A check in
 * a statement of its own, before or beside the read, costs a round trip or can see a fold that the
 * read's older snapshot missed. Evaluated once per statement (an uncorrelated subquery).
 */
const pendingColumn = (check: boolean) => (check ? ', (SELECT EXISTS (SELECT 1 FROM rollup_pending)) AS pending, (SELECT meters_version FROM tenants WHERE id = $1) AS meters_version' : '');

/** $1 tenant, $2 meter, $3 window starts, $4 subjects (if any), then each source's from and to. */
const firstRangeParam = (withSubjects: boolean) => (withSubjects ? 5 : 4);

/** One source's rows: a level's rows in its range, its missing key columns as ''. */
function sourceSql(level: RollupLevel, i: number, withSubjects: boolean): string {
  const has = (k: RollupLevel['key'][number]) => level.key.includes(k);
  const from = firstRangeParam(withSubjects) + 2 * i;
  // '' in the key columns' collation, so that every branch's column has the same one.
  return `SELECT bucket, ${has('subject') ? 'subject' : `''::text COLLATE "C" AS subject`}, ${has('group_key') ? 'group_key' : `''::text COLLATE "C" AS group_key`},
      count, sum, min, max, latest_time, latest_seq, latest_value
    FROM ${level.table}
    WHERE series = ${SERIES_OF} AND bucket >= $${from} AND bucket < $${from + 1}${withSubjects && has('subject') ? ' AND subject = ANY($4::text[])' : ''}`;
}

/**
 * Every source of a read in one statement (UNION ALL), merged per window there: one round trip, and
 * one row per answer comes back however many levels serve the range. Parts the aggregation does not
 * read come back as the empty partial's values.
 */
export const aggregateSql = ({ sources, bySubject, byGroup, withSubjects, parts: p, check }: Shape) => `
  SELECT width_bucket(bucket, $3::bigint[]) - 1 AS win, ${bySubject ? 'subject' : "''::text"} AS subject,
    ${byGroup ? 'group_key' : "''::text"} AS group_key,
    sum(count) AS count,
    ${p.sum ? 'sum(sum)::text' : "'0'"} AS sum,
    ${p.min ? 'min(min)::text' : 'NULL'} AS min,
    ${p.max ? 'max(max)::text' : 'NULL'} AS max,
    ${p.latest ? 'max(latest_time)' : '-1'} AS latest_time,
    ${p.latest ? `(array_agg(latest_seq ${LATEST_ORDER}))[1]` : '-1'} AS latest_seq,
    ${p.latest ? `(array_agg(latest_value ${LATEST_ORDER}))[1]::text` : 'NULL'} AS latest_value${pendingColumn(check)}
  FROM (${sources.map((s, i) => sourceSql(s.level, i, withSubjects)).join('\n    UNION ALL ')}) AS r
  GROUP BY 1, 2, 3`;

const uniquesSql = (bySubject: boolean, byGroup: boolean, withSubjects: boolean, check: boolean) => `
  SELECT DISTINCT width_bucket(bucket, $5::bigint[]) - 1 AS win, ${bySubject ? 'subject' : "''::text"} AS subject, ${byGroup ? 'group_key' : "''::text"} AS group_key, value${pendingColumn(check)}
  FROM rollup_uniques
  WHERE series = ${SERIES_OF} AND bucket >= $3 AND bucket < $4
    ${withSubjects ? 'AND subject = ANY($6::text[])' : ''}`;

/**
 * Distinct values of every subject over the whole days of each window. $3-$5 are the windows (index,
 * month, bits of its days), $6-$7 each month once with the bits of all its windows. Each month's rows
 * are read once, in key order from the covering key (migration 9), and grouped by value as they come
 * (their day bits OR-ed): a month of 40,000 (value, group) rows is ~10,000 values without groups.
 * Only those meet the windows. Joining the windows to the table's rows instead hashed every row once
 * per window of its month: 70 ms for one window over two months of 80,000 rows, 500 ms for 30 DAY
 * windows, against ~35 and ~250 ms (3M events seeded, bench/query-times.ts and EXPLAIN ANALYZE).
 * MATERIALIZED keeps the planner from reading a month again for each of its windows.
 */
const uniqueDaysSql = (byGroup: boolean, check: boolean) => `
  WITH r AS MATERIALIZED (
    SELECT m.month, v.group_key, v.value, v.days
    FROM unnest($6::bigint[], $7::int[]) AS m(month, mask)
    CROSS JOIN LATERAL (
      SELECT ${byGroup ? 'group_key' : "''::text"} AS group_key, value, bit_or(days) AS days FROM rollup_uniques_days
      WHERE series = ${SERIES_OF} AND month = m.month AND (days & m.mask) <> 0
      GROUP BY value${byGroup ? ', group_key' : ''}) AS v)
  SELECT DISTINCT w.win, r.group_key, r.value${pendingColumn(check)}
  FROM r JOIN unnest($3::int[], $4::bigint[], $5::int[]) AS w(win, month, mask) ON w.month = r.month AND (r.days & w.mask) <> 0`;

/**
 * Statement texts given a name, at most. A read's text follows its shape (levels and ranges, up to
 * MAX_SOURCES of them), and a named statement stays prepared on every pooled connection: past this
 * many shapes, reads run unnamed (parsed and planned each time, as before) rather than grow that.
 */
export const NAMED_READS = 256;
const statementNames = new Map<string, string>();
/** A name per statement text, so each connection parses and plans a read's shape once, not per read. */
export function statementName(text: string): string | undefined {
  let name = statementNames.get(text);
  if (!name && statementNames.size < NAMED_READS) statementNames.set(text, (name = `meterd-read-${statementNames.size}`));
  return name;
}

/**
 * Runs the statements of one read. Only the first carries the pending column (`sql(true)`): later ones
 * have later snapshots, which hold at least what it saw folded. A statement returns undefined when that
 * first one found contributions pending, or no rows to say: the caller folds, then reads again with
 * checkPending false, when every statement returns its rows. The first statement's rows also carry the
 * tenant's meters version, checked against the caller's (a.metersVersion) when there is one.
 */
function reader(pool: pg.Pool, checkPending: boolean, metersVersion: number | undefined) {
  let check = checkPending;
  return async <R>(sql: (check: boolean) => string, values: unknown[]): Promise<R[] | undefined> => {
    const first = check;
    check = false;
    const text = sql(first);
    const r = await pool.query<R & { pending?: boolean; meters_version?: string | null }>({ name: statementName(text), text, values });
    if (first && r.rows.length > 0) checkMetersVersion(metersVersion, r.rows[0].meters_version);
    if (first && (r.rows.length === 0 || r.rows[0].pending)) return undefined;
    return r.rows;
  };
}

// The subject clause is left out rather than made optional with "$6 IS NULL OR": that OR would
// keep the planner from seeking the (tenant, meter, subject, bucket) index.
const params = (tenantId: string, a: RollupAggregation, range: { from: number; to: number }) => [
  tenantId,
  a.meterId,
  range.from,
  range.to,
  a.windowStarts,
  ...(a.subjects ? [a.subjects] : []),
];

const fullRange = (a: RollupAggregation) => ({ from: Math.max(a.fromBucket, a.windowStarts[0]), to: a.toBucket });

/**
 * Distinct values per window. With checkPending, undefined if contributions were pending when the first
 * statement ran (or it found no rows to say): fold them and ask again without the check.
 */
export async function aggregateUniques(pool: pg.Pool, tenantId: string, a: RollupAggregation, checkPending = false): Promise<WindowUniqueRow[] | undefined> {
  if (a.windowStarts.length === 0) return [];
  const byGroup = a.byGroup !== false;
  const run = reader(pool, checkPending, a.metersVersion);
  const hourly = async (range: { from: number; to: number }) => {
    const rows = await run<{ win: number; subject: string; group_key: string; value: string }>((check) => uniquesSql(a.bySubject, byGroup, a.subjects !== undefined, check), params(tenantId, a, range));
    return rows?.map((x) => ({ window: Number(x.win), subject: x.subject, groupKey: x.group_key, value: x.value }));
  };
  const range = fullRange(a);
  const plan = planUniques(a, range.from);
  if (!plan) return hourly(range);
  const out = new Map<string, WindowUniqueRow>();
  const windows = [...plan.masks].flatMap(([month, masks]) => Object.entries(masks).map(([win, mask]) => ({ win: Number(win), month, mask })));
  const months = [...plan.masks].map(([month, masks]) => ({ month, mask: Object.values(masks).reduce((all, m) => all | m, 0) }));
  const days = await run<{ win: number; group_key: string; value: string }>((check) => uniqueDaysSql(byGroup, check), [
    tenantId,
    a.meterId,
    windows.map((w) => w.win),
    windows.map((w) => w.month),
    windows.map((w) => w.mask),
    months.map((m) => m.month),
    months.map((m) => m.mask),
  ]);
  if (!days) return undefined;
  for (const x of days) addUniqueRow(out, { window: Number(x.win), subject: '', groupKey: x.group_key, value: x.value });
  for (const h of plan.hours) for (const u of (await hourly(h))!) addUniqueRow(out, u);
  return [...out.values()];
}

/** Rollups merged per window, in one statement; checkPending as for aggregateUniques. */
export async function aggregateRollups(pool: pg.Pool, tenantId: string, a: RollupAggregation, checkPending = false): Promise<WindowRollupRow[] | undefined> {
  if (a.windowStarts.length === 0) return [];
  // PostgreSQL keeps the week level (see SUBJECT_WEEK_LEVEL).
  const sources = planSources(a, fullRange(a).from, true);
  const withSubjects = a.subjects !== undefined;
  const shape = { sources, bySubject: a.bySubject, byGroup: a.byGroup !== false, withSubjects, parts: partsOf(a.aggregation) };
  const values = [tenantId, a.meterId, a.windowStarts, ...(withSubjects ? [a.subjects] : []), ...sources.flatMap((s) => [s.from, s.to])];
  const rows = await reader(pool, checkPending, a.metersVersion)<PartialColumns & { win: number; subject: string; group_key: string }>((check) => aggregateSql({ ...shape, check }), values);
  return rows?.map((x) => ({ window: Number(x.win), subject: x.subject, groupKey: x.group_key, partial: partialFromRow(x) }));
}

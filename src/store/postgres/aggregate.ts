// Rollups merged per window inside PostgreSQL (NUMERIC is exact), so a usage query reads one row
// per (window, subject, group) instead of every hourly bucket. width_bucket finds a bucket's window:
// the last start at or before it. Which level answers which part of the range: ../levels.ts.
import type pg from 'pg';
import { addUniqueRow, mergeWindowRow, planSources, planUniques, type RollupLevel, type Source } from '../levels.js';
import { partialFromRow, type PartialColumns } from '../rows.js';
import { partsOf, type Parts, type RollupAggregation, type WindowRollupRow, type WindowUniqueRow } from '../store.js';

const LATEST_ORDER = 'ORDER BY latest_time DESC, latest_seq DESC';

interface Shape {
  level: RollupLevel;
  bySubject: boolean;
  byGroup: boolean;
  withSubjects: boolean;
  parts: Parts;
}

/** Parts the aggregation does not read come back as the empty partial's values. */
export const aggregateSql = ({ level, bySubject, byGroup, withSubjects, parts: p }: Shape) => `
  SELECT width_bucket(bucket, $5::bigint[]) - 1 AS win, ${bySubject ? 'subject' : "''::text"} AS subject,
    ${byGroup && level.key.includes('group_key') ? 'group_key' : "''::text"} AS group_key,
    sum(count) AS count,
    ${p.sum ? 'sum(sum)::text' : "'0'"} AS sum,
    ${p.min ? 'min(min)::text' : 'NULL'} AS min,
    ${p.max ? 'max(max)::text' : 'NULL'} AS max,
    ${p.latest ? 'max(latest_time)' : '-1'} AS latest_time,
    ${p.latest ? `(array_agg(latest_seq ${LATEST_ORDER}))[1]` : '-1'} AS latest_seq,
    ${p.latest ? `(array_agg(latest_value ${LATEST_ORDER}))[1]::text` : 'NULL'} AS latest_value
  FROM ${level.table}
  WHERE tenant_id = $1 AND meter_id = $2 AND bucket >= $3 AND bucket < $4
    ${withSubjects && level.key.includes('subject') ? 'AND subject = ANY($6::text[])' : ''}
  GROUP BY 1, 2, 3`;

const uniquesSql = (bySubject: boolean, byGroup: boolean, withSubjects: boolean) => `
  SELECT DISTINCT width_bucket(bucket, $5::bigint[]) - 1 AS win, ${bySubject ? 'subject' : "''::text"} AS subject, ${byGroup ? 'group_key' : "''::text"} AS group_key, value
  FROM rollup_uniques
  WHERE tenant_id = $1 AND meter_id = $2 AND bucket >= $3 AND bucket < $4
    ${withSubjects ? 'AND subject = ANY($6::text[])' : ''}`;

/** Distinct values of every subject over the whole days of each window: $3-$5 are (window, month, bits of its days). */
const uniqueDaysSql = (byGroup: boolean) => `
  SELECT DISTINCT w.win, ${byGroup ? 'r.group_key' : "''::text"} AS group_key, r.value
  FROM unnest($3::int[], $4::bigint[], $5::int[]) AS w(win, month, mask)
  JOIN rollup_uniques_days r ON r.tenant_id = $1 AND r.meter_id = $2 AND r.month = w.month AND (r.days & w.mask) <> 0`;

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

export async function aggregateUniques(pool: pg.Pool, tenantId: string, a: RollupAggregation): Promise<WindowUniqueRow[]> {
  if (a.windowStarts.length === 0) return [];
  const byGroup = a.byGroup !== false;
  const hourly = async (range: { from: number; to: number }) => {
    const r = await pool.query<{ win: number; subject: string; group_key: string; value: string }>(uniquesSql(a.bySubject, byGroup, a.subjects !== undefined), params(tenantId, a, range));
    return r.rows.map((x) => ({ window: Number(x.win), subject: x.subject, groupKey: x.group_key, value: x.value }));
  };
  const range = fullRange(a);
  const plan = planUniques(a, range.from);
  if (!plan) return hourly(range);
  const out = new Map<string, WindowUniqueRow>();
  const windows = [...plan.masks].flatMap(([month, masks]) => Object.entries(masks).map(([win, mask]) => ({ win: Number(win), month, mask })));
  const r = await pool.query<{ win: number; group_key: string; value: string }>(uniqueDaysSql(byGroup), [
    tenantId,
    a.meterId,
    windows.map((w) => w.win),
    windows.map((w) => w.month),
    windows.map((w) => w.mask),
  ]);
  for (const x of r.rows) addUniqueRow(out, { window: Number(x.win), subject: '', groupKey: x.group_key, value: x.value });
  for (const h of plan.hours) for (const u of await hourly(h)) addUniqueRow(out, u);
  return [...out.values()];
}

export async function aggregateRollups(pool: pg.Pool, tenantId: string, a: RollupAggregation): Promise<WindowRollupRow[]> {
  if (a.windowStarts.length === 0) return [];
  const shape = { bySubject: a.bySubject, byGroup: a.byGroup !== false, withSubjects: a.subjects !== undefined, parts: partsOf(a.aggregation) };
  const read = async (source: Source) => {
    const r = await pool.query<PartialColumns & { win: number; subject: string; group_key: string }>(aggregateSql({ ...shape, level: source.level }), params(tenantId, a, source));
    return r.rows.map((x) => ({ window: Number(x.win), subject: x.subject, groupKey: x.group_key, partial: partialFromRow(x) }));
  };
  const sources = planSources(a, fullRange(a).from);
  if (sources.length === 1) return read(sources[0]);
  const merged = new Map<string, WindowRollupRow>();
  for (const source of sources) for (const row of await read(source)) mergeWindowRow(merged, row);
  return [...merged.values()];
}

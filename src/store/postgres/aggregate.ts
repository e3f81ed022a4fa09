// Rollups merged per window inside PostgreSQL (NUMERIC is exact), so a usage query reads one row
// per (window, subject, group) instead of every hourly bucket. width_bucket finds a bucket's window:
// the last start at or before it.
import type pg from 'pg';
import { partialFromRow, type PartialColumns } from '../rows.js';
import { partsOf, type Parts, type RollupAggregation, type WindowRollupRow, type WindowUniqueRow } from '../store.js';

const LATEST_ORDER = 'ORDER BY latest_time DESC, latest_seq DESC';

/** Parts the aggregation does not read come back as the empty partial's values. */
export const aggregateSql = (bySubject: boolean, byGroup: boolean, withSubjects: boolean, p: Parts) => `
  SELECT width_bucket(bucket, $5::bigint[]) - 1 AS win, ${bySubject ? 'subject' : "''::text"} AS subject, ${byGroup ? 'group_key' : "''::text"} AS group_key,
    sum(count) AS count,
    ${p.sum ? 'sum(sum)::text' : "'0'"} AS sum,
    ${p.min ? 'min(min)::text' : 'NULL'} AS min,
    ${p.max ? 'max(max)::text' : 'NULL'} AS max,
    ${p.latest ? 'max(latest_time)' : '-1'} AS latest_time,
    ${p.latest ? `(array_agg(latest_seq ${LATEST_ORDER}))[1]` : '-1'} AS latest_seq,
    ${p.latest ? `(array_agg(latest_value ${LATEST_ORDER}))[1]::text` : 'NULL'} AS latest_value
  FROM rollups
  WHERE tenant_id = $1 AND meter_id = $2 AND bucket >= $3 AND bucket < $4
    ${withSubjects ? 'AND subject = ANY($6::text[])' : ''}
  GROUP BY 1, 2, 3`;

const uniquesSql = (bySubject: boolean, byGroup: boolean, withSubjects: boolean) => `
  SELECT DISTINCT width_bucket(bucket, $5::bigint[]) - 1 AS win, ${bySubject ? 'subject' : "''::text"} AS subject, ${byGroup ? 'group_key' : "''::text"} AS group_key, value
  FROM rollup_uniques
  WHERE tenant_id = $1 AND meter_id = $2 AND bucket >= $3 AND bucket < $4
    ${withSubjects ? 'AND subject = ANY($6::text[])' : ''}`;

// The subject clause is left out rather than made optional with "$6 IS NULL OR": that OR would
// keep the planner from seeking the primary key (tenant, meter, subject, bucket).
const params = (tenantId: string, a: RollupAggregation) => [
  tenantId,
  a.meterId,
  Math.max(a.fromBucket, a.windowStarts[0]),
  a.toBucket,
  a.windowStarts,
  ...(a.subjects ? [a.subjects] : []),
];

export async function aggregateUniques(pool: pg.Pool, tenantId: string, a: RollupAggregation): Promise<WindowUniqueRow[]> {
  if (a.windowStarts.length === 0) return [];
  const r = await pool.query<{ win: number; subject: string; group_key: string; value: string }>(uniquesSql(a.bySubject, a.byGroup !== false, a.subjects !== undefined), params(tenantId, a));
  return r.rows.map((x) => ({ window: Number(x.win), subject: x.subject, groupKey: x.group_key, value: x.value }));
}

export async function aggregateRollups(pool: pg.Pool, tenantId: string, a: RollupAggregation): Promise<WindowRollupRow[]> {
  if (a.windowStarts.length === 0) return [];
  const sql = aggregateSql(a.bySubject, a.byGroup !== false, a.subjects !== undefined, partsOf(a.aggregation));
  const r = await pool.query<PartialColumns & { win: number; subject: string; group_key: string }>(sql, params(tenantId, a));
  return r.rows.map((x) => ({ window: Number(x.win), subject: x.subject, groupKey: x.group_key, partial: partialFromRow(x) }));
}

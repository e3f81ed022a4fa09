// Rollups merged per window inside PostgreSQL (NUMERIC is exact), so a usage query reads one row
// per (window, subject, group) instead of every hourly bucket. width_bucket finds a bucket's window:
// the last start at or before it.
import type pg from 'pg';
import { partialFromRow, type PartialColumns } from '../rows.js';
import { partsOf, type Parts, type RollupAggregation, type WindowRollupRow } from '../store.js';

const LATEST_ORDER = 'ORDER BY latest_time DESC, latest_seq DESC';

/** Parts the aggregation does not read come back as the empty partial's values. */
export const aggregateSql = (bySubject: boolean, p: Parts) => `
  SELECT width_bucket(bucket, $6::bigint[]) - 1 AS win, ${bySubject ? 'subject' : "''::text"} AS subject, group_key,
    sum(count) AS count,
    ${p.sum ? 'sum(sum)::text' : "'0'"} AS sum,
    ${p.min ? 'min(min)::text' : 'NULL'} AS min,
    ${p.max ? 'max(max)::text' : 'NULL'} AS max,
    ${p.latest ? 'max(latest_time)' : '-1'} AS latest_time,
    ${p.latest ? `(array_agg(latest_seq ${LATEST_ORDER}))[1]` : '-1'} AS latest_seq,
    ${p.latest ? `(array_agg(latest_value ${LATEST_ORDER}))[1]::text` : 'NULL'} AS latest_value
  FROM rollups
  WHERE tenant_id = $1 AND meter_id = $2 AND bucket >= $3 AND bucket < $4
    AND ($5::text[] IS NULL OR subject = ANY($5::text[]))
  GROUP BY 1, 2, 3`;

export async function aggregateRollups(pool: pg.Pool, tenantId: string, a: RollupAggregation): Promise<WindowRollupRow[]> {
  if (a.windowStarts.length === 0) return [];
  const from = Math.max(a.fromBucket, a.windowStarts[0]);
  const r = await pool.query<PartialColumns & { win: number; subject: string; group_key: string }>(aggregateSql(a.bySubject, partsOf(a.aggregation)), [
    tenantId,
    a.meterId,
    from,
    a.toBucket,
    a.subjects ?? null,
    a.windowStarts,
  ]);
  return r.rows.map((x) => ({ window: Number(x.win), subject: x.subject, groupKey: x.group_key, partial: partialFromRow(x) }));
}

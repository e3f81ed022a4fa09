// The write path shared by appends, backfill and rebuild: multi-row statements over unnest()
// arrays, rows sorted by key so concurrent writers lock rows in the same order (no deadlocks).
import type pg from 'pg';
import { combineDeltas } from '../../modules/usage/partial.js';
import type { RollupDelta } from '../../modules/usage/usage.types.js';
import { partialToColumns } from '../rows.js';

const byKey = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Adds deltas into rollups: exact NUMERIC sums, NULL-ignoring LEAST/GREATEST, latest by (time, seq). */
export async function applyDeltas(c: pg.ClientBase, deltasByTenant: Map<string, RollupDelta[]>): Promise<void> {
  const rows: Array<{ tenant: string; key: string; d: RollupDelta }> = [];
  const uniques: Array<{ tenant: string; key: string; d: RollupDelta }> = [];
  for (const [tenant, deltas] of deltasByTenant) {
    if (deltas.length === 0) continue;
    const combined = combineDeltas(deltas);
    for (const d of combined.rollups) rows.push({ tenant, key: rowKey(tenant, d), d });
    for (const d of combined.uniques) uniques.push({ tenant, key: `${rowKey(tenant, d)}\u0000${d.unique}`, d });
  }
  rows.sort((a, b) => byKey(a.key, b.key));
  uniques.sort((a, b) => byKey(a.key, b.key));

  if (rows.length > 0) {
    const cols = rows.map((r) => partialToColumns(r.d.partial));
    await c.query(
      `INSERT INTO rollups AS r (tenant_id, meter_id, subject, bucket, group_key, count, sum, min, max, latest_time, latest_seq, latest_value)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[],
                            $7::numeric[], $8::numeric[], $9::numeric[], $10::bigint[], $11::bigint[], $12::numeric[])
       ON CONFLICT (tenant_id, meter_id, subject, bucket, group_key) DO UPDATE SET
         count = r.count + excluded.count,
         sum = r.sum + excluded.sum,
         min = LEAST(r.min, excluded.min),
         max = GREATEST(r.max, excluded.max),
         latest_time = CASE WHEN (excluded.latest_time, excluded.latest_seq) > (r.latest_time, r.latest_seq) THEN excluded.latest_time ELSE r.latest_time END,
         latest_seq = CASE WHEN (excluded.latest_time, excluded.latest_seq) > (r.latest_time, r.latest_seq) THEN excluded.latest_seq ELSE r.latest_seq END,
         latest_value = CASE WHEN (excluded.latest_time, excluded.latest_seq) > (r.latest_time, r.latest_seq) THEN excluded.latest_value ELSE r.latest_value END`,
      [
        rows.map((r) => r.tenant),
        rows.map((r) => r.d.meterId),
        rows.map((r) => r.d.subject),
        rows.map((r) => r.d.bucket),
        rows.map((r) => r.d.groupKey),
        cols.map((x) => x.count),
        cols.map((x) => x.sum),
        cols.map((x) => x.min),
        cols.map((x) => x.max),
        cols.map((x) => x.latest_time),
        cols.map((x) => x.latest_seq),
        cols.map((x) => x.latest_value),
      ],
    );
  }
  if (uniques.length > 0) {
    await c.query(
      `INSERT INTO rollup_uniques (tenant_id, meter_id, subject, bucket, group_key, value)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[])
       ON CONFLICT DO NOTHING`,
      [
        uniques.map((u) => u.tenant),
        uniques.map((u) => u.d.meterId),
        uniques.map((u) => u.d.subject),
        uniques.map((u) => u.d.bucket),
        uniques.map((u) => u.d.groupKey),
        uniques.map((u) => u.d.unique!),
      ],
    );
  }
}

const rowKey = (tenant: string, d: RollupDelta) =>
  `${tenant}\u0000${d.meterId}\u0000${d.subject}\u0000${d.bucket}\u0000${d.groupKey}`;

export { byKey };

// The write path of backfill and rebuild (appends store pending rows, see pending.ts): multi-row statements over unnest()
// arrays, rows sorted by key so concurrent writers lock rows in the same order (no deadlocks).
// Every rollup level (see ../levels.ts) is written from the hourly rows of the same statement group.
import type pg from 'pg';
import { clonePartial, combineDeltas, mergeInto } from '../../modules/usage/partial.js';
import type { Partial, RollupDelta } from '../../modules/usage/usage.types.js';
import { HOUR_LEVEL, SUBJECT_DAY_LEVEL, SUBJECT_WEEK_LEVEL, TOTAL_LEVEL, dayOf, monthDayBit, weekOf, type RollupLevel } from '../levels.js';
import { partialToColumns } from '../rows.js';

const byKey = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const NUL = '\u0000';

interface LevelRow {
  key: string;
  tenant: string;
  meterId: string;
  subject: string;
  bucket: number;
  groupKey: string;
  partial: Partial;
}

const KEY_TYPES = { subject: 'text', bucket: 'bigint', group_key: 'text' } as const;

/** What an upsert into a rollup level does with an existing row: exact NUMERIC sums, NULL-ignoring LEAST/GREATEST, latest by (time, seq). */
export function onConflictSql(level: RollupLevel): string {
  const later = '(excluded.latest_time, excluded.latest_seq) > (r.latest_time, r.latest_seq)';
  return `ON CONFLICT (${['series', ...level.key].join(', ')}) DO UPDATE SET
      count = r.count + excluded.count,
      sum = r.sum + excluded.sum,
      min = LEAST(r.min, excluded.min),
      max = GREATEST(r.max, excluded.max),
      latest_time = CASE WHEN ${later} THEN excluded.latest_time ELSE r.latest_time END,
      latest_seq = CASE WHEN ${later} THEN excluded.latest_seq ELSE r.latest_seq END,
      latest_value = CASE WHEN ${later} THEN excluded.latest_value ELSE r.latest_value END`;
}

/** Distinct values per month: a row's day bits only ever gain bits. */
export const UNIQUE_DAYS_ON_CONFLICT = `ON CONFLICT (series, month, value, group_key) DO UPDATE SET days = r.days | excluded.days
       WHERE r.days | excluded.days <> r.days`;

function upsertSql(level: RollupLevel): string {
  const key = ['series', ...level.key];
  const types = ['int', ...level.key.map((k) => KEY_TYPES[k]), 'bigint', 'numeric', 'numeric', 'numeric', 'bigint', 'bigint', 'numeric'];
  return `INSERT INTO ${level.table} AS r (${key.join(', ')}, count, sum, min, max, latest_time, latest_seq, latest_value)
    SELECT * FROM unnest(${types.map((t, i) => `$${i + 1}::${t}[]`).join(', ')})
    ${onConflictSql(level)}`;
}

const UPSERTS = new Map([HOUR_LEVEL, SUBJECT_DAY_LEVEL, SUBJECT_WEEK_LEVEL, TOTAL_LEVEL].map((l) => [l, upsertSql(l)]));

async function upsertLevel(c: pg.ClientBase, level: RollupLevel, all: LevelRow[], series: SeriesNumbers) {
  const rows = all.filter((r) => series.has(seriesKey(r.tenant, r.meterId)));
  if (rows.length === 0) return;
  rows.sort((a, b) => byKey(a.key, b.key));
  const cols = rows.map((r) => partialToColumns(r.partial));
  const keyColumns = level.key.map((k) => rows.map((r) => (k === 'subject' ? r.subject : k === 'bucket' ? r.bucket : r.groupKey)));
  await c.query(UPSERTS.get(level)!, [
    rows.map((r) => series.get(seriesKey(r.tenant, r.meterId))),
    ...keyColumns,
    cols.map((x) => x.count),
    cols.map((x) => x.sum),
    cols.map((x) => x.min),
    cols.map((x) => x.max),
    cols.map((x) => x.latest_time),
    cols.map((x) => x.latest_seq),
    cols.map((x) => x.latest_value),
  ]);
}

/** Rows of a coarser level: the hourly rows merged under another key. */
function merged(hours: LevelRow[], rekey: (r: LevelRow) => Omit<LevelRow, 'partial'>): LevelRow[] {
  const out = new Map<string, LevelRow>();
  for (const h of hours) {
    const k = rekey(h);
    const row = out.get(k.key);
    if (row) mergeInto(row.partial, h.partial);
    else out.set(k.key, { ...k, partial: clonePartial(h.partial) });
  }
  return [...out.values()];
}

/** Series numbers (meters.series) by tenant and meter id, see seriesKey. */
type SeriesNumbers = Map<string, number>;
const seriesKey = (tenant: string, meterId: string) => `${tenant}${NUL}${meterId}`;

/** The series numbers of the meters `rows` name; a meter that no longer exists has none, and its rows are not written. */
async function seriesNumbers(c: pg.ClientBase, rows: Array<{ tenant: string; meterId: string }>): Promise<SeriesNumbers> {
  const pairs = new Map(rows.map((r) => [seriesKey(r.tenant, r.meterId), r]));
  if (pairs.size === 0) return new Map();
  const r = await c.query<{ tenant_id: string; id: string; series: number }>(
    'SELECT m.tenant_id, m.id, m.series FROM meters m JOIN unnest($1::text[], $2::text[]) AS p(tenant_id, id) ON m.tenant_id = p.tenant_id AND m.id = p.id',
    [[...pairs.values()].map((p) => p.tenant), [...pairs.values()].map((p) => p.meterId)],
  );
  return new Map(r.rows.map((x) => [seriesKey(x.tenant_id, x.id), x.series]));
}

/** Adds deltas into every rollup level. */
export async function applyDeltas(c: pg.ClientBase, deltasByTenant: Map<string, RollupDelta[]>): Promise<void> {
  const hours: LevelRow[] = [];
  let uniques: Array<{ tenant: string; key: string; d: RollupDelta }> = [];
  for (const [tenant, deltas] of deltasByTenant) {
    if (deltas.length === 0) continue;
    const combined = combineDeltas(deltas);
    for (const d of combined.rollups) {
      hours.push({ key: rowKey(tenant, d), tenant, meterId: d.meterId, subject: d.subject, bucket: d.bucket, groupKey: d.groupKey, partial: d.partial });
    }
    for (const d of combined.uniques) uniques.push({ tenant, key: `${rowKey(tenant, d)}${NUL}${d.unique}`, d });
  }
  const perSubject = (at: (bucket: number) => number) => merged(hours, (h) => {
    const bucket = at(h.bucket);
    return { key: [h.tenant, h.meterId, h.subject, bucket].join(NUL), tenant: h.tenant, meterId: h.meterId, subject: h.subject, bucket, groupKey: '' };
  });
  const totals = merged(hours, (h) => ({ key: [h.tenant, h.meterId, h.bucket, h.groupKey].join(NUL), tenant: h.tenant, meterId: h.meterId, subject: '', bucket: h.bucket, groupKey: h.groupKey }));
  const series = await seriesNumbers(c, [...hours, ...uniques.map((u) => ({ tenant: u.tenant, meterId: u.d.meterId }))]);
  await upsertLevel(c, HOUR_LEVEL, hours, series);
  await upsertLevel(c, SUBJECT_DAY_LEVEL, perSubject(dayOf), series);
  await upsertLevel(c, SUBJECT_WEEK_LEVEL, perSubject(weekOf), series);
  await upsertLevel(c, TOTAL_LEVEL, totals, series);

  uniques = uniques.filter((u) => series.has(seriesKey(u.tenant, u.d.meterId)));
  if (uniques.length > 0) {
    uniques.sort((a, b) => byKey(a.key, b.key));
    await c.query(
      `INSERT INTO rollup_uniques (series, subject, bucket, group_key, value)
       SELECT * FROM unnest($1::int[], $2::text[], $3::bigint[], $4::text[], $5::text[])
       ON CONFLICT DO NOTHING`,
      [
        uniques.map((u) => series.get(seriesKey(u.tenant, u.d.meterId))),
        uniques.map((u) => u.d.subject),
        uniques.map((u) => u.d.bucket),
        uniques.map((u) => u.d.groupKey),
        uniques.map((u) => u.d.unique!),
      ],
    );
    const months = new Map<string, { tenant: string; meterId: string; month: number; groupKey: string; value: string; days: number }>();
    for (const { tenant, d } of uniques) {
      const { month, bit } = monthDayBit(d.bucket);
      const key = [tenant, d.meterId, month, d.groupKey, d.unique].join(NUL);
      const m = months.get(key);
      if (m) m.days |= bit;
      else months.set(key, { tenant, meterId: d.meterId, month, groupKey: d.groupKey, value: d.unique!, days: bit });
    }
    const rows = [...months.entries()].sort(([a], [b]) => byKey(a, b)).map(([, m]) => m);
    await c.query(
      `INSERT INTO rollup_uniques_days AS r (series, month, group_key, value, days)
       SELECT * FROM unnest($1::int[], $2::bigint[], $3::text[], $4::text[], $5::int[])
       ${UNIQUE_DAYS_ON_CONFLICT}`,
      [rows.map((m) => series.get(seriesKey(m.tenant, m.meterId))), rows.map((m) => m.month), rows.map((m) => m.groupKey), rows.map((m) => m.value), rows.map((m) => m.days)],
    );
  }
}

const rowKey = (tenant: string, d: RollupDelta) => `${tenant}${NUL}${d.meterId}${NUL}${d.subject}${NUL}${d.bucket}${NUL}${d.groupKey}`;

export { byKey };

// Rollups are kept at three levels, all written in the transaction that stores their events:
//   rollups              per subject, UTC hour, group (the source of truth for every other level)
//   rollups_subject_day  per subject, UTC day, all groups merged (month-long per-customer queries)
//   rollups_total        per UTC hour and group, all subjects merged (queries over every subject)
// The coarser levels cost little at ingest: a commit's events fall into few of their rows.
import type Database from 'better-sqlite3';
import { SMALL_INT, decAdd, decMax, decMin } from './decimal-functions.js';

const DAY_MS = 86_400_000;
export const dayOf = (bucket: number) => Math.floor(bucket / DAY_MS) * DAY_MS;

/** A rollup contribution as it crosses to the writer thread: amounts as decimal text. */
export interface WireDelta {
  m: string; // meter id
  s: string; // subject
  g: string; // group key
  b: number; // bucket
  count: number;
  sum: string;
  min: string | null;
  max: string | null;
  lt: number; // latest time
  lv: string | null; // latest value
  u?: string; // unique value
}

export interface RollupLevel {
  table: string;
  /** Key columns after tenant_id and meter_id. */
  key: Array<'subject' | 'bucket' | 'group_key'>;
}

export const HOUR_LEVEL: RollupLevel = { table: 'rollups', key: ['subject', 'bucket', 'group_key'] };
export const SUBJECT_DAY_LEVEL: RollupLevel = { table: 'rollups_subject_day', key: ['subject', 'bucket'] };
export const TOTAL_LEVEL: RollupLevel = { table: 'rollups_total', key: ['bucket', 'group_key'] };
export const ROLLUP_TABLES = [HOUR_LEVEL, SUBJECT_DAY_LEVEL, TOTAL_LEVEL].map((l) => l.table);

/**
 * The one rollup upsert of a level: key columns, then count, sum, min, max, latest_time, latest_seq,
 * latest_value. Small integers (the common case: tokens, calls) are added and compared by SQLite
 * itself; anything else goes through the exact decimal functions. Both sides below 10^15 keeps an
 * integer sum below 2^53, so SQLite never turns it into a float.
 */
export function rollupUpsert(level: RollupLevel): string {
  const key = ['tenant_id', 'meter_id', ...level.key];
  const cols = [...key, 'count', 'sum', 'min', 'max', 'latest_time', 'latest_seq', 'latest_value'];
  return `INSERT INTO ${level.table} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})
    ON CONFLICT (${key.join(', ')}) DO UPDATE SET
      count = count + excluded.count,
      sum = CASE WHEN typeof(sum) = 'integer' AND typeof(excluded.sum) = 'integer' AND abs(sum) < 1000000000000000 AND abs(excluded.sum) < 1000000000000000
                 THEN sum + excluded.sum ELSE dec_add(sum, excluded.sum) END,
      min = CASE WHEN excluded.min IS NULL THEN min WHEN min IS NULL THEN excluded.min
                 WHEN typeof(min) = 'integer' AND typeof(excluded.min) = 'integer' THEN MIN(min, excluded.min) ELSE dec_min(min, excluded.min) END,
      max = CASE WHEN excluded.max IS NULL THEN max WHEN max IS NULL THEN excluded.max
                 WHEN typeof(max) = 'integer' AND typeof(excluded.max) = 'integer' THEN MAX(max, excluded.max) ELSE dec_max(max, excluded.max) END,
      latest_value = CASE WHEN (excluded.latest_time, excluded.latest_seq) > (latest_time, latest_seq) THEN excluded.latest_value ELSE latest_value END,
      latest_seq = CASE WHEN (excluded.latest_time, excluded.latest_seq) > (latest_time, latest_seq) THEN excluded.latest_seq ELSE latest_seq END,
      latest_time = MAX(latest_time, excluded.latest_time)`;
}

export const UNIQUE_INSERT = 'INSERT OR IGNORE INTO rollup_uniques (tenant_id, meter_id, subject, bucket, group_key, value) VALUES (?, ?, ?, ?, ?, ?)';

/** Decimal text as SQLite stores it: small integers as INTEGER (added natively), the rest as exact TEXT. */
export function sqlValue(v: string | null): string | number | null {
  return v !== null && SMALL_INT.test(v) ? Number(v) : v;
}

interface Acc {
  tenant: string;
  d: WireDelta;
  seq: number;
}

const NUL = '\u0000';

/** Collects a transaction's contributions, merged per row of each level, and writes each row once. */
export class RollupWriter {
  private readonly put;
  private readonly putUnique;
  private hours = new Map<string, Acc>();
  private days = new Map<string, Acc>();
  private totals = new Map<string, Acc>();
  private uniques = new Map<string, Acc>();

  constructor(db: Database.Database) {
    this.put = {
      hour: db.prepare(rollupUpsert(HOUR_LEVEL)),
      day: db.prepare(rollupUpsert(SUBJECT_DAY_LEVEL)),
      total: db.prepare(rollupUpsert(TOTAL_LEVEL)),
    };
    this.putUnique = db.prepare(UNIQUE_INSERT);
  }

  add(tenant: string, d: WireDelta, seq: number): void {
    const prefix = `${tenant}${NUL}${d.m}${NUL}`;
    const hourKey = `${prefix}${d.s}${NUL}${d.b}${NUL}${d.g}`;
    if (d.u !== undefined) {
      const k = `${hourKey}${NUL}${d.u}`;
      if (!this.uniques.has(k)) this.uniques.set(k, { tenant, d, seq });
    }
    const day = dayOf(d.b);
    accumulate(this.hours, hourKey, tenant, d, seq, d.b);
    accumulate(this.days, `${prefix}${d.s}${NUL}${day}`, tenant, d, seq, day);
    accumulate(this.totals, `${prefix}${d.b}${NUL}${d.g}`, tenant, d, seq, d.b);
  }

  /** Writes everything added since the last flush (inside the caller's transaction). */
  flush(): void {
    const amounts = ({ d, seq }: Acc) => [d.count, sqlValue(d.sum), sqlValue(d.min), sqlValue(d.max), d.lt, seq, sqlValue(d.lv)];
    for (const a of this.hours.values()) this.put.hour.run(a.tenant, a.d.m, a.d.s, a.d.b, a.d.g, ...amounts(a));
    for (const a of this.days.values()) this.put.day.run(a.tenant, a.d.m, a.d.s, a.d.b, ...amounts(a));
    for (const a of this.totals.values()) this.put.total.run(a.tenant, a.d.m, a.d.b, a.d.g, ...amounts(a));
    for (const { tenant, d } of this.uniques.values()) this.putUnique.run(tenant, d.m, d.s, d.b, d.g, d.u!);
    this.clear();
  }

  /** Forgets what was added (a rolled-back transaction). */
  clear(): void {
    this.hours = new Map();
    this.days = new Map();
    this.totals = new Map();
    this.uniques = new Map();
  }
}

function accumulate(map: Map<string, Acc>, key: string, tenant: string, d: WireDelta, seq: number, bucket: number) {
  const acc = map.get(key);
  if (!acc) {
    map.set(key, { tenant, d: { ...d, b: bucket, u: undefined }, seq });
    return;
  }
  const a = acc.d;
  a.count += d.count;
  a.sum = decAdd(a.sum, d.sum);
  a.min = a.min === null ? d.min : d.min === null ? a.min : decMin(a.min, d.min);
  a.max = a.max === null ? d.max : d.max === null ? a.max : decMax(a.max, d.max);
  if (d.lt > a.lt || (d.lt === a.lt && seq > acc.seq)) {
    a.lt = d.lt;
    a.lv = d.lv;
    acc.seq = seq;
  }
}

// The write half of appends: one transaction for a group of append jobs. It runs on SQLite's writer
// thread (see writer-thread.ts) so that commits and their fsync overlap with request parsing on the
// main thread; it takes plain data (decimals as text) because it crosses a thread boundary.
import type Database from 'better-sqlite3';
import type { AppendItem } from '../store.js';
import type { AppendStatus } from '../../modules/events/events.types.js';
import { formatDecimal } from '../../core/decimal.js';
import { SMALL_INT, decAdd, decMax, decMin } from './decimal-functions.js';

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

export interface WireEvent {
  source: string;
  id: string;
  type: string | null;
  subject: string | null;
  time: number;
  dataJson: string | null;
  hash: string;
  deltas: WireDelta[];
}

export interface WireJob {
  tenantId: string;
  metersVersion: number;
  events: WireEvent[];
}

export type WireResult = AppendStatus[] | { stale: true } | { error: string; code?: string };

const text = (d: { toFixed(): string; isZero(): boolean } | null) => (d === null ? null : formatDecimal(d as never));

export function toWire(tenantId: string, metersVersion: number, items: AppendItem[]): WireJob {
  return {
    tenantId,
    metersVersion,
    events: items.map(({ event: e, deltas }) => ({
      source: e.source,
      id: e.id,
      type: e.type,
      subject: e.subject,
      time: e.time,
      dataJson: e.dataJson,
      hash: e.hash,
      deltas: deltas.map((d) => ({
        m: d.meterId,
        s: d.subject,
        g: d.groupKey,
        b: d.bucket,
        count: d.partial.count,
        sum: formatDecimal(d.partial.sum),
        min: text(d.partial.min),
        max: text(d.partial.max),
        lt: d.partial.latestTime,
        lv: text(d.partial.latestValue),
        u: d.unique,
      })),
    })),
  };
}

interface Acc {
  tenant: string;
  d: WireDelta;
  seq: number;
}

/** The one rollup upsert (appends and backfills): positional, amounts as given by sqlValue. */
export const ROLLUP_UPSERT = `INSERT INTO rollups (tenant_id, meter_id, subject, bucket, group_key, count, sum, min, max, latest_time, latest_seq, latest_value)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (tenant_id, meter_id, subject, bucket, group_key) DO UPDATE SET
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

export const UNIQUE_INSERT = 'INSERT OR IGNORE INTO rollup_uniques (tenant_id, meter_id, subject, bucket, group_key, value) VALUES (?, ?, ?, ?, ?, ?)';

export class AppendWriter {
  private readonly s;

  constructor(private readonly db: Database.Database) {
    this.s = {
      metersVersion: db.prepare<[string], { meters_version: number }>('SELECT meters_version FROM tenants WHERE id = ?'),
      insertEvent: db.prepare(
        `INSERT INTO events (tenant_id, source, event_id, type, subject, time, data, hash, ingested_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, source, event_id) DO NOTHING`,
      ),
      eventHash: db.prepare<[string, string, string], { hash: string }>('SELECT hash FROM events WHERE tenant_id = ? AND source = ? AND event_id = ?'),
      // One upsert per bucket. Small integers (the common case: tokens, calls) are added by SQLite
      // itself; anything else goes through the exact decimal functions. Integers stay below 2^53
      // because both sides are below 10^15, so SQLite never turns a sum into a float.
      putRollup: db.prepare(ROLLUP_UPSERT),
      putUnique: db.prepare(UNIQUE_INSERT),
    };
  }

  /** One transaction, one fsync, for every job of the group; each bucket is written once. */
  commit(jobs: WireJob[]): WireResult[] {
    const s = this.s;
    const now = Date.now();
    return this.db
      .transaction(() => {
        const buckets = new Map<string, Acc>();
        const uniques = new Map<string, Acc>();
        const results = jobs.map((job): WireResult => {
          const current = s.metersVersion.get(job.tenantId)?.meters_version ?? 0;
          if (current !== job.metersVersion) return { stale: true };
          const statuses: AppendStatus[] = [];
          for (const e of job.events) {
            const r = s.insertEvent.run(job.tenantId, e.source, e.id, e.type, e.subject, e.time, e.dataJson, e.hash, now);
            if (r.changes !== 1) {
              statuses.push(s.eventHash.get(job.tenantId, e.source, e.id)?.hash === e.hash ? 'duplicate' : 'conflict');
              continue;
            }
            statuses.push('accepted');
            const seq = Number(r.lastInsertRowid);
            for (const d of e.deltas) {
              const key = `${job.tenantId}\u0000${d.m}\u0000${d.s}\u0000${d.g}\u0000${d.b}`;
              if (d.u !== undefined) uniques.set(`${key}\u0000${d.u}`, { tenant: job.tenantId, d, seq });
              const acc = buckets.get(key);
              if (!acc) buckets.set(key, { tenant: job.tenantId, d: { ...d, u: undefined }, seq });
              else merge(acc, d, seq);
            }
          }
          return statuses;
        });
        for (const { tenant, d, seq } of buckets.values()) {
          s.putRollup.run(tenant, d.m, d.s, d.b, d.g, d.count, sqlValue(d.sum), sqlValue(d.min), sqlValue(d.max), d.lt, seq, sqlValue(d.lv));
        }
        for (const { tenant, d } of uniques.values()) s.putUnique.run(tenant, d.m, d.s, d.b, d.g, d.u!);
        return results;
      })
      .immediate();
  }
}

/** Decimal text as SQLite stores it: small integers as INTEGER (added natively), the rest as exact TEXT. */
export function sqlValue(v: string | null): string | number | null {
  return v !== null && SMALL_INT.test(v) ? Number(v) : v;
}

function merge(acc: Acc, d: WireDelta, seq: number) {
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

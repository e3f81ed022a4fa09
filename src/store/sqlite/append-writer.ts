// The write half of appends: one transaction for a group of append jobs. It runs on SQLite's writer
// thread (see writer-thread.ts) so that commits and their fsync overlap with request parsing on the
// main thread; it takes plain data (decimals as text) because it crosses a thread boundary.
import type Database from 'better-sqlite3';
import type { AppendItem } from '../store.js';
import type { RollupDelta } from '../../modules/usage/usage.types.js';
import type { AppendStatus } from '../../modules/events/events.types.js';
import { formatDecimal } from '../../core/decimal.js';
import { RollupWriter, type WireDelta } from './rollup-writer.js';

export type { WireDelta };

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

/** A rollup contribution in the writer thread's terms. */
export const wireDelta = (d: RollupDelta): WireDelta => ({
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
});

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
      deltas: deltas.map(wireDelta),
    })),
  };
}

export class AppendWriter {
  private readonly s;
  private readonly rollups: RollupWriter;
  private readonly transaction: Database.Transaction<(jobs: WireJob[]) => WireResult[]>;

  constructor(db: Database.Database) {
    this.s = {
      metersVersion: db.prepare<[string], { meters_version: number }>('SELECT meters_version FROM tenants WHERE id = ?'),
      insertEvent: db.prepare(
        `INSERT INTO events (tenant_id, source, event_id, type, subject, time, data, hash, ingested_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, source, event_id) DO NOTHING`,
      ),
      eventHash: db.prepare<[string, string, string], { hash: string }>('SELECT hash FROM events WHERE tenant_id = ? AND source = ? AND event_id = ?'),
    };
    this.rollups = new RollupWriter(db);
    this.transaction = db.transaction((jobs: WireJob[]) => this.write(jobs));
  }

  /** One transaction, one fsync, for every job of the group; each rollup row is written once. */
  commit(jobs: WireJob[]): WireResult[] {
    try {
      return this.transaction.immediate(jobs);
    } finally {
      this.rollups.clear();
    }
  }

  private write(jobs: WireJob[]): WireResult[] {
    const s = this.s;
    const now = Date.now();
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
        for (const d of e.deltas) this.rollups.add(job.tenantId, d, seq);
      }
      return statuses;
    });
    this.rollups.flush();
    return results;
  }
}

// Event rows and the backfill loop (createMeter, rebuildRollups) over stored events.
import type pg from 'pg';
import type { DeltaFn } from '../store.js';
import type { StoredEvent } from '../../modules/events/events.types.js';
import type { RollupDelta } from '../../modules/usage/usage.types.js';
import { applyDeltas } from './writes.js';

export const EVENT_COLUMNS = 'seq, source, event_id, type, subject, time, data, ingested_at';

export interface EventRow {
  seq: string;
  source: string;
  event_id: string;
  type: string | null;
  subject: string | null;
  time: string;
  data: string | null;
  ingested_at: string;
}

export const eventFromRow = (r: EventRow): StoredEvent => ({
  seq: Number(r.seq),
  source: r.source,
  id: r.event_id,
  type: r.type,
  subject: r.subject,
  time: Number(r.time),
  data: r.data === null ? null : JSON.parse(r.data),
  ingestedAt: Number(r.ingested_at),
});

const PAGE = 5000;

/** Adds every stored event of `eventType` into rollups through fn, page by page, in the caller's transaction. */
export async function backfill(c: pg.ClientBase, tenantId: string, eventType: string, fn: DeltaFn): Promise<void> {
  let after = 0;
  for (;;) {
    const r = await c.query<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND type = $2 AND seq > $3 ORDER BY seq LIMIT ${PAGE}`,
      [tenantId, eventType, after],
    );
    if (r.rows.length === 0) return;
    const deltas: RollupDelta[] = [];
    for (const row of r.rows) {
      const e = eventFromRow(row);
      for (const d of fn(e)) {
        d.partial.latestSeq = e.seq;
        deltas.push(d);
      }
    }
    await applyDeltas(c, new Map([[tenantId, deltas]]));
    after = Number(r.rows[r.rows.length - 1].seq);
  }
}

// Ingestion: validate each event alone, append the good ones exactly once with their rollup
// contributions, and answer a receipt per event.
import type { Ctx } from '../../core/context.js';
import { unavailable, validationError } from '../../core/errors.js';
import { describe } from '../../core/decimal.js';
import type { Store } from '../../store/store.js';
import { StaleMetersError } from '../../store/store.js';
import type { MeterCache } from '../meters/meter-cache.js';
import type { Metrics } from '../metrics/metrics.js';
import { validateEvent, type EventLimits } from './event-validation.js';
import type { AppendStatus, EventCursor, EventFilter, NewEvent, StoredEvent } from './events.types.js';

export type ReceiptStatus = AppendStatus | 'rejected';

export interface Receipt {
  id: string | null;
  source: string | null;
  status: ReceiptStatus;
  error?: string;
  field?: string;
}

export interface IngestResult {
  accepted: number;
  duplicate: number;
  conflict: number;
  rejected: number;
  events: Receipt[];
}

export interface IngestLimits extends EventLimits {
  maxBatch: number;
  /** Events queued for a commit beyond which new requests are refused (503) rather than queued. */
  maxPendingEvents: number;
}

export class EventsService {
  constructor(
    private readonly store: Store,
    private readonly meters: MeterCache,
    private readonly limits: IngestLimits,
    private readonly metrics: Metrics,
  ) {}

  /** Accepts one event object or an array of them. Non-events as a whole are a validation error. */
  async ingest(ctx: Ctx, body: unknown): Promise<IngestResult> {
    const list = Array.isArray(body) ? body : body !== null && typeof body === 'object' ? [body] : undefined;
    if (!list) throw validationError(`expected a CloudEvents JSON object or an array of them, got ${describe(body)}`);
    if (list.length === 0) throw validationError('the batch holds no events');
    if (list.length > this.limits.maxBatch) {
      throw validationError(`a batch may hold at most ${this.limits.maxBatch} events, got ${list.length}`);
    }
    const now = Date.now();
    const receipts: Receipt[] = new Array(list.length);
    const valid: NewEvent[] = [];
    const slots: number[] = [];
    list.forEach((raw, i) => {
      const v = validateEvent(raw, this.limits, now);
      if (v.ok) {
        valid.push(v.event);
        slots.push(i);
      } else {
        receipts[i] = { id: v.id ?? null, source: v.source ?? null, status: 'rejected', error: v.error, field: v.field };
      }
    });
    if (valid.length > 0) {
      const statuses = await this.append(ctx.tenantId, valid);
      statuses.forEach((status, k) => {
        const e = valid[k];
        receipts[slots[k]] = { id: e.id, source: e.source, status };
      });
    }
    const result: IngestResult = { accepted: 0, duplicate: 0, conflict: 0, rejected: 0, events: receipts };
    for (const r of receipts) result[r.status]++;
    this.metrics.answered('rejected', result.rejected);
    return result;
  }

  /** Appends validated events (also used by the seed-API adapters), retrying when meters changed meanwhile. */
  async append(tenantId: string, events: NewEvent[]): Promise<AppendStatus[]> {
    if ((this.store.backlog?.() ?? 0) >= this.limits.maxPendingEvents) {
      throw unavailable('meterd is at capacity: too many events are waiting for a commit; retry shortly', 1);
    }
    for (let attempt = 0; ; attempt++) {
      const set = await this.meters.get(tenantId);
      try {
        const started = performance.now();
        // No local holds the items while the commit runs: stores may keep a smaller form of them.
        const statuses = await this.store.appendEvents(tenantId, set.version, events.map((event) => ({ event, deltas: set.deltasFor(event) })));
        this.metrics.appended((performance.now() - started) / 1000);
        this.count(statuses);
        return statuses;
      } catch (e) {
        if (!(e instanceof StaleMetersError) || attempt >= 20) throw e;
        this.meters.invalidate(tenantId);
      }
    }
  }

  private count(statuses: AppendStatus[]): void {
    let accepted = 0, duplicate = 0, conflict = 0;
    for (const st of statuses) {
      if (st === 'accepted') accepted++;
      else if (st === 'duplicate') duplicate++;
      else conflict++;
    }
    this.metrics.answered('accepted', accepted);
    this.metrics.answered('duplicate', duplicate);
    this.metrics.answered('conflict', conflict);
  }

  async list(ctx: Ctx, filter: EventFilter, cursor: string | undefined, limit: number): Promise<{ events: StoredEvent[]; nextCursor: string | null }> {
    const c = cursor === undefined ? undefined : decodeCursor(cursor);
    const events = await this.store.listEvents(ctx.tenantId, filter, c, limit + 1);
    const more = events.length > limit;
    const page = more ? events.slice(0, limit) : events;
    const last = page[page.length - 1];
    return { events: page, nextCursor: more && last ? encodeCursor({ time: last.time, seq: last.seq }) : null };
  }
}

const encodeCursor = (c: EventCursor) => Buffer.from(`${c.time}.${c.seq}`).toString('base64url');

function decodeCursor(s: string): EventCursor {
  const m = /^(-?\d{1,16})\.(\d{1,19})$/.exec(Buffer.from(s, 'base64url').toString());
  if (!m) throw validationError('cursor is not one this API returned', [{ field: 'cursor', message: 'malformed cursor' }]);
  return { time: Number(m[1]), seq: Number(m[2]) };
}

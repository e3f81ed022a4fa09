// Usage queries: windows in any IANA zone, answered from hourly rollups for whole UTC hours
// and from raw events only for the hours a window boundary cuts (sub-hour offsets, MINUTE
// windows, unaligned from/to). Cost grows with the windows and groups returned, not the events.
import type { Ctx } from '../../core/context.js';
import { validationError } from '../../core/errors.js';
import { formatDecimal, type Decimal } from '../../core/decimal.js';
import { HOUR_MS, ceilHour, floorHour, formatInstant, windowsOf, type Window, type WindowSize } from '../../core/time.js';
import { StaleMetersError, type Store } from '../../store/store.js';
import { compileMeter } from '../meters/meter-eval.js';
import type { Meter } from '../meters/meters.types.js';
import type { MetersService } from '../meters/meters.service.js';
import type { MeterCache } from '../meters/meter-cache.js';
import type { CustomersService } from '../customers/customers.service.js';
import { emptyPartial, mergeInto, valueOf } from './partial.js';
import type { Partial } from './usage.types.js';

export interface UsageQuery {
  from: number;
  to: number;
  windowSize?: WindowSize;
  windowTimeZone: string;
  subjects?: string[];
  customers?: string[];
  groupBy: string[];
  filterGroupBy: Record<string, string[]>;
}

export interface UsageRow {
  windowStart: string;
  windowEnd: string;
  subject: string | null;
  customer?: string | null;
  groupBy: Record<string, string | null>;
  value: string | null;
}

export interface UsageResult {
  from: string;
  to: string;
  windowSize: WindowSize | null;
  windowTimeZone: string;
  data: UsageRow[];
}

export const MAX_WINDOWS = 50_000;
const ROLLUP_CHUNK_MS = 24 * HOUR_MS;
const RAW_PAGE = 10_000;

/** A group key's kept dimensions, as cells and the answer's order use them. */
interface Projection {
  dims: Record<string, string | null>;
  key: string;
  json: string;
}

interface Cell {
  window: number;
  subject: string | null;
  customer: string | null;
  /** Shared by every cell of the same kept dimensions (never changed). */
  dims: Record<string, string | null>;
  /** dims as JSON: the last key of the answer's order. */
  dimsJson: string;
  partial: Partial;
  uniques?: Set<string>;
}

export class UsageService {
  constructor(
    private readonly store: Store,
    private readonly meters: MetersService,
    private readonly customers: CustomersService,
    private readonly meterCache: MeterCache,
    /** maxRows: a query is refused before its answer holds more rows, so none can exhaust memory. */
    private readonly limits: { maxRows: number },
  ) {}

  /**
   * The meter comes from the tenant's cached meters, checked by the rollup reads against the
   * current meters version in their own statements (on PostgreSQL, a lookup of its own was a second
   * round trip: bench/query-times.ts B4a p50 1.4-1.8 ms with it, 1.1-1.2 without). When the cache
   * is stale the query runs again on a meter read from the store.
   */
  async query(ctx: Ctx, slug: string, q: UsageQuery): Promise<UsageResult> {
    const cached = await this.meterCache.get(ctx.tenantId);
    const meter = cached.meter(slug);
    if (meter) {
      try {
        return await this.queryMeter(ctx, meter, q, cached.version);
      } catch (e) {
        if (!(e instanceof StaleMetersError)) throw e;
      }
    }
    const current = await this.meters.get(ctx, slug);
    // Created since the cache was loaded, or changed (it was stale): ingestion reloads it too.
    this.meterCache.invalidate(ctx.tenantId);
    return this.queryMeter(ctx, current, q);
  }

  /** `metersVersion`: the version `meter` was read at, if it may be stale (see RollupAggregation). */
  async queryMeter(ctx: Ctx, meter: Meter, q: UsageQuery, metersVersion?: number): Promise<UsageResult> {
    const dims = Object.keys(meter.groupBy);
    const badGroup = q.groupBy.filter((g) => g !== 'subject' && g !== 'customer' && !dims.includes(g));
    if (badGroup.length > 0) {
      throw validationError(`cannot group by ${badGroup.join(', ')}`, [
        { field: 'groupBy', message: `valid values: subject, customer${dims.map((d) => `, ${d}`).join('')}` },
      ]);
    }
    const badFilter = Object.keys(q.filterGroupBy).filter((k) => !dims.includes(k));
    if (badFilter.length > 0) {
      throw validationError(`meter ${meter.slug} has no dimension ${badFilter.join(', ')}`, [
        { field: 'filterGroupBy', message: `dimensions of this meter: ${dims.join(', ') || 'none'}` },
      ]);
    }
    if (q.from >= q.to) throw validationError('from must be before to', [{ field: 'from', message: 'must be before to' }]);
    const windows = windowsOf(q.from, q.to, q.windowSize, q.windowTimeZone, MAX_WINDOWS + 1);
    if (windows.length > MAX_WINDOWS) {
      throw validationError(`the query spans more than ${MAX_WINDOWS} windows; narrow the range or use a larger windowSize`, [{ field: 'windowSize', message: 'too many windows' }]);
    }

    // Subjects to read: the union of the subject filter and the subjects of the customer filter.
    let subjects: string[] | undefined;
    if (q.subjects || q.customers) {
      const set = new Set(q.subjects ?? []);
      for (const key of q.customers ?? []) for (const s of (await this.customers.get(ctx, key)).subjects) set.add(s);
      subjects = [...set];
    }
    const owners = q.groupBy.includes('customer') ? await this.store.customersOfSubjects(ctx.tenantId, subjects) : undefined;

    const bySubject = q.groupBy.includes('subject');
    const byCustomer = q.groupBy.includes('customer');
    const grouped = bySubject || byCustomer || dims.some((d) => q.groupBy.includes(d));
    const keptDims = dims.filter((d) => q.groupBy.includes(d));
    const filters = Object.entries(q.filterGroupBy).map(([k, vs]) => [k, new Set(vs)] as const);
    const unique = meter.aggregation === 'UNIQUE_COUNT';

    const cells = new Map<string, Cell>();
    // Per group key, once: whether it passes the filters, the kept dimensions, and their part of a
    // cell's key (which also orders the answer's rows). Per row it cost an object and a join.
    const projections = new Map<string, Projection | null>();
    const projectGroup = (groupKey: string): Projection | null => {
      let p = projections.get(groupKey);
      if (p === undefined) {
        // '' is the key of rows whose groups the store merged (byGroup: false).
        const all = groupKey === '' ? {} : (JSON.parse(groupKey) as Record<string, string | null>);
        p = null;
        if (filters.every(([k, vs]) => all[k] !== null && all[k] !== undefined && vs.has(all[k] as string))) {
          const dims: Record<string, string | null> = {};
          for (const d of keptDims) dims[d] = all[d] ?? null;
          p = { dims, key: keptDims.map((d) => dims[d] ?? '\u0001').join('\u0000'), json: JSON.stringify(dims) };
        }
        projections.set(groupKey, p);
      }
      return p;
    };
    const cellFor = (window: number, subject: string, groupKey: string): Cell | undefined => {
      const projected = projectGroup(groupKey);
      if (!projected) return undefined;
      const subj = bySubject ? subject : null;
      const cust = byCustomer ? (owners!.get(subject) ?? null) : null;
      const key = `${window}\u0000${subj ?? ''}\u0000${cust ?? '\u0001'}\u0000${projected.key}`;
      let c = cells.get(key);
      if (!c) {
        if (cells.size >= this.limits.maxRows) {
          throw validationError(`the answer would hold more than ${this.limits.maxRows} rows; narrow the range, filter by subject or customer, group by less or use a larger windowSize`, [{ field: 'groupBy', message: 'too many rows' }]);
        }
        c = { window, subject: subj, customer: cust, dims: projected.dims, dimsJson: projected.json, partial: emptyPartial(), uniques: unique ? new Set() : undefined };
        cells.set(key, c);
      }
      return c;
    };

    const plan = planSources(q.from, q.to, windows);
    const locate = windowLocator(windows);

    let checked = metersVersion === undefined;
    // Whole hours, merged per window by the database (distinct values for UNIQUE_COUNT). Only
    // per-subject rows of several windows are about as many as the buckets: those are asked for in
    // pieces of whole windows spanning a day or more, so memory stays bounded by a day's rows.
    const pieceMs = bySubject || byCustomer ? ROLLUP_CHUNK_MS : Infinity;
    const readPiece = async (piece: Piece, add: (window: number, subject: string, groupKey: string, partial: Partial | null, value: string | null) => void) => {
      const agg = {
        meterId: meter.id,
        fromBucket: piece.start,
        toBucket: piece.end,
        subjects,
        windowStarts: windows.slice(piece.first, piece.last + 1).map((w) => w.start),
        bySubject: bySubject || byCustomer,
        byGroup: keptDims.length > 0 || filters.length > 0,
        aggregation: meter.aggregation,
        // Once one read has checked it, later reads need not.
        metersVersion: checked ? undefined : metersVersion,
      };
      if (unique) {
        const rows = await this.store.aggregateUniques(ctx.tenantId, agg);
        checked = true;
        for (const r of rows) add(piece.first + r.window, r.subject, r.groupKey, null, r.value);
      } else {
        const rows = await this.store.aggregateRollups(ctx.tenantId, agg);
        checked = true;
        for (const r of rows) add(piece.first + r.window, r.subject, r.groupKey, r.partial, null);
      }
    };
    const addToCell = (window: number, subject: string, groupKey: string, partial: Partial | null, value: string | null) => {
      const c = cellFor(window, subject, groupKey);
      if (!c) return;
      if (partial) mergeInto(c.partial, partial);
      else c.uniques!.add(value!);
    };
    for (const piece of windowPieces(plan.rollupRanges, windows, locate, pieceMs)) await readPiece(piece, addToCell);

    // A `to` inside an hour (the default: now) would read that hour so far from raw events: seconds once
    // ingestion is fast (8.6 s up to the end of bench B2, ~600,000 events in the hour). Its whole-hour rollup is
    // read instead, and kept only if no event of the meter's type lies in [to, the hour's end): checked
    // after the read, so any event the read's fold took in is seen by the check.
    const last = lastHourAlone(plan, windows, q.to);
    if (last) {
      const rows: Array<Parameters<typeof addToCell>> = [];
      await readPiece({ start: last.start, end: last.end, first: windows.length - 1, last: windows.length - 1 }, (...row) => void rows.push(row));
      if (!(await this.store.hasEvents(ctx.tenantId, meter.eventType, q.to, last.end))) {
        for (const row of rows) addToCell(...row);
        plan.rawRanges.pop();
      }
    }

    // No rollup read checked the cached meter (only raw events are read): the store says whether it still stands.
    if (!checked && (await this.store.getMeter(ctx.tenantId, meter.slug))?.id !== meter.id) throw new StaleMetersError();

    // Cut hours from raw events.
    const compiled = compileMeter(meter);
    for (const range of plan.rawRanges) {
      let afterSeq = 0;
      for (;;) {
        const events = await this.store.scanEvents(ctx.tenantId, { type: meter.eventType, from: range.start, to: range.end, subjects, afterSeq, limit: RAW_PAGE });
        for (const e of events) {
          const r = compiled.evaluate(e, e.seq);
          if (!r.ok) continue;
          const c = cellFor(locate(e.time), r.delta.subject, r.delta.groupKey);
          if (!c) continue;
          mergeInto(c.partial, r.delta.partial);
          if (unique) c.uniques!.add(r.delta.unique!);
        }
        if (events.length < RAW_PAGE) break;
        afterSeq = events[events.length - 1].seq;
      }
    }

    // Without grouping every window answers, even an empty one; grouped rows exist only where there was usage.
    if (!grouped) {
      const present = new Set([...cells.values()].map((c) => c.window));
      windows.forEach((_, i) => {
        if (!present.has(i)) {
          cells.set(`empty\u0000${i}`, { window: i, subject: null, customer: null, dims: {}, dimsJson: '{}', partial: emptyPartial(), uniques: unique ? new Set() : undefined });
        }
      });
    }

    // Each window's instants written once: formatting them per row took ~30% of a month of HOUR
    // windows grouped by dimension (2,860 rows; bench/query-times.ts B4c, profile of dist).
    const starts: string[] = [];
    const ends: string[] = [];
    const data = [...cells.values()]
      .filter((c) => c.partial.count > 0 || (c.uniques?.size ?? 0) > 0 || !grouped)
      .sort((a, b) => a.window - b.window || cmp(a.customer, b.customer) || cmp(a.subject, b.subject) || cmp(a.dimsJson, b.dimsJson))
      .map((c): UsageRow => {
        const w = windows[c.window];
        const value: Decimal | null = valueOf(meter.aggregation, c.partial, c.uniques);
        const row: UsageRow = {
          windowStart: (starts[c.window] ??= formatInstant(w.start)),
          windowEnd: (ends[c.window] ??= formatInstant(w.end)),
          subject: c.subject === '' ? null : c.subject,
          groupBy: c.dims,
          value: value === null ? null : formatDecimal(value),
        };
        if (byCustomer) row.customer = c.customer;
        return row;
      });

    return {
      from: formatInstant(q.from),
      to: formatInstant(q.to),
      windowSize: q.windowSize ?? null,
      windowTimeZone: q.windowTimeZone,
      data,
    };
  }
}

/** Code-unit order: the same on every server, whatever its locale. */
const cmp = (a: string | null, b: string | null) => {
  const x = a ?? '', y = b ?? '';
  return x < y ? -1 : x > y ? 1 : 0;
};

export interface SourcePlan {
  rollupRanges: Window[];
  rawRanges: Window[];
}

/** Splits [from, to) into whole UTC hours read from rollups and cut hours read from raw events. */
export function planSources(from: number, to: number, windows: Window[]): SourcePlan {
  const cut = new Set<number>();
  const edges = [from, to, ...windows.map((w) => w.start)];
  for (const t of edges) if (t % HOUR_MS !== 0) cut.add(floorHour(t));
  const rollupRanges: Window[] = [];
  const rawRanges: Window[] = [];
  let h = floorHour(from);
  const last = ceilHour(to);
  let run: Window | null = null;
  let rawRun: Window | null = null;
  for (; h < last; h += HOUR_MS) {
    if (cut.has(h)) {
      if (run) (rollupRanges.push(run), (run = null));
      const s = Math.max(h, from), e = Math.min(h + HOUR_MS, to);
      if (rawRun && rawRun.end === s) rawRun.end = e;
      else {
        if (rawRun) rawRanges.push(rawRun);
        rawRun = { start: s, end: e };
      }
    } else {
      if (rawRun) (rawRanges.push(rawRun), (rawRun = null));
      if (run) run.end = h + HOUR_MS;
      else run = { start: h, end: h + HOUR_MS };
    }
  }
  if (run) rollupRanges.push(run);
  if (rawRun) rawRanges.push(rawRun);
  return { rollupRanges, rawRanges };
}

/**
 * The whole UTC hour that holds `to`, when the plan reads it from raw events only because `to` cuts
 * it: the last raw range is [that hour's start, to), inside the last window. Then that hour's rollup
 * counts exactly the events before `to` if none lies in [to, the hour's end).
 */
export function lastHourAlone(plan: SourcePlan, windows: Window[], to: number): Window | undefined {
  const raw = plan.rawRanges[plan.rawRanges.length - 1];
  const start = floorHour(to);
  if (!raw || raw.end !== to || raw.start !== start || start === to) return undefined;
  if (windows[windows.length - 1].start > start) return undefined;
  return { start, end: start + HOUR_MS };
}

function* chunked(ranges: Window[], size: number): Generator<Window> {
  for (const r of ranges) for (let s = r.start; s < r.end; s += size) yield { start: s, end: Math.min(s + size, r.end) };
}

interface Piece extends Window {
  /** Indexes of the first and last window the piece overlaps. */
  first: number;
  last: number;
}

/**
 * Splits rollup ranges at window boundaries into pieces of at least `size` (or the rest of a range),
 * so an aggregated piece holds at most a day of buckets or one window's worth of groups.
 */
export function* windowPieces(ranges: Window[], windows: Window[], locate: (t: number) => number, size: number): Generator<Piece> {
  for (const r of ranges) {
    for (let start = r.start, first = locate(r.start); start < r.end; ) {
      let last = first;
      while (windows[last].end < Math.min(r.end, start + size) && last + 1 < windows.length) last++;
      const end = Math.min(r.end, windows[last].end);
      yield { start, end, first, last };
      start = end;
      first = last + 1;
    }
  }
}

/** Index of the window containing t (windows are sorted and contiguous). */
function windowLocator(windows: Window[]): (t: number) => number {
  return (t) => {
    let lo = 0, hi = windows.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (windows[mid].start <= t) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
}

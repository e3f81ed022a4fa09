// meterd reconcile: recomputes every meter's hourly rollups from the raw events and compares
// them with the stored ones. The rollups are derived data; any difference is a bug (or a
// hand-edited database), and --fix rebuilds them from the events, which are the truth.
import type { Command } from 'commander';
import type { Services } from '../main.js';
import { formatDecimal, type Decimal } from '../core/decimal.js';
import { ceilHour, formatInstant, MAX_TIME_MS, MIN_TIME_MS } from '../core/time.js';
import { compileMeter } from '../modules/meters/meter-eval.js';
import { dayOf, monthDayBit, weekOf } from '../store/levels.js';
import type { Meter } from '../modules/meters/meters.types.js';
import { emptyPartial, mergeInto } from '../modules/usage/partial.js';
import type { Partial } from '../modules/usage/usage.types.js';
import type { CoarseLevel } from '../store/store.js';
import { parseFormat, printRows, type Format } from './output.js';
import { tenantCtx, withServices } from './runtime.js';

export interface Difference {
  meter: string;
  subject: string;
  groupKey: string;
  /** UTC hour of the bucket, RFC 3339. */
  bucket: string;
  /**
   * What differs: an hourly rollup row as a whole, a row of a coarser level the engine keeps
   * (SQLite: per subject and day, per hour over all subjects), or one distinct value of a UNIQUE_COUNT meter.
   */
  kind: 'rollup' | `rollup ${CoarseLevel}` | 'unique' | 'unique days';
  /** Recomputed from events, and as stored; null where one side has nothing. */
  expected: string | null;
  actual: string | null;
}

const PAGE = 10_000;

const dec = (d: Decimal | null) => (d === null ? 'null' : formatDecimal(d));
const describePartial = (p: Partial) =>
  `count=${p.count} sum=${dec(p.sum)} min=${dec(p.min)} max=${dec(p.max)} latest=${dec(p.latestValue)}@${p.latestTime}#${p.latestSeq}`;

const key = (subject: string, groupKey: string, bucket: number) => `${subject}\u0000${groupKey}\u0000${bucket}`;
/** A distinct-value key (bucket key, NUL, value) split in two. */
const split = (ku: string) => [ku.slice(0, ku.lastIndexOf('\u0000')), ku.slice(ku.lastIndexOf('\u0000') + 1)] as const;
const unkey = (k: string) => {
  const [subject, groupKey, bucket] = k.split('\u0000');
  return { subject, groupKey, bucket: Number(bucket) };
};

/**
 * Every bucket where the stored rollups (and distinct values, for UNIQUE_COUNT) of `meter` differ
 * from what its events say. Holds one partial per (subject, group, hour) in memory, as many as the
 * meter has rollup rows. Events appended while it runs can show up as passing differences.
 */
export async function reconcileMeter(services: Pick<Services, 'store'>, tenantId: string, meter: Meter): Promise<Difference[]> {
  const { store } = services;
  const compiled = compileMeter(meter);
  const expected = new Map<string, Partial>();
  const expectedUniques = new Set<string>();
  for (let afterSeq = 0; ; ) {
    const events = await store.scanEvents(tenantId, { type: meter.eventType, from: MIN_TIME_MS, to: MAX_TIME_MS + 1, afterSeq, limit: PAGE });
    for (const e of events) {
      const r = compiled.evaluate(e, e.seq);
      if (!r.ok) continue;
      const d = r.delta;
      const k = key(d.subject, d.groupKey, d.bucket);
      mergeInto(expected.get(k) ?? expected.set(k, emptyPartial()).get(k)!, d.partial);
      if (d.unique !== undefined) expectedUniques.add(`${k}\u0000${d.unique}`);
    }
    if (events.length < PAGE) break;
    afterSeq = events[events.length - 1].seq;
  }

  const scan = { meterId: meter.id, fromBucket: MIN_TIME_MS, toBucket: ceilHour(MAX_TIME_MS) };
  const diffs: Difference[] = [];
  const diff = (kind: Difference['kind'], k: string, exp: string | null, act: string | null) => {
    const { subject, groupKey, bucket } = unkey(k);
    diffs.push({ meter: meter.slug, subject, groupKey, bucket: formatInstant(bucket), kind, expected: exp, actual: act });
  };

  const stored = new Map<string, Partial>();
  for (const r of await store.readRollups(tenantId, scan)) stored.set(key(r.subject, r.groupKey, r.bucket), r.partial);
  for (const [k, p] of expected) {
    const want = describePartial(p);
    const got = stored.get(k);
    if (!got) diff('rollup', k, want, null);
    else if (describePartial(got) !== want) diff('rollup', k, want, describePartial(got));
  }
  for (const [k, p] of stored) if (!expected.has(k)) diff('rollup', k, null, describePartial(p));

  diffs.push(...(await levelDifferences(services, tenantId, meter, expected)));

  if (meter.aggregation === 'UNIQUE_COUNT') {
    const storedUniques = new Set<string>();
    for (const u of await store.readUniques(tenantId, scan)) storedUniques.add(`${key(u.subject, u.groupKey, u.bucket)}\u0000${u.value}`);
    for (const ku of expectedUniques) if (!storedUniques.has(ku)) diff('unique', split(ku)[0], split(ku)[1], null);
    for (const ku of storedUniques) if (!expectedUniques.has(ku)) diff('unique', split(ku)[0], null, split(ku)[1]);

    diffs.push(...(await uniqueDayDifferences(services, tenantId, meter, expectedUniques)));
  }
  return diffs.sort((a, b) => a.bucket.localeCompare(b.bucket) || a.subject.localeCompare(b.subject) || a.groupKey.localeCompare(b.groupKey));
}

/** The row of each coarser level an hourly row (subject, group, hour) is merged into. */
const LEVEL_ROW: Record<CoarseLevel, (h: { subject: string; groupKey: string; bucket: number }) => string> = {
  'subject-day': (h) => key(h.subject, '', dayOf(h.bucket)),
  'subject-week': (h) => key(h.subject, '', weekOf(h.bucket)),
  'total-hour': (h) => key('', h.groupKey, h.bucket),
};

/** The coarser rollup levels the store keeps must equal the recomputed hours merged the same way. */
async function levelDifferences(services: Pick<Services, 'store'>, tenantId: string, meter: Meter, expected: Map<string, Partial>): Promise<Difference[]> {
  const levelKey = (level: string, k: string) => `${level}\u0001${k}`;
  const want = new Map<string, Partial>();
  const add = (k: string, p: Partial) => mergeInto(want.get(k) ?? want.set(k, emptyPartial()).get(k)!, p);
  for (const [k, p] of expected) {
    const hour = unkey(k);
    for (const level of services.store.coarseLevels) add(levelKey(level, LEVEL_ROW[level](hour)), p);
  }
  const got = new Map<string, Partial>();
  for (const r of await services.store.readRollupLevels(tenantId, meter.id)) got.set(levelKey(r.level, key(r.subject, r.groupKey, r.bucket)), r.partial);
  const out: Difference[] = [];
  const show = (p: Partial | undefined) => (p ? describePartial(p) : null);
  for (const lk of new Set([...want.keys(), ...got.keys()])) {
    if (show(want.get(lk)) === show(got.get(lk))) continue;
    const [level, k] = lk.split('\u0001');
    const { subject, groupKey, bucket } = unkey(k);
    out.push({ meter: meter.slug, subject, groupKey, bucket: formatInstant(bucket), kind: `rollup ${level as CoarseLevel}`, expected: show(want.get(lk)), actual: show(got.get(lk)) });
  }
  return out;
}

/** Per (group, value, UTC month): the days of the month the value was seen on, as "1,2,31". */
async function uniqueDayDifferences(services: Pick<Services, 'store'>, tenantId: string, meter: Meter, expectedUniques: Set<string>): Promise<Difference[]> {
  const dayKey = (groupKey: string, value: string, month: number) => `${groupKey}\u0000${value}\u0000${month}`;
  const want = new Map<string, number>();
  for (const ku of expectedUniques) {
    const [k, value] = split(ku);
    const { groupKey, bucket } = unkey(k);
    const { month, bit } = monthDayBit(bucket);
    const dk = dayKey(groupKey, value, month);
    want.set(dk, (want.get(dk) ?? 0) | bit);
  }
  const got = new Map<string, number>();
  for (const r of await services.store.readUniqueDays(tenantId, meter.id)) got.set(dayKey(r.groupKey, r.value, r.month), r.days);
  const days = (bits: number | undefined) => (bits === undefined ? null : Array.from({ length: 31 }, (_, i) => i + 1).filter((d) => bits & (1 << (d - 1))).join(','));
  const out: Difference[] = [];
  for (const dk of new Set([...want.keys(), ...got.keys()])) {
    if (want.get(dk) === got.get(dk)) continue;
    const [groupKey, value, month] = dk.split('\u0000');
    out.push({ meter: meter.slug, subject: '', groupKey, bucket: formatInstant(Number(month)), kind: 'unique days', expected: `${value}: ${days(want.get(dk))}`, actual: `${value}: ${days(got.get(dk))}` });
  }
  return out;
}

export function registerReconcile(program: Command) {
  program
    .command('reconcile')
    .description("recompute meters' usage from raw events and compare it with the stored rollups; exit status 1 on any difference")
    .requiredOption('--tenant <id>', 'tenant')
    .option('--meter <slug>', 'only this meter (default: every meter)')
    .option('--fix', 'rebuild the rollups of meters that differ from their events')
    .option('--format <format>', 'table, csv or json', parseFormat, 'table' as const)
    .action((opts: { tenant: string; meter?: string; fix?: boolean; format: Format }) =>
      withServices(async (s) => {
        const ctx = await tenantCtx(s, opts.tenant);
        const meters = opts.meter ? [await s.meters.get(ctx, opts.meter)] : await s.meters.list(ctx);
        const all: Difference[] = [];
        const remaining: Difference[] = [];
        for (const m of meters) {
          const diffs = await reconcileMeter(s, ctx.tenantId, m);
          all.push(...diffs);
          if (diffs.length > 0 && opts.fix) {
            await s.meters.rebuild(ctx, m.slug);
            remaining.push(...(await reconcileMeter(s, ctx.tenantId, m)));
          } else remaining.push(...diffs);
        }
        if (all.length > 0) {
          printRows(
            opts.format,
            ['meter', 'bucket', 'subject', 'groupKey', 'kind', 'expected', 'actual'],
            all.map((d) => [d.meter, d.bucket, d.subject, d.groupKey, d.kind, d.expected ?? '(none)', d.actual ?? '(none)']),
            all,
          );
        } else if (opts.format === 'json') printRows('json', [], [], []);
        const fixed = opts.fix && all.length > 0 ? `; rebuilt, ${remaining.length} remain` : '';
        process.stderr.write(`reconciled ${meters.length} meter(s): ${all.length} difference(s)${fixed}\n`);
        if (remaining.length > 0) process.exitCode = 1;
      }),
    );
}

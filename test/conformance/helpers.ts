// Building blocks for the conformance suite: events with content hashes, meters, appends that
// recompute deltas on a stale meters version, and rollups recomputed from raw events.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Store } from '../../src/store/store.js';
import { StaleMetersError } from '../../src/store/store.js';
import type { AppendStatus, NewEvent, StoredEvent } from '../../src/modules/events/events.types.js';
import type { Aggregation, Meter } from '../../src/modules/meters/meters.types.js';
import { MeterSet, compileMeter } from '../../src/modules/meters/meter-eval.js';
import { emptyPartial, mergeInto } from '../../src/modules/usage/partial.js';
import type { Partial } from '../../src/modules/usage/usage.types.js';
import { formatDecimal } from '../../src/core/decimal.js';
import { MAX_TIME_MS } from '../../src/core/time.js';
import { reconcileMeter } from '../../src/cli/reconcile.js';

export const uid = (prefix: string) => `${prefix}_${randomBytes(5).toString('hex')}`;

export async function newTenant(store: Store): Promise<string> {
  const id = uid('ten');
  assert.equal(await store.createTenant({ id, name: id, createdAt: 1 }), true);
  return id;
}

export interface EventSpec {
  id: string;
  source?: string;
  type?: string | null;
  subject?: string | null;
  time: number;
  data?: unknown;
}

export function mkEvent(s: EventSpec): NewEvent {
  const data = s.data ?? null;
  const dataJson = data === null ? null : JSON.stringify(data);
  const type = s.type === undefined ? 'api.call' : s.type;
  const subject = s.subject === undefined ? 'sub-a' : s.subject;
  const hash = createHash('sha256').update(JSON.stringify([type, subject, s.time, dataJson])).digest('hex');
  return { source: s.source ?? 'test', id: s.id, type, subject, time: s.time, timeExplicit: true, data, dataJson, hash };
}

export function mkMeter(tenantId: string, slug: string, aggregation: Aggregation, opts: { type?: string; value?: string; groupBy?: Record<string, string> } = {}): Meter {
  return {
    id: uid('mtr'),
    tenantId,
    slug,
    eventType: opts.type ?? 'api.call',
    aggregation,
    valueProperty: aggregation === 'COUNT' ? null : (opts.value ?? '$.value'),
    groupBy: opts.groupBy ?? {},
    description: null,
    createdAt: 1,
  };
}

export const backfillFor = (m: Meter) => {
  const c = compileMeter(m);
  return (e: StoredEvent) => {
    const r = c.evaluate(e, e.seq);
    return r.ok ? [r.delta] : [];
  };
};

export const createMeter = (store: Store, m: Meter) => store.createMeter(m, backfillFor(m));

/** Appends with deltas from the tenant's current meters, recomputing when they changed meanwhile. */
export async function append(store: Store, tenantId: string, events: NewEvent[]): Promise<AppendStatus[]> {
  for (;;) {
    const { version, meters } = await store.listMeters(tenantId);
    const set = new MeterSet(version, meters);
    try {
      return await store.appendEvents(tenantId, version, events.map((event) => ({ event, deltas: set.deltasFor(event) })));
    } catch (e) {
      if (!(e instanceof StaleMetersError)) throw e;
    }
  }
}

export async function allEvents(store: Store, tenantId: string, type: string): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  for (let after = 0; ; ) {
    const page = await store.scanEvents(tenantId, { type, from: 0, to: MAX_TIME_MS + 1, afterSeq: after, limit: 97 });
    if (page.length === 0) return out;
    out.push(...page);
    after = page[page.length - 1].seq;
  }
}

export const ALL_BUCKETS = { fromBucket: 0, toBucket: MAX_TIME_MS + 1 };

/** A partial as plain text, for deepEqual. */
export const show = (p: Partial) => ({
  count: p.count,
  sum: formatDecimal(p.sum),
  min: p.min && formatDecimal(p.min),
  max: p.max && formatDecimal(p.max),
  latestTime: p.latestTime,
  latestSeq: p.latestSeq,
  latestValue: p.latestValue && formatDecimal(p.latestValue),
});

const sortedEntries = <T>(m: Map<string, T>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

/** Rollups (merged per bucket) and uniques as stored, in a comparable form. */
export async function storedAggregates(store: Store, tenantId: string, meterId: string) {
  const rollups = new Map<string, Partial>();
  for (const r of await store.readRollups(tenantId, { meterId, ...ALL_BUCKETS })) {
    const k = `${r.subject}|${r.groupKey}|${r.bucket}`;
    rollups.set(k, mergeInto(rollups.get(k) ?? emptyPartial(), r.partial));
  }
  const uniques = (await store.readUniques(tenantId, { meterId, ...ALL_BUCKETS })).map((u) => `${u.subject}|${u.groupKey}|${u.bucket}|${u.value}`).sort();
  return { rollups: sortedEntries(rollups).map(([k, p]) => [k, show(p)]), uniques };
}

/** The same, recomputed from the raw events the store holds. */
export async function recomputedAggregates(store: Store, tenantId: string, meter: Meter) {
  const c = compileMeter(meter);
  const rollups = new Map<string, Partial>();
  const uniques = new Set<string>();
  for (const e of await allEvents(store, tenantId, meter.eventType)) {
    const r = c.evaluate(e, e.seq);
    if (!r.ok) continue;
    const d = r.delta;
    const k = `${d.subject}|${d.groupKey}|${d.bucket}`;
    rollups.set(k, mergeInto(rollups.get(k) ?? emptyPartial(), d.partial));
    if (d.unique !== undefined) uniques.add(`${k}|${d.unique}`);
  }
  return { rollups: sortedEntries(rollups).map(([k, p]) => [k, show(p)]), uniques: [...uniques].sort() };
}

export async function assertRollupsMatchEvents(store: Store, tenantId: string, meter: Meter) {
  assert.deepEqual(await storedAggregates(store, tenantId, meter.id), await recomputedAggregates(store, tenantId, meter), `meter ${meter.slug}`);
}

/** Deterministic PRNG (mulberry32) so a failing workload can be replayed. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)] };
}

/**
 * Two tenants' meters with rollups at every level (a SUM and a UNIQUE_COUNT of one tenant, a SUM of
 * the other), for a migration that re-keys rollup tables: `answers(store)` reads them every way a
 * query can, to compare before and after; `check(store)` adds a late event and compares with raw.
 */
export async function rekeyFixture(store: Store) {
  const t = await newTenant(store);
  const other = await newTenant(store);
  const ms = [
    mkMeter(t, 'tokens', 'SUM', { value: '$.tokens', groupBy: { model: '$.model' } }),
    mkMeter(t, 'users', 'UNIQUE_COUNT', { value: '$.user', groupBy: { model: '$.model' } }),
    mkMeter(other, 'tokens', 'SUM', { value: '$.tokens', groupBy: { model: '$.model' } }),
  ];
  for (const m of ms) await createMeter(store, m);
  const DAY = 86_400_000;
  const T0 = Date.UTC(2024, 6, 29, 22);
  const events = Array.from({ length: 40 }, (_, i) => mkEvent({
    id: `e${i}`, subject: `s${i % 3}`, time: T0 + i * 0.2 * DAY,
    data: { model: i % 2 ? 'x' : 'y', tokens: `${i}.25`, user: `u${i % 5}` },
  }));
  await append(store, t, events);
  await append(store, other, events.slice(0, 7));
  const range = { fromBucket: T0, toBucket: T0 + 8 * DAY };
  const windowStarts = [T0, T0 + 2 * DAY, T0 + 4 * DAY];
  const owned = [[t, ms[0]], [t, ms[1]], [other, ms[2]]] as const;
  const answers = async (s: Store) => {
    const out: string[][] = [];
    for (const [tenant, m] of owned) {
      const a = { meterId: m.id, ...range, windowStarts, bySubject: true, byGroup: true };
      out.push((await s.aggregateRollups(tenant, { ...a, aggregation: m.aggregation })).map((r) => `${r.window} ${r.subject} ${r.groupKey} ${r.partial.count} ${r.partial.sum}`).sort());
      out.push((await s.aggregateUniques(tenant, { ...a, bySubject: false, aggregation: 'UNIQUE_COUNT' })).map((r) => `${r.window} ${r.groupKey} ${r.value}`).sort());
      out.push((await s.readRollupLevels(tenant, m.id)).map((r) => `${r.level} ${r.subject} ${r.bucket} ${r.groupKey} ${r.partial.sum}`).sort());
      out.push((await s.readUniques(tenant, { meterId: m.id, ...range })).map((r) => `${r.subject} ${r.bucket} ${r.groupKey} ${r.value}`).sort());
    }
    return out;
  };
  const before = await answers(store);
  assert.ok(before[0].length > 0 && before[5].length > 0 && before[7].length > 0 && before[8].length > 0, 'rows at every level');
  // Tenant scoping: another tenant's meter read as this tenant's finds nothing.
  assert.deepEqual(await store.readRollupLevels(t, ms[2].id), []);
  assert.deepEqual(await store.readUniqueDays(other, ms[1].id), []);
  assert.deepEqual(await store.aggregateRollups(t, { meterId: ms[2].id, ...range, windowStarts, bySubject: true, byGroup: true, aggregation: 'SUM' }), []);
  /** After the migration: the same answers, rows that match raw events, and late events still folded. */
  const check = async (s: Store) => {
    assert.deepEqual(await answers(s), before);
    for (const [tenant, m] of owned) assert.deepEqual(await reconcileMeter({ store: s }, tenant, m), []);
    await append(s, t, [mkEvent({ id: 'late', subject: 's0', time: T0 + 1, data: { model: 'y', tokens: '0.5', user: 'u9' } })]);
    await assertRollupsMatchEvents(s, t, ms[0]);
    await assertRollupsMatchEvents(s, t, ms[1]);
  };
  return { t, check };
}

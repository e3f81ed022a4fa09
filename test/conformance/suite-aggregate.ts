// aggregateRollups equals merging readRollups rows per window in JS, exactly, on every engine.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Suite } from './suite-context.js';
import type { RollupAggregation, Store } from '../../src/store/store.js';
import type { Meter } from '../../src/modules/meters/meters.types.js';
import type { Partial } from '../../src/modules/usage/usage.types.js';
import { emptyPartial, mergeInto, valueOf } from '../../src/modules/usage/partial.js';
import type { Aggregation } from '../../src/modules/meters/meters.types.js';
import { append, createMeter, mkEvent, mkMeter, newTenant, prng, show } from './helpers.js';
import { StaleMetersError } from '../../src/store/store.js';
import { buildServices } from '../../src/main.js';
import { loadConfig } from '../../src/config.js';
import { systemCtx } from '../../src/core/context.js';
import { reconcileMeter } from '../../src/cli/reconcile.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2024, 4, 31, 20);

const sorted = (m: Map<string, Partial>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

/** The reference: every bucket read back and merged into the last window starting at or before it. */
async function mergedInJs(store: Store, t: string, a: RollupAggregation) {
  const out = new Map<string, Partial>();
  for (const r of await store.readRollups(t, a)) {
    let w = -1;
    for (let i = 0; i < a.windowStarts.length && a.windowStarts[i] <= r.bucket; i++) w = i;
    if (w < 0) continue;
    const k = `${w}|${a.bySubject ? r.subject : ''}|${a.byGroup === false ? '' : r.groupKey}`;
    out.set(k, mergeInto(out.get(k) ?? emptyPartial(), r.partial));
  }
  return sorted(out);
}

async function aggregated(store: Store, t: string, a: RollupAggregation) {
  const out = new Map<string, Partial>();
  for (const r of await store.aggregateRollups(t, a)) {
    const k = `${r.window}|${r.subject}|${r.groupKey}`;
    assert.equal(out.has(k), false, `one row per window, subject and group: ${k}`);
    out.set(k, r.partial);
  }
  return sorted(out);
}

/** Every part exactly; with an aggregation named, the answer it gives per row. */
async function assertSame(store: Store, t: string, a: RollupAggregation, aggregation?: Aggregation) {
  const what = JSON.stringify({ ...a, windowStarts: a.windowStarts.map((s) => (s - T0) / HOUR) });
  const reference = await mergedInJs(store, t, a);
  const full = (rows: Array<[string, Partial]>) => rows.map(([k, p]) => [k, show(p)]);
  assert.deepEqual(full(await aggregated(store, t, a)), full(reference), what);
  if (!aggregation) return;
  const answer = (rows: Array<[string, Partial]>) => rows.map(([k, p]) => [k, p.count, valueOf(aggregation, p)?.toFixed() ?? null]);
  assert.deepEqual(answer(await aggregated(store, t, { ...a, aggregation })), answer(reference), `${aggregation} ${what}`);
}

/** aggregateUniques equals readUniques deduplicated per window in JS. */
async function assertSameUniques(store: Store, t: string, a: RollupAggregation) {
  const expected = new Set<string>();
  for (const r of await store.readUniques(t, a)) {
    let w = -1;
    for (let i = 0; i < a.windowStarts.length && a.windowStarts[i] <= r.bucket; i++) w = i;
    if (w >= 0) expected.add(`${w}|${a.bySubject ? r.subject : ''}|${a.byGroup === false ? '' : r.groupKey}|${r.value}`);
  }
  const got = (await store.aggregateUniques(t, a)).map((r) => `${r.window}|${r.subject}|${r.groupKey}|${r.value}`);
  assert.equal(new Set(got).size, got.length, 'distinct rows');
  assert.deepEqual(got.sort(), [...expected].sort(), JSON.stringify({ ...a, windowStarts: a.windowStarts.map((s) => (s - T0) / HOUR) }));
}

const one = async (store: Store, t: string, m: Meter, windowStarts = [T0 - 100 * HOUR]) => {
  const rows = await store.aggregateRollups(t, { meterId: m.id, fromBucket: windowStarts[0], toBucket: T0 + 100 * HOUR, windowStarts, bySubject: false });
  return rows.map((r) => ({ window: r.window, group: r.groupKey, ...show(r.partial) }));
};

export function aggregateSuite(ctx: Suite) {
  describe('rollups aggregated per window', () => {
    it('sum, min, max and latest exactly across buckets, integers and decimals mixed', async () => {
      const t = await newTenant(ctx.store);
      const m = mkMeter(t, 'sum', 'SUM');
      await createMeter(ctx.store, m);
      // Ten 0.1 in ten buckets, a small integer in the same buckets as decimals, a negative amount.
      await append(ctx.store, t, Array.from({ length: 10 }, (_, i) => mkEvent({ id: `d${i}`, time: T0 + i * HOUR, data: { value: '0.1' } })));
      await append(ctx.store, t, [
        mkEvent({ id: 'i1', time: T0 + 1, data: { value: 7 } }),
        mkEvent({ id: 'i2', time: T0 + 2 * HOUR + 1, data: { value: '-12' } }),
        mkEvent({ id: 'big', time: T0 + 3 * HOUR + 5, data: { value: '999999999999999.999999999' } }),
        mkEvent({ id: 'neg', time: T0 + 4 * HOUR + 5, data: { value: '-0.000000000000000001' } }),
      ]);
      const [all] = await one(ctx.store, t, m);
      assert.deepEqual([all.count, all.sum, all.min, all.max, all.latestTime, all.latestValue], [14, '999999999999995.999999998999999999', '-12', '999999999999999.999999999', T0 + 9 * HOUR, '0.1']);
      const windows = [T0, T0 + 2 * HOUR, T0 + 5 * HOUR];
      const rows = await one(ctx.store, t, m, windows);
      assert.deepEqual(rows.map((r) => [r.window, r.count, r.sum, r.min, r.max]), [
        [0, 3, '7.2', '0.1', '7'],
        [1, 6, '999999999999988.299999998999999999', '-12', '999999999999999.999999999'],
        [2, 5, '0.5', '0.1', '0.1'],
      ]);
      for (const bySubject of [false, true]) await assertSame(ctx.store, t, { meterId: m.id, fromBucket: T0, toBucket: T0 + 10 * HOUR, windowStarts: windows, bySubject });
    });

    it('sums integers beyond 64 bits exactly', async () => {
      const t = await newTenant(ctx.store);
      const m = mkMeter(t, 'sum', 'SUM');
      await createMeter(ctx.store, m);
      await append(ctx.store, t, [
        mkEvent({ id: 'a', time: T0, data: { value: '9000000000000000000' } }),
        mkEvent({ id: 'b', time: T0 + HOUR, data: { value: '9000000000000000000' } }),
        mkEvent({ id: 'c', time: T0 + 2 * HOUR, data: { value: '99999999999999999999' } }),
        mkEvent({ id: 'd', time: T0 + 3 * HOUR, data: { value: '-99999999999999999999' } }),
      ]);
      const [row] = await one(ctx.store, t, m);
      assert.equal(row.sum, '18000000000000000000');
      assert.equal(row.min, '-99999999999999999999');
      assert.equal(row.max, '99999999999999999999');
    });

    it('breaks MIN, MAX and LATEST ties like the JS merge', async () => {
      const t = await newTenant(ctx.store);
      const meters = [mkMeter(t, 'min', 'MIN'), mkMeter(t, 'latest', 'LATEST', { groupBy: { k: '$.k' } })];
      for (const m of meters) await createMeter(ctx.store, m);
      // Equal values in different buckets and subjects; equal latest times in different subjects (seq decides).
      await append(ctx.store, t, [
        mkEvent({ id: '1', time: T0 + 10, subject: 'a', data: { value: '-1', k: 'x' } }),
        mkEvent({ id: '2', time: T0 + 10, subject: 'b', data: { value: '2.5', k: 'x' } }),
        mkEvent({ id: '3', time: T0 + HOUR, subject: 'a', data: { value: '-1', k: 'x' } }),
      ]);
      await append(ctx.store, t, [mkEvent({ id: '4', time: T0 + HOUR, subject: 'c', data: { value: '4', k: 'x' } })]);
      await append(ctx.store, t, [mkEvent({ id: '5', time: T0 + 10, subject: 'c', data: { value: '3', k: 'x' } })]);
      const [latest] = await one(ctx.store, t, meters[1]);
      assert.equal(latest.latestValue, '4', 'equal times: the later sequence number wins');
      const [min] = await one(ctx.store, t, meters[0]);
      assert.equal(min.min, '-1');
      const early = await one(ctx.store, t, meters[1], [T0, T0 + HOUR]);
      assert.equal(early[0].latestValue, '3');
      for (const m of meters) {
        for (const bySubject of [false, true]) {
          await assertSame(ctx.store, t, { meterId: m.id, fromBucket: T0, toBucket: T0 + 2 * HOUR, windowStarts: [T0], bySubject }, m.aggregation);
          await assertSame(ctx.store, t, { meterId: m.id, fromBucket: T0, toBucket: T0 + 2 * HOUR, windowStarts: [T0, T0 + HOUR], bySubject, subjects: ['a', 'c'] });
        }
      }
    });

    it('counts distinct values per window over whole days, months and the hours around them', async () => {
      const t = await newTenant(ctx.store);
      const m = mkMeter(t, 'users', 'UNIQUE_COUNT', { value: '$.user', groupBy: { model: '$.model' } });
      await createMeter(ctx.store, m);
      const day = (n: number) => Date.UTC(2024, 5, 1) + n * 24 * HOUR; // n = 0: June 1st
      // One commit: the same user on May 31st, June 1st and 2nd; another user at the edges of those days.
      await append(ctx.store, t, [
        mkEvent({ id: 'a', time: day(-1) + 5 * HOUR, data: { user: 'u1', model: 'x' } }),
        mkEvent({ id: 'b', time: day(0) + 5 * HOUR, data: { user: 'u1', model: 'x' } }),
        mkEvent({ id: 'c', time: day(1) + 5 * HOUR, subject: 'other', data: { user: 'u1', model: 'x' } }),
        mkEvent({ id: 'c2', time: day(1) + 6 * HOUR, data: { user: 'u1', model: 'y' } }),
        mkEvent({ id: 'd', time: day(0) - 1, data: { user: 'u2', model: 'x' } }),
        mkEvent({ id: 'e', time: day(2) + 1, data: { user: 'u3', model: 'x' } }),
      ]);
      const windows = [[day(-1)], [day(0)], [day(-1), day(0), day(1)], [day(-1) + 3 * HOUR, day(0) + 6 * HOUR, day(1)], [day(0) - 3 * HOUR, day(2)]];
      for (const windowStarts of windows) {
        for (const byGroup of [false, undefined]) {
          for (const to of [day(1), day(2), day(3)]) {
            await assertSameUniques(ctx.store, t, { meterId: m.id, fromBucket: windowStarts[0], toBucket: to, windowStarts, bySubject: false, byGroup });
          }
        }
      }
      const june1 = await ctx.store.aggregateUniques(t, { meterId: m.id, fromBucket: day(0), toBucket: day(1), windowStarts: [day(0)], bySubject: false, byGroup: false });
      assert.deepEqual(june1.map((r) => r.value), ['u1']);
    });

    it('equals readRollups merged in JS for windows of whole weeks and days, per subject, with events arriving late', async () => {
      // PostgreSQL answers the whole UTC weeks (from Monday) inside a window from its week level, the
      // days and hours around them from the day and hourly levels; SQLite the days from its day level.
      const t = await newTenant(ctx.store);
      const rnd = prng(77);
      const DAY = 24 * HOUR;
      const tokens = mkMeter(t, 'tokens', 'SUM', { value: '$.v', groupBy: { model: '$.model' } });
      const latest = mkMeter(t, 'latest', 'LATEST', { value: '$.v' });
      const count = mkMeter(t, 'count', 'COUNT');
      for (const m of [tokens, latest, count]) await createMeter(ctx.store, m);
      const monday = Date.UTC(2024, 3, 1); // Monday, April 1st 2024
      let n = 0;
      // Five rounds over six weeks in random order: each round adds to rows earlier rounds wrote.
      for (let round = 0; round < 5; round++) {
        const batch = Array.from({ length: 120 }, () =>
          mkEvent({
            id: `w${n++}`,
            time: monday - 3 * DAY + rnd.int(45 * 24) * HOUR + rnd.int(3) * 1000,
            subject: rnd.pick(['alice', 'bob', 'carol']),
            data: { v: rnd.next() < 0.8 ? String(rnd.int(5000) - 100) : `${rnd.int(1000)}.${rnd.int(1000)}`, model: rnd.pick(['small', 'large']) },
          }),
        );
        await append(ctx.store, t, batch);
      }
      // Made after the events: every level from the backfill.
      const backfilled = mkMeter(t, 'backfilled', 'SUM', { value: '$.v' });
      await createMeter(ctx.store, backfilled);
      const all = [tokens, latest, count, backfilled];
      for (const m of all) assert.deepEqual(await reconcileMeter({ store: ctx.store }, t, m), [], m.slug);
      const midnights = (k: number) => monday + (k - 3) * DAY;
      for (let q = 0; q < 40; q++) {
        const m = rnd.pick(all);
        // Window starts at random midnights (some of them Mondays) or hours; from and to inside or between.
        const starts = new Set<number>();
        const first = midnights(rnd.int(10)) + (rnd.next() < 0.3 ? rnd.int(24) * HOUR : 0);
        starts.add(first);
        for (let k = 1; k < 45; k++) if (rnd.next() < 0.06) starts.add(midnights(k) + (rnd.next() < 0.2 ? rnd.int(24) * HOUR : 0));
        const windowStarts = [...starts].sort((a, b) => a - b).filter((x) => x >= first);
        const from = first + (rnd.next() < 0.3 ? rnd.int(30) * HOUR : 0);
        const to = midnights(20 + rnd.int(25)) + (rnd.next() < 0.3 ? rnd.int(24) * HOUR : 0);
        const subjects = rnd.next() < 0.3 ? rnd.pick([['alice'], ['bob', 'carol'], ['nobody']]) : undefined;
        const a = { meterId: m.id, fromBucket: from, toBucket: to, windowStarts, subjects, bySubject: rnd.next() < 0.7, byGroup: rnd.next() < 0.8 ? false : undefined };
        await assertSame(ctx.store, t, a, m.aggregation);
      }
      // The bench's B4b shape: one window of 30 whole days, every subject.
      for (const m of all) {
        const from = monday + 2 * DAY;
        await assertSame(ctx.store, t, { meterId: m.id, fromBucket: from, toBucket: from + 30 * DAY, windowStarts: [from], bySubject: true, byGroup: false }, m.aggregation);
      }
    });

    it('equals readRollups merged in JS after a random workload, for random windows and filters', async () => {
      const t = await newTenant(ctx.store);
      const rnd = prng(55);
      const meters: Meter[] = [
        mkMeter(t, 'tokens', 'SUM', { value: '$.v', groupBy: { model: '$.model' } }),
        mkMeter(t, 'min', 'MIN', { value: '$.v' }),
        mkMeter(t, 'max', 'MAX', { value: '$.v', groupBy: { model: '$.model' } }),
        mkMeter(t, 'latest', 'LATEST', { value: '$.v' }),
        mkMeter(t, 'count', 'COUNT', { groupBy: { model: '$.model' } }),
        mkMeter(t, 'users', 'UNIQUE_COUNT', { value: '$.user', groupBy: { model: '$.model' } }),
      ];
      for (const m of meters) await createMeter(ctx.store, m);
      // Made after the events: its rollups (every level) come from the backfill.
      const backfilled = mkMeter(t, 'backfilled', 'SUM', { value: '$.v', groupBy: { model: '$.model' } });
      const amounts = ['0.1', '999999999999999.999999999', '-0.000000000000000001', '99999999999999999999', '-7', '0'];
      const amount = () => {
        const r = rnd.next();
        if (r < 0.4) return rnd.int(1000) - 200;
        if (r < 0.5) return rnd.pick(amounts);
        if (r < 0.55) return undefined;
        return `${rnd.next() < 0.2 ? '-' : ''}${rnd.int(100000)}.${String(rnd.int(1e9)).padStart(9, '0')}`;
      };
      let n = 0;
      for (let round = 0; round < 8; round++) {
        const batch = Array.from({ length: 60 }, () =>
          mkEvent({
            id: `e${n++}`,
            // Few distinct times, so latest ties on time are common.
            time: T0 + rnd.int(48) * HOUR + rnd.int(3) * 1000,
            subject: rnd.pick(['alice', 'bob', 'carol', 'dave']),
            data: { v: amount(), model: rnd.pick(['small', 'large', undefined]), user: rnd.pick(['u1', 'u2', 'u3', 7, 'u5']) },
          }),
        );
        await append(ctx.store, t, batch);
      }
      await createMeter(ctx.store, backfilled);
      meters.push(backfilled);
      for (let q = 0; q < 60; q++) {
        const m = rnd.pick(meters);
        const from = T0 + (rnd.int(10) - 2) * HOUR;
        const to = from + (1 + rnd.int(55)) * HOUR;
        const starts = new Set<number>([from - rnd.int(3) * HOUR]);
        for (let h = from; h < to; h += HOUR) if (rnd.next() < 0.2) starts.add(h);
        const windowStarts = [...starts].sort((a, b) => a - b);
        const subjects = rnd.next() < 0.3 ? ['bob', 'dave', 'nobody', 'bob'] : undefined;
        const a = { meterId: m.id, fromBucket: from, toBucket: to, windowStarts, subjects, bySubject: rnd.next() < 0.5, byGroup: rnd.next() < 0.5 ? false : undefined };
        if (m.aggregation === 'UNIQUE_COUNT') await assertSameUniques(ctx.store, t, a);
        else await assertSame(ctx.store, t, a, m.aggregation);
      }
      // Windows with whole UTC days inside (T0 + 4 h and T0 + 28 h are midnights): SQLite answers those
      // days from its day level and the hours around them from the hourly level.
      const midnightish = [T0 - 20 * HOUR, T0 - 3 * HOUR, T0 + 4 * HOUR, T0 + 11 * HOUR, T0 + 28 * HOUR, T0 + 30 * HOUR, T0 + 52 * HOUR];
      for (let q = 0; q < 60; q++) {
        const m = rnd.pick(meters);
        const windowStarts = midnightish.filter((_, i) => i === 0 || rnd.next() < 0.5);
        const from = windowStarts[0] + rnd.int(8) * HOUR;
        const to = T0 + (30 + rnd.int(30)) * HOUR;
        const subjects = rnd.next() < 0.4 ? rnd.pick([['alice'], ['bob', 'carol'], ['nobody']]) : undefined;
        const a = { meterId: m.id, fromBucket: from, toBucket: to, windowStarts, subjects, bySubject: rnd.next() < 0.5, byGroup: rnd.next() < 0.7 ? false : undefined };
        if (m.aggregation === 'UNIQUE_COUNT') await assertSameUniques(ctx.store, t, a);
        else await assertSame(ctx.store, t, a, m.aggregation);
        // Distinct values over every subject (SQLite: the per-month day bits) for the same windows.
        await assertSameUniques(ctx.store, t, { ...a, meterId: meters[5].id, subjects: undefined, bySubject: false });
      }
      // One window over everything: the same value in many buckets is one row.
      for (const bySubject of [false, true]) {
        for (const byGroup of [false, undefined]) {
          const whole = { fromBucket: T0 - HOUR, toBucket: T0 + 50 * HOUR, windowStarts: [T0 - HOUR], bySubject, byGroup };
          await assertSameUniques(ctx.store, t, { meterId: meters[5].id, ...whole });
          for (const m of [...meters.slice(0, 5), backfilled]) await assertSame(ctx.store, t, { meterId: m.id, ...whole }, m.aggregation);
        }
      }
    });

    it('refuse a read for a meters version that is no longer current, with rows, without, and with contributions pending', async () => {
      const t = await newTenant(ctx.store);
      const m = mkMeter(t, 'sum', 'SUM');
      const u = mkMeter(t, 'users', 'UNIQUE_COUNT', { value: '$.user' });
      await createMeter(ctx.store, m);
      await createMeter(ctx.store, u);
      await append(ctx.store, t, [mkEvent({ id: 'e1', time: T0, data: { value: 5, user: 'a' } })]);
      const { version } = await ctx.store.listMeters(t);
      const whole = (meterId: string, metersVersion: number, from = T0 - 100 * HOUR) =>
        ({ meterId, fromBucket: from, toBucket: T0 + 100 * HOUR, windowStarts: [from], bySubject: false, metersVersion });
      const empty = (meterId: string, metersVersion: number) => ({ ...whole(meterId, metersVersion, T0 + 50 * HOUR) });
      // Current: the rows, the same as without a version.
      assert.deepEqual((await ctx.store.aggregateRollups(t, whole(m.id, version))).map((r) => show(r.partial).sum), ['5']);
      assert.equal((await ctx.store.aggregateUniques(t, whole(u.id, version))).length, 1);
      assert.deepEqual(await ctx.store.aggregateRollups(t, empty(m.id, version)), []);
      // Another meter changes the version: every kind of read refuses the old one.
      await createMeter(ctx.store, mkMeter(t, 'calls', 'COUNT'));
      await assert.rejects(ctx.store.aggregateRollups(t, whole(m.id, version)), StaleMetersError);
      await assert.rejects(ctx.store.aggregateRollups(t, empty(m.id, version)), StaleMetersError);
      await assert.rejects(ctx.store.aggregateUniques(t, whole(u.id, version)), StaleMetersError);
      await assert.rejects(ctx.store.aggregateUniques(t, empty(u.id, version)), StaleMetersError);
      // With contributions waiting to be folded (PostgreSQL's read then folds and reads again).
      const current = (await ctx.store.listMeters(t)).version;
      await append(ctx.store, t, [mkEvent({ id: 'e2', time: T0 + HOUR, data: { value: 2, user: 'b' } })]);
      await assert.rejects(ctx.store.aggregateRollups(t, whole(m.id, version)), StaleMetersError);
      await append(ctx.store, t, [mkEvent({ id: 'e3', time: T0 + HOUR, data: { value: 3, user: 'c' } })]);
      assert.deepEqual((await ctx.store.aggregateRollups(t, whole(m.id, current))).map((r) => show(r.partial).sum), ['10']);
      await ctx.store.deleteMeter(t, 'calls');
      await assert.rejects(ctx.store.aggregateRollups(t, whole(m.id, current)), StaleMetersError);
    });

    it('answer usage queries through cached meters exactly after another process deletes and recreates the meter', async () => {
      const t = await newTenant(ctx.store);
      // Two processes on one database: each its own services, so its own meter cache.
      const here = buildServices(loadConfig({}), ctx.store);
      const there = buildServices(loadConfig({}), ctx.db.open());
      const c = systemCtx(t);
      await here.meters.create(c, { slug: 'tokens', eventType: 'api.call', aggregation: 'SUM', valueProperty: '$.value' });
      await append(ctx.store, t, [mkEvent({ id: 'e1', time: T0, data: { value: 5, n: 1 } })]);
      const q = (from = T0 - HOUR) => ({ from, to: T0 + 2 * HOUR, windowTimeZone: 'UTC', groupBy: [], filterGroupBy: {} });
      const values = async (from?: number) => (await here.usage.query(c, 'tokens', q(from))).data.map((r) => r.value);
      assert.deepEqual(await values(), ['5']);
      // Deleted elsewhere: not found here, though this process still has it cached.
      await there.meters.delete(c, 'tokens');
      // Minutes of one hour are read from raw events alone, the rest through rollups.
      const minutes = { from: T0, to: T0 + 10 * 60_000, windowSize: 'MINUTE' as const, windowTimeZone: 'UTC', groupBy: [], filterGroupBy: {} };
      await assert.rejects(here.usage.query(c, 'tokens', minutes), /not found/);
      await assert.rejects(values(), /not found/);
      // Recreated elsewhere under the same slug with another definition: answered by the new one,
      // whether the read finds rollup rows or (a range of cut hours only) reads raw events.
      await here.meterCache.get(t);
      await there.meters.create(c, { slug: 'tokens', eventType: 'api.call', aggregation: 'SUM', valueProperty: '$.n' });
      await there.meters.create(c, { slug: 'other', eventType: 'api.call', aggregation: 'COUNT' });
      assert.deepEqual(await values(), ['1']);
      await there.meters.delete(c, 'tokens');
      await there.meters.create(c, { slug: 'tokens', eventType: 'api.call', aggregation: 'MAX', valueProperty: '$.value' });
      assert.deepEqual(await values(T0 + 1), [null]);
      assert.deepEqual(await values(T0 - 1), ['5']);
    });
  });
}

// Rollups equal a recomputation from raw events, exactly, whatever the workload.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Suite } from './suite-context.js';
import type { NewEvent } from '../../src/modules/events/events.types.js';
import type { Meter } from '../../src/modules/meters/meters.types.js';
import { valueOf } from '../../src/modules/usage/partial.js';
import { emptyPartial, mergeInto } from '../../src/modules/usage/partial.js';
import { formatDecimal } from '../../src/core/decimal.js';
import { ALL_BUCKETS, append, assertRollupsMatchEvents, backfillFor, createMeter, mkEvent, mkMeter, newTenant, prng } from './helpers.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2024, 4, 31, 20);

async function total(ctx: Suite, t: string, m: Meter): Promise<string | null> {
  const p = emptyPartial();
  for (const r of await ctx.store.readRollups(t, { meterId: m.id, ...ALL_BUCKETS })) mergeInto(p, r.partial);
  const v = valueOf(m.aggregation, p);
  return v && formatDecimal(v);
}

export function rollupsSuite(ctx: Suite) {
  describe('rollups', () => {
    it('sum, min, max and latest exactly', async () => {
      const t = await newTenant(ctx.store);
      const meters = (['SUM', 'MIN', 'MAX', 'LATEST', 'AVG', 'COUNT'] as const).map((a) => mkMeter(t, a.toLowerCase(), a));
      for (const m of meters) await createMeter(ctx.store, m);
      const tenths = Array.from({ length: 10 }, (_, i) => mkEvent({ id: `d${i}`, time: T0 + i, data: { value: '0.1' } }));
      for (const e of tenths) await append(ctx.store, t, [e]);
      assert.equal(await total(ctx, t, meters[0]), '1');
      await append(ctx.store, t, [
        mkEvent({ id: 'big', time: T0 + HOUR, data: { value: '1000000000000000' } }),
        mkEvent({ id: 'tiny', time: T0 + HOUR, data: { value: '0.000000001' } }),
        mkEvent({ id: 'huge', time: T0 - HOUR, data: { value: '99999999999999999999.999999999999999999' } }),
        mkEvent({ id: 'frac', time: T0 + 2 * HOUR, data: { value: '-0.000000000000000001' } }),
      ]);
      const [sum, min, max, latest, avg, count] = await Promise.all(meters.map((m) => total(ctx, t, m)));
      assert.equal(sum, '100001000000000000001.000000000999999998');
      assert.equal(min, '-0.000000000000000001');
      assert.equal(max, '99999999999999999999.999999999999999999');
      assert.equal(latest, '-0.000000000000000001');
      assert.equal(count, '14');
      assert.equal(avg, '7142928571428571428.642857142928571428');
      for (const m of meters) await assertRollupsMatchEvents(ctx.store, t, m);
    });

    it('count distinct values per bucket with readUniques', async () => {
      const t = await newTenant(ctx.store);
      const m = mkMeter(t, 'users', 'UNIQUE_COUNT', { value: '$.user', groupBy: { plan: '$.plan' } });
      await createMeter(ctx.store, m);
      await append(ctx.store, t, [
        mkEvent({ id: '1', time: T0, subject: 's1', data: { user: 'u1', plan: 'pro' } }),
        mkEvent({ id: '2', time: T0 + 1, subject: 's1', data: { user: 'u1', plan: 'pro' } }),
        mkEvent({ id: '3', time: T0 + 2, subject: 's1', data: { user: 2, plan: 'pro' } }),
        mkEvent({ id: '4', time: T0 + HOUR, subject: 's2', data: { user: 'u1' } }),
        // The same value in the same hour under another group is a row of its own.
        mkEvent({ id: '5', time: T0 + 3, subject: 's1', data: { user: 'u1', plan: 'free' } }),
      ]);
      const rows = (s?: string[]) =>
        ctx.store
          .readUniques(t, { meterId: m.id, ...ALL_BUCKETS, subjects: s })
          .then((xs) => xs.map((u) => `${u.subject} ${u.bucket - T0} ${u.groupKey} ${u.value}`).sort());
      assert.deepEqual(await rows(), [`s1 0 {"plan":"free"} u1`, `s1 0 {"plan":"pro"} 2`, `s1 0 {"plan":"pro"} u1`, `s2 ${HOUR} {"plan":null} u1`]);
      assert.deepEqual(await rows(['s2', 'nobody']), [`s2 ${HOUR} {"plan":null} u1`]);
      const firstHour = await ctx.store.readUniques(t, { meterId: m.id, fromBucket: T0, toBucket: T0 + HOUR });
      assert.equal(firstHour.length, 3);
      await assertRollupsMatchEvents(ctx.store, t, m);
    });

    it('equal raw events after a random workload with late events, duplicates, conflicts and new meters', async () => {
      const t = await newTenant(ctx.store);
      const rnd = prng(2024);
      const meters: Meter[] = [
        mkMeter(t, 'tokens', 'SUM', { value: '$.tokens', groupBy: { model: '$.model' } }),
        mkMeter(t, 'max', 'MAX', { value: '$.tokens' }),
        mkMeter(t, 'users', 'UNIQUE_COUNT', { value: '$.user' }),
        mkMeter(t, 'other', 'COUNT', { type: 'other.type' }),
      ];
      for (const m of meters) await createMeter(ctx.store, m);
      const later: Meter[] = [mkMeter(t, 'latest', 'LATEST', { value: '$.tokens', groupBy: { region: '$.region' } }), mkMeter(t, 'min', 'MIN', { value: '$.tokens' })];
      const amount = () => (rnd.next() < 0.2 ? rnd.int(1000) : `${rnd.next() < 0.2 ? '-' : ''}${rnd.int(100000)}.${String(rnd.int(1e9)).padStart(9, '0')}`);
      const sent = new Map<string, NewEvent>();
      const fresh = (i: number): NewEvent =>
        mkEvent({
          id: `e${i}`,
          // Up to three days late, so old buckets keep changing.
          time: T0 - rnd.int(72) * HOUR + rnd.int(HOUR),
          subject: rnd.pick(['alice', 'bob', 'carol']),
          type: rnd.next() < 0.9 ? 'api.call' : 'other.type',
          data: { tokens: amount(), model: rnd.pick(['small', 'large']), user: rnd.pick(['u1', 'u2', 'u3', 'u4']), region: rnd.pick(['eu', 'us']) },
        });
      let next = 0;
      for (let round = 0; round < 12; round++) {
        const batches = Array.from({ length: 3 }, () =>
          Array.from({ length: 25 }, () => {
            const r = rnd.next();
            if (r < 0.15 && sent.size > 0) return rnd.pick([...sent.values()]); // duplicate
            if (r < 0.25 && sent.size > 0) {
              const old = rnd.pick([...sent.values()]); // same key, other content: conflict
              return mkEvent({ id: old.id, source: old.source, time: old.time + 1, subject: old.subject, type: old.type, data: old.data });
            }
            const e = fresh(next++);
            sent.set(e.id, e);
            return e;
          }),
        );
        await Promise.all(batches.map((b) => append(ctx.store, t, b)));
        if (round === 4 || round === 8) {
          const m = later.pop()!;
          await createMeter(ctx.store, m);
          meters.push(m);
        }
      }
      for (const m of meters) await assertRollupsMatchEvents(ctx.store, t, m);
      await ctx.store.rebuildRollups(t, meters[0].id, backfillFor(meters[0]));
      for (const m of meters) await assertRollupsMatchEvents(ctx.store, t, m);
    });

    it('count each event once whether a commit repeats its own events, stored ones, or none', async () => {
      // On PostgreSQL the three take different paths to rollup_pending (see postgres/append.ts).
      const t = await newTenant(ctx.store);
      const m = mkMeter(t, 'sum', 'SUM');
      await createMeter(ctx.store, m);
      const e = (id: string, value: string) => mkEvent({ id, time: T0, data: { value } });
      assert.deepEqual(await append(ctx.store, t, [e('a', '1'), e('b', '2')]), ['accepted', 'accepted']);
      assert.deepEqual(await append(ctx.store, t, [e('c', '4'), e('c', '4'), e('d', '8'), e('d', '16')]), ['accepted', 'duplicate', 'accepted', 'conflict']);
      assert.deepEqual(await append(ctx.store, t, [e('a', '1'), e('b', '3'), e('f', '32')]), ['duplicate', 'conflict', 'accepted']);
      assert.equal(await total(ctx, t, m), '47');
      await assertRollupsMatchEvents(ctx.store, t, m);
    });

    it('stay exact when meters are created while appends are in flight', async () => {
      const t = await newTenant(ctx.store);
      const writer = ctx.db.open();
      const meters = [mkMeter(t, 'a', 'SUM'), mkMeter(t, 'b', 'COUNT'), mkMeter(t, 'c', 'MAX')];
      const appends = Array.from({ length: 20 }, (_, b) =>
        append(writer, t, Array.from({ length: 10 }, (_, i) => mkEvent({ id: `${b}-${i}`, time: T0 + (i % 4) * HOUR, data: { value: `${b}.${i}` } }))),
      );
      const creates = meters.map((m) => createMeter(ctx.store, m));
      await Promise.all([...appends, ...creates]);
      for (const m of meters) await assertRollupsMatchEvents(ctx.store, t, m);
      assert.equal(await total(ctx, t, meters[1]), '200');
      await writer.close();
    });
  });
}

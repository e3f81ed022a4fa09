// A usage query whose `to` cuts an hour (the default, now) reads that hour from its rollup, not from raw
// events, when no event of the meter's type lies between `to` and the hour's end; otherwise from raw
// events. Either way the answer is the events in [from, to). Both engines; raw reads are counted on the
// real store to show which path answered.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { engines } from './engines.js';
import { append, createMeter, mkEvent, mkMeter, newTenant } from './helpers.js';
import { buildServices } from '../../src/main.js';
import { loadConfig } from '../../src/config.js';
import { systemCtx } from '../../src/core/context.js';
import type { Store } from '../../src/store/store.js';
import type { UsageQuery } from '../../src/modules/usage/usage.service.js';

const HOUR = 3_600_000;
const MIN = 60_000;
const T0 = Date.UTC(2026, 0, 10, 10);
const { fixtures } = await engines();

/** The store, with its raw-event scans counted. */
function counted(store: Store) {
  const seen = { scans: 0 };
  const proxy = new Proxy(store, {
    get(target, name) {
      if (name === 'scanEvents') return (...args: Parameters<Store['scanEvents']>) => (seen.scans++, target.scanEvents(...args));
      const v = Reflect.get(target, name);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { store: proxy, seen };
}

for (const engine of fixtures) {
  describe(`a query up to a time inside an hour [${engine.name}]`, () => {
    after(() => engine.cleanup());

    it('reads that hour from its rollup when nothing lies after `to` in it, from raw events otherwise', async () => {
      const db = await engine.fresh();
      const real = db.open();
      await real.migrate();
      const { store, seen } = counted(real);
      const s = buildServices(loadConfig({ DATABASE_URL: 'sqlite::memory:' }), store);
      const t = await newTenant(real);
      const sum = mkMeter(t, 'tokens', 'SUM', { groupBy: { model: '$.model' } });
      const users = mkMeter(t, 'users', 'UNIQUE_COUNT', { value: '$.user' });
      for (const m of [sum, users]) await createMeter(real, m);
      // Hour 10: 10:05, 10:20 and 10:40; 11:10 in the next hour; another event type at 10:50.
      await append(real, t, [
        mkEvent({ id: 'a', time: T0 + 5 * MIN, subject: 's1', data: { value: '1.5', model: 'x', user: 'u1' } }),
        mkEvent({ id: 'b', time: T0 + 20 * MIN, subject: 's2', data: { value: '2', model: 'y', user: 'u2' } }),
        mkEvent({ id: 'c', time: T0 + 40 * MIN, subject: 's1', data: { value: '4', model: 'x', user: 'u3' } }),
        mkEvent({ id: 'd', time: T0 + 70 * MIN, subject: 's1', data: { value: '8', model: 'x', user: 'u4' } }),
        mkEvent({ id: 'other', type: 'other', time: T0 + 50 * MIN, subject: 's1', data: { value: '100' } }),
      ]);
      const ctx = systemCtx(t);
      const ask = async (slug: string, q: Partial<UsageQuery>) => {
        const before = seen.scans;
        const r = await s.usage.query(ctx, slug, { from: T0 - HOUR, to: T0 + HOUR, windowTimeZone: 'UTC', groupBy: [], filterGroupBy: {}, ...q });
        return { rows: r.data.map((d) => [d.windowStart.slice(11, 16), d.groupBy.model ?? '', d.value]), raw: seen.scans - before };
      };

      // Nothing of this type in [10:50, 11:00): the hour's rollup answers, no raw read.
      assert.deepEqual(await ask('tokens', { to: T0 + 50 * MIN }), { rows: [['09:00', '', '7.5']], raw: 0 });
      assert.deepEqual(await ask('tokens', { to: T0 + 50 * MIN, windowSize: 'HOUR', groupBy: ['model'] }), { rows: [['10:00', 'x', '5.5'], ['10:00', 'y', '2']], raw: 0 });
      assert.deepEqual(await ask('users', { to: T0 + 50 * MIN }), { rows: [['09:00', '', '3']], raw: 0 });
      // 10:40 lies in [10:30, 11:00): raw events answer, and leave it out.
      assert.deepEqual((await ask('tokens', { to: T0 + 30 * MIN })).rows, [['09:00', '', '3.5']]);
      assert.ok((await ask('tokens', { to: T0 + 30 * MIN })).raw > 0);
      assert.deepEqual((await ask('users', { to: T0 + 30 * MIN })).rows, [['09:00', '', '2']]);
      // 11:10 lies after 11:05: raw; nothing after 11:30: rollup.
      assert.deepEqual((await ask('tokens', { from: T0, to: T0 + 65 * MIN })).rows, [['10:00', '', '7.5']]);
      assert.deepEqual(await ask('tokens', { from: T0, to: T0 + 90 * MIN }), { rows: [['10:00', '', '15.5']], raw: 0 });
      // A window starting inside the hour (Asia/Kolkata days start at 18:30 UTC): raw, and split right.
      const kolkata = await ask('tokens', { from: Date.UTC(2026, 0, 9, 18, 30), to: T0 + 50 * MIN, windowSize: 'DAY', windowTimeZone: 'Asia/Kolkata' });
      assert.deepEqual(kolkata.rows, [['18:30', '', '7.5']]);
      // A later event in the cut hour's remainder, stored after an answer from the rollup, is seen next time.
      await append(real, t, [mkEvent({ id: 'late', time: T0 + 55 * MIN, subject: 's2', data: { value: '16', model: 'y', user: 'u9' } })]);
      const after55 = await ask('tokens', { to: T0 + 50 * MIN });
      assert.deepEqual(after55.rows, [['09:00', '', '7.5']]);
      assert.ok(after55.raw > 0, 'the event at 10:55 sends the cut hour back to raw events');
      assert.deepEqual(await ask('tokens', { to: T0 + 58 * MIN }), { rows: [['09:00', '', '23.5']], raw: 0 });
      // `to` in the hour where a window starts (18:30 UTC, Kolkata's midnight): each side of 18:30 in its own window.
      const T18 = Date.UTC(2026, 0, 10, 18);
      await append(real, t, [
        mkEvent({ id: 'e', time: T18 + 10 * MIN, subject: 's1', data: { value: '32', model: 'x', user: 'u1' } }),
        mkEvent({ id: 'f', time: T18 + 35 * MIN, subject: 's1', data: { value: '64', model: 'x', user: 'u1' } }),
      ]);
      const days = await s.usage.query(ctx, 'tokens', { from: Date.UTC(2026, 0, 9, 18, 30), to: T18 + 45 * MIN, windowSize: 'DAY', windowTimeZone: 'Asia/Kolkata', groupBy: [], filterGroupBy: {} });
      assert.deepEqual(days.data.map((d) => [d.windowStart, d.value]), [['2026-01-09T18:30:00.000Z', '63.5'], ['2026-01-10T18:30:00.000Z', '64']]);
    });
  });
}

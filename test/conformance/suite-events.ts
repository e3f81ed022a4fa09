// Exactly-once appends, event listing and tenant isolation.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Suite } from './suite-context.js';
import type { AppendStatus, NewEvent, StoredEvent } from '../../src/modules/events/events.types.js';
import { MeterSet } from '../../src/modules/meters/meter-eval.js';
import { validateEvent } from '../../src/modules/events/event-validation.js';
import { ALL_BUCKETS, append, createMeter, mkEvent, mkMeter, newTenant, prng, uid } from './helpers.js';

const T0 = Date.UTC(2024, 2, 1);
const MIN = 60_000;

export function eventsSuite(ctx: Suite) {
  describe('appendEvents', () => {
    it('tells accepted, duplicate and conflict apart within one call and across calls', async () => {
      const t = await newTenant(ctx.store);
      const a = mkEvent({ id: 'a', time: T0, data: { value: 1 } });
      const aChanged = mkEvent({ id: 'a', time: T0, data: { value: 2 } });
      const b = mkEvent({ id: 'b', time: T0 });
      const bOtherSource = mkEvent({ id: 'b', source: 'elsewhere', time: T0 });
      assert.deepEqual(await append(ctx.store, t, [a, a, aChanged, b, bOtherSource]), ['accepted', 'duplicate', 'conflict', 'accepted', 'accepted']);
      assert.deepEqual(await append(ctx.store, t, [aChanged, b, a, mkEvent({ id: 'c', time: T0 })]), ['conflict', 'duplicate', 'duplicate', 'accepted']);
      const stored = await ctx.store.listEvents(t, {}, undefined, 100);
      assert.equal(stored.length, 4);
      assert.deepEqual(stored.find((e) => e.id === 'a')?.data, { value: 1 });
    });

    it('judge validated events by a content hash that stays what older versions stored', async () => {
      const t = await newTenant(ctx.store);
      const limits = { maxIdLength: 256, maxDataBytes: 65_536, maxDataDepth: 8, maxPastMs: MIN, maxFutureMs: MIN };
      const raw = { specversion: '1.0', id: 'v', source: 'test', type: 'api.call', subject: 'sub-a', time: '2024-03-01T00:00:00Z', data: { b: 1, a: [2, 'x'] } };
      const validated = (r: object, now = T0) => {
        const v = validateEvent(r, limits, now);
        assert.ok(v.ok);
        return v.event;
      };
      // Stored hashes outlive versions: this one must never change, or a retry of an event stored by an
      // older version would be judged a conflict.
      assert.equal(validated(raw).hash, 'GwdhuxNLbSPbVNwETHnHAD81RPYckrjvDWit1t-WcWQ');
      assert.deepEqual(await append(ctx.store, t, [validated(raw)]), ['accepted']);
      // The same instant written another way is the same content.
      assert.deepEqual(await append(ctx.store, t, [validated({ ...raw, time: '2024-03-01T01:00:00+01:00' }), validated(raw)]), ['duplicate', 'duplicate']);
      assert.deepEqual(await append(ctx.store, t, [validated({ ...raw, data: { b: 2 } })]), ['conflict']);
      // Without a time the event's time is the receipt's, left out of its identity: a resend is a duplicate.
      const untimed = { ...raw, id: 'w', time: undefined };
      assert.deepEqual(await append(ctx.store, t, [validated(untimed)]), ['accepted']);
      assert.deepEqual(await append(ctx.store, t, [validated(untimed, T0 + 1000)]), ['duplicate']);
    });

    it('store an event whose first copy in a commit came in a call with stale meters', async () => {
      const t = await newTenant(ctx.store);
      const before = await ctx.store.listMeters(t);
      await createMeter(ctx.store, mkMeter(t, 'calls', 'COUNT'));
      const now = await ctx.store.listMeters(t);
      const items = (set: MeterSet, events: NewEvent[]) => events.map((event) => ({ event, deltas: set.deltasFor(event) }));
      const e = mkEvent({ id: 'k', time: T0 });
      // Sent together, so one group commit holds both calls.
      const [stale, fresh] = await Promise.allSettled([
        ctx.store.appendEvents(t, before.version, items(new MeterSet(before.version, before.meters), [e])),
        ctx.store.appendEvents(t, now.version, items(new MeterSet(now.version, now.meters), [mkEvent({ id: 'j', time: T0 }), e])),
      ]);
      assert.equal(stale.status, 'rejected');
      assert.deepEqual(fresh.status === 'fulfilled' && fresh.value, ['accepted', 'accepted']);
      assert.deepEqual((await ctx.store.listEvents(t, {}, undefined, 10)).map((x) => x.id).sort(), ['j', 'k']);
    });

    it('accept each id exactly once under many concurrent calls from two stores on one database', async () => {
      const t = await newTenant(ctx.store);
      const other = ctx.db.open();
      const ids = Array.from({ length: 40 }, (_, i) => `id-${i}`);
      const rnd = prng(7);
      // Every call carries all ids, in its own order; half the calls send different content.
      const calls = Array.from({ length: 16 }, (_, c) => {
        const order = [...ids].sort(() => rnd.next() - 0.5);
        return order.map((id) => mkEvent({ id, time: T0, data: { v: c % 2 } }));
      });
      const results = await Promise.all(calls.map((evs, c) => (c % 2 ? other : ctx.store).appendEvents(t, 0, evs.map((event) => ({ event, deltas: [] })))));
      const stored = new Map((await ctx.store.listEvents(t, {}, undefined, 1000)).map((e) => [e.id, e]));
      assert.equal(stored.size, ids.length);
      for (const id of ids) {
        const winner = mkEvent({ id, time: T0, data: stored.get(id)!.data });
        let accepted = 0;
        calls.forEach((evs, c) => {
          const i = evs.findIndex((e) => e.id === id);
          const s: AppendStatus = results[c][i];
          if (s === 'accepted') accepted++;
          else assert.equal(s, evs[i].hash === winner.hash ? 'duplicate' : 'conflict', `${id} in call ${c}`);
        });
        assert.equal(accepted, 1, id);
      }
      await other.close();
    });

    it('number accepted events in arrival order', async () => {
      const t = await newTenant(ctx.store);
      await append(ctx.store, t, [mkEvent({ id: 'x', time: T0 })]);
      await append(ctx.store, t, [mkEvent({ id: 'x', time: T0 }), mkEvent({ id: 'z', time: T0 + 2 }), mkEvent({ id: 'y', time: T0 + 1 }), mkEvent({ id: 'w', time: T0 })]);
      const bySeq = (await ctx.store.listEvents(t, {}, undefined, 10)).sort((p, q) => p.seq - q.seq);
      assert.deepEqual(bySeq.map((e) => e.id), ['x', 'z', 'y', 'w']);
      const steps = bySeq.slice(1).map((e, i) => e.seq - bySeq[i].seq);
      assert.ok(steps.every((s) => s > 0));
      if (!ctx.engine.props.seqGaps) assert.deepEqual(steps, [1, 1, 1]);
    });
  });

  describe('listEvents', () => {
    it('returns newest first, pages by cursor and filters by subject, type and time', async () => {
      const t = await newTenant(ctx.store);
      const rnd = prng(11);
      const events = Array.from({ length: 37 }, (_, i) =>
        mkEvent({ id: `e${i}`, time: T0 + rnd.int(10) * MIN, subject: rnd.pick(['a', 'b', null]), type: rnd.pick(['x', 'y']), data: { i } }),
      );
      for (let i = 0; i < events.length; i += 9) await append(ctx.store, t, events.slice(i, i + 9));
      const all = await ctx.store.listEvents(t, {}, undefined, 1000);
      assert.equal(all.length, events.length);
      const newestFirst = (p: StoredEvent, q: StoredEvent) => q.time - p.time || q.seq - p.seq;
      assert.deepEqual(all, [...all].sort(newestFirst));

      const paged: StoredEvent[] = [];
      for (let cursor: { time: number; seq: number } | undefined; ; ) {
        const page = await ctx.store.listEvents(t, {}, cursor, 5);
        if (page.length === 0) break;
        paged.push(...page);
        const last = page[page.length - 1];
        cursor = { time: last.time, seq: last.seq };
      }
      assert.deepEqual(paged, all);

      const ids = (xs: StoredEvent[]) => xs.map((e) => e.id);
      const filters = [{ subject: 'a' }, { type: 'y' }, { from: T0 + 3 * MIN }, { to: T0 + 5 * MIN }, { subject: 'b', type: 'x', from: T0 + MIN, to: T0 + 8 * MIN }];
      for (const f of filters) {
        const want = all.filter(
          (e) =>
            (f.subject === undefined || e.subject === f.subject) &&
            (f.type === undefined || e.type === f.type) &&
            (f.from === undefined || e.time >= f.from) &&
            (f.to === undefined || e.time < f.to),
        );
        assert.deepEqual(ids(await ctx.store.listEvents(t, f, undefined, 1000)), ids(want), JSON.stringify(f));
      }
      const e = all[3];
      assert.deepEqual(await ctx.store.listEvents(t, {}, { time: e.time, seq: e.seq }, 2), all.slice(4, 6));
    });

    it('keeps events far in the past and future, and their data, intact', async () => {
      const t = await newTenant(ctx.store);
      const times = [0, 1, Date.UTC(1999, 11, 31, 23, 59, 59, 999), Date.UTC(2030, 5, 1), Date.UTC(9999, 11, 31, 23, 59, 59, 999)];
      const data = { s: 'ünï \u2028 "q"', n: 12.5, big: '123456789012345678901234567890.123456789', nested: { a: [1, null, true] } };
      await append(ctx.store, t, times.map((time, i) => mkEvent({ id: `e${i}`, time, data })));
      const got = await ctx.store.listEvents(t, {}, undefined, 10);
      assert.deepEqual(got.map((e) => e.time), [...times].reverse());
      for (const e of got) assert.deepEqual(e.data, data);
      const scanned = await ctx.store.scanEvents(t, { type: 'api.call', from: 1, to: Date.UTC(2031, 0, 1), limit: 10 });
      assert.deepEqual(scanned.map((e) => e.time), times.slice(1, 4));
    });
  });

  describe('tenant isolation', () => {
    it('never shows one tenant rows of another', async () => {
      const a = await newTenant(ctx.store);
      const b = await newTenant(ctx.store);
      const m = mkMeter(a, 'calls', 'UNIQUE_COUNT', { value: '$.u' });
      await createMeter(ctx.store, m);
      const ev = mkEvent({ id: 'same-id', time: T0, data: { u: 'x' } });
      assert.deepEqual(await append(ctx.store, a, [ev]), ['accepted']);
      assert.deepEqual(await append(ctx.store, b, [ev]), ['accepted']);
      await ctx.store.createCustomer({ id: uid('cus'), tenantId: a, key: 'k', name: 'k', subjects: ['sub-a'], metadata: {}, createdAt: 1, updatedAt: 1 });
      assert.equal((await ctx.store.listEvents(b, {}, undefined, 10)).length, 1);
      assert.deepEqual(await ctx.store.scanEvents(b, { type: 'api.call', from: 0, to: T0 + 1, afterSeq: 0, limit: 10 }).then((x) => x.length), 1);
      assert.deepEqual(await ctx.store.readRollups(b, { meterId: m.id, ...ALL_BUCKETS }), []);
      assert.deepEqual(await ctx.store.readUniques(b, { meterId: m.id, ...ALL_BUCKETS }), []);
      assert.equal(await ctx.store.getMeter(b, 'calls'), undefined);
      assert.deepEqual(await ctx.store.listMeters(b), { version: 0, meters: [] });
      assert.equal(await ctx.store.deleteMeter(b, 'calls'), false);
      assert.equal(await ctx.store.getCustomer(b, 'k'), undefined);
      assert.deepEqual(await ctx.store.listCustomers(b, undefined, 10), []);
      assert.deepEqual(await ctx.store.customersOfSubjects(b), new Map());
      // b's meters version is its own: a's meter did not make b's appends stale.
      assert.deepEqual(await ctx.store.appendEvents(b, 0, [{ event: mkEvent({ id: 'n', time: T0 }), deltas: [] }]), ['accepted']);
    });
  });

  describe('withLock', () => {
    it('runs holders of one name one at a time, across stores on one database', async () => {
      const t = await newTenant(ctx.store);
      // A single-process engine's lock spans one store; a multi-process one spans the database.
      const other = ctx.engine.props.multiProcess ? ctx.db.open() : ctx.store;
      let inside = 0;
      let max = 0;
      const order: number[] = [];
      await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          (i % 2 ? other : ctx.store).withLock(t, 'balance', async () => {
            inside++;
            max = Math.max(max, inside);
            await append(ctx.store, t, [mkEvent({ id: `l${i}`, time: T0 })]);
            order.push(i);
            inside--;
          }),
        ),
      );
      assert.equal(max, 1);
      assert.equal(order.length, 6);
      await assert.rejects(ctx.store.withLock(t, 'balance', async () => Promise.reject(new Error('boom'))), /boom/);
      assert.equal(await ctx.store.withLock(t, 'balance', async () => 42), 42);
      if (other !== ctx.store) await other.close();
    });
  });
}

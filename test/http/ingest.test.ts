// Ingestion: exactly once with receipts, partial batches, concurrency, exact decimals,
// events before their customer and before their meter.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { engines, startApp, call, type TestApp, type TestTenant } from '../support/harness.js';

const ev = (id: string, data: Record<string, unknown> = { n: 1 }, extra: Record<string, unknown> = {}) => ({
  id,
  source: 'tests',
  type: 'req',
  subject: 'acme',
  time: '2026-02-01T12:00:00Z',
  data,
  ...extra,
});

for (const engine of engines()) {
  describe(`ingestion [${engine.name}]`, () => {
    let t: TestApp;
    let ten: TestTenant;
    const post = (body: unknown, headers?: Record<string, string>) => call(t.url, 'POST', '/v1/events', { key: ten.ingest, body, headers });
    const sum = async (slug: string, extra = '') =>
      (await call(t.url, 'GET', `/v1/meters/${slug}/query?from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z${extra}`, { key: ten.read })).body.data;

    before(async () => {
      t = await startApp(engine);
      ten = await t.tenant();
      await call(t.url, 'POST', '/v1/meters', { key: ten.admin, body: { slug: 'n', eventType: 'req', aggregation: 'SUM', valueProperty: '$.n' } });
    });
    after(() => t.close());

    it('answers a receipt per event: accepted, duplicate, conflict, rejected — and keeps the good ones', async () => {
      const r = await post([ev('a1', { n: 1 }), ev('a2', { n: 2 }), ev('a1', { n: 1 }), ev('a2', { n: 99 }), { source: 'tests' }, ev('a3', { n: 3 }, { time: 'yesterday' })]);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body.events.map((e: any) => e.status), ['accepted', 'accepted', 'duplicate', 'conflict', 'rejected', 'rejected']);
      assert.deepEqual([r.body.accepted, r.body.duplicate, r.body.conflict, r.body.rejected], [2, 1, 1, 2]);
      assert.match(r.body.events[4].error, /id is required/);
      assert.equal(r.body.events[5].field, 'time');
      // The conflicting resend did not overwrite: 1 + 2.
      assert.deepEqual((await sum('n')).map((x: any) => x.value), ['3']);
    });

    it('a resend with the same content is a duplicate forever, whatever its key order or an omitted time', async () => {
      const first = await post({ id: 'k1', source: 'tests', type: 'req', subject: 'acme', data: { n: 5, z: { b: 1, a: 2 } } });
      assert.equal(first.body.events[0].status, 'accepted');
      const again = await post({ data: { z: { a: 2, b: 1 }, n: 5 }, subject: 'acme', type: 'req', source: 'tests', id: 'k1' });
      assert.equal(again.status, 200);
      assert.equal(again.body.events[0].status, 'duplicate');
    });

    it('a single conflicting event answers 409 problem+json and changes nothing', async () => {
      const r = await post(ev('a1', { n: 1000 }));
      assert.equal(r.status, 409);
      assert.match(r.headers.get('content-type')!, /application\/problem\+json/);
      assert.equal(r.body.receipt.events[0].status, 'conflict');
    });

    it('a single rejected event answers 400 problem+json naming the field', async () => {
      const r = await post({ id: 'x', source: 'tests', data: 'not an object' });
      assert.equal(r.status, 400);
      assert.equal(r.body.errors[0].field, 'data');
    });

    it('accepts application/cloudevents+json and application/cloudevents-batch+json', async () => {
      const one = await call(t.url, 'POST', '/v1/events', { key: ten.ingest, rawBody: JSON.stringify({ ...ev('ce1'), specversion: '1.0' }), headers: { 'content-type': 'application/cloudevents+json' } });
      assert.equal(one.body.accepted, 1);
      const batch = await call(t.url, 'POST', '/v1/events', { key: ten.ingest, rawBody: JSON.stringify([ev('ce2'), ev('ce3')]), headers: { 'content-type': 'application/cloudevents-batch+json; charset=utf-8' } });
      assert.equal(batch.body.accepted, 2);
      const notArray = await call(t.url, 'POST', '/v1/events', { key: ten.ingest, rawBody: JSON.stringify(ev('ce4')), headers: { 'content-type': 'application/cloudevents-batch+json' } });
      assert.equal(notArray.status, 400);
    });

    it('concurrent sends of the same events from many connections are counted once', async () => {
      const ids = Array.from({ length: 40 }, (_, i) => `c${i}`);
      const batch = ids.map((id) => ev(id, { n: '0.5' }, { type: 'conc', subject: 'conc' }));
      await call(t.url, 'POST', '/v1/meters', { key: ten.admin, body: { slug: 'conc', eventType: 'conc', aggregation: 'SUM', valueProperty: '$.n' } });
      const results = await Promise.all(
        Array.from({ length: 24 }, (_, k) => (k % 2 === 0 ? post(batch) : Promise.all(batch.slice(0, 20).map((e) => post(e))))),
      );
      let accepted = 0;
      for (const r of results) {
        const list = Array.isArray(r) ? r.map((x) => x.body) : [r.body];
        for (const b of list) {
          accepted += b.accepted;
          assert.equal(b.conflict, 0);
        }
      }
      assert.equal(accepted, 40);
      assert.deepEqual((await sum('conc')).map((x: any) => x.value), ['20']);
    });

    it('amounts are exact decimals: ten 0.1 are 1, and 10^15 totals keep nine decimals', async () => {
      await call(t.url, 'POST', '/v1/meters', { key: ten.admin, body: { slug: 'dec', eventType: 'dec', aggregation: 'SUM', valueProperty: '$.v' } });
      const tenths = Array.from({ length: 10 }, (_, i) => ev(`d${i}`, { v: 0.1 }, { type: 'dec', subject: 'tenths' }));
      assert.equal((await post(tenths)).body.accepted, 10);
      assert.deepEqual((await sum('dec', '&subject=tenths')).map((x: any) => x.value), ['1']);
      const big = [ev('b1', { v: '999999999999999.999999999' }, { type: 'dec', subject: 'big' }), ev('b2', { v: '0.000000001' }, { type: 'dec', subject: 'big' }), ev('b3', { v: '123456789012345.123456789' }, { type: 'dec', subject: 'big' })];
      assert.equal((await post(big)).body.accepted, 3);
      assert.deepEqual((await sum('dec', '&subject=big')).map((x: any) => x.value), ['1123456789012345.123456789']);
    });

    it('a JSON number that a double cannot hold exactly is refused for the meter, and says to send a string', async () => {
      await post(ev('f1', { v: 0.30000000000000004 }, { type: 'dec', subject: 'float' }));
      // Stored (it is a valid event) but not counted: the meter cannot read an exact amount from it.
      assert.deepEqual((await sum('dec', '&subject=float')).map((x: any) => x.value), ['0']);
    });

    it('events before their customer count for that customer once it claims the subject', async () => {
      await call(t.url, 'POST', '/v1/meters', { key: ten.admin, body: { slug: 'early', eventType: 'early', aggregation: 'SUM', valueProperty: '$.n' } });
      await post([ev('p1', { n: 4 }, { type: 'early', subject: 'user-7' }), ev('p2', { n: 6 }, { type: 'early', subject: 'user-8' })]);
      const before = await call(t.url, 'GET', '/v1/meters/early/query?from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z&groupBy=customer', { key: ten.read });
      assert.deepEqual(before.body.data.map((x: any) => [x.customer, x.value]), [[null, '10']]);
      const c = await call(t.url, 'POST', '/v1/customers', { key: ten.admin, body: { key: 'globex', name: 'Globex', subjects: ['user-7', 'user-8'] } });
      assert.equal(c.status, 201, c.text);
      const after = await call(t.url, 'GET', '/v1/meters/early/query?from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z&customer=globex', { key: ten.read });
      assert.deepEqual(after.body.data.map((x: any) => x.value), ['10']);
      const grouped = await call(t.url, 'GET', '/v1/meters/early/query?from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z&groupBy=customer', { key: ten.read });
      assert.deepEqual(grouped.body.data.map((x: any) => [x.customer, x.value]), [['globex', '10']]);
    });

    it('a meter defined after events arrived counts them', async () => {
      await post([ev('late1', { kb: '1.5' }, { type: 'upload' }), ev('late2', { kb: '2.5' }, { type: 'upload' })]);
      const m = await call(t.url, 'POST', '/v1/meters', { key: ten.admin, body: { slug: 'kb', eventType: 'upload', aggregation: 'SUM', valueProperty: '$.kb' } });
      assert.equal(m.status, 201);
      assert.deepEqual((await sum('kb')).map((x: any) => x.value), ['4']);
      // And new events keep counting.
      await post(ev('late3', { kb: 1 }, { type: 'upload' }));
      assert.deepEqual((await sum('kb')).map((x: any) => x.value), ['5']);
    });

    it('a late event lands in its own hour', async () => {
      await post(ev('old', { kb: 10 }, { type: 'upload', time: '2026-01-15T03:20:00Z' }));
      const r = await call(t.url, 'GET', '/v1/meters/kb/query?from=2026-01-15T00:00:00Z&to=2026-01-16T00:00:00Z&windowSize=HOUR&groupBy=subject', { key: ten.read });
      assert.deepEqual(r.body.data.map((x: any) => [x.windowStart, x.value]), [['2026-01-15T03:00:00.000Z', '10']]);
    });

    it('lists events newest first with cursor pages and filters', async () => {
      const ids = Array.from({ length: 7 }, (_, i) => ev(`l${i}`, { n: 0 }, { type: 'list', subject: 'lister', time: `2026-02-0${i + 1}T00:00:00Z` }));
      await post(ids);
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const r: any = await call(t.url, 'GET', `/v1/events?subject=lister&limit=3${cursor ? `&cursor=${cursor}` : ''}`, { key: ten.read });
        assert.equal(r.status, 200, r.text);
        seen.push(...r.body.data.map((e: any) => e.id));
        cursor = r.body.nextCursor;
      } while (cursor);
      assert.deepEqual(seen, ['l6', 'l5', 'l4', 'l3', 'l2', 'l1', 'l0']);
      const ranged = await call(t.url, 'GET', '/v1/events?type=list&from=2026-02-02T00:00:00Z&to=2026-02-04T00:00:00Z', { key: ten.read });
      assert.deepEqual(ranged.body.data.map((e: any) => e.id), ['l2', 'l1']);
      const bad = await call(t.url, 'GET', '/v1/events?cursor=bm9wZQ', { key: ten.read });
      assert.equal(bad.status, 400);
    });

    it('an event without time gets now, and a resend of it is still a duplicate', async () => {
      const e = { id: 'now1', source: 'tests', type: 'req', subject: 'acme', data: { n: 0 } };
      assert.equal((await post(e)).body.events[0].status, 'accepted');
      assert.equal((await post(e)).body.events[0].status, 'duplicate');
    });
  });

  describe(`rollup folds [${engine.name}]`, () => {
    /** How long the app took to fold one ingested batch without being asked (no read), or undefined if not within `ms`. */
    const foldedWithin = async (settings: Partial<TestApp['config']>, events: number, ms: number) => {
      const app = await startApp(engine, settings);
      try {
        const ten = await app.tenant();
        await call(app.url, 'POST', '/v1/meters', { key: ten.admin, body: { slug: 'n', eventType: 'req', aggregation: 'SUM', valueProperty: '$.n' } });
        const r = await call(app.url, 'POST', '/v1/events', { key: ten.ingest, body: Array.from({ length: events }, (_, i) => ev(`f${i}`)) });
        assert.equal(r.body.accepted, events, r.text);
        const t0 = Date.now();
        while (Date.now() - t0 < ms) {
          if ((await app.services.store.unfoldedEvents()) === 0) return Date.now() - t0;
          await new Promise((res) => setTimeout(res, 25));
        }
        return undefined;
      } finally {
        await app.close();
      }
    };

    it('folds after ROLLUP_FOLD_INTERVAL_MS, or once ROLLUP_FOLD_EVENTS events are stored', async () => {
      assert.notEqual(await foldedWithin({ ROLLUP_FOLD_INTERVAL_MS: 100, ROLLUP_FOLD_EVENTS: 1_000_000 }, 1, 1500), undefined, 'folded after the interval');
      assert.notEqual(await foldedWithin({ ROLLUP_FOLD_INTERVAL_MS: 3_600_000, ROLLUP_FOLD_EVENTS: 5 }, 5, 1500), undefined, 'folded at the count');
      assert.equal(await foldedWithin({ ROLLUP_FOLD_INTERVAL_MS: 3_600_000, ROLLUP_FOLD_EVENTS: 6 }, 5, 700), undefined, 'not folded below the count, before the interval');
    });
  });
}

// Every aggregation, windows in zones with DST and sub-hour offsets, filters and grouping,
// answered through real HTTP on a real database. Ranges are chosen so both the rollup path
// (whole hours) and the raw path (cut hours) are exercised and must agree.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { engines, startApp, call, type TestApp, type TestTenant } from '../support/harness.js';

for (const engine of engines()) {
  describe(`usage queries [${engine.name}]`, () => {
    let t: TestApp;
    let ten: TestTenant;
    const q = (slug: string, params: string) => call(t.url, 'GET', `/v1/meters/${slug}/query?${params}`, { key: ten.read });

    before(async () => {
      t = await startApp(engine);
      ten = await t.tenant();
      const meters = [
        { slug: 'tokens', aggregation: 'SUM', valueProperty: '$.tokens', groupBy: { model: '$.model' } },
        { slug: 'calls', aggregation: 'COUNT' },
        { slug: 'users', aggregation: 'UNIQUE_COUNT', valueProperty: '$.user' },
        { slug: 'min-latency', aggregation: 'MIN', valueProperty: '$.ms' },
        { slug: 'max-latency', aggregation: 'MAX', valueProperty: '$.ms' },
        { slug: 'avg-latency', aggregation: 'AVG', valueProperty: '$.ms' },
        { slug: 'last-seats', aggregation: 'LATEST', valueProperty: '$.seats' },
      ];
      for (const m of meters) {
        const r = await call(t.url, 'POST', '/v1/meters', { key: ten.admin, body: { eventType: 'api', ...m } });
        assert.equal(r.status, 201, r.text);
      }
      // Six events over two hours and two subjects; 10:30 and 10:59 fall in one hour.
      const events = [
        { id: 'e1', subject: 'alice', time: '2026-01-10T10:00:00Z', data: { tokens: '100', model: 'small', user: 'u1', ms: 30, seats: 5 } },
        { id: 'e2', subject: 'alice', time: '2026-01-10T10:30:00Z', data: { tokens: '0.5', model: 'large', user: 'u2', ms: '12.25', seats: 7 } },
        { id: 'e3', subject: 'bob', time: '2026-01-10T10:59:59.999Z', data: { tokens: 7, model: 'small', user: 'u1', ms: 8, seats: 2 } },
        { id: 'e4', subject: 'bob', time: '2026-01-10T11:15:00Z', data: { tokens: '2.25', model: 'small', user: 'u3', ms: 100, seats: 9 } },
        { id: 'e5', subject: 'alice', time: '2026-01-10T11:45:00Z', data: { tokens: 1, model: 'large', user: 'u1', ms: 1, seats: 4 } },
        // No tokens: counted by COUNT, skipped by the value meters.
        { id: 'e6', subject: 'carol', time: '2026-01-10T11:50:00Z', data: { model: 'small' } },
      ].map((e) => ({ ...e, source: 'test', type: 'api' }));
      const r = await call(t.url, 'POST', '/v1/events', { key: ten.ingest, body: events });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.accepted, 6);
    });
    after(() => t.close());

    const whole = 'from=2026-01-10T00:00:00Z&to=2026-01-11T00:00:00Z';
    const cut = 'from=2026-01-10T10:10:00Z&to=2026-01-10T11:50:00Z'; // drops e1 and e6, cuts both hours

    // meter, expected over the whole day, expected over the cut range (e2..e5)
    const cases: Array<[string, string, string]> = [
      ['tokens', '110.75', '10.75'],
      ['calls', '6', '4'],
      ['users', '3', '3'],
      ['min-latency', '1', '1'],
      ['max-latency', '100', '100'],
      ['avg-latency', '30.25', '30.3125'],
      ['last-seats', '4', '4'],
    ];

    for (const [meter, wholeDay, cutRange] of cases) {
      it(`${meter}: whole hours from rollups and cut hours from raw events agree`, async () => {
        const a = await q(meter, whole);
        assert.equal(a.status, 200, a.text);
        assert.deepEqual(a.body.data.map((r: any) => r.value), [wholeDay]);
        const b = await q(meter, cut);
        assert.equal(b.status, 200, b.text);
        assert.deepEqual(b.body.data.map((r: any) => r.value), [cutRange]);
      });
    }

    it('AVG of one subject', async () => {
      const r = await q('avg-latency', `${whole}&subject=bob`);
      assert.equal(r.body.data[0].value, '54'); // (8 + 100) / 2
    });

    it('HOUR windows split usage and group by subject and dimension', async () => {
      const r = await q('tokens', 'from=2026-01-10T10:00:00Z&to=2026-01-10T12:00:00Z&windowSize=HOUR&groupBy=subject&groupBy=model');
      assert.equal(r.status, 200, r.text);
      const rows = r.body.data.map((x: any) => `${x.windowStart.slice(11, 16)} ${x.subject} ${x.groupBy.model} ${x.value}`);
      assert.deepEqual(rows, ['10:00 alice large 0.5', '10:00 alice small 100', '10:00 bob small 7', '11:00 alice large 1', '11:00 bob small 2.25']);
    });

    it('subject and dimension filters', async () => {
      const r = await q('tokens', `${whole}&subject=bob&subject=carol&filterGroupBy[model]=small`);
      assert.deepEqual(r.body.data.map((x: any) => x.value), ['9.25']);
      const none = await q('tokens', `${whole}&filterGroupBy[model]=medium`);
      assert.deepEqual(none.body.data.map((x: any) => x.value), ['0']);
    });

    it('MINUTE windows read raw events', async () => {
      const r = await q('calls', 'from=2026-01-10T10:58:00Z&to=2026-01-10T11:01:00Z&windowSize=MINUTE');
      assert.deepEqual(r.body.data.map((x: any) => [x.windowStart.slice(11, 16), x.value]), [['10:58', '0'], ['10:59', '1'], ['11:00', '0']]);
    });

    it('windows in a zone with a :30 offset (Asia/Kolkata) cut UTC hours and stay exact', async () => {
      const r = await q('tokens', 'from=2026-01-10T09:30:00Z&to=2026-01-10T12:30:00Z&windowSize=HOUR&windowTimeZone=Asia/Kolkata');
      assert.equal(r.status, 200, r.text);
      // 09:30-10:30Z holds e1; 10:30-11:30Z holds e2, e3 and e4; 11:30-12:30Z holds e5.
      assert.deepEqual(r.body.data.map((x: any) => [x.windowStart.slice(11, 16), x.value]), [['09:30', '100'], ['10:30', '9.75'], ['11:30', '1']]);
    });

    it('a grouped query lists only groups with usage; an ungrouped one answers every window', async () => {
      const grouped = await q('calls', 'from=2026-01-10T09:00:00Z&to=2026-01-10T13:00:00Z&windowSize=HOUR&groupBy=subject');
      assert.deepEqual(grouped.body.data.map((x: any) => `${x.windowStart.slice(11, 13)} ${x.subject} ${x.value}`), ['10 alice 2', '10 bob 1', '11 alice 1', '11 bob 1', '11 carol 1']);
      const flat = await q('calls', 'from=2026-01-10T09:00:00Z&to=2026-01-10T13:00:00Z&windowSize=HOUR');
      assert.deepEqual(flat.body.data.map((x: any) => x.value), ['0', '3', '3', '0']);
    });

    it('a query whose answer would pass MAX_QUERY_ROWS is refused with 400, and a smaller one answers', async () => {
      const small = await startApp(engine, { MAX_QUERY_ROWS: 3 });
      try {
        const tt = await small.tenant();
        const m = await call(small.url, 'POST', '/v1/meters', { key: tt.admin, body: { slug: 'calls', eventType: 'api', aggregation: 'COUNT' } });
        assert.equal(m.status, 201, m.text);
        const events = ['a', 'b', 'c', 'd'].map((subject, i) => ({ id: `r${i}`, source: 'test', type: 'api', subject, time: '2026-01-10T10:00:00Z' }));
        assert.equal((await call(small.url, 'POST', '/v1/events', { key: tt.ingest, body: events })).body.accepted, 4);
        const ask = (params: string) => call(small.url, 'GET', `/v1/meters/calls/query?${whole}&${params}`, { key: tt.read });
        const tooMany = await ask('groupBy=subject');
        assert.equal(tooMany.status, 400, tooMany.text);
        assert.match(tooMany.headers.get('content-type') ?? '', /application\/problem\+json/);
        assert.match(tooMany.body.detail, /more than 3 rows/);
        const three = await ask('groupBy=subject&subject=a&subject=b&subject=c');
        assert.equal(three.status, 200, three.text);
        assert.deepEqual(three.body.data.map((r: any) => [r.subject, r.value]), [['a', '1'], ['b', '1'], ['c', '1']]);
      } finally {
        await small.close();
      }
    });

    it('MIN of no events is null, not zero', async () => {
      const r = await q('min-latency', 'from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z');
      assert.deepEqual(r.body.data.map((x: any) => x.value), [null]);
    });
  });

  describe(`time-zone windows across DST [${engine.name}]`, () => {
    let t: TestApp;
    let ten: TestTenant;
    before(async () => {
      t = await startApp(engine);
      ten = await t.tenant();
      await call(t.url, 'POST', '/v1/meters', { key: ten.admin, body: { slug: 'n', eventType: 'tick', aggregation: 'COUNT' } });
      // One event every hour, 2026-03-27 00:00Z to 2026-03-31 00:00Z and around the October switch.
      const events = [];
      for (const [start, hours] of [[Date.parse('2026-03-27T00:00:00Z'), 96], [Date.parse('2026-10-23T00:00:00Z'), 96]] as const) {
        for (let h = 0; h < hours; h++) events.push({ id: `h${start}-${h}`, source: 'dst', type: 'tick', subject: 's', time: new Date(start + h * 3_600_000).toISOString() });
      }
      const r = await call(t.url, 'POST', '/v1/events', { key: ten.ingest, body: events });
      assert.equal(r.body.accepted, events.length);
    });
    after(() => t.close());

    it('Europe/Berlin days are 23 hours on the spring switch and 25 on the autumn one', async () => {
      const spring = await call(t.url, 'GET', '/v1/meters/n/query?from=2026-03-28T00:00:00%2B01:00&to=2026-03-31T00:00:00%2B02:00&windowSize=DAY&windowTimeZone=Europe/Berlin', { key: ten.read });
      assert.equal(spring.status, 200, spring.text);
      assert.deepEqual(spring.body.data.map((x: any) => [x.windowStart, x.value]), [
        ['2026-03-27T23:00:00.000Z', '24'],
        ['2026-03-28T23:00:00.000Z', '23'],
        ['2026-03-29T22:00:00.000Z', '24'],
      ]);
      const autumn = await call(t.url, 'GET', '/v1/meters/n/query?from=2026-10-24T00:00:00%2B02:00&to=2026-10-26T00:00:00%2B01:00&windowSize=DAY&windowTimeZone=Europe/Berlin', { key: ten.read });
      assert.deepEqual(autumn.body.data.map((x: any) => [x.windowStart, x.value]), [
        ['2026-10-23T22:00:00.000Z', '24'],
        ['2026-10-24T22:00:00.000Z', '25'],
      ]);
    });

    it('America/New_York HOUR windows and a MONTH window', async () => {
      const r = await call(t.url, 'GET', '/v1/meters/n/query?from=2026-03-01T00:00:00-05:00&to=2026-05-01T00:00:00-04:00&windowSize=MONTH&windowTimeZone=America/New_York', { key: ten.read });
      assert.deepEqual(r.body.data.map((x: any) => [x.windowStart, x.value]), [
        ['2026-03-01T05:00:00.000Z', '96'],
        ['2026-04-01T04:00:00.000Z', '0'],
      ]);
    });
  });
}

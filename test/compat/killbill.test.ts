// Kill Bill UsageApi on meterd, driven by the official client (killbill@0.24.0) on every engine.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import * as killbill from 'killbill';
import { engines, startApp, call, type TestApp, type TestTenant } from '../support/harness.js';

const DAY = 86_400_000;
const day = (n: number) => new Date(Math.floor(Date.now() / DAY) * DAY + n * DAY).toISOString().slice(0, 10);

const usageApi = (t: TestApp, tenantId: string, key: string, secret = key) =>
  new killbill.UsageApi(new killbill.Configuration({ username: 'demo', password: key, apiKey: killbill.apiKey(tenantId, secret), basePath: t.url }));

/** The axios error a rejected client call throws, for its status and body. */
async function rejected(p: Promise<unknown>): Promise<{ status: number; data: any }> {
  try {
    await p;
  } catch (e: any) {
    assert.ok(e.response, `expected an HTTP error, got ${e}`);
    return { status: e.response.status, data: e.response.data };
  }
  assert.fail('expected the call to be rejected');
}

const record = (subscriptionId: string, trackingId: string | undefined, unitType: string, records: Array<[string, number | string]>): killbill.SubscriptionUsageRecord => ({
  subscriptionId,
  trackingId,
  unitUsageRecords: [{ unitType, usageRecords: records.map(([recordDate, amount]) => ({ recordDate, amount: amount as number })) }],
});

for (const engine of engines()) {
  describe(`Kill Bill usage API [${engine.name}]`, () => {
    let t: TestApp;
    let a: TestTenant;
    let b: TestTenant;
    let writer: killbill.UsageApi;
    let reader: killbill.UsageApi;

    const newSubscription = async (ten: TestTenant = a) => {
      const id = randomUUID();
      const r = await call(t.url, 'POST', '/v1/compat/killbill/subscriptions', { key: ten.admin, body: { subscriptionId: id, accountId: randomUUID(), externalKey: `ext-${id.slice(0, 8)}` } });
      assert.equal(r.status, 201, r.text);
      return id;
    };
    const amounts = async (sub: string, start = day(-5), end = day(1)) =>
      Object.fromEntries((await reader.getAllUsage(sub, start, end)).data.rolledUpUnits!.map((u) => [u.unitType, u.amount]));

    before(async () => {
      t = await startApp(engine);
      a = await t.tenant();
      b = await t.tenant();
      for (const ten of [a, b]) {
        for (const unitType of ['api-calls', 'Storage GB']) {
          const r = await call(t.url, 'POST', '/v1/compat/killbill/unit-types', { key: ten.admin, body: { unitType } });
          assert.equal(r.status, 201, r.text);
        }
      }
      writer = usageApi(t, a.id, a.ingest);
      reader = usageApi(t, a.id, a.read);
    });
    after(() => t.close());

    it('is configured through the native API: unit types are meters, subscriptions are customers', async () => {
      const units = await call(t.url, 'GET', '/v1/compat/killbill/unit-types', { key: a.read });
      assert.deepEqual(units.body.data.map((u: any) => u.unitType).sort(), ['Storage GB', 'api-calls']);
      assert.equal(units.body.data.find((u: any) => u.unitType === 'api-calls').meter, 'kb-api-calls');
      const sub = await newSubscription();
      const customer = await call(t.url, 'GET', `/v1/customers/${sub}`, { key: a.read });
      assert.deepEqual(customer.body.subjects, [`kb:${sub}`]);
      assert.equal(customer.body.metadata.compat, 'killbill');
      const again = await call(t.url, 'POST', '/v1/compat/killbill/subscriptions', { key: a.admin, body: { subscriptionId: sub } });
      assert.equal(again.status, 409);
      assert.match(again.headers.get('content-type') ?? '', /problem\+json/);
      const bad = await call(t.url, 'POST', '/v1/compat/killbill/subscriptions', { key: a.admin, body: { subscriptionId: 'nope' } });
      assert.equal(bad.status, 400);
      assert.equal((await call(t.url, 'POST', '/v1/compat/killbill/unit-types', { key: a.ingest, body: { unitType: 'x' } })).status, 403);
      const spec = await call(t.url, 'GET', '/openapi.json');
      assert.ok(spec.body.paths['/v1/compat/killbill/subscriptions']);
      assert.ok(spec.body.paths['/1.0/kb/usages']);
    });

    it('records usage (201, empty body) and reads rolled-up sums over [startDate, endDate)', async () => {
      const sub = await newSubscription();
      const r = await writer.recordUsage({
        subscriptionId: sub,
        trackingId: 'day-1',
        unitUsageRecords: [
          { unitType: 'api-calls', usageRecords: [{ recordDate: day(-3), amount: 1 }, { recordDate: `${day(-2)}T10:00:00Z`, amount: 2.5 }, { recordDate: day(-1), amount: 100 }] },
          { unitType: 'Storage GB', usageRecords: [{ recordDate: day(-2), amount: 4.75 }] },
        ],
      }, 'demo', 'nightly sync', 'first run');
      assert.equal(r.status, 201);
      assert.equal(r.data, '');

      const one = await reader.getUsage(sub, 'api-calls', day(-3), day(-1));
      assert.equal(one.status, 200);
      assert.deepEqual(one.data, { subscriptionId: sub, startDate: `${day(-3)}T00:00:00.000Z`, endDate: `${day(-1)}T00:00:00.000Z`, rolledUpUnits: [{ unitType: 'api-calls', amount: 3.5 }] });
      assert.deepEqual(await amounts(sub), { 'api-calls': 103.5, 'Storage GB': 4.75 });
      assert.deepEqual((await reader.getAllUsage(sub, day(-10), day(-4))).data.rolledUpUnits, []);
      // date-times are accepted too, and the end stays exclusive
      assert.deepEqual((await reader.getUsage(sub, 'api-calls', `${day(-2)}T10:00:00Z`, `${day(-2)}T10:00:01Z`)).data.rolledUpUnits, [{ unitType: 'api-calls', amount: 2.5 }]);

      // the same amounts through the native usage query
      const q = await call(t.url, 'GET', `/v1/meters/kb-api-calls/query?customer=${sub}&from=${day(-5)}T00:00:00Z&to=${day(1)}T00:00:00Z`, { key: a.read });
      assert.equal(q.body.data[0].value, '103.5');
      const unitMeter = (await call(t.url, 'GET', '/v1/compat/killbill/unit-types', { key: a.read })).body.data.find((u: any) => u.unitType === 'Storage GB').meter;
      const q2 = await call(t.url, 'GET', `/v1/meters/${unitMeter}/query?subject=kb:${sub}&from=${day(-5)}T00:00:00Z&to=${day(1)}T00:00:00Z`, { key: a.read });
      assert.equal(q2.body.data[0].value, '4.75');

      // the audit headers are kept with every record
      const events = await call(t.url, 'GET', `/v1/events?subject=kb:${sub}&type=killbill.usage.api-calls`, { key: a.read });
      assert.equal(events.body.data.length, 3);
      for (const e of events.body.data) assert.deepEqual([e.data.createdBy, e.data.reason, e.data.comment, e.data.trackingId], ['demo', 'nightly sync', 'first run', 'day-1']);
    });

    it('rejects a reused trackingId on a subscription as a whole (400, code 50000), not on another one', async () => {
      const sub = await newSubscription();
      const body = record(sub, 'tid-1', 'api-calls', [[day(-1), 5]]);
      await writer.recordUsage(body, 'demo');
      const again = await rejected(writer.recordUsage(body, 'demo'));
      assert.equal(again.status, 400);
      assert.deepEqual(again.data, { className: 'org.killbill.billing.usage.api.UsageApiException', code: 50000, message: 'A usage record with tracking ID tid-1 already exists', causeClassName: null, causeMessage: null, stackTrace: [] });
      // a different, larger request under the same trackingId writes nothing at all
      const bigger = record(sub, 'tid-1', 'api-calls', [[day(-1), 5], [day(-1), 7], [day(-1), 9]]);
      assert.equal((await rejected(writer.recordUsage(bigger, 'demo'))).data.code, 50000);
      assert.deepEqual(await amounts(sub), { 'api-calls': 5 });
      // the trackingId scope is the subscription
      const other = await newSubscription();
      await writer.recordUsage(record(other, 'tid-1', 'api-calls', [[day(-1), 2]]), 'demo');
      assert.deepEqual(await amounts(other), { 'api-calls': 2 });
      // without a trackingId every request counts (Kill Bill generates one)
      await writer.recordUsage(record(other, undefined, 'api-calls', [[day(-1), 1]]), 'demo');
      await writer.recordUsage(record(other, '', 'api-calls', [[day(-1), 1]]), 'demo');
      assert.deepEqual(await amounts(other), { 'api-calls': 4 });
    });

    it('stays exact under concurrent retries: one request per trackingId wins', async () => {
      const sub = await newSubscription();
      const body = record(sub, 'burst', 'api-calls', [[day(-1), 3], [day(-2), 4]]);
      const results = await Promise.allSettled(Array.from({ length: 25 }, () => writer.recordUsage(body, 'demo')));
      const ok = results.filter((r) => r.status === 'fulfilled');
      assert.equal(ok.length, 1);
      for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as any).response.data.code, 50000);
      assert.deepEqual(await amounts(sub), { 'api-calls': 7 });

      // different requests racing for one trackingId: exactly one of them is recorded, whole
      const sub2 = await newSubscription();
      const racing = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => writer.recordUsage(record(sub2, 'race', 'api-calls', Array.from({ length: i + 1 }, () => [day(-1), 1] as [string, number])), 'demo')));
      const winners = racing.map((r, i) => (r.status === 'fulfilled' ? i + 1 : 0)).filter((n) => n > 0);
      assert.equal(winners.length, 1);
      assert.deepEqual(await amounts(sub2), { 'api-calls': winners[0] });
    });

    it('keeps decimal amounts exact', async () => {
      const sub = await newSubscription();
      await writer.recordUsage(record(sub, 'tenths', 'api-calls', Array.from({ length: 10 }, () => [day(-1), 0.1] as [string, number])), 'demo');
      assert.deepEqual(await amounts(sub), { 'api-calls': 1 });
      // decimal strings carry any precision; the answer is the exact decimal as JSON number text
      await writer.recordUsage(record(sub, 'big', 'Storage GB', [[day(-1), '12345678901234.123456789'], [day(-1), '0.000000001']]), 'demo');
      const raw = await fetch(`${t.url}/1.0/kb/usages/${sub}/Storage%20GB?startDate=${day(-2)}&endDate=${day(1)}`, {
        headers: { authorization: `Basic ${Buffer.from(`demo:${a.read}`).toString('base64')}`, 'x-killbill-apikey': a.id, 'x-killbill-apisecret': a.read },
      });
      assert.equal(raw.status, 200);
      assert.match(await raw.text(), /"rolledUpUnits":\[\{"unitType":"Storage GB","amount":12345678901234\.12345679\}\]/);
    });

    it('ignores properties Kill Bill does not define, however deeply nested (no 500)', async () => {
      const sub = await newSubscription();
      const headers = { authorization: `Basic ${Buffer.from(`demo:${a.ingest}`).toString('base64')}`, 'x-killbill-apikey': a.id, 'x-killbill-apisecret': a.ingest, 'x-killbill-createdby': 'demo', 'content-type': 'application/json' };
      // Deeper than a recursive JSON walk survives (the fuzz suite found one that did not).
      const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
      const rawBody = `{"subscriptionId":"${sub}","trackingId":"deep","extra":${deep},"unitUsageRecords":[{"unitType":"api-calls","x":${deep},"usageRecords":[{"recordDate":"${day(-1)}","amount":3}]}]}`;
      assert.equal((await call(t.url, 'POST', '/1.0/kb/usages', { rawBody, headers })).status, 201);
      assert.deepEqual(await amounts(sub), { 'api-calls': 3 });
      // A resend is the same request: the usage it records is the same, whatever else it carries.
      const again = await call(t.url, 'POST', '/1.0/kb/usages', { rawBody: rawBody.replace('"extra":', '"other":'), headers });
      assert.equal(again.status, 400);
      assert.equal(again.body.code, 50000);
      assert.deepEqual(await amounts(sub), { 'api-calls': 3 });
    });

    it('answers bad input with Kill Bill\'s error JSON and writes nothing', async () => {
      const sub = await newSubscription();
      const bad = async (body: unknown, message: RegExp, createdBy = 'demo') => {
        const e = await rejected(writer.recordUsage(body as killbill.SubscriptionUsageRecord, createdBy));
        assert.equal(e.status, 400);
        assert.equal(e.data.className, 'java.lang.IllegalArgumentException');
        assert.equal(e.data.code, null);
        assert.match(e.data.message, message);
      };
      await bad({ unitUsageRecords: [] }, /subscriptionId needs to be set/);
      await bad({ subscriptionId: sub, unitUsageRecords: [] }, /unitUsageRecords needs to be set/);
      await bad({ subscriptionId: sub, unitUsageRecords: [{ unitType: '', usageRecords: [] }] }, /unitType need to be set/);
      await bad({ subscriptionId: sub, unitUsageRecords: [{ unitType: 'api-calls', usageRecords: [] }] }, /at least one element/);
      await bad({ subscriptionId: sub, unitUsageRecords: [{ unitType: 'api-calls', usageRecords: [{ recordDate: day(-1) }] }] }, /amount needs to be set/);
      await bad(record(sub, 'x1', 'api-calls', [['yesterday', 1]]), /recordDate/);
      await bad(record(sub, 'x2', 'api-calls', [[day(-1), 0.1234567890123456]]), /significant digits/);
      await bad(record(sub, 'x3', 'api-calls', [[day(-1), 'ten']]), /not a decimal/);
      await bad(record(sub, 'x4', 'no-such-unit', [[day(-1), 1]]), /not configured/);
      // one bad record refuses the whole request
      await bad({ subscriptionId: sub, trackingId: 'x5', unitUsageRecords: [{ unitType: 'api-calls', usageRecords: [{ recordDate: day(-1), amount: 1 }, { recordDate: day(-1), amount: 'x' }] }] }, /amount/);
      await bad(record(sub, 'x6', 'api-calls', [[day(-1), 1]]), /X-Killbill-CreatedBy/, '');

      const missing = await rejected(writer.recordUsage(record(randomUUID(), 'x', 'api-calls', [[day(-1), 1]]), 'demo'));
      assert.equal(missing.status, 404);
      assert.match(missing.data.className, /ObjectDoesNotExist$/);
      assert.match(missing.data.message, /type=SUBSCRIPTION doesn't exist!/);

      const headers = { authorization: `Basic ${Buffer.from(`demo:${a.ingest}`).toString('base64')}`, 'x-killbill-apikey': a.id, 'x-killbill-apisecret': a.ingest, 'x-killbill-createdby': 'demo' };
      const malformed = await call(t.url, 'POST', '/1.0/kb/usages', { rawBody: '{"subscriptionId":', headers: { ...headers, 'content-type': 'application/json' } });
      assert.equal(malformed.status, 400);
      assert.equal(typeof malformed.body.className, 'string');
      assert.deepEqual(malformed.body.stackTrace, []);

      // both dates are required on GET (400, empty body)
      const noDates = await rejected(reader.getAllUsage(sub));
      assert.equal(noDates.status, 400);
      assert.equal(noDates.data, '');
      assert.equal((await rejected(reader.getUsage(randomUUID(), 'api-calls', day(-1), day(0)))).status, 404);
      assert.deepEqual(await amounts(sub), {});
    });

    it('refuses usage after a subscription\'s end date (400, empty body)', async () => {
      const sub = randomUUID();
      await call(t.url, 'POST', '/v1/compat/killbill/subscriptions', { key: a.admin, body: { subscriptionId: sub, endDate: day(-2) } });
      const e = await rejected(writer.recordUsage(record(sub, 'late', 'api-calls', [[day(-3), 1], [day(-1), 1]]), 'demo'));
      assert.equal(e.status, 400);
      assert.equal(e.data, '');
      await writer.recordUsage(record(sub, 'ok', 'api-calls', [[day(-3), 1]]), 'demo');
      assert.deepEqual(await amounts(sub), { 'api-calls': 1 });
    });

    it('keeps tenants apart: credentials select the tenant, other tenants\' subscriptions do not exist', async () => {
      const sub = await newSubscription();
      await writer.recordUsage(record(sub, 'mine', 'api-calls', [[day(-1), 9]]), 'demo');
      const bReader = usageApi(t, b.id, b.read);
      assert.equal((await rejected(bReader.getAllUsage(sub, day(-5), day(1)))).status, 404);
      assert.equal((await rejected(usageApi(t, b.id, b.ingest).recordUsage(record(sub, 'theirs', 'api-calls', [[day(-1), 1]]), 'mallory'))).status, 404);
      // naming tenant A with tenant B's keys, a wrong password or no secret: 401, no body
      assert.equal((await rejected(usageApi(t, a.id, b.read).getAllUsage(sub, day(-5), day(1)))).status, 401);
      assert.equal((await rejected(usageApi(t, a.id, a.read, b.read).getAllUsage(sub, day(-5), day(1)))).status, 401);
      assert.equal((await rejected(usageApi(t, a.id, `${a.read}x`).getAllUsage(sub, day(-5), day(1)))).status, 401);
      const anonymous = new killbill.UsageApi(new killbill.Configuration({ basePath: t.url }));
      const e = await rejected(anonymous.getAllUsage(sub, day(-5), day(1)));
      assert.equal(e.status, 401);
      assert.equal(e.data, '');
      // a read-only key may not record, an ingest-only key may not read
      assert.equal((await rejected(reader.recordUsage(record(sub, 'ro', 'api-calls', [[day(-1), 1]]), 'demo'))).status, 403);
      assert.equal((await rejected(writer.getAllUsage(sub, day(-5), day(1)))).status, 403);
      assert.deepEqual(await amounts(sub), { 'api-calls': 9 });
    });
  });
}

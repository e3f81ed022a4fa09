// Planship MeteredUsageApi with its official npm client (@planship/fetch), on every engine.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Planship } from '@planship/fetch';
import { Configuration, MeteredUsageApi } from '@planship/fetch/dist/openapi-gen/index.js';
import { call, engines, startApp, type TestApp, type TestTenant } from '../support/harness.js';

async function failure(p: Promise<unknown>): Promise<{ status: number; body: any }> {
  try {
    await p;
  } catch (e) {
    const response = (e as { response?: Response }).response;
    assert.ok(response, String(e));
    return { status: response.status, body: await response.json() };
  }
  assert.fail('expected the call to fail');
}

async function admin(app: TestApp, t: TestTenant, path: string, body: unknown) {
  const r = await call(app.url, 'POST', path, { key: t.admin, body });
  assert.equal(r.status, 201, `${path}: ${r.text}`);
  return r.body;
}

/** A product with levers over the same metering id, and a subscribed customer. */
async function setup(app: TestApp, t: TestTenant) {
  const product = `clicker${Math.floor(Math.random() * 1e6)}`;
  await admin(app, t, '/v1/compat/planship/products', { slug: product, name: 'Clicker' });
  await admin(app, t, `/v1/compat/planship/products/${product}/levers`, { slug: 'button-clicks', meteringIds: ['button-click'] });
  await admin(app, t, `/v1/compat/planship/products/${product}/levers`, { slug: 'clicks-per-project', meteringIds: ['button-click'], formula: 'per_bucket', period: 'all_time' });
  await admin(app, t, `/v1/compat/planship/products/${product}/levers`, { slug: 'active-projects', meteringIds: ['button-click', 'api-call'], formula: 'unique_buckets', period: 'rolling', windowSeconds: 3600 });
  const customer = randomUUID();
  const subscription = randomUUID();
  await admin(app, t, '/v1/compat/planship/customers', { customerId: customer, subscriptions: [{ subscriptionId: subscription, product, renew: 'month' }] });
  const creds = await admin(app, t, '/v1/compat/planship/credentials', { name: 'backend' });
  const planship = new Planship(product, { clientId: creds.clientId, clientSecret: creds.clientSecret }, { baseUrl: app.url });
  return { product, customer, subscription, creds, planship };
}

async function nativeTotal(app: TestApp, t: TestTenant, product: string, customer: string, meteringId: string) {
  const r = await call(app.url, 'GET', `/v1/meters/ps-${product}/query?customer=${customer}&filterGroupBy[metering_id]=${meteringId}`, { key: t.read });
  assert.equal(r.status, 200, r.text);
  return r.body.data[0]?.value;
}

for (const engine of engines()) {
  describe(`planship on ${engine.name}`, () => {
    let app: TestApp;
    let t: TestTenant;
    before(async () => {
      app = await startApp(engine);
      t = await app.tenant();
    });
    after(async () => app.close());

    test('token, report, lever usage per formula, metering id usage, native query', async () => {
      const { product, customer, subscription, planship } = await setup(app, t);
      const rec = await planship.reportUsage(customer, 'button-click', 15, 'First project');
      assert.equal(rec.usage, 15);
      assert.equal(rec.meteringId, 'button-click');
      assert.equal(rec.customerId, customer);
      assert.equal(rec.subscriptionId, subscription);
      assert.equal(rec.bucket, 'First project');
      assert.match(rec.id, /^[0-9a-f-]{36}$/);
      await planship.reportUsage(customer, 'button-click', 2, 'Second project');
      await planship.reportUsage(customer, 'button-click', 3);
      await planship.reportUsage(customer, 'api-call', 1, 'Third project');

      const total = await planship.getLeverUsage(customer, 'button-clicks');
      assert.deepEqual(total, { total: 20, byBucket: { null: 20 }, bySubscription: { [subscription]: [{ usage: 20, bucket: null }] } });
      const perBucket = await planship.getLeverUsage(customer, 'clicks-per-project');
      assert.equal(perBucket.total, 20);
      assert.deepEqual(perBucket.byBucket, { null: 3, 'First project': 15, 'Second project': 2 });
      assert.deepEqual(perBucket.bySubscription[subscription].map((b) => [b.bucket ?? null, b.usage]), [[null, 3], ['First project', 15], ['Second project', 2]]);
      const unique = await planship.getLeverUsage(customer, 'active-projects');
      assert.equal(unique.total, 3);

      const byLever = await planship.getMeteringIdUsage(customer, 'button-click');
      assert.deepEqual(Object.keys(byLever).sort(), ['active-projects', 'button-clicks', 'clicks-per-project']);
      assert.equal(byLever['button-clicks'].total, 20);
      assert.deepEqual(Object.keys(await planship.getMeteringIdUsage(customer, 'api-call')), ['active-projects']);

      // Every amount is in the native usage query, by metering id.
      assert.equal(await nativeTotal(app, t, product, customer, 'button-click'), '20');
      assert.equal(await nativeTotal(app, t, product, customer, 'api-call'), '1');
    });

    test('a retry counts again (Planship has no idempotency); an Idempotency-Key header makes it once', async () => {
      const { product, customer, planship } = await setup(app, t);
      await planship.reportUsage(customer, 'button-click', 4);
      await planship.reportUsage(customer, 'button-click', 4);
      assert.equal((await planship.getLeverUsage(customer, 'button-clicks')).total, 8);

      const token = (await call(app.url, 'POST', '/api/v1/auth/token', { headers: { authorization: `Basic ${Buffer.from(`${(await admin(app, t, '/v1/compat/planship/credentials', { name: 'x' })).clientId}:nope`).toString('base64')}` } })).status;
      assert.equal(token, 401);
      const path = `/api/v1/customers/${customer}/products/${product}/usage/button-click`;
      const once = { key: t.ingest, body: { usage: 5 }, headers: { 'idempotency-key': 'req-1' } };
      const a = await call(app.url, 'POST', path, once);
      const b = await call(app.url, 'POST', path, once);
      assert.deepEqual([a.status, b.status], [200, 200]);
      assert.equal(a.body.id, b.body.id);
      assert.equal((await call(app.url, 'POST', path, { ...once, body: { usage: 6 } })).status, 409);
      assert.equal((await planship.getLeverUsage(customer, 'button-clicks')).total, 13);
    });

    test('subscription_id through the low-level client, and concurrent reports each count once', async () => {
      const { product, customer, subscription } = await setup(app, t);
      const creds = await admin(app, t, '/v1/compat/planship/credentials', { name: 'low-level' });
      const token = await call(app.url, 'POST', '/api/v1/auth/token', { headers: { authorization: `Basic ${Buffer.from(`${creds.clientId}:${creds.clientSecret}`).toString('base64')}` } });
      assert.equal(token.status, 200);
      assert.equal(token.body.token_type, 'bearer');
      assert.equal(token.body.expires_in, 3600);
      const api = new MeteredUsageApi(new Configuration({ basePath: app.url, accessToken: async () => `Bearer ${token.body.access_token}` }));
      const rec = await api.reportMeteredUsageForCustomer({ customerId: customer, productSlug: product, meteringId: 'button-click', meteredUsageIn: { usage: 3, subscriptionId: subscription } });
      assert.equal(rec.subscriptionId, subscription);
      await Promise.all(Array.from({ length: 40 }, () => api.reportMeteredUsageForCustomer({ customerId: customer, productSlug: product, meteringId: 'button-click', meteredUsageIn: { usage: 1, bucket: 'p' } })));
      const lu = await api.getLeverUsageForCustomer({ customerId: customer, productSlug: product, leverSlug: 'button-clicks' });
      assert.equal(lu.total, 43);
      const unknownSub = await failure(api.reportMeteredUsageForCustomer({ customerId: customer, productSlug: product, meteringId: 'button-click', meteredUsageIn: { usage: 1, subscriptionId: randomUUID() } }));
      assert.equal(unknownSub.status, 404);
    });

    test('bad input is 422 {"detail":[...]} as FastAPI answers', async () => {
      const { product, customer, planship } = await setup(app, t);
      const fractional = await failure(planship.reportUsage(customer, 'button-click', 1.5));
      assert.equal(fractional.status, 422);
      assert.deepEqual(fractional.body, { detail: [{ loc: ['body', 'usage'], msg: 'Input should be a valid integer', type: 'int_type' }] });
      const path = `/api/v1/customers/${customer}/products/${product}/usage/button-click`;
      const missing = await call(app.url, 'POST', path, { key: t.ingest, body: { bucket: 'x' } });
      assert.deepEqual([missing.status, missing.body], [422, { detail: [{ loc: ['body', 'usage'], msg: 'Field required', type: 'missing' }] }]);
      const text = await call(app.url, 'POST', path, { key: t.ingest, body: { usage: '5' } });
      assert.equal(text.status, 422);
      const badSub = await call(app.url, 'POST', path, { key: t.ingest, body: { usage: 1, subscription_id: 'nope' } });
      assert.deepEqual([badSub.status, badSub.body.detail[0].loc, badSub.body.detail[0].type], [422, ['body', 'subscription_id'], 'uuid_parsing']);
      const notJson = await call(app.url, 'POST', path, { key: t.ingest, rawBody: '{', headers: { 'content-type': 'application/json' } });
      assert.equal(notJson.status, 422);
      assert.ok(Array.isArray(notJson.body.detail));
      const huge = await call(app.url, 'POST', path, { key: t.ingest, rawBody: '{"usage":9007199254740993}', headers: { 'content-type': 'application/json' } });
      assert.equal(huge.status, 422);
      assert.equal((await failure(planship.reportUsage(randomUUID(), 'button-click', 1))).status, 404);
      assert.equal((await failure(planship.getLeverUsage(customer, 'no-such-lever'))).status, 404);
      const anonymous = await call(app.url, 'GET', `/api/v1/customers/${customer}/products/${product}/levers/button-clicks/usage`);
      assert.deepEqual([anonymous.status, typeof anonymous.body.detail], [401, 'string']);
      const forged = await call(app.url, 'GET', `/api/v1/customers/${customer}/products/${product}/levers/button-clicks/usage`, { key: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln' });
      assert.equal(forged.status, 401);
      // The native configuration routes keep problem+json.
      const native = await call(app.url, 'POST', '/v1/compat/planship/products', { key: t.admin, body: { slug: 'Bad--Slug' } });
      assert.equal(native.status, 400);
      assert.match(native.headers.get('content-type') ?? '', /problem\+json/);
    });

    test('exact integers beyond 2^53 in sums, and another tenant sees nothing', async () => {
      const { product, customer, planship } = await setup(app, t);
      const big = Number.MAX_SAFE_INTEGER; // 9007199254740991
      await planship.reportUsage(customer, 'button-click', big);
      await planship.reportUsage(customer, 'button-click', big);
      const raw = await call(app.url, 'GET', `/api/v1/customers/${customer}/products/${product}/levers/button-clicks/usage`, { key: t.read });
      assert.match(raw.text, /^\{"total":18014398509481982,/);
      assert.equal(await nativeTotal(app, t, product, customer, 'button-click'), '18014398509481982');

      const other = await app.tenant();
      const creds = await admin(app, other, '/v1/compat/planship/credentials', { name: 'intruder' });
      const intruder = new Planship(product, { clientId: creds.clientId, clientSecret: creds.clientSecret }, { baseUrl: app.url });
      assert.equal((await failure(intruder.getLeverUsage(customer, 'button-clicks'))).status, 404);
      assert.equal((await failure(intruder.reportUsage(customer, 'button-click', 1))).status, 404);
      assert.equal(await nativeTotal(app, t, product, customer, 'button-click'), '18014398509481982');
    });
  });
}

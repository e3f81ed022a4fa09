// Raystack Frontier usage API with its official npm client (@raystack/frontier api-client), on every engine.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ApiClient, type V1Beta1Usage } from '@raystack/frontier/api-client';
import { call, engines, startApp, type TestApp, type TestTenant } from '../support/harness.js';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

function client(app: TestApp, authorization: string) {
  return new ApiClient<string>({ baseUrl: app.url, securityWorker: (token) => ({ headers: { Authorization: token ?? authorization } }) });
}

/** The client rejects with the fetch Response, carrying .status and the parsed body in .error. */
async function failure(p: Promise<unknown>): Promise<{ status: number; body: { code: number; message: string; details: unknown[] } }> {
  try {
    await p;
  } catch (e) {
    const r = e as { status: number; error: { code: number; message: string; details: unknown[] } };
    return { status: r.status, body: r.error };
  }
  assert.fail('expected the call to fail');
}

async function account(app: TestApp, t: TestTenant, orgId: string, topUp?: string, creditMin?: string) {
  const billingId = randomUUID();
  const r = await call(app.url, 'POST', '/v1/compat/frontier/billing-accounts', { key: t.admin, body: { billingId, orgId, ...(creditMin && { creditMin }) } });
  assert.equal(r.status, 201, r.text);
  if (topUp) assert.equal((await call(app.url, 'POST', `/v1/compat/frontier/billing-accounts/${billingId}/topups`, { key: t.admin, body: { amount: topUp } })).status, 201);
  return billingId;
}

async function balance(app: TestApp, t: TestTenant, billingId: string): Promise<string> {
  const r = await call(app.url, 'GET', `/v1/compat/frontier/billing-accounts/${billingId}`, { key: t.read });
  assert.equal(r.status, 200, r.text);
  return r.body.balance;
}

/** The native usage query: one all-time total of a meter for one billing account. */
async function nativeTotal(app: TestApp, t: TestTenant, meter: string, billingId: string): Promise<string | null> {
  const r = await call(app.url, 'GET', `/v1/meters/${meter}/query?subject=${billingId}&from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z`, { key: t.read });
  assert.equal(r.status, 200, r.text);
  return r.body.data[0]?.value ?? null;
}

const usage = (amount: string | number, extra: Partial<V1Beta1Usage> = {}): V1Beta1Usage => ({
  id: randomUUID(), source: 'Inference-API', description: 'gpt call', type: 'credit', amount: amount as string, user_id: randomUUID(), metadata: { request_id: 'r-1' }, ...extra,
});

for (const engine of engines()) {
  describe(`frontier on ${engine.name}`, () => {
    let app: TestApp;
    let t: TestTenant;
    const org = randomUUID();
    before(async () => {
      app = await startApp(engine);
      t = await app.tenant();
    });
    after(async () => app.close());

    test('configure through the native API, debit with Basic client credentials, read the balance natively', async () => {
      const billingId = await account(app, t, org, '100.5');
      const creds = await call(app.url, 'POST', '/v1/compat/frontier/credentials', { key: t.admin, body: { name: 'inference' } });
      assert.equal(creds.status, 201, creds.text);
      const fr = client(app, basic(creds.body.clientId, creds.body.clientSecret));

      const first = usage('25');
      const r = await fr.frontierServiceCreateBillingUsage(org, billingId, { usages: [first] });
      assert.equal(r.status, 200);
      assert.deepEqual(r.data, {});
      assert.equal(await balance(app, t, billingId), '75.5');
      assert.equal(await nativeTotal(app, t, 'frontier-credit-debits', billingId), '25');
      assert.equal(await nativeTotal(app, t, 'frontier-credit-topups', billingId), '100.5');
      // The debit's source is a dimension of the native meter (lower-cased, as Frontier stores it).
      const bySource = await call(app.url, 'GET', `/v1/meters/frontier-credit-debits/query?subject=${billingId}&groupBy=source`, { key: t.read });
      assert.deepEqual(bySource.body.data.map((d: { groupBy: unknown; value: string }) => [d.groupBy, d.value]), [[{ source: 'inference-api' }, '25']]);

      // Replays: the same id is 409 whatever its content, and the original stays.
      for (const again of [first, { ...first, amount: '1' }]) {
        const f = await failure(fr.frontierServiceCreateBillingUsage(org, billingId, { usages: [again] }));
        assert.equal(f.status, 409);
        assert.equal(f.body.code, 6);
        assert.match(f.body.message, /credits already applied/);
        assert.deepEqual(f.body.details, []);
      }
      assert.equal(await balance(app, t, billingId), '75.5');

      // Bearer with the whole meterd key, a number amount, and the body-only variant.
      fr.setSecurityData(`Bearer ${creds.body.key}`);
      await fr.frontierServiceCreateBillingUsage(org, billingId, { usages: [usage(5)] });
      const r2 = await fr.frontierServiceCreateBillingUsage2({ org_id: org, billing_id: billingId, usages: [usage('0.5')] });
      assert.equal(r2.status, 200);
      await fr.frontierServiceCreateBillingUsage2({ org_id: org, usages: [usage('10')] });
      assert.equal(await balance(app, t, billingId), '60');
      assert.equal(await nativeTotal(app, t, 'frontier-credit-debits', billingId), '40.5');
    });

    test('insufficient credits, credit_min overdraft, and feature usages recorded as usage', async () => {
      const billingId = await account(app, t, org, '10');
      const fr = client(app, `Bearer ${t.ingest}`);
      const f = await failure(fr.frontierServiceCreateBillingUsage(org, billingId, { usages: [usage('10.01')] }));
      assert.equal(f.status, 400);
      assert.equal(f.body.code, 3);
      assert.equal(f.body.message, 'failed to deduct usage: insufficient credits');
      await fr.frontierServiceCreateBillingUsage(org, billingId, { usages: [usage('10')] });
      assert.equal(await balance(app, t, billingId), '0');

      const feature = usage('7', { type: 'feature', source: 'Search' });
      await fr.frontierServiceCreateBillingUsage(org, billingId, { usages: [feature] });
      assert.equal(await nativeTotal(app, t, 'frontier-feature-usage', billingId), '7');
      assert.equal(await balance(app, t, billingId), '0');
      assert.equal((await failure(fr.frontierServiceCreateBillingUsage(org, billingId, { usages: [feature] }))).status, 409);

      const overdraft = await account(app, t, org, undefined, '-5');
      await fr.frontierServiceCreateBillingUsage(org, overdraft, { usages: [usage('5')] });
      assert.equal(await balance(app, t, overdraft), '-5');
      assert.equal((await failure(fr.frontierServiceCreateBillingUsage(org, overdraft, { usages: [usage('0.000001')] }))).status, 400);

      // A batch is applied item by item, as in Frontier: the good item stays, the answer is 400.
      const ok = usage('3', { type: 'feature' });
      const batch = await failure(fr.frontierServiceCreateBillingUsage(org, billingId, { usages: [ok, usage('1')] }));
      assert.equal(batch.status, 400);
      assert.equal(await nativeTotal(app, t, 'frontier-feature-usage', billingId), '10');
    });

    test('concurrent debits never overdraw and each id counts once', async () => {
      const billingId = await account(app, t, org, '10');
      const fr = client(app, `Bearer ${t.ingest}`);
      const ids = Array.from({ length: 15 }, () => randomUUID());
      // 15 distinct usages of 1 credit, each sent twice at once, against 10 credits.
      const results = await Promise.allSettled(ids.flatMap((id) => [id, id]).map((id) => fr.frontierServiceCreateBillingUsage(org, billingId, { usages: [usage('1', { id })] })));
      const ok = results.filter((r) => r.status === 'fulfilled').length;
      const statuses = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => (r.reason as { status: number }).status);
      assert.equal(ok, 10);
      assert.ok(statuses.every((s) => s === 400 || s === 409), String(statuses));
      assert.equal(await balance(app, t, billingId), '0');
      assert.equal(await nativeTotal(app, t, 'frontier-credit-debits', billingId), '10');
    });

    test('exact decimals: tenths add up exactly and int64 amounts keep every digit', async () => {
      const billingId = await account(app, t, org, '0.3');
      const fr = client(app, `Bearer ${t.ingest}`);
      for (let i = 0; i < 3; i++) await fr.frontierServiceCreateBillingUsage(org, billingId, { usages: [usage('0.1')] });
      assert.equal(await balance(app, t, billingId), '0');

      const big = await account(app, t, org, '9223372036854775807');
      await fr.frontierServiceCreateBillingUsage(org, big, { usages: [usage('9007199254740993')] });
      assert.equal(await balance(app, t, big), '9214364837600034814');
      assert.equal(await nativeTotal(app, t, 'frontier-credit-debits', big), '9007199254740993');
    });

    test('bad input answers in Frontier\'s shape, native routes keep problem+json', async () => {
      const billingId = await account(app, t, org, '100');
      const fr = client(app, `Bearer ${t.ingest}`);
      const cases: Array<[V1Beta1Usage, RegExp]> = [
        [usage('0'), /invalid Usage\.Amount: value must be greater than 0/],
        [usage('-3'), /value must be greater than 0/],
        [usage('ten'), /invalid Usage\.Amount/],
        [usage('1', { id: 'not-a-uuid' }), /invalid Usage\.Id: value must be a valid UUID/],
        [usage('1', { type: 'refund' }), /invalid Usage\.Type: value must be in list \[credit feature\]/],
      ];
      for (const [u, message] of cases) {
        const f = await failure(fr.frontierServiceCreateBillingUsage(org, billingId, { usages: [u] }));
        assert.equal(f.status, 400, JSON.stringify(f.body));
        assert.equal(f.body.code, 3);
        assert.match(f.body.message, message);
        assert.deepEqual(f.body.details, []);
      }
      const otherOrg = await failure(fr.frontierServiceCreateBillingUsage(randomUUID(), billingId, { usages: [usage('1')] }));
      assert.deepEqual([otherOrg.status, otherOrg.body.code, otherOrg.body.message], [403, 7, 'invalid arguments']);
      const missing = await failure(fr.frontierServiceCreateBillingUsage(org, randomUUID(), { usages: [usage('1')] }));
      assert.deepEqual([missing.status, missing.body.code], [404, 5]);
      const notUuid = await failure(fr.frontierServiceCreateBillingUsage(org, 'acct-1', { usages: [usage('1')] }));
      assert.deepEqual([notUuid.status, notUuid.body.code], [400, 3]);
      const both = await failure(fr.frontierServiceCreateBillingUsage(org, billingId, { project_id: randomUUID(), usages: [usage('1')] }));
      assert.match(both.body.message, /both project_id and org_id cannot be provided/);

      const raw = await call(app.url, 'POST', `/v1beta1/organizations/${org}/billing/${billingId}/usages`, { key: t.ingest, rawBody: '{"usages":[', headers: { 'content-type': 'application/json' } });
      assert.equal(raw.status, 400);
      assert.equal(raw.body.code, 3);
      // lowerCamelCase keys are accepted as well as snake_case.
      const camel = await call(app.url, 'POST', `/v1beta1/organizations/billing/usages`, { key: t.ingest, body: { orgId: org, billingId, usages: [{ id: randomUUID(), amount: 2, userId: 'u-1' }] } });
      assert.equal(camel.status, 200, camel.text);
      assert.equal(await balance(app, t, billingId), '98');

      const anonymous = await call(app.url, 'POST', `/v1beta1/organizations/${org}/billing/${billingId}/usages`, { body: { usages: [usage('1')] } });
      assert.deepEqual([anonymous.status, anonymous.body], [401, { code: 16, message: 'unauthenticated', details: [] }]);
      const wrong = await failure(client(app, basic('AAAAAAAAAAAAAAAA', 'nope')).frontierServiceCreateBillingUsage(org, billingId, { usages: [usage('1')] }));
      assert.deepEqual([wrong.status, wrong.body.code], [401, 16]);
      const readOnly = await failure(client(app, `Bearer ${t.read}`).frontierServiceCreateBillingUsage(org, billingId, { usages: [usage('1')] }));
      assert.deepEqual([readOnly.status, readOnly.body.code], [403, 7]);

      const native = await call(app.url, 'POST', '/v1/compat/frontier/billing-accounts', { key: t.admin, body: { orgId: org, billingId: 'nope' } });
      assert.equal(native.status, 400);
      assert.match(native.headers.get('content-type') ?? '', /application\/problem\+json/);
      const dup = await call(app.url, 'POST', '/v1/compat/frontier/billing-accounts', { key: t.admin, body: { orgId: org, billingId } });
      assert.equal(dup.status, 409);
      assert.equal(await balance(app, t, billingId), '98');
    });

    test('another tenant\'s credentials see nothing and change nothing', async () => {
      const billingId = await account(app, t, org, '50');
      const other = await app.tenant();
      const f = await failure(client(app, `Bearer ${other.ingest}`).frontierServiceCreateBillingUsage(org, billingId, { usages: [usage('1')] }));
      assert.deepEqual([f.status, f.body.code], [404, 5]);
      assert.equal((await call(app.url, 'GET', `/v1/compat/frontier/billing-accounts/${billingId}`, { key: other.admin })).status, 404);
      assert.equal((await call(app.url, 'POST', `/v1/compat/frontier/billing-accounts/${billingId}/topups`, { key: other.admin, body: { amount: '1' } })).status, 404);
      assert.equal(await balance(app, t, billingId), '50');

      // The same usage id in another tenant is a different key: tenants never collide.
      const mine = await account(app, other, org, '5');
      const id = randomUUID();
      await client(app, `Bearer ${t.ingest}`).frontierServiceCreateBillingUsage(org, billingId, { usages: [usage('1', { id })] });
      await client(app, `Bearer ${other.ingest}`).frontierServiceCreateBillingUsage(org, mine, { usages: [usage('1', { id })] });
      assert.equal(await balance(app, other, mine), '4');
      assert.equal(await balance(app, t, billingId), '49');
    });

    test('top-ups are idempotent by id', async () => {
      const billingId = await account(app, t, org);
      const path = `/v1/compat/frontier/billing-accounts/${billingId}/topups`;
      assert.equal((await call(app.url, 'POST', path, { key: t.admin, body: { id: 'invoice-1', amount: '12.25' } })).status, 201);
      const again = await call(app.url, 'POST', path, { key: t.admin, body: { id: 'invoice-1', amount: '12.25' } });
      assert.deepEqual([again.status, again.body.status, again.body.balance], [200, 'duplicate', '12.25']);
      assert.equal((await call(app.url, 'POST', path, { key: t.admin, body: { id: 'invoice-1', amount: '13' } })).status, 409);
      assert.equal((await call(app.url, 'POST', path, { key: t.admin, body: { amount: '0' } })).status, 400);
    });
  });
}

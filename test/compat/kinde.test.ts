// Kinde metered usage on meterd, driven by the official client (@kinde/management-api-js@0.18.0)
// through its own client-credentials flow (init) on every engine.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { decodeJwt } from 'jose';
import { BillingMeterUsage, OpenAPI, ApiError, init, setToken } from '@kinde/management-api-js';
import { engines, startApp, call, type TestApp, type TestTenant } from '../support/harness.js';

type Usage = { customer_agreement_id: string; billing_feature_code: string; meter_value: string; meter_usage_timestamp?: string; meter_type_code?: 'absolute' | 'delta' };
const record = (requestBody: Usage) => BillingMeterUsage.createMeterUsageRecord({ requestBody });

async function rejected(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ApiError, `expected an ApiError, got ${e}`);
    return e;
  }
  assert.fail('expected the call to be rejected');
}

// Counts the client's token requests (instrumentation only: every request still goes to meterd).
let tokenRequests = 0;
const realFetch = globalThis.fetch;
globalThis.fetch = (input: any, init?: any) => {
  if (String(input).endsWith('/oauth2/token')) tokenRequests++;
  return realFetch(input, init);
};

const monthStart = (offset = 0) => {
  const d = new Date();
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + offset, 1)).toISOString();
};

for (const engine of engines()) {
  describe(`Kinde meter usage API [${engine.name}]`, () => {
    let t: TestApp;
    let a: TestTenant;
    let b: TestTenant;
    let n = 0;

    const newClient = async (ten: TestTenant) => (await call(t.url, 'POST', '/v1/compat/kinde/clients', { key: ten.admin, body: { name: `c${n++}` } })).body as { clientId: string; clientSecret: string };
    /** Points the official client at meterd with fresh credentials and no cached token. */
    const useClient = (c: { clientId: string; clientSecret: string }) => {
      // `audience` (untyped) makes init's token cache accept our JWT for an http:// domain (§7.3).
      init({ kindeDomain: t.url, clientId: c.clientId, clientSecret: c.clientSecret, audience: `${t.url}/api` } as Parameters<typeof init>[0]);
      setToken('');
      OpenAPI.HEADERS = undefined;
    };
    const newAgreement = async (extra: Record<string, unknown> = {}, ten: TestTenant = a) => {
      const agreementId = `agreement_${(n++).toString().padStart(4, '0')}${Math.random().toString(16).slice(2, 10)}`;
      const r = await call(t.url, 'POST', '/v1/compat/kinde/agreements', { key: ten.admin, body: { agreementId, ...extra } });
      assert.equal(r.status, 201, r.text);
      return agreementId;
    };
    const usage = async (agreementId: string, feature = 'api_calls', from = monthStart(), to = monthStart(1), ten: TestTenant = a) => {
      const r = await call(t.url, 'GET', `/v1/meters/kinde-${feature}/query?customer=${agreementId}&from=${from}&to=${to}`, { key: ten.read });
      assert.equal(r.status, 200, r.text);
      return r.body.data[0].value as string;
    };

    before(async () => {
      t = await startApp(engine);
      a = await t.tenant();
      b = await t.tenant();
      for (const ten of [a, b]) {
        for (const code of ['api_calls', 'seats']) assert.equal((await call(t.url, 'POST', '/v1/compat/kinde/features', { key: ten.admin, body: { code } })).status, 201);
      }
    });
    after(() => t.close());

    it('is configured through the native API: features are meters, agreements customers, clients API keys', async () => {
      const features = await call(t.url, 'GET', '/v1/compat/kinde/features', { key: a.read });
      assert.deepEqual(features.body.data.map((f: any) => [f.code, f.meter]).sort(), [['api_calls', 'kinde-api_calls'], ['seats', 'kinde-seats']]);
      const id = await newAgreement({ features: ['seats'], cycleInterval: 'month' });
      const got = await call(t.url, 'GET', `/v1/compat/kinde/agreements/${id}`, { key: a.read });
      assert.deepEqual([got.body.features, got.body.subject, got.body.cycleInterval], [['seats'], `kinde:${id}`, 'month']);
      assert.equal((await call(t.url, 'GET', `/v1/customers/${id}`, { key: a.read })).body.metadata.compat, 'kinde');
      const dup = await call(t.url, 'POST', '/v1/compat/kinde/agreements', { key: a.admin, body: { agreementId: id } });
      assert.equal(dup.status, 409);
      assert.match(dup.headers.get('content-type') ?? '', /problem\+json/);
      assert.equal((await call(t.url, 'POST', '/v1/compat/kinde/clients', { key: a.ingest, body: { name: 'x' } })).status, 403);
      const keys = await call(t.url, 'GET', '/v1/api-keys', { key: a.admin });
      assert.ok(!JSON.stringify(keys.body).includes((await newClient(a)).clientSecret), 'no secret is listed');
      const spec = await call(t.url, 'GET', '/openapi.json');
      for (const p of ['/v1/compat/kinde/agreements', '/api/v1/billing/meter_usage', '/oauth2/token']) assert.ok(spec.body.paths[p], p);
    });

    it('issues signed, expiring, scoped JWTs for client credentials', async () => {
      const c = await newClient(a);
      const form = (fields: Record<string, string>) => call(t.url, 'POST', '/oauth2/token', { rawBody: new URLSearchParams(fields).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      const ok = await form({ grant_type: 'client_credentials', client_id: c.clientId, client_secret: c.clientSecret, scope: '', audience: `${t.url}/api` });
      assert.equal(ok.status, 200, ok.text);
      assert.equal(ok.body.token_type, 'bearer');
      assert.equal(ok.body.scope, 'create:meter_usage');
      const claims = decodeJwt(ok.body.access_token);
      assert.ok(Array.isArray(claims.aud) && claims.aud.includes(`${t.url}/api`));
      assert.equal(claims.scope, 'create:meter_usage');
      assert.equal(claims.exp! - claims.iat!, ok.body.expires_in);
      assert.equal(claims.sub, c.clientId);

      const wrong = await form({ grant_type: 'client_credentials', client_id: c.clientId, client_secret: `${c.clientSecret.startsWith('A') ? 'B' : 'A'}${c.clientSecret.slice(1)}` });
      assert.deepEqual([wrong.status, wrong.body.error], [401, 'invalid_client']);
      assert.equal((await form({ grant_type: 'password', client_id: c.clientId, client_secret: c.clientSecret })).body.error, 'unsupported_grant_type');
      // a read-only API key used as a client may not get create:meter_usage
      const [, id, secret] = /^mk_([^_]+)_(.+)$/.exec(a.read)!;
      assert.equal((await form({ grant_type: 'client_credentials', client_id: id, client_secret: secret, scope: 'create:meter_usage' })).body.error, 'invalid_scope');
      // a forged signature is refused with Kinde's 403
      const [h, p] = ok.body.access_token.split('.');
      const forged = await call(t.url, 'POST', '/api/v1/billing/meter_usage', { headers: { authorization: `Bearer ${h}.${p}.${'A'.repeat(43)}` }, body: {} });
      assert.equal(forged.status, 403);
      assert.equal(forged.body.errors[0].code, 'INVALID_CREDENTIALS');
    });

    it('records delta and absolute usage through init(): one token for many calls, visible in the native query', async () => {
      useClient(await newClient(a));
      const ag = await newAgreement();
      const before = tokenRequests;
      assert.deepEqual(await record({ customer_agreement_id: ag, billing_feature_code: 'api_calls', meter_value: '42', meter_type_code: 'delta' }), { message: 'Success', code: 'OK' });
      await record({ customer_agreement_id: ag, billing_feature_code: 'api_calls', meter_value: '8' });
      await record({ customer_agreement_id: ag, billing_feature_code: 'api_calls', meter_value: '0.5', meter_usage_timestamp: new Date(Date.now() - 60_000).toISOString().replace('Z', '+00:00') });
      assert.equal(await usage(ag), '50.5');
      assert.equal(tokenRequests - before, 1, 'the JWT is cached by the client');

      await record({ customer_agreement_id: ag, billing_feature_code: 'api_calls', meter_value: '10', meter_type_code: 'absolute' });
      assert.equal(await usage(ag), '10');
      await record({ customer_agreement_id: ag, billing_feature_code: 'api_calls', meter_value: '2' });
      assert.equal(await usage(ag), '12');
      await record({ customer_agreement_id: ag, billing_feature_code: 'api_calls', meter_value: '3', meter_type_code: 'absolute' });
      await record({ customer_agreement_id: ag, billing_feature_code: 'api_calls', meter_value: '3', meter_type_code: 'absolute' });
      assert.equal(await usage(ag), '3');
      assert.equal(await usage(ag, 'seats'), '0');
      const events = await call(t.url, 'GET', `/v1/events?subject=kinde:${ag}`, { key: a.read });
      assert.equal(events.body.data.length, 7);
    });

    it('puts usage for an ended billing cycle into the current one', async () => {
      useClient(await newClient(a));
      const ag = await newAgreement({ cycleInterval: 'day' });
      const today = new Date(Math.floor(Date.now() / 86_400_000) * 86_400_000);
      const yesterday = new Date(today.getTime() - 3_600_000).toISOString().replace(/\.\d+Z$/, '+00');
      await record({ customer_agreement_id: ag, billing_feature_code: 'seats', meter_value: '4', meter_usage_timestamp: yesterday });
      assert.equal(await usage(ag, 'seats', today.toISOString(), new Date(today.getTime() + 86_400_000).toISOString()), '4');
      await record({ customer_agreement_id: ag, billing_feature_code: 'seats', meter_value: '9', meter_type_code: 'absolute', meter_usage_timestamp: yesterday });
      assert.equal(await usage(ag, 'seats', today.toISOString(), new Date(today.getTime() + 86_400_000).toISOString()), '9');
    });

    it('counts a replayed delta once with an Idempotency-Key, also under concurrent retries; absolutes stay exact', async () => {
      useClient(await newClient(a));
      const ag = await newAgreement();
      const body: Usage = { customer_agreement_id: ag, billing_feature_code: 'api_calls', meter_value: '5' };
      OpenAPI.HEADERS = { 'Idempotency-Key': 'req-1' };
      await record(body);
      await record(body);
      OpenAPI.HEADERS = { 'Idempotency-Key': 'req-2' };
      await Promise.all(Array.from({ length: 20 }, () => record(body)));
      assert.equal(await usage(ag), '10');
      // the key names one record: reusing it for another is refused
      const reuse = await rejected(record({ ...body, meter_value: '6' }));
      assert.equal(reuse.status, 409);
      assert.equal((reuse.body as any).errors[0].code, 'IDEMPOTENCY_KEY_REUSED');
      OpenAPI.HEADERS = undefined;
      // without a key every delta adds, as in Kinde
      await record(body);
      assert.equal(await usage(ag), '15');

      // concurrent absolutes: the cycle ends at one of the values, never a mix
      await Promise.all(Array.from({ length: 15 }, () => record({ ...body, meter_value: '7', meter_type_code: 'absolute' })));
      assert.equal(await usage(ag), '7');
      const values = Array.from({ length: 10 }, (_, i) => String(100 + i));
      await Promise.all(values.map((v) => record({ ...body, meter_value: v, meter_type_code: 'absolute' })));
      assert.ok(values.includes(await usage(ag)));
    });

    it('keeps decimals exact', async () => {
      useClient(await newClient(a));
      const ag = await newAgreement();
      for (let i = 0; i < 10; i++) await record({ customer_agreement_id: ag, billing_feature_code: 'api_calls', meter_value: '0.1' });
      assert.equal(await usage(ag), '1');
      await record({ customer_agreement_id: ag, billing_feature_code: 'seats', meter_value: '99999999999999999999.999999999999999999', meter_type_code: 'absolute' });
      await record({ customer_agreement_id: ag, billing_feature_code: 'seats', meter_value: '0.000000000000000001' });
      assert.equal(await usage(ag, 'seats'), '100000000000000000000');
    });

    it('answers bad input with Kinde\'s error shape and writes nothing', async () => {
      useClient(await newClient(a));
      const ag = await newAgreement({ features: ['api_calls'] });
      const bad = async (body: Partial<Usage> & Record<string, unknown>, code: string) => {
        const e = await rejected(record(body as Usage));
        assert.equal(e.status, 400);
        assert.equal(e.message, 'Invalid request.');
        assert.equal((e.body as any).errors[0].code, code);
        assert.equal(typeof (e.body as any).errors[0].message, 'string');
      };
      const ok = { customer_agreement_id: ag, billing_feature_code: 'api_calls', meter_value: '1' };
      await bad({ ...ok, meter_value: '' }, 'METER_VALUE_REQUIRED');
      await bad({ ...ok, meter_value: 'pro_gym' }, 'METER_VALUE_INVALID');
      await bad({ ...ok, meter_value: '-1' }, 'METER_VALUE_INVALID');
      await bad({ ...ok, meter_type_code: 'sometimes' as 'delta' }, 'METER_TYPE_CODE_INVALID');
      await bad({ ...ok, meter_usage_timestamp: 'yesterday' }, 'METER_USAGE_TIMESTAMP_INVALID');
      await bad({ ...ok, customer_agreement_id: undefined as unknown as string }, 'CUSTOMER_AGREEMENT_ID_REQUIRED');
      await bad({ ...ok, customer_agreement_id: 'agreement_nope' }, 'CUSTOMER_AGREEMENT_NOT_FOUND');
      await bad({ ...ok, billing_feature_code: 'seats' }, 'BILLING_FEATURE_NOT_FOUND');
      await bad({ ...ok, billing_feature_code: 'nope' }, 'BILLING_FEATURE_NOT_FOUND');
      await bad({ ...ok, meter_usage_timestamp: new Date(Date.now() + 30 * 86_400_000).toISOString() }, 'INVALID_REQUEST');
      const raw = await call(t.url, 'POST', '/api/v1/billing/meter_usage', { rawBody: '{"x":', headers: { 'content-type': 'application/json', authorization: 'Bearer x' } });
      assert.equal(raw.status, 400);
      assert.equal(raw.body.errors[0].code, 'INVALID_REQUEST');
      assert.equal(await usage(ag), '0');
    });

    it('answers 403 to bad, unscoped or revoked credentials and keeps tenants apart', async () => {
      const ag = await newAgreement();
      OpenAPI.TOKEN = 'not-a-token';
      const e = await rejected(record({ customer_agreement_id: ag, billing_feature_code: 'api_calls', meter_value: '1' }));
      assert.equal(e.status, 403);
      assert.equal((e.body as any).errors[0].code, 'INVALID_CREDENTIALS');
      assert.equal((await call(t.url, 'POST', '/api/v1/billing/meter_usage', { body: { customer_agreement_id: ag } })).status, 403);

      // a read-only API key as client gets a token without the scope: 403
      const [, id, secret] = /^mk_([^_]+)_(.+)$/.exec(a.read)!;
      useClient({ clientId: id, clientSecret: secret });
      assert.equal((await rejected(record({ customer_agreement_id: ag, billing_feature_code: 'api_calls', meter_value: '1' }))).status, 403);

      // a revoked client's tokens stop working at once
      const c = await newClient(a);
      useClient(c);
      await record({ customer_agreement_id: ag, billing_feature_code: 'api_calls', meter_value: '1' });
      assert.equal((await call(t.url, 'DELETE', `/v1/api-keys/${c.clientId}`, { key: a.admin })).status, 204);
      assert.equal((await rejected(record({ customer_agreement_id: ag, billing_feature_code: 'api_calls', meter_value: '1' }))).status, 403);

      // tenant B's client cannot see or write tenant A's agreement: the same answer as no agreement
      useClient(await newClient(b));
      const other = await rejected(record({ customer_agreement_id: ag, billing_feature_code: 'api_calls', meter_value: '100' }));
      assert.equal(other.status, 400);
      assert.equal((other.body as any).errors[0].code, 'CUSTOMER_AGREEMENT_NOT_FOUND');
      assert.equal(await usage(ag), '1');
    });

    it('throttles a client with 429 and records exactly the requests it accepted', async () => {
      useClient(await newClient(a));
      const ag = await newAgreement();
      const results = await Promise.allSettled(Array.from({ length: 400 }, () => record({ customer_agreement_id: ag, billing_feature_code: 'api_calls', meter_value: '1' })));
      const accepted = results.filter((r) => r.status === 'fulfilled').length;
      const limited = results.filter((r) => r.status === 'rejected');
      assert.ok(limited.length > 0, 'some requests were throttled');
      for (const r of limited) {
        const err = (r as PromiseRejectedResult).reason as ApiError;
        assert.equal(err.status, 429);
        assert.equal(err.message, 'Too many requests. Request was throttled.');
        assert.equal((err.body as any).errors[0].code, 'TOO_MANY_REQUESTS');
      }
      assert.equal(await usage(ag), String(accepted));
    });
  });
}

// ChartHop recordProductFeatureUsage on meterd, driven by plain fetch (there is no npm client)
// on every engine; feature use is read back through the native usage query.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { engines, startApp, call, type TestApp, type TestTenant } from '../support/harness.js';

for (const engine of engines()) {
  describe(`ChartHop usage API [${engine.name}]`, () => {
    let t: TestApp;
    let a: TestTenant;
    let b: TestTenant;

    const use = (org: string, type: string, opts: { entityId?: string; key?: string | null; headers?: Record<string, string> } = {}) =>
      fetch(`${t.url}/v1/org/${encodeURIComponent(org)}/usage/${encodeURIComponent(type)}${opts.entityId ? `?entityId=${encodeURIComponent(opts.entityId)}` : ''}`, {
        method: 'POST',
        headers: { ...(opts.key === null ? {} : { authorization: `Bearer ${opts.key ?? a.ingest}` }), ...(opts.headers ?? {}) },
      });
    const newOrg = async (slug?: string, ten: TestTenant = a) => {
      const orgId = randomUUID().replace(/-/g, '').slice(0, 24);
      const r = await call(t.url, 'POST', '/v1/compat/charthop/orgs', { key: ten.admin, body: { orgId, ...(slug ? { slug } : {}) } });
      assert.equal(r.status, 201, r.text);
      return orgId;
    };
    /** Uses per [type, entityId] through the native query of the charthop-usage meter. */
    const counts = async (org: string, ten: TestTenant = a) => {
      const r = await call(t.url, 'GET', `/v1/meters/charthop-usage/query?customer=${org}&from=2020-01-01T00:00:00Z&groupBy=type&groupBy=entityId`, { key: ten.read });
      assert.equal(r.status, 200, r.text);
      return Object.fromEntries(r.body.data.map((row: any) => [`${row.groupBy.type}|${row.groupBy.entityId ?? ''}`, row.value]));
    };
    const errorBody = async (res: Response, status: number) => {
      assert.equal(res.status, status);
      const body = (await res.json()) as { status: number; message: string };
      assert.equal(body.status, status);
      assert.equal(typeof body.message, 'string');
      return body;
    };

    before(async () => {
      t = await startApp(engine);
      a = await t.tenant();
      b = await t.tenant();
    });
    after(() => t.close());

    it('is configured through the native API: an org is a customer, uses are counted by one meter', async () => {
      const org = await newOrg('acme-corp');
      const got = await call(t.url, 'GET', '/v1/compat/charthop/orgs/acme-corp', { key: a.read });
      assert.deepEqual([got.body.orgId, got.body.slug, got.body.meter], [org, 'acme-corp', 'charthop-usage']);
      const customer = await call(t.url, 'GET', `/v1/customers/${org}`, { key: a.read });
      assert.ok(customer.body.subjects.includes(`charthop:${org}`));
      const meter = await call(t.url, 'GET', '/v1/meters/charthop-usage', { key: a.read });
      assert.equal(meter.body.aggregation, 'COUNT');
      assert.equal((await call(t.url, 'POST', '/v1/compat/charthop/orgs', { key: a.admin, body: { orgId: org } })).status, 409);
      assert.equal((await call(t.url, 'POST', '/v1/compat/charthop/orgs', { key: a.ingest, body: { orgId: 'x' } })).status, 403);
      const spec = await call(t.url, 'GET', '/openapi.json');
      assert.ok(spec.body.paths['/v1/compat/charthop/orgs']);
      assert.ok(spec.body.paths['/v1/org/{orgId}/usage/{type}']);
    });

    it('records one use per call (empty answer) by org id or slug, queryable per type and entity', async () => {
      const org = await newOrg(`slug-${randomUUID().slice(0, 8)}`);
      const slug = (await call(t.url, 'GET', `/v1/compat/charthop/orgs/${org}`, { key: a.read })).body.slug;
      for (let i = 0; i < 3; i++) {
        const res = await use(org, 'report.export', { entityId: 'emp-1' });
        assert.equal(res.status, 204);
        assert.equal(await res.text(), '');
      }
      await use(org, 'report.export', { entityId: 'emp-2' });
      await use(slug, 'ai chat');
      // a JSON content type without a body, or with one, is fine: the operation has no body
      assert.equal((await use(org, 'ai chat', { headers: { 'content-type': 'application/json' } })).status, 204);
      assert.deepEqual(await counts(org), { 'report.export|emp-1': '3', 'report.export|emp-2': '1', 'ai chat|': '2' });
      const filtered = await call(t.url, 'GET', `/v1/meters/charthop-usage/query?customer=${org}&from=2020-01-01T00:00:00Z&filterGroupBy[type]=report.export`, { key: a.read });
      assert.equal(filtered.body.data[0].value, '4');
      // "upgrade" is ChartHop's recordUpgradeInterest, kept apart from feature usage
      assert.equal((await fetch(`${t.url}/v1/org/${org}/usage/upgrade?module=comp`, { method: 'POST', headers: { authorization: `Bearer ${a.ingest}` } })).status, 204);
      assert.equal(Object.keys(await counts(org)).length, 3);
      const interest = await call(t.url, 'GET', `/v1/events?subject=charthop:${org}&type=charthop.upgrade_interest`, { key: a.read });
      assert.equal(interest.body.data[0].data.module, 'comp');
    });

    it('counts a replay once with an Idempotency-Key, also under concurrent retries', async () => {
      const org = await newOrg();
      const key = { 'idempotency-key': 'use-1' };
      assert.equal((await use(org, 'export', { headers: key })).status, 204);
      assert.equal((await use(org, 'export', { headers: key })).status, 204);
      const burst = await Promise.all(Array.from({ length: 25 }, () => use(org, 'export', { headers: { 'idempotency-key': 'use-2' } })));
      assert.ok(burst.every((r) => r.status === 204));
      assert.deepEqual(await counts(org), { 'export|': '2' });
      await errorBody(await use(org, 'other', { headers: key }), 409);
      // without a key each call is a use
      await Promise.all(Array.from({ length: 10 }, () => use(org, 'export')));
      assert.deepEqual(await counts(org), { 'export|': '12' });
    });

    it('answers 401 without credentials, 403 without the scope, and writes nothing', async () => {
      const org = await newOrg();
      const res = await use(org, 'export', { key: null });
      await errorBody(res, 401);
      assert.match(res.headers.get('www-authenticate') ?? '', /Bearer/);
      await errorBody(await use(org, 'export', { key: 'mk_AAAAAAAAAAAAAAAA_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' }), 401);
      await errorBody(await use(org, 'export', { key: a.read }), 403);
      assert.deepEqual(await counts(org), {});
    });

    it('answers bad input with its error JSON', async () => {
      const org = await newOrg();
      await errorBody(await use(org, 'bad\u0001type'), 400);
      await errorBody(await use(org, 'x'.repeat(300)), 400);
      // Up to 256 characters a type is accepted (the router's own limit is not in the way).
      assert.equal((await use(org, 'y'.repeat(256))).status, 204);
      assert.deepEqual(await counts(org), { [`${'y'.repeat(256)}|`]: '1' });
      await errorBody(await use(org, 'export', { entityId: 'e'.repeat(300) }), 400);
      await errorBody(await use(org, 'export', { headers: { 'idempotency-key': 'k'.repeat(300) } }), 400);
      await errorBody(await use('no-such-org', 'export'), 404);
      await errorBody(await use(org, 'export', { headers: { 'content-type': 'text/plain' } }), 415);
      assert.deepEqual(await counts(org), { [`${'y'.repeat(256)}|`]: '1' });
    });

    it('keeps tenants apart: another tenant\'s org does not exist for a key', async () => {
      const org = await newOrg('shared-slug');
      await use(org, 'export');
      await errorBody(await use(org, 'export', { key: b.ingest }), 404);
      await errorBody(await use('shared-slug', 'export', { key: b.ingest }), 404);
      // tenant B may configure the same id for itself; its uses stay its own
      const r = await call(t.url, 'POST', '/v1/compat/charthop/orgs', { key: b.admin, body: { orgId: org, slug: 'shared-slug' } });
      assert.equal(r.status, 201);
      await use('shared-slug', 'export', { key: b.ingest });
      await use('shared-slug', 'export', { key: b.ingest });
      assert.deepEqual(await counts(org), { 'export|': '1' });
      assert.deepEqual(await counts(org, b), { 'export|': '2' });
    });

    it('counts exactly under load: every accepted call is one use', async () => {
      const org = await newOrg();
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => use(org, 'bulk', { entityId: `e${i % 4}` })));
      assert.ok(results.every((r) => r.status === 204));
      assert.deepEqual(await counts(org), { 'bulk|e0': '50', 'bulk|e1': '50', 'bulk|e2': '50', 'bulk|e3': '50' });
    });
  });
}

// One shared test over every route in /openapi.json — native and seed APIs — with no credentials,
// wrong credentials, another tenant's credentials and an insufficient scope. Each expects the
// status its API documents, and no answer to an outsider mentions the owner's data.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { engines, startApp, call, type TestApp, type TestTenant } from '../support/harness.js';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const WRONG_KEY = `mk_${'Z'.repeat(16)}_${'z'.repeat(43)}`;

interface Owner {
  tenant: TestTenant;
  ids: Record<string, string>;
  kindeToken: string;
  planshipToken: string;
}

for (const engine of engines()) {
  describe(`every route refuses outsiders [${engine.name}]`, () => {
    let t: TestApp;
    let a: Owner;
    let b: Owner;
    let spec: any;
    const secretsOfA: string[] = [];

    async function setUp(tenant: TestTenant): Promise<Owner> {
      const admin = (path: string, body: unknown) => call(t.url, 'POST', path, { key: tenant.admin, body }).then((r) => {
        assert.ok(r.status < 300, `${path}: ${r.status} ${r.text}`);
        return r.body;
      });
      const ids: Record<string, string> = {
        slug: `meter-${randomUUID().slice(0, 8)}`, key: `cust-${randomUUID().slice(0, 8)}`, subscriptionId: randomUUID(), unitType: 'api-calls',
        agreementId: `agreement_${randomUUID().replace(/-/g, '')}`, orgId: `org${randomUUID().slice(0, 8)}`, frontierOrg: randomUUID(),
        billingId: randomUUID(), product: `prod-${randomUUID().slice(0, 8)}`, lever: 'clicks', meteringId: 'click', customerId: `pc-${randomUUID().slice(0, 8)}`,
      };
      await admin('/v1/meters', { slug: ids.slug, eventType: 'x', aggregation: 'COUNT' });
      await admin('/v1/customers', { key: ids.key, subjects: [`subj-${ids.key}`] });
      await admin('/v1/compat/killbill/unit-types', { unitType: ids.unitType });
      await admin('/v1/compat/killbill/subscriptions', { subscriptionId: ids.subscriptionId, accountId: 'acc' });
      await admin('/v1/compat/kinde/features', { code: 'api_calls' });
      await admin('/v1/compat/kinde/agreements', { agreementId: ids.agreementId, cycleInterval: 'month' });
      const kindeClient = await admin('/v1/compat/kinde/clients', { name: 'k' });
      await admin('/v1/compat/frontier/billing-accounts', { orgId: ids.frontierOrg, billingId: ids.billingId });
      await admin(`/v1/compat/frontier/billing-accounts/${ids.billingId}/topups`, { id: 't1', amount: '100' });
      await admin('/v1/compat/planship/products', { slug: ids.product });
      await admin(`/v1/compat/planship/products/${ids.product}/levers`, { slug: ids.lever, meteringIds: [ids.meteringId] });
      await admin('/v1/compat/planship/customers', { customerId: ids.customerId, subscriptions: [{ product: ids.product, renew: 'month' }] });
      await admin('/v1/compat/charthop/orgs', { orgId: ids.orgId, slug: `slug-${ids.orgId}` });
      const keyList = await call(t.url, 'GET', '/v1/api-keys', { key: tenant.admin });
      ids.id = keyList.body.data[0].id;
      const kt = await fetch(`${t.url}/oauth2/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `grant_type=client_credentials&client_id=${kindeClient.clientId}&client_secret=${kindeClient.clientSecret}&scope=create:meter_usage` });
      assert.equal(kt.status, 200, await kt.clone().text());
      const [, pid, psecret] = /^mk_([^_]+)_(.+)$/.exec(tenant.read)!;
      const pt = await fetch(`${t.url}/api/v1/auth/token`, { method: 'POST', headers: { authorization: basic(pid, psecret) } });
      assert.equal(pt.status, 200, await pt.clone().text());
      return { tenant, ids, kindeToken: ((await kt.json()) as any).access_token, planshipToken: ((await pt.json()) as any).access_token };
    }

    before(async () => {
      t = await startApp(engine);
      a = await setUp(await t.tenant());
      b = await setUp(await t.tenant());
      secretsOfA.push(a.ids.key, a.ids.subscriptionId, a.ids.agreementId, a.ids.billingId, a.ids.customerId, a.ids.orgId, `subj-${a.ids.key}`);
      spec = (await call(t.url, 'GET', '/openapi.json')).body;
    });
    after(() => t.close());

    /** Fills a path template with the owner's identifiers. */
    function fill(path: string, o: Owner): string {
      const id = o.ids;
      const values: Record<string, string> = {
        id: id.id, slug: id.slug, key: id.key, subscriptionId: id.subscriptionId, unitType: id.unitType, agreementId: id.agreementId,
        billingId: id.billingId, product: id.product, customerId: id.customerId, orgId: id.orgId, type: 'export',
        customer_id: id.customerId, product_slug: id.product, metering_id: id.meteringId, lever_slug: id.lever, org_id: id.frontierOrg, billing_id: id.billingId,
      };
      return path.replace(/\{(\w+)\}/g, (_, name) => {
        assert.ok(values[name], `no value for {${name}} in ${path}`);
        return encodeURIComponent(values[name]);
      });
    }

    type Creds = 'none' | 'wrong' | 'otherTenant' | 'lowScope';
    interface Case { method: string; path: string; headers: (c: Creds) => Record<string, string>; body?: unknown; expect: Record<Creds, number | number[]> }

    function casesFor(method: string, path: string): Case | undefined {
      const nativeScope = (m: string, p: string): 'admin' | 'read' | 'ingest' => {
        if (p === '/v1/events' && m === 'post') return 'ingest';
        if (m === 'get' && !p.startsWith('/v1/api-keys')) return 'read';
        return 'admin';
      };
      const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
      if (['/healthz', '/readyz', '/openapi.json'].includes(path)) return undefined;
      if (path === '/oauth2/token' || path === '/api/v1/auth/token') return undefined; // credential endpoints: tested below
      if (path.startsWith('/v1/') && !path.startsWith('/v1/org/')) {
        const scope = nativeScope(method, path);
        const low = scope === 'ingest' ? a.tenant.read : scope === 'read' ? a.tenant.ingest : a.tenant.read;
        const hasParam = path.includes('{');
        // A valid body for routes that act on an owner's object, so only the ownership check can refuse.
        const bodies: Record<string, unknown> = {
          '/v1/compat/frontier/billing-accounts/{billingId}/topups': { id: 't2', amount: '1' },
          '/v1/compat/planship/products/{product}/levers': { slug: 'l2', meteringIds: ['m2'] },
          '/v1/compat/planship/customers/{customerId}/subscriptions': { product: a.ids.product, renew: 'month' },
        };
        return {
          method, path, body: method === 'get' || method === 'delete' ? undefined : (bodies[path] ?? {}),
          headers: (c) => (c === 'none' ? {} : c === 'wrong' ? bearer(WRONG_KEY) : c === 'otherTenant' ? bearer(scope === 'ingest' ? b.tenant.ingest : b.tenant.admin) : bearer(low)),
          // Another tenant reaching one of the owner's objects by id: 404. Without an id the route serves the caller's own tenant.
          expect: { none: 401, wrong: 401, otherTenant: hasParam ? 404 : [200, 201, 400, 409], lowScope: 403 },
        };
      }
      if (path.startsWith('/1.0/kb/')) {
        const post = method === 'post';
        const kb = (tenantId: string, key: string) => ({ authorization: basic('job', key), 'x-killbill-apikey': tenantId, 'x-killbill-apisecret': key, 'x-killbill-createdby': 'test' });
        return {
          method, path: post ? path : `${path}?startDate=2026-01-01&endDate=2026-12-31`,
          body: post ? { subscriptionId: a.ids.subscriptionId, trackingId: randomUUID(), unitUsageRecords: [{ unitType: a.ids.unitType, usageRecords: [{ recordDate: '2026-03-01', amount: 1 }] }] } : undefined,
          headers: (c) => (c === 'none' ? {} : c === 'wrong' ? kb(a.tenant.id, WRONG_KEY) : c === 'otherTenant' ? kb(b.tenant.id, post ? b.tenant.ingest : b.tenant.read) : kb(a.tenant.id, post ? a.tenant.read : a.tenant.ingest)),
          expect: { none: 401, wrong: 401, otherTenant: 404, lowScope: 403 },
        };
      }
      if (path === '/api/v1/billing/meter_usage') {
        return {
          method, path, body: { customer_agreement_id: a.ids.agreementId, billing_feature_code: 'api_calls', meter_value: '1' },
          headers: (c) => (c === 'none' ? {} : c === 'wrong' ? bearer('eyJhbGciOiJIUzI1NiJ9.e30.x') : c === 'otherTenant' ? bearer(b.kindeToken) : bearer(a.tenant.read)),
          // Kinde answers 403 for any bad credential; another tenant's agreement is "not found" (400), as Kinde does.
          expect: { none: 403, wrong: 403, otherTenant: 400, lowScope: 403 },
        };
      }
      if (path.startsWith('/v1beta1/')) {
        const body = { orgId: a.ids.frontierOrg, billingId: a.ids.billingId, usages: [{ id: randomUUID(), type: 'credit', amount: '1' }] };
        return {
          method, path, body,
          headers: (c) => (c === 'none' ? {} : c === 'wrong' ? bearer(WRONG_KEY) : c === 'otherTenant' ? bearer(b.tenant.ingest) : bearer(a.tenant.read)),
          expect: { none: 401, wrong: 401, otherTenant: 404, lowScope: 403 },
        };
      }
      if (path.startsWith('/api/v1/customers/')) {
        const post = method === 'post';
        return {
          method, path, body: post ? { usage: 1 } : undefined,
          headers: (c) => (c === 'none' ? {} : c === 'wrong' ? bearer('eyJhbGciOiJIUzI1NiJ9.e30.x') : c === 'otherTenant' ? bearer(post ? b.tenant.ingest : b.planshipToken) : bearer(post ? a.planshipToken : a.tenant.ingest)),
          expect: { none: 401, wrong: 401, otherTenant: 404, lowScope: 403 },
        };
      }
      if (path.startsWith('/v1/org/')) {
        return {
          method, path,
          headers: (c) => (c === 'none' ? {} : c === 'wrong' ? bearer(WRONG_KEY) : c === 'otherTenant' ? bearer(b.tenant.ingest) : bearer(a.tenant.read)),
          expect: { none: 401, wrong: 401, otherTenant: 404, lowScope: 403 },
        };
      }
      assert.fail(`route ${method.toUpperCase()} ${path} has no expectation in this test: add one`);
    }

    it('covers every documented route', () => {
      const routes = Object.entries<any>(spec.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => [m, p]));
      assert.ok(routes.length >= 40, `${routes.length} routes`);
    });

    for (const creds of ['none', 'wrong', 'otherTenant', 'lowScope'] as const) {
      it(`${creds}: each route answers as its API documents, without leaking the owner's data`, async () => {
        const failures: string[] = [];
        let checked = 0;
        for (const [path, ops] of Object.entries<any>(spec.paths)) {
          for (const method of Object.keys(ops)) {
            const c = casesFor(method, path);
            if (!c) continue;
            const url = fill(c.path, a);
            const headers: Record<string, string> = { ...c.headers(creds) };
            const body = typeof c.body === 'function' ? undefined : c.body;
            if (body !== undefined) headers['content-type'] = 'application/json';
            const res = await fetch(t.url + url, { method: method.toUpperCase(), headers, body: body === undefined ? undefined : JSON.stringify(body) });
            const text = await res.text();
            checked++;
            const want = ([] as number[]).concat(c.expect[creds]);
            if (!want.includes(res.status)) failures.push(`${method.toUpperCase()} ${url}: ${res.status} (want ${want.join('|')}) ${text.slice(0, 160)}`);
            if (creds !== 'lowScope' && res.status >= 400) {
              // Echoing what the caller itself sent is not a leak; anything else of the owner's is.
              const sent = url + JSON.stringify(body ?? '');
              for (const s of secretsOfA) if (text.includes(s) && !sent.includes(s) && !sent.includes(encodeURIComponent(s))) failures.push(`${method.toUpperCase()} ${url} leaked ${s}`);
            }
          }
        }
        assert.ok(checked >= 35, `checked ${checked} routes`);
        assert.deepEqual(failures, []);
      });
    }

    it('credential endpoints refuse wrong client credentials', async () => {
      const kt = await fetch(`${t.url}/oauth2/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `grant_type=client_credentials&client_id=${'Z'.repeat(16)}&client_secret=nope` });
      assert.equal(kt.status, 401);
      const pt = await fetch(`${t.url}/api/v1/auth/token`, { method: 'POST', headers: { authorization: basic('Z'.repeat(16), 'nope') } });
      assert.equal(pt.status, 401);
      const none = await fetch(`${t.url}/api/v1/auth/token`, { method: 'POST' });
      assert.equal(none.status, 401);
    });
  });
}

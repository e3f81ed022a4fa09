// Tenant isolation on every native route, scopes, revocation, and no secret in any log line.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { engines, startApp, call, type TestApp, type TestTenant } from '../support/harness.js';
import { openServices } from '../../src/main.js';
import { buildHttp } from '../../src/http/app.js';
import { loadConfig } from '../../src/config.js';
import { loggerOptions } from '../../src/http/logging.js';

/** The secret part of mk_<16-character id>_<secret> (the secret itself may contain "_"). */
const secretOf = (key: string) => key.slice('mk_'.length + 16 + 1);

for (const engine of engines()) {
  describe(`tenant isolation and keys [${engine.name}]`, () => {
    let t: TestApp;
    let a: TestTenant;
    let b: TestTenant;
    before(async () => {
      t = await startApp(engine);
      a = await t.tenant();
      b = await t.tenant();
      await call(t.url, 'POST', '/v1/meters', { key: a.admin, body: { slug: 'secret-meter', eventType: 'x', aggregation: 'COUNT' } });
      await call(t.url, 'POST', '/v1/customers', { key: a.admin, body: { key: 'a-cust', subjects: ['shared-subject'] } });
      await call(t.url, 'POST', '/v1/events', { key: a.ingest, body: { id: 'a-ev', source: 's', type: 'x', subject: 'shared-subject', time: '2026-01-01T00:00:00Z' } });
    });
    after(() => t.close());

    const routes: Array<[string, string, unknown?]> = [
      ['GET', '/v1/meters/secret-meter'],
      ['DELETE', '/v1/meters/secret-meter'],
      ['GET', '/v1/meters/secret-meter/query?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z'],
      ['GET', '/v1/customers/a-cust'],
      ['PATCH', '/v1/customers/a-cust', { name: 'stolen' }],
    ];

    for (const [method, path, body] of routes) {
      it(`${method} ${path.split('?')[0]}: another tenant gets 404, no key 401, a bad key 401`, async () => {
        const other = await call(t.url, method, path, { key: b.admin, body });
        assert.equal(other.status, 404, other.text);
        assert.doesNotMatch(other.text, /a-cust"|shared-subject|secret-meter"/);
        assert.equal((await call(t.url, method, path, { body })).status, 401);
        assert.equal((await call(t.url, method, path, { key: 'mk_AAAAAAAAAAAAAAAA_' + 'x'.repeat(43), body })).status, 401);
      });
    }

    it("another tenant's events never appear in its lists or queries, even with the same subject and ids", async () => {
      await call(t.url, 'POST', '/v1/meters', { key: b.admin, body: { slug: 'secret-meter', eventType: 'x', aggregation: 'COUNT' } });
      const dup = await call(t.url, 'POST', '/v1/events', { key: b.ingest, body: { id: 'a-ev', source: 's', type: 'x', subject: 'shared-subject', time: '2026-01-01T00:00:00Z' } });
      assert.equal(dup.body.events[0].status, 'accepted', 'the dedupe key is per tenant');
      const list = await call(t.url, 'GET', '/v1/events', { key: b.read });
      assert.deepEqual(list.body.data.map((e: any) => e.id), ['a-ev']);
      const usage = await call(t.url, 'GET', '/v1/meters/secret-meter/query?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z', { key: b.read });
      assert.deepEqual(usage.body.data.map((r: any) => r.value), ['1']);
      const meters = await call(t.url, 'GET', '/v1/meters', { key: b.read });
      assert.equal(meters.body.data.length, 1);
      const customers = await call(t.url, 'GET', '/v1/customers', { key: b.read });
      assert.deepEqual(customers.body.data, []);
      // B cannot claim a subject in its own tenant that A owns? It can: subjects are per tenant.
      const claim = await call(t.url, 'POST', '/v1/customers', { key: b.admin, body: { key: 'b-cust', subjects: ['shared-subject'] } });
      assert.equal(claim.status, 201);
    });

    it('scopes: ingest keys cannot read or administer, read keys cannot ingest', async () => {
      assert.equal((await call(t.url, 'GET', '/v1/meters', { key: a.ingest })).status, 403);
      assert.equal((await call(t.url, 'POST', '/v1/meters', { key: a.read, body: { slug: 'z', eventType: 'z', aggregation: 'COUNT' } })).status, 403);
      assert.equal((await call(t.url, 'POST', '/v1/events', { key: a.read, body: { id: '1', source: 's' } })).status, 403);
      assert.equal((await call(t.url, 'POST', '/v1/api-keys', { key: a.read, body: { name: 'n', scopes: ['admin'] } })).status, 403);
    });

    it('API keys: created once with their secret, listed without it, revoked keys fail on the next request', async () => {
      const created = await call(t.url, 'POST', '/v1/api-keys', { key: a.admin, body: { name: 'ci', scopes: ['read'] } });
      assert.equal(created.status, 201, created.text);
      assert.match(created.body.key, /^mk_[A-Za-z0-9]{16}_[A-Za-z0-9_-]{43}$/);
      const listed = await call(t.url, 'GET', '/v1/api-keys', { key: a.admin });
      assert.ok(!listed.text.includes(secretOf(created.body.key)), 'list must not contain secrets');
      assert.equal((await call(t.url, 'GET', '/v1/meters', { key: created.body.key })).status, 200);
      assert.equal((await call(t.url, 'DELETE', `/v1/api-keys/${created.body.id}`, { key: b.admin })).status, 404, "another tenant's key is a 404");
      assert.equal((await call(t.url, 'DELETE', `/v1/api-keys/${created.body.id}`, { key: a.admin })).status, 204);
      assert.equal((await call(t.url, 'GET', '/v1/meters', { key: created.body.key })).status, 401);
      const [stored] = (await t.services.store.listApiKeys(a.id)).filter((k) => k.id === created.body.id);
      assert.ok(!JSON.stringify(stored).includes(secretOf(created.body.key)), 'only a hash of the secret is stored');
    });

    it('API keys revoked by another instance (straight in the store) fail within about a second', async () => {
      const created = await call(t.url, 'POST', '/v1/api-keys', { key: a.admin, body: { name: 'elsewhere', scopes: ['read'] } });
      assert.equal((await call(t.url, 'GET', '/v1/meters', { key: created.body.key })).status, 200);
      assert.equal(await t.services.store.revokeApiKey(a.id, created.body.id, Date.now()), true);
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal((await call(t.url, 'GET', '/v1/meters', { key: created.body.key })).status, 401);
    });
  });
}

describe('logs', () => {
  it('no API key secret or authorization header appears in any log line', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
    const config = loadConfig({ DATABASE_URL: 'sqlite::memory:', LOG_LEVEL: 'trace' });
    const services = await openServices(config);
    const app = await buildHttp(services, { logger: { ...loggerOptions(config), stream: sink } });
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      await services.tenants.create('logs');
      const { key } = await services.apiKeys.create('logs', 'k', ['admin']);
      await call(base, 'GET', '/v1/meters', { key });
      await call(base, 'GET', '/v1/meters', { key: key.slice(0, -2) + 'zz' });
      await call(base, 'POST', '/v1/events', { key, body: { id: 'q', source: 's' } });
      const secret = secretOf(key);
      assert.ok(lines.length > 3, 'the server logged requests');
      for (const line of lines) {
        assert.ok(!line.includes(secret), `secret in log line: ${line}`);
        assert.ok(!/bearer/i.test(line), `authorization in log line: ${line}`);
      }
    } finally {
      await app.close();
      await services.store.close();
    }
  });
});

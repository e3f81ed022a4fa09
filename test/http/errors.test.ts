// Every malformed request answers 4xx application/problem+json saying what is wrong; nothing is stored.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { engines, startApp, call, type TestApp, type TestTenant } from '../support/harness.js';

/** Sends raw bytes on a new connection; resolves with everything the server wrote before it closed. */
function rawRequest(url: string, bytes: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(Number(port), hostname, () => socket.write(bytes));
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString()));
  });
}

/** A raw HTTP answer's status, headers (lower-cased names) and JSON body. */
function parseRaw(raw: string) {
  const [head, body] = [raw.slice(0, raw.indexOf('\r\n\r\n')), raw.slice(raw.indexOf('\r\n\r\n') + 4)];
  const [statusLine, ...lines] = head.split('\r\n');
  const headers = new Headers(lines.map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()] as [string, string]));
  return { status: Number(statusLine.split(' ')[1]), headers, body: JSON.parse(body), text: body };
}

function assertProblem(r: { status: number; headers: Headers; body: any; text: string }, status: number, detail?: RegExp) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/);
  assert.equal(r.body.status, status);
  assert.equal(typeof r.body.title, 'string');
  assert.equal(typeof r.body.type, 'string');
  assert.equal(typeof r.body.detail, 'string');
  if (detail) assert.match(r.body.detail + JSON.stringify(r.body.errors ?? []), detail);
  assert.doesNotMatch(r.text, /at .*\.ts:\d+|node_modules/, 'no stack traces');
}

for (const engine of engines()) {
  describe(`malformed requests [${engine.name}]`, () => {
    let t: TestApp;
    let ten: TestTenant;
    before(async () => {
      t = await startApp(engine, { MAX_BODY_BYTES: 64 * 1024, MAX_BATCH_EVENTS: 50 });
      ten = await t.tenant();
      await call(t.url, 'POST', '/v1/meters', { key: ten.admin, body: { slug: 'm', eventType: 'e', aggregation: 'SUM', valueProperty: '$.v', groupBy: { region: '$.region' } } });
    });
    after(() => t.close());

    const ingest = (rawBody: string, contentType = 'application/json') => call(t.url, 'POST', '/v1/events', { key: ten.ingest, rawBody, headers: { 'content-type': contentType } });

    it('bodies that are not JSON, empty, or not events answer 400', async () => {
      assertProblem(await ingest('{"id": '), 400, /not valid JSON/);
      assertProblem(await ingest(''), 400, /empty/);
      assertProblem(await ingest('42'), 400, /expected a CloudEvents/);
      assertProblem(await ingest('"text"'), 400);
      assertProblem(await ingest('null'), 400);
      assertProblem(await ingest('[]'), 400, /no events/);
    });

    it('a wrong content type answers 415, a body over the limit 413, a batch over the limit 400', async () => {
      assertProblem(await ingest('id=1', 'application/x-www-form-urlencoded'), 415);
      assertProblem(await ingest('{}', 'text/plain'), 415);
      assertProblem(await ingest(JSON.stringify({ id: '1', source: 's', data: { s: 'x'.repeat(70_000) } })), 413);
      const many = Array.from({ length: 51 }, (_, i) => ({ id: String(i), source: 's' }));
      assertProblem(await ingest(JSON.stringify(many)), 400, /at most 50/);
    });

    it('bad events in a batch are rejected one by one with a reason, and nothing of them is stored', async () => {
      const bad = [
        { id: 1, source: 's' },
        { id: 'x', source: '' },
        { id: 'x'.repeat(300), source: 's' },
        { id: 'a', source: 's', time: '2026-02-30T00:00:00Z' },
        { id: 'b', source: 's', time: '2026-01-01T00:00:00' },
        { id: 'c', source: 's', time: '9999-01-01T00:00:00Z' },
        { id: 'd', source: 's', data: [1, 2] },
        { id: 'e', source: 's', data: { deep: JSON.parse('['.repeat(40) + ']'.repeat(40)) } },
        { id: 'f', source: 's', specversion: '0.3' },
        { id: 'g\ud800', source: 's' },
        { id: 'h', source: 's', subject: 7 },
        { id: 'i', source: 's', 'Bad-Attr': 1 },
        'not an object',
        { id: 'j', source: 's', data: { v: 'x\u0000' } },
      ];
      const r = await ingest(JSON.stringify(bad));
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.rejected, bad.length);
      for (const e of r.body.events) {
        assert.equal(e.status, 'rejected');
        assert.ok(e.error.length > 5, `a reason for ${JSON.stringify(e)}`);
      }
      const list = await call(t.url, 'GET', '/v1/events', { key: ten.read });
      assert.deepEqual(list.body.data, []);
    });

    it('bad meter definitions answer 400 naming the field; a taken slug 409', async () => {
      const post = (body: unknown) => call(t.url, 'POST', '/v1/meters', { key: ten.admin, body });
      assertProblem(await post({ slug: 'Bad Slug', eventType: 'e', aggregation: 'SUM', valueProperty: '$.v' }), 400, /slug/);
      assertProblem(await post({ slug: 'x', eventType: 'e', aggregation: 'MEDIAN', valueProperty: '$.v' }), 400, /aggregation/);
      assertProblem(await post({ slug: 'x', eventType: 'e', aggregation: 'SUM' }), 400, /valueProperty is required/);
      assertProblem(await post({ slug: 'x', eventType: 'e', aggregation: 'SUM', valueProperty: '$..v' }), 400, /valueProperty/);
      assertProblem(await post({ slug: 'x', eventType: 'e', aggregation: 'SUM', valueProperty: '$.v', groupBy: { subject: '$.s' } }), 400, /reserved/);
      // As JSON text: in a JS object literal __proto__ would set the prototype, not a key.
      const proto = '{"slug":"x","eventType":"e","aggregation":"SUM","valueProperty":"$.v","groupBy":{"__proto__":"$.s"}}';
      assertProblem(await call(t.url, 'POST', '/v1/meters', { key: ten.admin, rawBody: proto, headers: { 'content-type': 'application/json' } }), 400, /__proto__.*reserved/);
      assertProblem(await post({ slug: 'x', eventType: 'e', aggregation: 'SUM', valueProperty: '$.v', extra: 1 }), 400, /extra/);
      assertProblem(await post({ slug: 'm', eventType: 'e', aggregation: 'COUNT' }), 409);
      assertProblem(await post([]), 400);
    });

    it('bad usage queries answer 400 naming the parameter; an unknown meter 404', async () => {
      const q = (qs: string, slug = 'm') => call(t.url, 'GET', `/v1/meters/${slug}/query?${qs}`, { key: ten.read });
      assertProblem(await q('from=yesterday'), 400, /from/);
      assertProblem(await q('from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z'), 400, /before/);
      assertProblem(await q('from=2026-01-01T00:00:00Z&windowSize=WEEK'), 400, /windowSize/);
      assertProblem(await q('from=2026-01-01T00:00:00Z&windowSize=DAY&windowTimeZone=Mars/Olympus'), 400, /windowTimeZone/);
      assertProblem(await q('windowSize=DAY'), 400, /required when windowSize/);
      assertProblem(await q('from=2026-01-01T00:00:00Z&groupBy=color'), 400, /groupBy/);
      assertProblem(await q('from=2026-01-01T00:00:00Z&filterGroupBy[color]=red'), 400, /color/);
      assertProblem(await q('from=2026-01-01T00:00:00Z&bogus=1'), 400, /unknown query parameter/);
      assertProblem(await q('from=2000-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&windowSize=MINUTE'), 400, /windows/);
      assertProblem(await q('from=2026-01-01T00:00:00Z&customer=nobody'), 404, /customer/);
      assertProblem(await q('from=2026-01-01T00:00:00Z', 'nope'), 404, /meter/);
    });

    it('bad customers answer 400/409; unknown routes 404; bad cursors and limits 400', async () => {
      assertProblem(await call(t.url, 'POST', '/v1/customers', { key: ten.admin, body: { name: 'no key' } }), 400, /key/);
      assertProblem(await call(t.url, 'POST', '/v1/customers', { key: ten.admin, body: { key: 'c1', subjects: 'one' } }), 400, /subjects/);
      assert.equal((await call(t.url, 'POST', '/v1/customers', { key: ten.admin, body: { key: 'c1', subjects: ['s1'] } })).status, 201);
      assertProblem(await call(t.url, 'POST', '/v1/customers', { key: ten.admin, body: { key: 'c1' } }), 409);
      assertProblem(await call(t.url, 'POST', '/v1/customers', { key: ten.admin, body: { key: 'c2', subjects: ['s1'] } }), 409, /s1/);
      assertProblem(await call(t.url, 'PATCH', '/v1/customers/c1', { key: ten.admin, body: { subjects: [1] } }), 400);
      assertProblem(await call(t.url, 'GET', '/v1/customers?limit=0', { key: ten.read }), 400, /limit/);
      assertProblem(await call(t.url, 'GET', '/v1/nothing-here', { key: ten.read }), 404);
      assertProblem(await call(t.url, 'GET', '/v1/events?limit=abc', { key: ten.read }), 400);
      assertProblem(await call(t.url, 'GET', '/v1/events?from=notadate', { key: ten.read }), 400, /from/);
      assertProblem(await call(t.url, 'POST', '/v1/api-keys', { key: ten.admin, body: { name: 'k', scopes: ['root'] } }), 400);
    });

    it('requests the HTTP parser refuses answer problem+json naming what is wrong, and close the connection', async () => {
      const cases: Array<[string, number, RegExp]> = [
        ['GET /v1/meters HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n', 400, /header line is malformed/],
        ['POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n', 400, /Content-Length/],
        ['POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n', 400, /Transfer-Encoding/],
        ['GET /v1/a b HTTP/1.1\r\nHost: x\r\n\r\n', 400, /request line is malformed/],
        [`GET /v1/meters/m/query?from=2026-01-01T00:00:00Z&subject=${'a'.repeat(17_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 431, /too large/],
        ['NOT-A-METHOD\r\n\r\n', 400, /method/],
      ];
      for (const [bytes, status, detail] of cases) {
        const raw = await rawRequest(t.url, bytes);
        const r = parseRaw(raw);
        assertProblem(r, status, detail);
        assert.equal(r.headers.get('connection'), 'close', raw);
      }
      // The server still answers on new connections.
      assert.equal((await call(t.url, 'GET', '/v1/meters', { key: ten.read })).status, 200);
    });

    it('keys and slugs up to 256 characters work in paths; longer ones answer 400 naming the parameter', async () => {
      for (const key of ['k'.repeat(150), 'é€😀'.repeat(64)]) {
        assert.equal((await call(t.url, 'POST', '/v1/customers', { key: ten.admin, body: { key, subjects: [] } })).status, 201);
        const path = `/v1/customers/${encodeURIComponent(key)}`;
        const got = await call(t.url, 'GET', path, { key: ten.read });
        assert.equal(got.status, 200, got.text);
        assert.equal(got.body.key, key);
        const patched = await call(t.url, 'PATCH', path, { key: ten.admin, body: { name: 'long' } });
        assert.equal(patched.status, 200, patched.text);
        assert.equal(patched.body.name, 'long');
      }
      assertProblem(await call(t.url, 'GET', `/v1/customers/${'k'.repeat(257)}`, { key: ten.read }), 400, /key/);
      assertProblem(await call(t.url, 'GET', `/v1/meters/${'m'.repeat(300)}/query?from=2026-01-01T00:00:00Z`, { key: ten.read }), 400, /slug/);
    });

    it('stored text with a NUL answers 400 naming the field on every route that stores text, and stores nothing', async () => {
      // PostgreSQL text cannot hold NUL (it answered 500 here); SQLite refuses it too, so both answer alike.
      const N = 'a\u0000b';
      const cases: Array<[string, Record<string, unknown>, string, string]> = [
        ['/v1/meters', { slug: 'nul1', eventType: 'x', aggregation: 'COUNT', description: N }, 'description', '/v1/meters/nul1'],
        ['/v1/meters', { slug: 'nul2', eventType: N, aggregation: 'COUNT' }, 'eventType', '/v1/meters/nul2'],
        ['/v1/customers', { key: 'nul1', name: N }, 'name', '/v1/customers/nul1'],
        ['/v1/api-keys', { name: N, scopes: ['read'] }, 'name', ''],
        ['/v1/compat/killbill/unit-types', { unitType: 'nul1', description: N }, 'description', '/v1/meters/kb-nul1'],
        ['/v1/compat/kinde/features', { code: 'nul1', description: N }, 'description', '/v1/meters/kinde-nul1'],
        ['/v1/compat/kinde/agreements', { agreementId: 'nul1', name: N }, 'name', '/v1/customers/nul1'],
        ['/v1/compat/kinde/clients', { name: N }, 'name', ''],
        ['/v1/compat/frontier/billing-accounts', { orgId: 'nul2', name: N }, 'name', ''],
        ['/v1/compat/frontier/credentials', { name: N }, 'name', ''],
        ['/v1/compat/planship/products', { slug: 'nul1', name: N }, 'name', ''],
        ['/v1/compat/planship/customers', { customerId: 'nul3', name: N }, 'name', '/v1/customers/nul3'],
        ['/v1/compat/planship/credentials', { name: N }, 'name', ''],
        ['/v1/compat/charthop/orgs', { orgId: 'nul4', name: N }, 'name', '/v1/customers/nul4'],
      ];
      for (const [path, body, field, stored] of cases) {
        assertProblem(await call(t.url, 'POST', path, { key: ten.admin, body }), 400, new RegExp(`body\\.${field} must not contain a NUL character`));
        if (stored) assertProblem(await call(t.url, 'GET', stored, { key: ten.admin }), 404);
      }
      assert.equal((await call(t.url, 'POST', '/v1/customers', { key: ten.admin, body: { key: 'nul5', name: 'kept' } })).status, 201);
      assertProblem(await call(t.url, 'PATCH', '/v1/customers/nul5', { key: ten.admin, body: { name: N } }), 400, /body\.name must not contain a NUL/);
      assert.equal((await call(t.url, 'GET', '/v1/customers/nul5', { key: ten.admin })).body.name, 'kept');
    });

    it('serves OpenAPI 3.1 generated from the route schemas, the docs page, health and readiness', async () => {
      const spec = await call(t.url, 'GET', '/openapi.json');
      assert.equal(spec.status, 200);
      assert.equal(spec.body.openapi, '3.1.0');
      for (const p of ['/v1/events', '/v1/meters', '/v1/meters/{slug}/query', '/v1/customers', '/v1/api-keys']) assert.ok(spec.body.paths[p], `${p} documented`);
      assert.ok(spec.body.paths['/v1/meters'].post.requestBody, 'request bodies come from the validation schemas');
      const docs = await fetch(`${t.url}/docs/`);
      assert.equal(docs.status, 200);
      assert.equal((await call(t.url, 'GET', '/healthz')).status, 200);
      const ready = await call(t.url, 'GET', '/readyz');
      assert.equal(ready.body.engine, engine.name);
      // API answers, success and problem alike: the four headers an API needs.
      for (const r of [await call(t.url, 'GET', '/healthz'), await call(t.url, 'GET', '/v1/meters')]) {
        assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
        assert.equal(r.headers.get('x-frame-options'), 'DENY');
        assert.equal(r.headers.get('content-security-policy'), "default-src 'none'; frame-ancestors 'none'");
        assert.equal(r.headers.get('cache-control'), 'no-store');
        assert.equal(r.headers.get('cross-origin-opener-policy'), null, 'document headers are for the docs pages');
        assert.equal(r.headers.get('strict-transport-security'), null, 'TLS ends in front of meterd');
      }
      // The docs pages: helmet's headers, with a CSP that lets them load their own scripts and styles.
      assert.equal(docs.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(docs.headers.get('x-frame-options'), 'SAMEORIGIN');
      assert.equal(docs.headers.get('cross-origin-opener-policy'), 'same-origin');
      assert.equal(docs.headers.get('content-security-policy'), "default-src 'self';base-uri 'self';font-src 'self' https: data:;form-action 'self';frame-ancestors 'self';img-src 'self' data:;object-src 'none';script-src 'self';script-src-attr 'none';style-src 'self' 'unsafe-inline';upgrade-insecure-requests");
      assert.equal(docs.headers.get('strict-transport-security'), null, 'TLS ends in front of meterd');
    });
  });
}

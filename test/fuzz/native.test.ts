// Property-based tests (fast-check) against the native API: random and mutated bodies, headers and
// query strings. Whatever a client sends: no 5xx, the server stays up, every error is problem+json,
// and a rejected request stores nothing. FUZZ_RUNS scales the number of cases.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { engines, startApp, type TestApp, type TestTenant } from '../support/harness.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 150);
let casesRun = 0;

const nasty = fc.constantFrom(
  "'; DROP TABLE events; --",
  '" OR 1=1 --',
  '{{7*7}}',
  '<script>alert(1)</script>',
  '../../etc/passwd',
  '\u0000',
  '\ud800',
  '\u202e',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
  'NaN',
  'Infinity',
  '-0',
  '1e400',
  '1e-400',
  '0x10',
  '99999999999999999999999999999',
  '-1',
  ' ',
  '',
  '$.__proto__',
  '__proto__',
  'constructor',
);

const scalar = fc.oneof(
  nasty,
  fc.string({ maxLength: 40 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom(Number.MAX_SAFE_INTEGER, -Number.MAX_VALUE, 5e-324),
);

const timeLike = fc.oneof(
  fc.date({ min: new Date(-1e14), max: new Date(1e14), noInvalidDate: true }).map((d) => d.toISOString()),
  fc.constantFrom('2026-02-30T00:00:00Z', '2026-13-01T00:00:00Z', '2026-01-01T25:00:00Z', '2026-01-01', 'now', '2026-01-01T00:00:00+99:99', '0000-01-01T00:00:00Z'),
  scalar,
);

const eventish = fc.record(
  {
    id: fc.oneof(fc.string({ minLength: 1, maxLength: 20 }), scalar),
    source: fc.oneof(fc.constant('fuzz'), scalar),
    type: fc.oneof(fc.constant('fz'), scalar),
    subject: fc.oneof(fc.constantFrom('a', 'b'), scalar),
    time: timeLike,
    specversion: fc.oneof(fc.constant('1.0'), scalar),
    data: fc.oneof(fc.record({ v: scalar, d: scalar }), fc.jsonValue({ maxDepth: 4 }), scalar),
  },
  { requiredKeys: [] },
);

const deep = fc.integer({ min: 10, max: 3000 }).map((n) => '{"id":"d","source":"s","data":' + '{"a":'.repeat(n) + '1' + '}'.repeat(n) + '}');

const rawBody = fc.oneof(
  eventish.map((e) => JSON.stringify(e)),
  fc.array(eventish, { maxLength: 20 }).map((a) => JSON.stringify(a)),
  fc.jsonValue({ maxDepth: 5 }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  deep,
  fc.constantFrom('', '{', '[', '[{}', 'null', 'true', '{"id":"x","source":"s","data":{"v":1e999}}', '\uFEFF{}', '{"__proto__":{"polluted":1},"id":"p","source":"s"}'),
  fc.integer({ min: 1, max: 3 }).map((k) => JSON.stringify({ id: 'big', source: 's', data: { s: 'x'.repeat(k * 400_000) } })),
);

const contentType = fc.constantFrom(
  'application/json',
  'application/cloudevents+json',
  'application/cloudevents-batch+json',
  'application/json; charset=utf-8',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/xml',
  '',
  'application/json; charset=latin1',
);

async function assertProblemOrOk(res: Response, text: string) {
  assert.ok(res.status < 500, `5xx: ${res.status} ${text.slice(0, 300)}`);
  if (res.status >= 400) {
    assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/, text.slice(0, 200));
    const p = JSON.parse(text);
    assert.equal(p.status, res.status);
    assert.equal(typeof p.detail, 'string');
  }
}

for (const engine of engines()) {
  describe(`fuzzing the native API [${engine.name}]`, () => {
    let t: TestApp;
    let ten: TestTenant;
    before(async () => {
      casesRun = 0;
      t = await startApp(engine, { MAX_BODY_BYTES: 1024 * 1024 });
      ten = await t.tenant();
      await fetch(`${t.url}/v1/meters`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ten.admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ slug: 'fz', eventType: 'fz', aggregation: 'SUM', valueProperty: '$.v', groupBy: { d: '$.d' } }),
      });
    });
    after(async () => {
      process.stdout.write(`# fuzz[${engine.name}]: ${casesRun} cases run\n`);
      await t.close();
    });

    async function storedCount(): Promise<number> {
      let n = 0;
      let cursor: string | null = null;
      do {
        const r: any = await (await fetch(`${t.url}/v1/events?limit=1000${cursor ? `&cursor=${cursor}` : ''}`, { headers: { authorization: `Bearer ${ten.read}` } })).json();
        n += r.data.length;
        cursor = r.nextCursor;
      } while (cursor);
      return n;
    }

    it('POST /v1/events: no 5xx, problem+json errors, stored events = accepted receipts', { timeout: 600_000 }, async () => {
      let expected = await storedCount();
      await fc.assert(
        fc.asyncProperty(rawBody, contentType, async (body, type) => {
          casesRun++;
          const headers: Record<string, string> = { authorization: `Bearer ${ten.ingest}` };
          if (type) headers['content-type'] = type;
          const res = await fetch(`${t.url}/v1/events`, { method: 'POST', headers, body });
          const text = await res.text();
          await assertProblemOrOk(res, text);
          if (res.status === 200) expected += JSON.parse(text).accepted;
          else if (res.status === 409 || res.status === 400) {
            const p = JSON.parse(text);
            if (p.receipt) expected += p.receipt.accepted;
          }
        }),
        { numRuns: RUNS },
      );
      assert.equal(await storedCount(), expected, 'stored events equal the accepted receipts; rejected requests stored nothing');
      assert.equal((await fetch(`${t.url}/healthz`)).status, 200);
    });

    it('invalid UTF-8 bodies are answered, not crashed on', async () => {
      for (const bytes of [[0xff, 0xfe, 0x7b], [0x7b, 0x22, 0x69, 0x64, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d], [0xed, 0xa0, 0x80]]) {
        casesRun++;
        const res = await fetch(`${t.url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${ten.ingest}`, 'content-type': 'application/json' }, body: Buffer.from(bytes) });
        await assertProblemOrOk(res, await res.text());
      }
    });

    it('usage queries and event lists: random query strings never 5xx', { timeout: 600_000 }, async () => {
      const param = fc.tuple(
        fc.oneof(fc.constantFrom('from', 'to', 'windowSize', 'windowTimeZone', 'subject', 'customer', 'groupBy', 'filterGroupBy[d]', 'filterGroupBy[x]', 'limit', 'cursor', 'type'), fc.string({ maxLength: 12 })),
        fc.oneof(timeLike.map(String), fc.constantFrom('DAY', 'HOUR', 'MINUTE', 'MONTH', 'UTC', 'Europe/Berlin', 'Asia/Kathmandu', 'Mars/Base', 'd', 'subject', '0', '-1', '1001'), nasty, fc.string({ maxLength: 30 })),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(param, { maxLength: 6 }), fc.constantFrom('/v1/meters/fz/query', '/v1/events', '/v1/customers', '/v1/meters/nope/query'), async (params, path) => {
          casesRun++;
          // Lone surrogates cannot be percent-encoded as UTF-8; the raw invalid sequences are sent below.
          const enc = (x: string) => encodeURIComponent(x.toWellFormed());
          const qs = params.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&');
          const res = await fetch(`${t.url}${path}?${qs}`, { headers: { authorization: `Bearer ${ten.read}` } });
          await assertProblemOrOk(res, await res.text());
        }),
        { numRuns: RUNS },
      );
    });

    it('malformed percent-encoding in URLs answers 4xx', async () => {
      for (const q of ['from=%ff', 'from=%E0%A4%A', 'subject=%ED%A0%80', '%=1', 'groupBy=%00', 'subject=%00', 'type=a%00', 'customer=%00', 'filterGroupBy[d]=%00', 'cursor=%00']) {
        casesRun++;
        for (const path of ['/v1/meters/fz/query', '/v1/events', '/v1/customers', '/v1/meters/%ff', '/v1/customers/%ED%A0%80', '/v1/customers/%00', '/v1/meters/%00', '/v1/meters/a%00b/query', '/v1/api-keys/%00']) {
          const res = await fetch(`${t.url}${path}?${q}`, { headers: { authorization: `Bearer ${ten.read}` } });
          await assertProblemOrOk(res, await res.text());
        }
      }
    });

    it('meters, customers and keys: random bodies never 5xx', { timeout: 600_000 }, async () => {
      const target = fc.constantFrom(['POST', '/v1/meters'], ['POST', '/v1/customers'], ['PATCH', '/v1/customers/c'], ['POST', '/v1/api-keys']);
      const body = fc.oneof(
        fc.record({ slug: scalar, eventType: scalar, aggregation: fc.oneof(fc.constantFrom('SUM', 'COUNT', 'MAX'), scalar), valueProperty: fc.oneof(fc.constantFrom('$.v', '$["a"]', '$.a[0]', '$..x', '$[?(@.x)]', '$'), scalar), groupBy: fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.constant('$.d'), scalar)) }, { requiredKeys: [] }),
        fc.record({ key: scalar, name: scalar, subjects: fc.oneof(fc.array(scalar, { maxLength: 4 }), scalar), metadata: fc.oneof(fc.dictionary(fc.string({ maxLength: 8 }), scalar), scalar) }, { requiredKeys: [] }),
        fc.record({ name: scalar, scopes: fc.oneof(fc.array(fc.oneof(fc.constantFrom('read', 'admin'), scalar), { maxLength: 4 }), scalar) }, { requiredKeys: [] }),
        fc.jsonValue({ maxDepth: 3 }),
      );
      await fc.assert(
        fc.asyncProperty(target, body, async ([method, path], b) => {
          casesRun++;
          const res = await fetch(`${t.url}${path}`, { method, headers: { authorization: `Bearer ${ten.admin}`, 'content-type': 'application/json' }, body: JSON.stringify(b) });
          await assertProblemOrOk(res, await res.text());
        }),
        { numRuns: RUNS },
      );
      assert.equal((await fetch(`${t.url}/healthz`)).status, 200);
    });

    it('random headers and methods on every route never 5xx', { timeout: 600_000 }, async () => {
      const routes = ['/v1/events', '/v1/meters', '/v1/meters/fz', '/v1/meters/fz/query', '/v1/customers', '/v1/customers/c', '/v1/api-keys', '/v1/api-keys/x', '/openapi.json', '/readyz'];
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'),
          fc.constantFrom(...routes),
          fc.oneof(fc.constant(`Bearer ${ten.admin}`), fc.constant('Basic Zm9vOmJhcg=='), fc.string({ maxLength: 80 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')), fc.constant(`Bearer ${ten.admin}x`), fc.constant('Bearer ' + 'a'.repeat(2000))),
          async (method, path, authorization) => {
            casesRun++;
            const res = await fetch(`${t.url}${path}`, { method, headers: { authorization, 'content-type': 'application/json' }, body: method === 'GET' || method === 'HEAD' ? undefined : '{}' });
            const text = await res.text();
            assert.ok(res.status < 500, `${method} ${path}: ${res.status} ${text.slice(0, 200)}`);
          },
        ),
        { numRuns: RUNS },
      );
    });
  });
}

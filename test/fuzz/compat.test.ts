// Property-based tests (fast-check) against every seed-API endpoint (Kill Bill, Kinde, Frontier,
// Planship, ChartHop) and the native /v1/compat/* configuration routes: random and mutated bodies
// (each starts from a valid request), random headers, query strings and path segments. Whatever a
// client sends: no 5xx, the server stays up, every error has the error shape its API documents, and
// a rejected request stores nothing. FUZZ_RUNS scales the number of cases per property.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { engines, startApp, call, type TestApp, type TestTenant } from '../support/harness.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 150);
let casesRun = 0;
/** Cases answered 2xx: the mutated bodies also reach the success paths. */
let accepted = 0;

// ---- values -------------------------------------------------------------------------------------

/** A long string, printed short in counterexamples and written out in full by JSON.stringify. */
class Big {
  constructor(readonly n: number, readonly ch: string) {}
  toJSON() {
    return this.ch.repeat(this.n);
  }
  [fc.toStringMethod]() {
    return `Big(${this.n}, ${JSON.stringify(this.ch)})`;
  }
}

/** A literal JSON token written into the body as is (numbers JSON.stringify cannot write). */
class Raw {
  constructor(readonly text: string) {}
  [fc.toStringMethod]() {
    return `Raw(${this.text})`;
  }
}

const nasty = fc.constantFrom(
  "'; DROP TABLE events; --", '" OR 1=1 --', "1' OR '1'='1", '{{7*7}}', '${7*7}', '<script>alert(1)</script>', '../../etc/passwd', '%00', '%ff',
  '\u0000', 'a\u0000b', '\ud800', 'x\udfffy', '\u202e', '\u200b', '\ufeff', '\uffff', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢', '👩‍👩‍👧‍👦', 'é', 'é', '\r\n', '\t',
  'NaN', 'Infinity', '-Infinity', '-0', '1e400', '-1e400', '1e-400', '1E2', '0x10', '0b1', '1_000', '+1', '.5', '5.', '1,5', '١٢٣',
  '99999999999999999999999999999', '-99999999999999999999', '9007199254740993', '-1', '0', ' 1 ', ' ', '', 'null', 'true', '[]', '{}',
  '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty',
);
const rawNumber = fc.constantFrom('1e400', '-1e400', '1e-400', '1E2', '-0', '1.0', '0.1e-7', '9007199254740993', '123456789012345678901234567890', '1.00000000000000000000001', '-0.0', '1e20', '99999999999999999999.5').map((s) => new Raw(s));
const number = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -1, -0, 1.5, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 2, -Number.MAX_VALUE, Number.MAX_VALUE, 5e-324, 1e21, 2 ** 63), rawNumber);
const big = fc.tuple(fc.constantFrom(1024, 70_000, 300_000, 1_100_000), fc.constantFrom('x', 'é', '𝔘', '\u0000', '9')).map(([n, ch]) => new Big(n, ch));
const dateText = fc.oneof(
  fc.date({ min: new Date(-1e14), max: new Date(1e14), noInvalidDate: true }).map((d) => d.toISOString()),
  fc.date({ min: new Date('1900-01-01'), max: new Date('2200-01-01'), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10)),
  fc.constantFrom(
    '2026-02-30', '2026-02-29', '2024-02-29', '2026-13-01', '2026-00-10', '2026-01-32', '2026-01-01T25:00:00Z', '2026-01-01T23:60:00Z', '2026-01-01T23:59:60Z',
    '2026-01-01T00:00:00+99:99', '2026-01-01T00:00:00+14:00', '2026-01-01T00:00:00-12', '2026-01-01T00:00:00+11', '2026-01-01T00:00', '2026-01-01T00:00:00.123456789',
    '0000-01-01T00:00:00Z', '9999-12-31T23:59:59Z', '+275760-09-13T00:00:00Z', '-000001-01-01T00:00:00Z', '2026-03-08T02:30:00[America/New_York]',
    '2026-03-29T02:30:00 Europe/Berlin', '2026-03-01T00:00:00 Mars/Base', '2026-W10-1', '2026-060', '20260301', 'now', 'today', 'yesterday', '1e10', '',
  ),
  fc.integer({ min: -3, max: 3 }).map((d) => new Date(Date.now() + d * 3_600_000).toISOString()),
);
const timeZone = fc.constantFrom('UTC', 'Europe/Berlin', 'Asia/Kathmandu', 'America/St_Johns', 'Etc/GMT+14', 'Etc/GMT-14', 'Mars/Base', 'UTC+25', '+05:30', 'utc', '', 'Europe/../etc', 'x'.repeat(70));
const scalar = fc.oneof(nasty, fc.string({ maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 10 }), fc.string({ unit: 'binary', maxLength: 10 }), number, fc.boolean(), fc.constant(null), dateText);
const value: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 10, arbitrary: scalar },
  { weight: 2, arbitrary: fc.array(scalar, { maxLength: 4 }) },
  { weight: 2, arbitrary: fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), nasty), scalar, { maxKeys: 4 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: big },
  { weight: 1, arbitrary: fc.integer({ min: 20, max: 2000 }).map((n) => JSON.parse('['.repeat(n) + ']'.repeat(n)) as unknown) },
);

// ---- bodies -------------------------------------------------------------------------------------

type Path = Array<string | number>;

function pathsOf(v: unknown, at: Path = [], out: Path[] = []): Path[] {
  out.push(at);
  if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) pathsOf(x, [...at, Array.isArray(v) ? Number(k) : k], out);
  return out;
}

type Mutation = { kind: 'set'; value: unknown } | { kind: 'delete' } | { kind: 'add'; key: string; value: unknown };

function mutate(root: unknown, path: Path, m: Mutation): unknown {
  if (path.length === 0) return m.kind === 'set' ? m.value : m.kind === 'add' && root && typeof root === 'object' && !Array.isArray(root) ? { ...root, [m.key]: m.value } : root;
  let parent = root as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const last = path[path.length - 1];
  if (m.kind === 'set') parent[last] = m.value;
  else if (m.kind === 'delete') Array.isArray(parent) ? parent.splice(Number(last), 1) : delete parent[last];
  else {
    const target = parent[last];
    if (target && typeof target === 'object' && !Array.isArray(target)) (target as Record<string, unknown>)[m.key] = m.value;
    else if (Array.isArray(target)) target.push(m.value);
  }
  return root;
}

/** JSON text with Raw tokens written literally. */
function serialise(v: unknown): string {
  const raws: string[] = [];
  const text = JSON.stringify(v, (_k, x) => (x instanceof Raw ? `\u0001RAW${raws.push(x.text) - 1}\u0001` : x)) ?? '';
  return text.replace(/"\\u0001RAW(\d+)\\u0001"/g, (_, i) => raws[Number(i)]);
}

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 6, arbitrary: value.map((value) => ({ kind: 'set' as const, value })) },
  { weight: 2, arbitrary: fc.constant({ kind: 'delete' as const }) },
  { weight: 1, arbitrary: fc.tuple(fc.oneof(nasty, fc.string({ maxLength: 10 })), value).map(([key, value]) => ({ kind: 'add' as const, key, value })) },
);

const junk = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.constantFrom('', '{', '[', '[{}', '{"a":}', 'null', 'true', '0', '"x"', '[]', '\uFEFF{}', '{"a":1}{"b":2}', "{'a':1}", '{"a":NaN}', '{"a":Infinity}', '{"a":1e999}', '{"__proto__":{"polluted":1}}', '{"constructor":{"prototype":{"x":1}}}'),
  fc.integer({ min: 10, max: 5000 }).map((n) => '{"a":'.repeat(n) + '1' + '}'.repeat(n)),
);

/** A body that starts from a valid one: mostly mutated a little, sometimes replaced by anything. */
function bodyFrom(valid: fc.Arbitrary<unknown>): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: valid.map(serialise) },
    {
      weight: 10,
      arbitrary: valid.chain((v) => {
        const paths = pathsOf(v);
        return fc.array(fc.tuple(fc.constantFrom(...paths), mutation), { minLength: 1, maxLength: 3 }).map((ms) => {
          let root = JSON.parse(JSON.stringify(v)) as unknown;
          for (const [p, m] of ms) {
            try {
              root = mutate(root, p, m);
            } catch {
              // an earlier mutation removed the path
            }
          }
          return serialise(root);
        });
      }),
    },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((x) => JSON.stringify(x)) },
    { weight: 1, arbitrary: junk },
  );
}

const contentType = fc.oneof(
  { weight: 8, arbitrary: fc.constant('application/json') },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8', 'APPLICATION/JSON', 'application/json; charset=latin1', 'application/cloudevents+json', 'text/plain',
      'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'application/octet-stream', '', 'application/jsonx', 'json', '*/*',
    ),
  },
);

// Long values stay below Node's 16 KB limit on a request head (URL and headers): above it Node's HTTP
// parser answers 431 itself, before meterd sees the request.

/** Header text fetch accepts: visible ASCII, spaces and Latin-1. */
const headerText = (max: number) => fc.string({ maxLength: max }).map((s) => s.replace(/[^\x20-\x7e\xa0-\xff]/g, '').trim());
const b64 = (s: string) => Buffer.from(s).toString('base64');
const basic = (user: string, password: string) => `Basic ${b64(`${user}:${password}`)}`;

/** A path segment: the valid one, or something else, percent-encoded or raw. */
function segment(valid: string): fc.Arbitrary<string> {
  const enc = (x: string) => encodeURIComponent(x.toWellFormed());
  return fc.oneof(
    { weight: 6, arbitrary: fc.constant(encodeURIComponent(valid)) },
    // Not "", "." or "..": the client's URL parser would drop or resolve them, and the request would not reach the route.
    { weight: 2, arbitrary: fc.oneof(nasty, fc.string({ minLength: 1, maxLength: 30 }), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 10 }), fc.uuid()).filter((x) => !['', '.', '..'].includes(x)).map(enc) },
    { weight: 1, arbitrary: fc.constantFrom('%ff', '%E0%A4%A', '%ED%A0%80', '%00', '%2F', '%2e%2e%2f', '...', '%20', 'a%0Ab', 'x'.repeat(100), 'x'.repeat(101), 'y'.repeat(300), `${valid}%00`, `${encodeURIComponent(valid)}.json`, encodeURIComponent(valid).toUpperCase()) },
  );
}

/** A query string: the valid parameters, some mutated, plus random ones. */
function query(valid: Record<string, string>, names: string[]): fc.Arbitrary<string> {
  const enc = (x: string) => encodeURIComponent(x.toWellFormed());
  const val = fc.oneof(dateText, nasty, fc.string({ maxLength: 30 }), fc.constant('x'.repeat(2000))).map((x) => String(x));
  const extra = fc.tuple(fc.oneof(fc.constantFrom(...names), fc.string({ maxLength: 10 })), val).map(([k, v]) => `${enc(k)}=${enc(v)}`);
  const rawBad = fc.constantFrom('%ff=1', 'a=%E0%A4%A', 'a=%ED%A0%80', '%=1', '&&&', '=', 'a', `${names[0] ?? 'a'}=%00`, `${names[0] ?? 'a'}[]=1`, `${names[0] ?? 'a'}[x]=1`);
  return fc.tuple(
    fc.subarray(Object.keys(valid)),
    fc.dictionary(fc.constantFrom(...Object.keys(valid), ...names), val, { maxKeys: 2 }),
    fc.array(fc.oneof({ weight: 4, arbitrary: extra }, { weight: 1, arbitrary: rawBad }), { maxLength: 3 }),
  ).map(([keep, changed, extras]) => {
    const parts = keep.map((k) => `${enc(k)}=${enc(changed[k] ?? valid[k])}`);
    for (const [k, v] of Object.entries(changed)) if (!keep.includes(k)) parts.push(`${enc(k)}=${enc(v)}`);
    return [...parts, ...extras].join('&');
  });
}

// ---- error shapes -------------------------------------------------------------------------------

type Api = 'killbill' | 'kinde' | 'oauth' | 'frontier' | 'planship' | 'charthop' | 'native';
const GRPC_HTTP: Record<number, number> = { 3: 400, 5: 404, 6: 409, 7: 403, 8: 429, 13: 500, 14: 503, 16: 401 };

function parseJson(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Answers of the router itself, before any seed-API scope sees the request: a URL whose
 * percent-encoding does not decode is answered by `frameworkErrors` in src/http/app.ts (400) in
 * problem+json (documented only for ChartHop). Outside src/compat, so tolerated here and counted.
 * (A path parameter longer than Fastify's maxParamLength goes to the not-found handler, which
 * answers in the seed API's own shape.)
 */
let routerAnswers = 0;
const isRouterAnswer = (status: number, type: string, text: string, _path: string) =>
  /^application\/problem\+json/.test(type) && status === 400 && /"detail":"the URL is malformed/.test(text);

/** Throws unless an error answer has the shape its API documents. */
function assertErrorShape(api: Api, status: number, type: string, text: string, what: string, path: string) {
  const at = `${what}: ${status} ${type} ${text.slice(0, 300)}`;
  if (api !== 'native' && isRouterAnswer(status, type, text, path)) {
    routerAnswers++;
    return;
  }
  if (api === 'killbill' && text === '') {
    assert.ok([400, 401, 403].includes(status), `Kill Bill answers an empty body only for 400/401/403: ${at}`);
    return;
  }
  if (api === 'native') {
    assert.match(type, /^application\/problem\+json/, at);
    const p = parseJson(text);
    assert.ok(p && p.status === status && typeof p.detail === 'string' && typeof p.title === 'string', `problem+json: ${at}`);
    return;
  }
  assert.match(type, /^application\/json/, at);
  const b = parseJson(text);
  assert.ok(b && typeof b === 'object' && !Array.isArray(b), `JSON object: ${at}`);
  switch (api) {
    case 'killbill':
      assert.ok(typeof b.className === 'string' && (b.code === null || Number.isInteger(b.code)) && typeof b.message === 'string'
        && (b.causeClassName === null || typeof b.causeClassName === 'string') && (b.causeMessage === null || typeof b.causeMessage === 'string') && Array.isArray(b.stackTrace), `Kill Bill BillingExceptionJson: ${at}`);
      break;
    case 'kinde':
      assert.ok(Array.isArray(b.errors) && b.errors.length > 0 && b.errors.every((e: any) => typeof e?.code === 'string' && typeof e?.message === 'string') && Object.keys(b).length === 1, `Kinde {errors:[{code,message}]}: ${at}`);
      assert.ok([400, 403, 409, 413, 415, 429].includes(status), `Kinde status: ${at}`);
      break;
    case 'oauth':
      assert.ok(typeof b.error === 'string' && /^[\x20-\x21\x23-\x5b\x5d-\x7e]+$/.test(b.error) && (b.error_description === undefined || typeof b.error_description === 'string'), `RFC 6749 error: ${at}`);
      assert.ok([400, 401, 429].includes(status), `RFC 6749 status (400/401, 429 when throttled): ${at}`);
      break;
    case 'frontier':
      assert.ok(Number.isInteger(b.code) && typeof b.message === 'string' && Array.isArray(b.details), `Frontier {code,message,details}: ${at}`);
      assert.equal(GRPC_HTTP[b.code], status, `Frontier gRPC code ${b.code} matches HTTP status: ${at}`);
      break;
    case 'planship':
      assert.ok(typeof b.detail === 'string' || (Array.isArray(b.detail) && b.detail.length > 0 && b.detail.every((d: any) => Array.isArray(d?.loc) && typeof d?.msg === 'string' && typeof d?.type === 'string')), `Planship {"detail":…}: ${at}`);
      if (status === 422) assert.ok(Array.isArray(b.detail), `Planship 422 lists issues: ${at}`);
      break;
    case 'charthop':
      assert.ok(b.status === status && typeof b.message === 'string', `ChartHop {status,message}: ${at}`);
      break;
  }
}

// ---- the tests ----------------------------------------------------------------------------------

for (const engine of engines()) {
  describe(`fuzzing the seed APIs [${engine.name}]`, () => {
    let t: TestApp;
    let ten: TestTenant;
    const ids = {
      subscriptionId: randomUUID(), endedSubscription: randomUUID(), unitType: 'api-calls', agreementId: `agreement_${randomUUID().replace(/-/g, '')}`,
      frontierOrg: randomUUID(), billingId: randomUUID(), poorBillingId: randomUUID(), product: 'clicker', lever: 'clicks', rollingLever: 'recent',
      meteringId: 'click', customerId: `pc-${randomUUID().slice(0, 8)}`, orgId: `org${randomUUID().slice(0, 8)}`, orgSlug: 'acme',
    };
    let subscriptionOfCustomer = '';
    const kindeTokens: string[] = [];
    let planshipToken = '';

    before(async () => {
      casesRun = 0;
      accepted = 0;
      t = await startApp(engine, { MAX_BODY_BYTES: 2 * 1024 * 1024 });
      ten = await t.tenant();
      const admin = async (path: string, body: unknown) => {
        const r = await call(t.url, 'POST', path, { key: ten.admin, body });
        assert.ok(r.status < 300, `${path}: ${r.status} ${r.text}`);
        return r.body;
      };
      await admin('/v1/compat/killbill/unit-types', { unitType: ids.unitType });
      await admin('/v1/compat/killbill/unit-types', { unitType: 'storage-gb' });
      await admin('/v1/compat/killbill/subscriptions', { subscriptionId: ids.subscriptionId, accountId: 'acc' });
      await admin('/v1/compat/killbill/subscriptions', { subscriptionId: ids.endedSubscription, accountId: 'acc', endDate: '2025-01-01' });
      await admin('/v1/compat/kinde/features', { code: 'api_calls' });
      await admin('/v1/compat/kinde/features', { code: 'seats' });
      await admin('/v1/compat/kinde/agreements', { agreementId: ids.agreementId, cycleInterval: 'month', cycleAnchor: '2026-01-15T00:00:00Z' });
      for (let i = 0; i < 6; i++) {
        const c = await admin('/v1/compat/kinde/clients', { name: `fuzz-${i}` });
        const kt = await fetch(`${t.url}/oauth2/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `grant_type=client_credentials&client_id=${c.clientId}&client_secret=${c.clientSecret}` });
        assert.equal(kt.status, 200);
        kindeTokens.push(((await kt.json()) as any).access_token);
      }
      await admin('/v1/compat/frontier/billing-accounts', { orgId: ids.frontierOrg, billingId: ids.billingId });
      await admin(`/v1/compat/frontier/billing-accounts/${ids.billingId}/topups`, { id: 't1', amount: '1000000000' });
      await admin('/v1/compat/frontier/billing-accounts', { orgId: `${ids.frontierOrg}-poor`, billingId: ids.poorBillingId });
      await admin(`/v1/compat/frontier/billing-accounts/${ids.poorBillingId}/topups`, { id: 't1', amount: '3' });
      await admin('/v1/compat/planship/products', { slug: ids.product });
      await admin(`/v1/compat/planship/products/${ids.product}/levers`, { slug: ids.lever, meteringIds: [ids.meteringId, 'other'], formula: 'per_bucket' });
      await admin(`/v1/compat/planship/products/${ids.product}/levers`, { slug: ids.rollingLever, meteringIds: [ids.meteringId], formula: 'unique_buckets', period: 'rolling', windowSeconds: 3600 });
      const customer = await admin('/v1/compat/planship/customers', { customerId: ids.customerId, subscriptions: [{ product: ids.product, renew: 'month', timeZone: 'Asia/Kathmandu' }] });
      subscriptionOfCustomer = customer.subscriptions[0].subscriptionId;
      const creds = await admin('/v1/compat/planship/credentials', { name: 'fuzz' });
      const pt = await fetch(`${t.url}/api/v1/auth/token`, { method: 'POST', headers: { authorization: basic(creds.clientId, creds.clientSecret) } });
      assert.equal(pt.status, 200);
      planshipToken = ((await pt.json()) as any).access_token;
      await admin('/v1/compat/charthop/orgs', { orgId: ids.orgId, slug: ids.orgSlug });
    });
    after(async () => {
      process.stdout.write(`# fuzz-compat[${engine.name}]: ${casesRun} cases run (${accepted} accepted)\n`);
      if (routerAnswers > 0) process.stdout.write(`# fuzz-compat[${engine.name}]: ${routerAnswers} malformed URLs answered by the router in problem+json, not in the seed API's shape (src/http/app.ts frameworkErrors)\n`);
      routerAnswers = 0;
      await t?.close();
    });

    /** What the tenant has stored: its events (counted), meters, customers and API keys. */
    async function snapshot(): Promise<{ events: number; rest: string }> {
      let events = 0;
      let cursor: string | null = null;
      do {
        const r: any = await (await fetch(`${t.url}/v1/events?limit=1000${cursor ? `&cursor=${cursor}` : ''}`, { headers: { authorization: `Bearer ${ten.read}` } })).json();
        events += r.data.length;
        cursor = r.nextCursor;
      } while (cursor);
      const store = t.services.store;
      const meters = (await store.listMeters(ten.id)).meters.map((m) => `${m.slug}:${m.eventType}:${m.description}`).sort();
      const customers = await store.listCustomers(ten.id, undefined, 100_000);
      const keys = (await store.listApiKeys(ten.id)).length;
      return { events, rest: JSON.stringify({ meters, customers, keys }) };
    }

    interface Req {
      method: string;
      path: string;
      headers: Record<string, string>;
      body?: string | Uint8Array;
    }

    /**
     * Sends one request and checks it: no 5xx, the API's error shape, and when refused (4xx) nothing
     * stored. `mayStoreOnError` names the documented partial writes of a refused request (Frontier batches).
     */
    async function check(api: Api, req: Req, opts: { mayStoreOnError?: (status: number, body: any) => number } = {}) {
      casesRun++;
      const before = await snapshot();
      let res: Response;
      try {
        res = await fetch(t.url + req.path, { method: req.method, headers: req.headers, body: req.body });
      } catch (e) {
        throw new Error(`${req.method} ${req.path.slice(0, 200)}: the request failed (${(e as Error).message}; cause ${String((e as any).cause)})`);
      }
      const text = await res.text();
      const sent = typeof req.body === 'string' ? req.body.slice(0, 300) : req.body ? `<${req.body.length} bytes>` : '';
      const what = `${req.method} ${req.path.slice(0, 300)} ${JSON.stringify(req.headers).slice(0, 300)} ${sent}`;
      assert.ok(res.status < 500, `5xx: ${what} -> ${res.status} ${text.slice(0, 300)}`);
      if (res.status < 300) accepted++;
      if (res.status >= 400) {
        assertErrorShape(api, res.status, res.headers.get('content-type') ?? '', text, what, req.path);
        const after = await snapshot();
        const allowed = opts.mayStoreOnError?.(res.status, parseJson(text)) ?? 0;
        assert.ok(after.events >= before.events && after.events - before.events <= allowed, `a refused request stored ${after.events - before.events} event(s) (allowed ${allowed}): ${what} -> ${res.status} ${text.slice(0, 300)}`);
        assert.equal(after.rest, before.rest, `a refused request changed meters, customers or keys: ${what} -> ${res.status} ${text.slice(0, 300)}`);
      }
      return { status: res.status, text };
    }

    const alive = async () => assert.equal((await fetch(`${t.url}/healthz`)).status, 200, 'the server is up');
    const prop = <T>(arb: fc.Arbitrary<T>, run: (x: T) => Promise<unknown>) => fc.assert(fc.asyncProperty(arb, async (x) => void (await run(x))), { numRuns: RUNS, includeErrorInReport: true });

    // ---- Kill Bill ----

    const kbHeaders = (key: string) => ({ authorization: basic('fuzz-job', key), 'x-killbill-apikey': ten.id, 'x-killbill-apisecret': key, 'x-killbill-createdby': 'fuzz' });
    const kbAuth = () => fc.oneof(
      { weight: 8, arbitrary: fc.constant(kbHeaders(ten.admin)) },
      {
        weight: 3,
        arbitrary: fc.record({
          authorization: fc.oneof(fc.constant(basic('u', ten.ingest)), fc.constant(basic('u', ten.read)), headerText(60).map((s) => `Basic ${b64(s)}`), headerText(80), fc.constant(`Basic ${'A'.repeat(1100)}`), fc.constant('Basic !!!'), fc.constant(basic('', ''))),
          'x-killbill-apikey': fc.oneof(fc.constant(ten.id), headerText(30)),
          'x-killbill-apisecret': fc.oneof(fc.constant(ten.admin), fc.constant(ten.ingest), headerText(60)),
          'x-killbill-createdby': fc.oneof(fc.constant('fuzz'), headerText(300)),
          'x-killbill-reason': headerText(100),
          'x-killbill-comment': fc.oneof(headerText(100), fc.constant('x'.repeat(3000))),
        }, { requiredKeys: [] }).map((h) => Object.fromEntries(Object.entries(h).filter(([, v]) => v !== ''))),
      },
    );

    it('Kill Bill POST /1.0/kb/usages', { timeout: 600_000 }, async () => {
      const today = new Date().toISOString().slice(0, 10);
      const valid = fc.record({
        subscriptionId: fc.constantFrom(ids.subscriptionId, ids.endedSubscription),
        trackingId: fc.oneof(fc.uuid(), fc.constant('reused-tracking-id'), fc.constant(null), fc.constant('')),
        unitUsageRecords: fc.array(fc.record({
          unitType: fc.constantFrom(ids.unitType, 'storage-gb'),
          usageRecords: fc.array(fc.record({ recordDate: fc.constantFrom(today, `${today}T10:00:00Z`, `${today}T10:00`), amount: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.constantFrom('1.5', '0.000001', 12.25)) }), { minLength: 1, maxLength: 3 }),
        }), { minLength: 1, maxLength: 2 }),
      });
      await prop(fc.tuple(bodyFrom(valid), contentType, kbAuth()), async ([body, type, auth]) => {
        await check('killbill', { method: 'POST', path: '/1.0/kb/usages', headers: { ...auth, ...(type ? { 'content-type': type } : {}) }, body });
      });
      await alive();
    });

    it('Kill Bill GET /1.0/kb/usages/{subscriptionId}[/{unitType}]', { timeout: 600_000 }, async () => {
      const path = fc.tuple(segment(ids.subscriptionId), fc.option(segment(ids.unitType))).map(([s, u]) => `/1.0/kb/usages/${s}${u === null ? '' : `/${u}`}`);
      const q = query({ startDate: '2026-01-01', endDate: '2027-01-01' }, ['startDate', 'endDate', 'pluginProperty']);
      await prop(fc.tuple(path, q, kbAuth()), async ([p, qs, auth]) => {
        await check('killbill', { method: 'GET', path: `${p}?${qs}`, headers: auth });
      });
      await alive();
    });

    // ---- Kinde ----

    it('Kinde POST /oauth2/token', { timeout: 600_000 }, async () => {
      const c = await call(t.url, 'POST', '/v1/compat/kinde/clients', { key: ten.admin, body: { name: 'oauth-fuzz' } });
      const valid = fc.record({ grant_type: fc.constant('client_credentials'), client_id: fc.constant(c.body.clientId), client_secret: fc.constant(c.body.clientSecret), scope: fc.constantFrom('create:meter_usage', '', 'read:users'), audience: fc.constantFrom('https://meterd.example/api', 'http://x', 'x'.repeat(600)) }, { requiredKeys: ['grant_type', 'client_id', 'client_secret'] });
      const form = valid.chain((v) => fc.tuple(
        fc.subarray(Object.keys(v)),
        fc.dictionary(fc.constantFrom('grant_type', 'client_id', 'client_secret', 'scope', 'audience', 'x'), fc.oneof(nasty, fc.string({ maxLength: 20 })), { maxKeys: 2 }),
      ).map(([keep, changed]) => {
        const p = new URLSearchParams();
        for (const k of keep) p.set(k, (v as Record<string, string>)[k]);
        for (const [k, x] of Object.entries(changed)) p.append(k, x.toWellFormed());
        return p.toString();
      }));
      const req = fc.oneof(
        fc.tuple(form, fc.constantFrom('application/x-www-form-urlencoded', 'application/x-www-form-urlencoded; charset=utf-8', 'text/plain', '')),
        fc.tuple(bodyFrom(valid), contentType),
        fc.tuple(fc.constantFrom('%ff=1', 'grant_type=%E0%A4%A', 'a=%ED%A0%80', '&&=&', 'grant_type=client_credentials&grant_type=x', 'client_id[]=1'), fc.constant('application/x-www-form-urlencoded')),
      );
      const auth = fc.oneof(fc.constant(undefined), fc.constant(basic(c.body.clientId, c.body.clientSecret)), headerText(60).map((s) => `Basic ${b64(s)}`), fc.constant(`Basic ${b64('%zz:%')}`), headerText(40));
      await prop(fc.tuple(req, auth), async ([[body, type], authorization]) => {
        const headers: Record<string, string> = {};
        if (type) headers['content-type'] = type;
        if (authorization) headers.authorization = authorization;
        const r = await check('oauth', { method: 'POST', path: '/oauth2/token', headers, body });
        if (r.status === 200) assert.equal(typeof JSON.parse(r.text).access_token, 'string');
      });
      await alive();
    });

    it('Kinde POST /api/v1/billing/meter_usage', { timeout: 600_000 }, async () => {
      const valid = fc.record({
        customer_agreement_id: fc.constant(ids.agreementId),
        billing_feature_code: fc.constantFrom('api_calls', 'seats'),
        meter_value: fc.oneof(fc.constantFrom('1', '42.5', '0', '100'), fc.integer({ min: 0, max: 100 })),
        meter_type_code: fc.constantFrom('delta', 'absolute'),
        meter_usage_timestamp: fc.constantFrom(new Date().toISOString(), new Date(Date.now() - 86_400_000 * 60).toISOString(), '2026-03-14T10:00:00+11'),
      }, { requiredKeys: ['customer_agreement_id', 'billing_feature_code', 'meter_value'] });
      let i = 0;
      const auth = fc.oneof(
        { weight: 8, arbitrary: fc.constant(undefined) },
        { weight: 2, arbitrary: fc.oneof(fc.constant(`Bearer ${ten.ingest}`), fc.constant('Bearer eyJhbGciOiJIUzI1NiJ9.e30.x'), fc.constant('Bearer eyJhbGciOiJub25lIiwia2lkIjoiYWJjIn0.e30.'), headerText(80), fc.constant(`Bearer ${'a'.repeat(3000)}`)) },
      );
      const idem = fc.option(fc.oneof(fc.uuid(), fc.constant('same-key'), headerText(250)), { freq: 4 });
      await prop(fc.tuple(bodyFrom(valid), contentType, auth, idem), async ([body, type, authorization, key]) => {
        const headers: Record<string, string> = { authorization: authorization ?? `Bearer ${kindeTokens[i++ % kindeTokens.length]}` };
        if (type) headers['content-type'] = type;
        if (key !== null) headers['idempotency-key'] = key;
        const r = await check('kinde', { method: 'POST', path: '/api/v1/billing/meter_usage', headers, body });
        if (r.status === 200) assert.deepEqual(JSON.parse(r.text), { message: 'Success', code: 'OK' });
      });
      await alive();
    });

    // ---- Frontier ----

    const frontierUsage = fc.record({
      id: fc.oneof({ weight: 6, arbitrary: fc.uuid() }, { weight: 1, arbitrary: fc.constant('0b7d5a4e-8f1c-4c7e-9d2a-2f6b1e3c4d5a') }),
      type: fc.constantFrom('credit', 'feature', ''),
      amount: fc.oneof(fc.constantFrom('1', '25', '0.25'), fc.integer({ min: 1, max: 10 })),
      source: fc.constantFrom('inference-api', 'API', ''),
      description: fc.constant('fuzz'),
      user_id: fc.constant('u1'),
      metadata: fc.constantFrom({ a: 1 }, null),
    }, { requiredKeys: ['id', 'amount'] });
    /** Frontier applies a batch item by item: a refused batch (insufficient credits, already applied) may have stored the others. */
    const frontierPartial = (usages: number) => (status: number, b: any) =>
      (status === 400 && b?.message === 'failed to deduct usage: insufficient credits') || status === 409 ? usages : 0;
    const countUsages = (body: string) => {
      const u = parseJson(body)?.usages;
      return Array.isArray(u) ? u.length : 0;
    };
    const frontierAuth = fc.oneof(
      { weight: 8, arbitrary: fc.constant(`Bearer ${'INGEST'}`) },
      { weight: 3, arbitrary: fc.oneof(fc.constant('READ'), fc.constant('BASIC'), fc.constant('BASICKEY'), headerText(80), fc.constant(`Basic ${b64('a:b')}`), fc.constant(`Bearer ${'k'.repeat(600)}`), fc.constant('')) },
    );
    const frontierHeader = (a: string) => {
      if (a === 'Bearer INGEST') return `Bearer ${ten.ingest}`;
      if (a === 'READ') return `Bearer ${ten.read}`;
      const [, id, secret] = /^mk_([^_]+)_(.+)$/.exec(ten.ingest)!;
      if (a === 'BASIC') return basic(id, secret);
      if (a === 'BASICKEY') return basic('anyone', ten.ingest);
      return a;
    };

    it('Frontier POST /v1beta1/organizations/{org_id}/billing/{billing_id}/usages', { timeout: 600_000 }, async () => {
      const valid = fc.record({ usages: fc.array(frontierUsage, { minLength: 1, maxLength: 3 }) }, { requiredKeys: ['usages'] });
      const path = fc.oneof(
        { weight: 5, arbitrary: fc.constant([ids.frontierOrg, ids.billingId]) },
        { weight: 1, arbitrary: fc.constant([`${ids.frontierOrg}-poor`, ids.poorBillingId]) },
        { weight: 2, arbitrary: fc.tuple(fc.constantFrom(ids.frontierOrg, `${ids.frontierOrg}-poor`), fc.constantFrom(ids.billingId, ids.poorBillingId)) },
      ).chain(([o, b]) => fc.tuple(segment(o), segment(b))).map(([o, b]) => `/v1beta1/organizations/${o}/billing/${b}/usages`);
      await prop(fc.tuple(path, bodyFrom(valid), contentType, frontierAuth), async ([p, body, type, a]) => {
        const headers: Record<string, string> = {};
        const authorization = frontierHeader(a);
        if (authorization) headers.authorization = authorization;
        if (type) headers['content-type'] = type;
        const r = await check('frontier', { method: 'POST', path: p, headers, body }, { mayStoreOnError: frontierPartial(countUsages(body)) });
        if (r.status === 200) assert.deepEqual(JSON.parse(r.text), {});
      });
      await alive();
    });

    it('Frontier POST /v1beta1/organizations/billing/usages (body only)', { timeout: 600_000 }, async () => {
      const valid = fc.record({
        org_id: fc.constantFrom(ids.frontierOrg, `${ids.frontierOrg}-poor`),
        billing_id: fc.constantFrom(ids.billingId, ids.poorBillingId, ids.billingId.toUpperCase()),
        orgId: fc.constant(ids.frontierOrg),
        usages: fc.array(frontierUsage, { minLength: 1, maxLength: 3 }),
      }, { requiredKeys: ['usages'] });
      await prop(fc.tuple(bodyFrom(valid), contentType, frontierAuth), async ([body, type, a]) => {
        const headers: Record<string, string> = {};
        const authorization = frontierHeader(a);
        if (authorization) headers.authorization = authorization;
        if (type) headers['content-type'] = type;
        await check('frontier', { method: 'POST', path: '/v1beta1/organizations/billing/usages', headers, body }, { mayStoreOnError: frontierPartial(countUsages(body)) });
      });
      await alive();
    });

    // ---- Planship ----

    it('Planship POST /api/v1/auth/token', { timeout: 600_000 }, async () => {
      const [, id, secret] = /^mk_([^_]+)_(.+)$/.exec(ten.read)!;
      const auth = fc.oneof(
        fc.constant(basic(id, secret)), fc.constant(basic(`mk_${id}`, secret)), fc.constant(basic('x', ten.read)), fc.constant(basic(id, `${secret}x`)),
        headerText(60).map((s) => `Basic ${b64(s)}`), fc.constant(`Basic ${b64(`${id}:${'\u00ff'.repeat(3)}`)}`), fc.constant(`Basic ${'A'.repeat(2000)}`), headerText(80), fc.constant(undefined),
      );
      const body = fc.option(fc.tuple(fc.oneof(junk, fc.jsonValue({ maxDepth: 3 }).map((x) => JSON.stringify(x))), contentType), { freq: 2 });
      await prop(fc.tuple(auth, body), async ([authorization, b]) => {
        const headers: Record<string, string> = {};
        if (authorization) headers.authorization = authorization;
        if (b?.[1]) headers['content-type'] = b[1];
        await check('planship', { method: 'POST', path: '/api/v1/auth/token', headers, body: b?.[0] });
      });
      await alive();
    });

    const planshipAuth = fc.oneof(
      { weight: 8, arbitrary: fc.constant('TOKEN') },
      { weight: 3, arbitrary: fc.oneof(fc.constant('KEY'), fc.constant('READKEY'), fc.constant('Bearer eyJhbGciOiJIUzI1NiJ9.e30.x'), headerText(80), fc.constant(`Bearer ${'t'.repeat(3000)}`), fc.constant('')) },
    );
    const planshipHeader = (a: string) => (a === 'TOKEN' ? `Bearer ${planshipToken}` : a === 'KEY' ? `Bearer ${ten.ingest}` : a === 'READKEY' ? `Bearer ${ten.read}` : a);
    const planshipPath = (last: string, lastValid: string) =>
      fc.tuple(segment(ids.customerId), segment(ids.product), segment(lastValid)).map(([c, p, l]) => `/api/v1/customers/${c}/products/${p}/${last}/${l}`);

    it('Planship POST /api/v1/customers/{customer_id}/products/{product_slug}/usage/{metering_id}', { timeout: 600_000 }, async () => {
      const valid = fc.record({
        usage: fc.oneof(fc.integer({ min: -5, max: 1000 }), fc.constant(Number.MAX_SAFE_INTEGER)),
        bucket: fc.constantFrom('First project', null, 'b'),
        subscription_id: fc.constantFrom(subscriptionOfCustomer, subscriptionOfCustomer.toUpperCase(), null),
      }, { requiredKeys: ['usage'] });
      const idem = fc.option(fc.oneof(fc.uuid(), fc.constant('same-key'), headerText(300)), { freq: 4 });
      await prop(fc.tuple(planshipPath('usage', ids.meteringId), bodyFrom(valid), contentType, planshipAuth, idem), async ([p, body, type, a, key]) => {
        const headers: Record<string, string> = {};
        const authorization = planshipHeader(a);
        if (authorization) headers.authorization = authorization;
        if (type) headers['content-type'] = type;
        if (key) headers['idempotency-key'] = key;
        const r = await check('planship', { method: 'POST', path: p, headers, body });
        if (r.status === 200) assert.equal(JSON.parse(r.text).is_allocated, true);
      });
      await alive();
    });

    it('Planship GET …/usage/{metering_id} and …/levers/{lever_slug}/usage', { timeout: 600_000 }, async () => {
      const path = fc.oneof(planshipPath('usage', ids.meteringId), planshipPath('levers', ids.lever).map((p) => `${p}/usage`), planshipPath('levers', ids.rollingLever).map((p) => `${p}/usage`));
      const q = query({}, ['period', 'from', 'bucket']);
      await prop(fc.tuple(path, q, planshipAuth), async ([p, qs, a]) => {
        const headers: Record<string, string> = {};
        const authorization = planshipHeader(a);
        if (authorization) headers.authorization = authorization;
        const r = await check('planship', { method: 'GET', path: qs ? `${p}?${qs}` : p, headers });
        if (r.status === 200) assert.equal(typeof JSON.parse(r.text), 'object');
      });
      await alive();
    });

    // ---- ChartHop ----

    it('ChartHop POST /v1/org/{orgId}/usage/{type}', { timeout: 600_000 }, async () => {
      const path = fc.tuple(segment(ids.orgId).chain((o) => fc.constantFrom(o, ids.orgSlug)), fc.oneof(segment('report.export'), fc.constant('upgrade'))).map(([o, ty]) => `/v1/org/${o}/usage/${ty}`);
      const q = query({ entityId: 'emp-1' }, ['entityId', 'module']);
      const body = fc.option(fc.tuple(fc.oneof(junk, fc.jsonValue({ maxDepth: 3 }).map((x) => JSON.stringify(x)), big.map((x) => JSON.stringify(x))), contentType), { freq: 2 });
      const auth = fc.oneof({ weight: 8, arbitrary: fc.constant(`Bearer ${'INGEST'}`) }, { weight: 2, arbitrary: fc.oneof(fc.constant('READ'), headerText(80), fc.constant(''), fc.constant(`Bearer ${'k'.repeat(700)}`)) });
      const idem = fc.option(fc.oneof(fc.uuid(), fc.constant('same-key'), headerText(250)), { freq: 4 });
      await prop(fc.tuple(path, q, body, auth, idem), async ([p, qs, b, a, key]) => {
        const headers: Record<string, string> = {};
        const authorization = a === 'Bearer INGEST' ? `Bearer ${ten.ingest}` : a === 'READ' ? `Bearer ${ten.read}` : a;
        if (authorization) headers.authorization = authorization;
        if (b?.[1]) headers['content-type'] = b[1];
        if (key) headers['idempotency-key'] = key;
        const r = await check('charthop', { method: 'POST', path: `${p}?${qs}`, headers, body: b?.[0] });
        if (r.status < 300) assert.equal(r.status, 204);
      });
      await alive();
    });

    // ---- the native configuration routes ----

    it('/v1/compat/* configuration routes: problem+json, nothing stored when refused', { timeout: 600_000 }, async () => {
      const u = () => fc.uuid();
      const slug = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,10}$/);
      const targets: Array<fc.Arbitrary<{ method: string; path: string; body?: string }>> = [
        bodyFrom(fc.record({ unitType: slug, meter: slug.map((s) => `m-${s}`), description: fc.constant('d') }, { requiredKeys: ['unitType'] })).map((body) => ({ method: 'POST', path: '/v1/compat/killbill/unit-types', body })),
        bodyFrom(fc.record({ subscriptionId: u(), accountId: fc.constant('acc'), externalKey: fc.constant('ek'), endDate: dateText }, { requiredKeys: ['subscriptionId'] })).map((body) => ({ method: 'POST', path: '/v1/compat/killbill/subscriptions', body })),
        segment(ids.subscriptionId).map((s) => ({ method: 'GET', path: `/v1/compat/killbill/subscriptions/${s}` })),
        fc.constant({ method: 'GET', path: '/v1/compat/killbill/unit-types' }),
        bodyFrom(fc.record({ code: slug, meter: slug.map((s) => `k-${s}`), description: fc.constant('d') }, { requiredKeys: ['code'] })).map((body) => ({ method: 'POST', path: '/v1/compat/kinde/features', body })),
        bodyFrom(fc.record({ agreementId: u().map((x) => `agreement_${x}`), name: fc.constant('n'), cycleAnchor: dateText, cycleInterval: fc.constantFrom('day', 'week', 'month', 'year'), features: fc.constant(['api_calls']) }, { requiredKeys: ['agreementId'] })).map((body) => ({ method: 'POST', path: '/v1/compat/kinde/agreements', body })),
        segment(ids.agreementId).map((s) => ({ method: 'GET', path: `/v1/compat/kinde/agreements/${s}` })),
        bodyFrom(fc.record({ name: fc.constant('c') })).map((body) => ({ method: 'POST', path: '/v1/compat/kinde/clients', body })),
        bodyFrom(fc.record({ billingId: u(), orgId: u(), name: fc.constant('n'), creditMin: fc.constantFrom('0', '-50.5', '10') }, { requiredKeys: ['orgId'] })).map((body) => ({ method: 'POST', path: '/v1/compat/frontier/billing-accounts', body })),
        segment(ids.billingId).map((s) => ({ method: 'GET', path: `/v1/compat/frontier/billing-accounts/${s}` })),
        fc.tuple(segment(ids.billingId), bodyFrom(fc.record({ id: u(), amount: fc.oneof(fc.constantFrom('100', '0.5'), fc.integer({ min: 1, max: 100 })), description: fc.constant('d') }, { requiredKeys: ['amount'] }))).map(([s, body]) => ({ method: 'POST', path: `/v1/compat/frontier/billing-accounts/${s}/topups`, body })),
        bodyFrom(fc.record({ name: fc.constant('c') })).map((body) => ({ method: 'POST', path: '/v1/compat/frontier/credentials', body })),
        bodyFrom(fc.record({ slug, name: fc.constant('n') }, { requiredKeys: ['slug'] })).map((body) => ({ method: 'POST', path: '/v1/compat/planship/products', body })),
        segment(ids.product).map((s) => ({ method: 'GET', path: `/v1/compat/planship/products/${s}` })),
        fc.tuple(segment(ids.product), bodyFrom(fc.record({ slug, meteringIds: fc.constant(['m1', 'm2']), formula: fc.constantFrom('total', 'per_bucket', 'unique_buckets'), period: fc.constantFrom('subscription', 'all_time', 'rolling'), windowSeconds: fc.integer({ min: 60, max: 86400 }) }, { requiredKeys: ['slug'] }))).map(([s, body]) => ({ method: 'POST', path: `/v1/compat/planship/products/${s}/levers`, body })),
        bodyFrom(fc.record({ customerId: u(), name: fc.constant('n'), subscriptions: fc.array(fc.record({ product: fc.constant(ids.product), renew: fc.constantFrom('day', 'month'), timeZone, startedAt: dateText, subscriptionId: u() }, { requiredKeys: ['product'] }), { maxLength: 2 }) }, { requiredKeys: ['customerId'] })).map((body) => ({ method: 'POST', path: '/v1/compat/planship/customers', body })),
        segment(ids.customerId).map((s) => ({ method: 'GET', path: `/v1/compat/planship/customers/${s}` })),
        fc.tuple(segment(ids.customerId), bodyFrom(fc.record({ product: fc.constant(ids.product), renew: fc.constantFrom('week', 'year'), timeZone, startedAt: dateText, subscriptionId: u() }, { requiredKeys: ['product'] }))).map(([s, body]) => ({ method: 'POST', path: `/v1/compat/planship/customers/${s}/subscriptions`, body })),
        bodyFrom(fc.record({ name: fc.constant('c') })).map((body) => ({ method: 'POST', path: '/v1/compat/planship/credentials', body })),
        bodyFrom(fc.record({ orgId: u(), slug: u().map((x) => `s-${x}`), name: fc.constant('n') }, { requiredKeys: ['orgId'] })).map((body) => ({ method: 'POST', path: '/v1/compat/charthop/orgs', body })),
        fc.oneof(segment(ids.orgId), segment(ids.orgSlug)).map((s) => ({ method: 'GET', path: `/v1/compat/charthop/orgs/${s}` })),
      ];
      const auth = fc.oneof({ weight: 8, arbitrary: fc.constant('ADMIN') }, { weight: 2, arbitrary: fc.oneof(fc.constant('READ'), fc.constant(''), headerText(80), fc.constant(`Bearer mk_${'Z'.repeat(16)}_${'z'.repeat(43)}`)) });
      await fc.assert(fc.asyncProperty(fc.oneof(...targets), contentType, auth, async (target, type, a) => {
        const headers: Record<string, string> = {};
        const authorization = a === 'ADMIN' ? `Bearer ${ten.admin}` : a === 'READ' ? `Bearer ${ten.read}` : a;
        if (authorization) headers.authorization = authorization;
        if (target.body !== undefined && type) headers['content-type'] = type;
        await check('native', { method: target.method, path: target.path, headers, body: target.body });
      }), { numRuns: RUNS * 3, includeErrorInReport: true });
      await alive();
    });

    // ---- every seed route: random methods, headers and paths ----

    it('every seed route: random methods, credentials and content types never 5xx and keep their error shape', { timeout: 600_000 }, async () => {
      const routes: Array<[Api, string, string]> = [
        ['killbill', 'POST', '/1.0/kb/usages'], ['killbill', 'GET', `/1.0/kb/usages/${ids.subscriptionId}?startDate=2026-01-01&endDate=2027-01-01`],
        ['killbill', 'GET', `/1.0/kb/usages/${ids.subscriptionId}/${ids.unitType}?startDate=2026-01-01&endDate=2027-01-01`],
        ['oauth', 'POST', '/oauth2/token'], ['kinde', 'POST', '/api/v1/billing/meter_usage'],
        ['frontier', 'POST', `/v1beta1/organizations/${ids.frontierOrg}/billing/${ids.billingId}/usages`], ['frontier', 'POST', '/v1beta1/organizations/billing/usages'],
        ['planship', 'POST', '/api/v1/auth/token'], ['planship', 'POST', `/api/v1/customers/${ids.customerId}/products/${ids.product}/usage/${ids.meteringId}`],
        ['planship', 'GET', `/api/v1/customers/${ids.customerId}/products/${ids.product}/usage/${ids.meteringId}`],
        ['planship', 'GET', `/api/v1/customers/${ids.customerId}/products/${ids.product}/levers/${ids.lever}/usage`],
        ['charthop', 'POST', `/v1/org/${ids.orgId}/usage/report.export`], ['charthop', 'POST', `/v1/org/${ids.orgSlug}/usage/upgrade?module=x`],
      ];
      const authHeaders = fc.dictionary(
        fc.constantFrom('authorization', 'x-killbill-apikey', 'x-killbill-apisecret', 'x-killbill-createdby', 'idempotency-key', 'x-request-id', 'accept', 'content-encoding', 'transfer-encoding-x', 'x-forwarded-for'),
        fc.oneof(headerText(100), fc.constantFrom(`Bearer ${'INGEST'}`, 'Basic', 'Bearer', 'Basic Og==', 'Basic ====', `Basic ${b64(':')}`, 'gzip', 'identity', '*/*', 'application/xml', 'x'.repeat(2000))),
        { maxKeys: 4 },
      );
      const body = fc.option(fc.oneof(junk, fc.jsonValue({ maxDepth: 3 }).map((x) => JSON.stringify(x))), { freq: 3 });
      await prop(fc.tuple(fc.constantFrom(...routes), fc.option(fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'), { freq: 2 }), authHeaders, contentType, body), async ([[api, method, path], other, hs, type, b]) => {
        const m = other ?? method;
        const headers: Record<string, string> = Object.fromEntries(Object.entries(hs).map(([k, v]) => [k, v === 'Bearer INGEST' ? `Bearer ${ten.ingest}` : v]).filter(([, v]) => v !== ''));
        const sendBody = m !== 'GET' && m !== 'HEAD' && b !== null ? b : undefined;
        if (sendBody !== undefined && type) headers['content-type'] = type;
        if (m === 'HEAD') {
          casesRun++;
          const res = await fetch(t.url + path, { method: m, headers });
          assert.ok(res.status < 500, `HEAD ${path}: ${res.status}`);
          return;
        }
        // A method no seed route has on this path reaches no route: "not found" in the shape (and with the
        // status) of the API whose prefix the path has; the Kinde token endpoint, /oauth2/token, has none.
        const served = routes.find(([, rm, rp]) => rm === m && rp.split('?')[0] === path.split('?')[0]);
        const res = await check(served ? served[0] : api === 'oauth' ? 'native' : api, { method: m, path, headers, body: sendBody });
        if (!served) assert.ok(res.status >= 400, `${m} ${path}: ${res.status} ${res.text.slice(0, 200)}`);
      });
      await alive();
    });

    it('regressions: the counterexamples found so far, every run', async () => {
      const json = { 'content-type': 'application/json' };
      const cases: Array<[Api, Req]> = [
        // Kinde token endpoint: a non-OAuth error met the 400 response schema of RFC 6749 errors (500).
        ['oauth', { method: 'POST', path: '/oauth2/token', headers: json }],
        ['oauth', { method: 'POST', path: '/oauth2/token', headers: json, body: '{' }],
        ['oauth', { method: 'POST', path: '/oauth2/token', headers: json, body: '{"grant_type":5}' }],
        ['oauth', { method: 'POST', path: '/oauth2/token', headers: { 'content-type': 'text/plain' }, body: 'x' }],
        // client_secret_basic with invalid percent-escapes (decodeURIComponent threw: 500).
        ['oauth', { method: 'POST', path: '/oauth2/token', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${b64('%zz:%')}` }, body: 'grant_type=client_credentials' }],
        // Frontier checks every usage before applying any: an event-level refusal (NUL, data limits) of a later usage stored the earlier ones.
        ['frontier', { method: 'POST', path: `/v1beta1/organizations/${ids.frontierOrg}/billing/${ids.billingId}/usages`, headers: { ...json, authorization: `Bearer ${ten.ingest}` },
          body: JSON.stringify({ usages: [{ id: randomUUID(), type: 'feature', amount: 8 }, { id: randomUUID(), amount: '0.25', description: 'a\u0000b' }] }) }],
        ['frontier', { method: 'POST', path: '/v1beta1/organizations/billing/usages', headers: { ...json, authorization: `Bearer ${ten.ingest}` },
          body: JSON.stringify({ billing_id: ids.billingId, usages: [{ id: randomUUID(), amount: 1 }, { id: randomUUID(), amount: 1, metadata: { big: 'x'.repeat(70_000) } }] }) }],
        // Ids holding NUL reached PostgreSQL, which refuses NUL in text (500).
        ['planship', { method: 'GET', path: `/api/v1/customers/%00/products/${ids.product}/levers/${ids.lever}/usage`, headers: { authorization: `Bearer ${planshipToken}` } }],
        ['planship', { method: 'GET', path: `/api/v1/customers/a%00b/products/${ids.product}/usage/${ids.meteringId}`, headers: { authorization: `Bearer ${planshipToken}` } }],
        ['planship', { method: 'POST', path: `/api/v1/customers/%00/products/${ids.product}/usage/${ids.meteringId}`, headers: { ...json, authorization: `Bearer ${planshipToken}` }, body: '{"usage":1}' }],
        ['kinde', { method: 'POST', path: '/api/v1/billing/meter_usage', headers: { ...json, authorization: `Bearer ${kindeTokens[0]}` }, body: JSON.stringify({ customer_agreement_id: 'a\u0000b', billing_feature_code: 'api_calls', meter_value: '1' }) }],
        ['charthop', { method: 'POST', path: '/v1/org/%00/usage/x', headers: { authorization: `Bearer ${ten.ingest}` } }],
        ['charthop', { method: 'POST', path: '/v1/org/a%00/usage/upgrade', headers: { authorization: `Bearer ${ten.ingest}` } }],
        ['native', { method: 'GET', path: `/v1/compat/frontier/billing-accounts/${ids.billingId}%00`, headers: { authorization: `Bearer ${ten.admin}` } }],
        ['native', { method: 'POST', path: '/v1/compat/frontier/billing-accounts/%00/topups', headers: { ...json, authorization: `Bearer ${ten.admin}` }, body: '{"amount":"1"}' }],
        ['native', { method: 'GET', path: '/v1/compat/kinde/agreements/%00', headers: { authorization: `Bearer ${ten.admin}` } }],
        ['native', { method: 'GET', path: '/v1/compat/killbill/subscriptions/%00', headers: { authorization: `Bearer ${ten.admin}` } }],
        ['native', { method: 'GET', path: '/v1/compat/charthop/orgs/%00', headers: { authorization: `Bearer ${ten.admin}` } }],
        ['native', { method: 'GET', path: '/v1/compat/planship/customers/%00', headers: { authorization: `Bearer ${ten.admin}` } }],
        ['native', { method: 'POST', path: '/v1/compat/planship/customers/%00/subscriptions', headers: { ...json, authorization: `Bearer ${ten.admin}` }, body: JSON.stringify({ product: ids.product }) }],
      ];
      for (const [api, req] of cases) {
        const r = await check(api, req);
        assert.ok(r.status >= 400, `${req.method} ${req.path}: refused`);
      }
      await alive();
    });

    it('invalid UTF-8 bodies are answered in each API\'s shape', async () => {
      const bodies = [[0xff, 0xfe, 0x7b], [0x7b, 0x22, 0x69, 0x64, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d], [0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d]];
      const targets: Array<[Api, string, Record<string, string>]> = [
        ['killbill', '/1.0/kb/usages', kbHeaders(ten.admin)], ['oauth', '/oauth2/token', {}], ['kinde', '/api/v1/billing/meter_usage', { authorization: `Bearer ${kindeTokens[0]}` }],
        ['frontier', `/v1beta1/organizations/${ids.frontierOrg}/billing/${ids.billingId}/usages`, { authorization: `Bearer ${ten.ingest}` }],
        ['planship', `/api/v1/customers/${ids.customerId}/products/${ids.product}/usage/${ids.meteringId}`, { authorization: `Bearer ${planshipToken}` }],
        ['charthop', `/v1/org/${ids.orgId}/usage/x`, { authorization: `Bearer ${ten.ingest}` }], ['native', '/v1/compat/kinde/features', { authorization: `Bearer ${ten.admin}` }],
      ];
      for (const [api, path, hs] of targets) {
        for (const bytes of bodies) {
          for (const type of ['application/json', 'application/x-www-form-urlencoded']) {
            const r = await check(api, { method: 'POST', path, headers: { ...hs, 'content-type': type }, body: Uint8Array.from(bytes) });
            assert.ok(r.status < 500);
          }
        }
      }
      await alive();
    });
  });
}

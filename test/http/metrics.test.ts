// GET /metrics: off unless METRICS_TOKEN is set, readable only with that token (never with a tenant's
// API key), and counting what ingestion answered, durable appends and requests by route template.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { engines, startApp, call, type TestApp, type TestTenant } from '../support/harness.js';

const TOKEN = 'metrics-token-0123456789';

/** The value of one sample line of the text format, e.g. meterd_events_total{status="accepted"}. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

for (const engine of engines()) {
  describe(`metrics [${engine.name}]`, () => {
    let t: TestApp;
    let ten: TestTenant;
    before(async () => {
      t = await startApp(engine, { METRICS_TOKEN: TOKEN });
      ten = await t.tenant();
      const m = await call(t.url, 'POST', '/v1/meters', { key: ten.admin, body: { slug: 'calls', eventType: 'api', aggregation: 'COUNT' } });
      assert.equal(m.status, 201, m.text);
    });
    after(() => t.close());

    it('is a 404 when METRICS_TOKEN is not set', async () => {
      const off = await startApp(engine);
      try {
        const r = await call(off.url, 'GET', '/metrics', { headers: { authorization: `Bearer ${TOKEN}` } });
        assert.equal(r.status, 404, r.text);
      } finally {
        await off.close();
      }
    });

    it('answers 401 without the token, with a wrong one and with an admin API key', async () => {
      const attempts: Array<Record<string, string>> = [{}, { authorization: 'Bearer metrics-token-wrong-value' }, { authorization: `Bearer ${ten.admin}` }];
      for (const headers of attempts) {
        const r = await call(t.url, 'GET', '/metrics', { headers });
        assert.equal(r.status, 401, r.text);
        assert.match(r.headers.get('content-type') ?? '', /application\/problem\+json/);
      }
    });

    it('counts receipts by status, durable appends and requests by route template', async () => {
      const read = async () => {
        const r = await call(t.url, 'GET', '/metrics', { headers: { authorization: `Bearer ${TOKEN}` } });
        assert.equal(r.status, 200, r.text);
        assert.match(r.headers.get('content-type') ?? '', /^text\/plain/);
        return r.text;
      };
      const before = await read();
      const at = (text: string, s: string) => sample(text, s) ?? 0;
      const ev = (id: string, time = '2026-01-10T10:00:00Z') => ({ id, source: 'm', type: 'api', subject: 's', time });
      const r1 = await call(t.url, 'POST', '/v1/events', { key: ten.ingest, body: [ev('a'), ev('b'), ev('c'), { id: 'bad' }] });
      assert.equal(r1.status, 200, r1.text);
      const r2 = await call(t.url, 'POST', '/v1/events', { key: ten.ingest, body: [ev('a'), ev('b', '2026-01-10T11:00:00Z')] });
      assert.deepEqual([r2.body.duplicate, r2.body.conflict], [1, 1]);
      await call(t.url, 'GET', '/v1/meters/calls/query?from=2026-01-10T00:00:00Z&to=2026-01-11T00:00:00Z', { key: ten.read });

      const after = await read();
      const delta = (s: string) => at(after, s) - at(before, s);
      assert.equal(delta('meterd_events_total{status="accepted"}'), 3);
      assert.equal(delta('meterd_events_total{status="rejected"}'), 1);
      assert.equal(delta('meterd_events_total{status="duplicate"}'), 1);
      assert.equal(delta('meterd_events_total{status="conflict"}'), 1);
      assert.equal(delta('meterd_append_seconds_count'), 2);
      assert.equal(delta('meterd_http_request_seconds_count{method="POST",route="/v1/events",status="200"}'), 2);
      // Route templates, never raw URLs with their slugs and query strings.
      assert.equal(delta('meterd_http_request_seconds_count{method="GET",route="/v1/meters/:slug/query",status="200"}'), 1);
      assert.doesNotMatch(after, /route="\/v1\/meters\/calls/);
      assert.equal(sample(after, 'meterd_pending_events'), 0);
      // The query folded what the appends left pending.
      assert.equal(sample(after, 'meterd_unfolded_events'), 0);
      assert.ok(sample(after, 'process_resident_memory_bytes')! > 0, 'process metrics are there');
      assert.ok(!after.includes(ten.ingest) && !after.includes(TOKEN), 'no secret in the metrics');
    });
  });
}

// Several instances on one PostgreSQL: two real server processes receive the same events
// concurrently from many connections. Each event is stored and counted once, and every receipt is
// right: exactly one "accepted" per event across both instances, every other answer "duplicate".
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { engines } from '../support/harness.js';
import { startServerProcess } from '../support/server-process.js';

for (const engine of engines().filter((e) => e.name === 'postgres')) {
  describe(`two instances on one database [${engine.name}]`, () => {
    it('the same events sent to both instances at once are counted once, with right receipts', { timeout: 180_000 }, async () => {
      const dbUrl = engine.freshUrl();
      const env = { DATABASE_URL: dbUrl, METERD_ADMIN_KEY: 'two-instances-admin-key-123456', RATE_LIMIT_PER_SECOND: '0' };
      // Started together, as a deployment starts its replicas: both seed the same admin key.
      const started = await Promise.allSettled([startServerProcess(env), startServerProcess(env)]);
      const up = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
      if (up.length < 2) {
        for (const s of up) s.child.kill('SIGTERM');
        await Promise.all(up.map((s) => s.exited));
        throw (started.find((s) => s.status === 'rejected') as PromiseRejectedResult).reason;
      }
      const [one, two] = up;
      const headers = { authorization: `Bearer ${env.METERD_ADMIN_KEY}`, 'content-type': 'application/json' };
      try {
        const meter = await fetch(`${one.url}/v1/meters`, { method: 'POST', headers, body: JSON.stringify({ slug: 'amount', eventType: 'two', aggregation: 'SUM', valueProperty: '$.v' }) });
        assert.equal(meter.status, 201);
        const N = 600;
        const events = Array.from({ length: N }, (_, i) => ({ id: `ev-${i}`, source: 'two', type: 'two', subject: `s${i % 13}`, time: '2026-05-05T05:05:05Z', data: { v: '0.25' } }));
        // 24 connections: each sends every event, in its own order and batch size, to one instance or the other.
        const receipts = new Map<string, string[]>();
        await Promise.all(
          Array.from({ length: 24 }, async (_, c) => {
            const base = c % 2 ? two.url : one.url;
            const order = c % 3 === 0 ? [...events].reverse() : c % 3 === 1 ? events : [...events.slice(N / 2), ...events.slice(0, N / 2)];
            const size = [1, 7, 50][c % 3];
            for (let k = 0; k < order.length; k += size) {
              const batch = order.slice(k, k + size);
              const r = await fetch(`${base}/v1/events`, { method: 'POST', headers, body: JSON.stringify(batch) });
              assert.equal(r.status, 200);
              const body: any = await r.json();
              body.events.forEach((e: { id: string; status: string }) => receipts.set(e.id, [...(receipts.get(e.id) ?? []), e.status]));
            }
          }),
        );
        for (const e of events) {
          const got = receipts.get(e.id)!;
          assert.equal(got.length, 24);
          assert.equal(got.filter((s) => s === 'accepted').length, 1, `${e.id}: ${got}`);
          assert.equal(got.filter((s) => s === 'duplicate').length, 23, `${e.id}: ${got}`);
        }
        // Both instances answer the same exact total.
        for (const base of [one.url, two.url]) {
          const q: any = await (await fetch(`${base}/v1/meters/amount/query?from=2026-05-01T00:00:00Z&to=2026-06-01T00:00:00Z`, { headers })).json();
          assert.deepEqual(q.data.map((r: any) => r.value), ['150']);
        }
      } finally {
        one.child.kill('SIGTERM');
        two.child.kill('SIGTERM');
        await Promise.all([one.exited, two.exited]);
        await engine.cleanup(dbUrl).catch(() => {});
      }
    });
  });
}

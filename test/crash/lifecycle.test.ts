// Process lifecycle: the first start prints an admin key once; SIGTERM lets in-flight commits finish.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { engines } from '../support/harness.js';
import { startServerProcess, freePort } from '../support/server-process.js';

for (const engine of engines()) {
  describe(`server lifecycle [${engine.name}]`, () => {
    it('the first start prints an admin key once; later starts do not', { timeout: 120_000 }, async () => {
      const dbUrl = engine.freshUrl();
      try {
        const first = await startServerProcess({ DATABASE_URL: dbUrl });
        const key = /mk_[A-Za-z0-9]{16}_[A-Za-z0-9_-]{43}/.exec(first.output())?.[0];
        assert.ok(key, `a key was printed:\n${first.output()}`);
        const ok = await fetch(`${first.url}/v1/meters`, { headers: { authorization: `Bearer ${key}` } });
        assert.equal(ok.status, 200);
        first.child.kill('SIGTERM');
        assert.equal(await first.exited, 0);
        const second = await startServerProcess({ DATABASE_URL: dbUrl });
        assert.doesNotMatch(second.output(), /mk_/);
        second.child.kill('SIGTERM');
        assert.equal(await second.exited, 0);
      } finally {
        await engine.cleanup(dbUrl);
      }
    });

    it('SIGTERM finishes in-flight requests and their commits before exiting', { timeout: 120_000 }, async () => {
      const dbUrl = engine.freshUrl();
      const env = { DATABASE_URL: dbUrl, METERD_ADMIN_KEY: 'lifecycle-admin-key-123456' };
      const headers = { authorization: `Bearer ${env.METERD_ADMIN_KEY}`, 'content-type': 'application/json' };
      try {
        const port = await freePort();
        const s = await startServerProcess(env, port);
        const batches = Array.from({ length: 8 }, (_, b) =>
          Array.from({ length: 2000 }, (_, i) => ({ id: `b${b}-${i}`, source: 'sigterm', type: 't', subject: 's', data: { v: 1 } })),
        );
        const inflight = batches.map((batch) => fetch(`${s.url}/v1/events`, { method: 'POST', headers, body: JSON.stringify(batch) }).then(async (r) => ({ status: r.status, body: await r.json() as any })).catch((e: Error) => ({ status: 0, body: e.message })));
        await new Promise((r) => setTimeout(r, 30));
        s.child.kill('SIGTERM');
        const answers = await Promise.all(inflight);
        assert.equal(await s.exited, 0, s.output());
        const acknowledged = answers.filter((a) => a.status === 200).flatMap((a) => (a.body.events as Array<{ id: string }>).map((e) => e.id));
        assert.ok(answers.every((a) => a.status === 200 || a.status === 503 || a.status === 0), 'in-flight requests complete; new ones are refused, never half-done');
        const s2 = await startServerProcess(env, port);
        const listAll = async () => {
          const ids = new Set<string>();
          let cursor: string | null = null;
          do {
            const page: any = await (await fetch(`${s2.url}/v1/events?limit=1000${cursor ? `&cursor=${cursor}` : ''}`, { headers })).json();
            for (const e of page.data) ids.add(e.id);
            cursor = page.nextCursor;
          } while (cursor);
          return ids;
        };
        const stored = await listAll();
        for (const id of acknowledged) assert.ok(stored.has(id), `acknowledged event ${id} survived the stop`);
        // The client retries whatever was refused during shutdown: nothing counts twice.
        for (const batch of batches) {
          const body: any = await (await fetch(`${s2.url}/v1/events`, { method: 'POST', headers, body: JSON.stringify(batch) })).json();
          assert.equal(body.conflict, 0);
        }
        assert.equal((await listAll()).size, 16_000);
        s2.child.kill('SIGTERM');
        assert.equal(await s2.exited, 0);
      } finally {
        await engine.cleanup(dbUrl);
      }
    });
  });
}

// PostgreSQL itself stops (immediate mode, like a crash) and comes back while clients ingest:
// meterd answers 503 (never 500) while it is gone, /readyz reports it, meterd recovers by itself,
// every acknowledged event is stored exactly once, and the rollups equal the events.
// Runs where meterd is tested on PostgreSQL and this machine controls the cluster (pg_ctlcluster).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { engines } from '../support/harness.js';
import { startServerProcess } from '../support/server-process.js';

const pgVersion = existsSync('/etc/postgresql') ? readdirSync('/etc/postgresql')[0] : undefined;
const canRestart = pgVersion !== undefined && existsSync('/usr/bin/pg_ctlcluster');
const pgctl = (...args: string[]) => execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', pgVersion!, 'main', ...args], { stdio: 'pipe', timeout: 60_000 });

for (const engine of engines().filter((e) => e.name === 'postgres')) {
  describe(`database restart under load [${engine.name}]`, () => {
    it('answers 503 while PostgreSQL is down, recovers, loses nothing acknowledged', { timeout: 300_000, skip: canRestart ? false : 'pg_ctlcluster is not available here' }, async () => {
      const dbUrl = engine.freshUrl();
      const env = { DATABASE_URL: dbUrl, METERD_ADMIN_KEY: 'pg-restart-admin-key-0123456789' };
      const server = await startServerProcess(env);
      const headers = { authorization: `Bearer ${env.METERD_ADMIN_KEY}`, 'content-type': 'application/json' };
      const statuses = new Map<number, number>();
      const acked = new Set<string>();
      const all: string[] = [];
      let running = true;
      let next = 0;
      const since = new Date(Date.now() - 3_600_000).toISOString();
      try {
        // A meter, so commits store pending rollup rows and folds run (some of them cut off by the stop).
        const meter = await fetch(`${server.url}/v1/meters`, { method: 'POST', headers, body: JSON.stringify({ slug: 'rs', eventType: 'r', aggregation: 'SUM', valueProperty: '$.v' }) });
        assert.equal(meter.status, 201, await meter.text());
        const send = async (ids: string[]) => {
          try {
            const r = await fetch(`${server.url}/v1/events`, { method: 'POST', headers, body: JSON.stringify(ids.map((id) => ({ id, source: 'pg', type: 'r', subject: 's', data: { v: 1 } }))) });
            statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
            const body: any = await r.json();
            if (r.status === 200) for (const e of body.events) acked.add(e.id);
          } catch {
            statuses.set(0, (statuses.get(0) ?? 0) + 1);
          }
        };
        const client = async () => {
          while (running) {
            const ids = Array.from({ length: 1 + randomInt(20) }, () => `e${next++}`);
            all.push(...ids);
            await send(ids);
            await new Promise((r) => setTimeout(r, 5));
          }
        };
        const clients = Array.from({ length: 8 }, client);
        await new Promise((r) => setTimeout(r, 1500));
        pgctl('stop', '-m', 'immediate');
        await new Promise((r) => setTimeout(r, 2500));
        const ready = await fetch(`${server.url}/readyz`);
        assert.equal(ready.status, 503, '/readyz reports the database gone');
        pgctl('start');
        // meterd recovers by itself: ingestion succeeds again without a restart.
        const deadline = Date.now() + 60_000;
        let recovered = false;
        while (!recovered && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 500));
          recovered = (await fetch(`${server.url}/readyz`)).status === 200;
        }
        assert.ok(recovered, '/readyz recovers');
        await new Promise((r) => setTimeout(r, 1500));
        running = false;
        await Promise.all(clients);
        assert.ok((statuses.get(503) ?? 0) > 0, `some requests met the outage: ${JSON.stringify([...statuses])}`);
        for (const code of statuses.keys()) assert.ok(code === 200 || code === 503, `only 200 or 503, got ${code}: ${JSON.stringify([...statuses])}`);
        // Retry everything never acknowledged; then every event is stored exactly once.
        for (let i = 0; i < 5; i++) {
          const missing = all.filter((id) => !acked.has(id));
          for (let k = 0; k < missing.length; k += 200) await send(missing.slice(k, k + 200));
        }
        assert.equal(acked.size, all.length);
        let stored = 0;
        const seen = new Set<string>();
        let cursor: string | null = null;
        do {
          const page: any = await (await fetch(`${server.url}/v1/events?limit=1000${cursor ? `&cursor=${cursor}` : ''}`, { headers })).json();
          for (const e of page.data) seen.add(e.id);
          stored += page.data.length;
          cursor = page.nextCursor;
        } while (cursor);
        assert.equal(stored, all.length, 'each event stored once');
        assert.equal(seen.size, all.length);
        // Rollups equal the events: every fold the stop cut off was lost whole and folded again.
        const usage: any = await (await fetch(`${server.url}/v1/meters/rs/query?from=${since}&to=${new Date(Date.now() + 3_600_000).toISOString()}`, { headers })).json();
        assert.equal(usage.data[0].value, String(all.length), JSON.stringify(usage));
        process.stdout.write(`# pg-restart: ${all.length} events, ${statuses.get(503) ?? 0} answered 503 during the outage, 0 lost, 0 duplicated\n`);
      } finally {
        running = false;
        try {
          pgctl('start');
        } catch {
          // already running
        }
        server.child.kill('SIGTERM');
        await server.exited;
        await engine.cleanup(dbUrl).catch(() => {});
      }
    });
  });
}

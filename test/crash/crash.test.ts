// Crash safety: clients ingest (single events and batches, with retries of the same ids) while the
// server is SIGKILLed at random moments and restarted. Afterwards every acknowledged event is stored
// exactly once, rollups equal the raw events, and the database is sound.
// Short in `npm test`; `npm run test:crash` runs more rounds (CRASH_ROUNDS, CRASH_CLIENTS).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { engines } from '../support/harness.js';
import { startServerProcess, freePort, type ServerProcess } from '../support/server-process.js';
import { openStore } from '../../src/store/index.js';
import { compileMeter } from '../../src/modules/meters/meter-eval.js';
import { emptyPartial, mergeInto } from '../../src/modules/usage/partial.js';
import { formatDecimal } from '../../src/core/decimal.js';

const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 3);
const CLIENTS = Number(process.env.CRASH_CLIENTS ?? 12);
const ADMIN = 'crash-test-admin-key-0123456789';

interface Sent {
  id: string;
  v: string;
  acked: boolean;
}

for (const engine of engines()) {
  describe(`crash safety [${engine.name}]`, () => {
    it(`survives ${ROUNDS} SIGKILLs mid-load with nothing acknowledged lost or counted twice`, { timeout: 300_000 }, async () => {
      const dbUrl = engine.freshUrl();
      const env = { DATABASE_URL: dbUrl, METERD_ADMIN_KEY: ADMIN };
      const port = await freePort();
      let server: ServerProcess = await startServerProcess(env, port);
      const url = server.url;
      const auth = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
      const created = await fetch(`${url}/v1/meters`, { method: 'POST', headers: auth, body: JSON.stringify({ slug: 'v', eventType: 'crash', aggregation: 'SUM', valueProperty: '$.v' }) });
      assert.equal(created.status, 201);

      const events = new Map<string, Sent>();
      const pending = new Set<Sent>();
      let next = 0;
      let running = true;
      let kills = 0;
      const body = (e: Sent) => ({ id: e.id, source: 'crash', type: 'crash', subject: `s${Number(e.id.slice(1)) % 7}`, time: '2026-06-01T12:00:00Z', data: { v: e.v } });

      async function send(batch: Sent[]) {
        try {
          const r = await fetch(`${url}/v1/events`, { method: 'POST', headers: auth, body: JSON.stringify(batch.length === 1 ? body(batch[0]) : batch.map(body)) });
          if (r.status !== 200) return;
          const receipt = (await r.json()) as { events: Array<{ status: string }> };
          receipt.events.forEach((x, i) => {
            assert.ok(x.status === 'accepted' || x.status === 'duplicate', `unexpected ${x.status}`);
            batch[i].acked = true;
            pending.delete(batch[i]);
          });
        } catch {
          // Connection refused or reset by the kill: not acknowledged, will be retried.
        }
      }

      async function client() {
        while (running) {
          const roll = randomInt(10);
          let batch: Sent[];
          if (roll < 2 && pending.size > 0) batch = [...pending].slice(0, 10); // retry unacknowledged
          else if (roll < 3 && events.size > 0) batch = [events.get(`e${randomInt(next)}`)!]; // resend an acknowledged one
          else {
            const n = roll < 6 ? 1 : 10;
            batch = Array.from({ length: n }, () => {
              const e = { id: `e${next++}`, v: `${randomInt(1000)}.${String(randomInt(1000)).padStart(3, '0')}`, acked: false };
              events.set(e.id, e);
              pending.add(e);
              return e;
            });
          }
          await send(batch);
          if (!running) break;
        }
      }

      const clients = Array.from({ length: CLIENTS }, () => client());
      for (let round = 0; round < ROUNDS; round++) {
        await new Promise((r) => setTimeout(r, 300 + randomInt(700)));
        server.child.kill('SIGKILL');
        await server.exited;
        kills++;
        await new Promise((r) => setTimeout(r, randomInt(200)));
        server = await startServerProcess(env, port);
      }
      await new Promise((r) => setTimeout(r, 300));
      running = false;
      await Promise.all(clients);
      // Every event a client made is eventually acknowledged by resending it.
      for (let i = 0; i < 5 && pending.size > 0; i++) {
        const rest = [...pending];
        for (let k = 0; k < rest.length; k += 100) await send(rest.slice(k, k + 100));
      }
      const lost = [...events.values()].filter((e) => !e.acked);
      assert.equal(lost.length, 0, 'every event acknowledged after the final resend');
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, 0, `graceful stop:\n${server.output()}`);

      // Check the database directly.
      const store = await openStore({ url: dbUrl });
      try {
        const tenantId = 'default';
        const meter = (await store.getMeter(tenantId, 'v'))!;
        const stored = new Map<string, string>();
        let afterSeq = 0;
        const raw = new Map<string, ReturnType<typeof emptyPartial>>();
        const compiled = compileMeter(meter);
        for (;;) {
          const page = await store.scanEvents(tenantId, { type: 'crash', from: 0, to: 253_402_300_799_999, afterSeq, limit: 5000 });
          for (const e of page) {
            assert.ok(!stored.has(e.id), `event ${e.id} stored twice`);
            stored.set(e.id, String((e.data as { v: string }).v));
            const d = compiled.evaluate(e, e.seq);
            if (d.ok) {
              const k = `${d.delta.subject}|${d.delta.bucket}|${d.delta.groupKey}`;
              raw.set(k, mergeInto(raw.get(k) ?? emptyPartial(), d.delta.partial));
            }
          }
          if (page.length < 5000) break;
          afterSeq = page[page.length - 1].seq;
        }
        assert.equal(stored.size, events.size, 'exactly the events sent, each once');
        for (const e of events.values()) assert.equal(stored.get(e.id), e.v, `event ${e.id} stored with its own value`);
        const rollups = await store.readRollups(tenantId, { meterId: meter.id, fromBucket: 0, toBucket: 253_402_300_799_999 });
        assert.equal(rollups.length, raw.size);
        for (const r of rollups) {
          const want = raw.get(`${r.subject}|${r.bucket}|${r.groupKey}`);
          assert.ok(want, 'no rollup without raw events');
          assert.equal(r.partial.count, want.count);
          assert.equal(formatDecimal(r.partial.sum), formatDecimal(want.sum));
        }
        if ('integrityCheck' in store) assert.equal((store as unknown as { integrityCheck(): string }).integrityCheck(), 'ok');
        process.stdout.write(`# crash[${engine.name}]: ${events.size} events acknowledged, ${kills} kills survived, 0 lost, 0 duplicated\n`);
      } finally {
        await store.close();
        await engine.cleanup(dbUrl);
      }
    });
  });
}

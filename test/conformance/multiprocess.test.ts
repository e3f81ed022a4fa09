// Exactly-once across processes: two meterd processes append the same ids to one PostgreSQL
// database at once. Each id is stored once and accepted once in total; every other send is a duplicate.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { dropSchemas, postgresAvailability, randomSchema } from './engines.js';
import { ALL_BUCKETS, createMeter, mkMeter, newTenant, uid } from './helpers.js';

const postgres = await postgresAvailability();
const CHILD = fileURLToPath(new URL('./multiprocess-child.ts', import.meta.url));
const IDS = 300;

function child(url: string, schema: string, tenant: string, seed: number) {
  const p = spawn(process.execPath, ['--import', 'tsx', CHILD, url, schema, tenant, String(IDS), String(seed)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: p.stdout });
  const queue: string[] = [];
  const waiters: Array<(l: string) => void> = [];
  lines.on('line', (l) => (waiters.length ? waiters.shift()!(l) : queue.push(l)));
  const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
  const died = exited.then((code) => Promise.reject(new Error(`child exited with ${code} before answering`)));
  died.catch(() => {});
  return {
    line: () => (queue.length ? Promise.resolve(queue.shift()!) : Promise.race([new Promise<string>((r) => waiters.push(r)), died])),
    go: () => p.stdin.end('go\n'),
    exited,
  };
}

if ('url' in postgres) {
  const url = postgres.url;
  describe('exactly-once across processes [postgres]', () => {
    const schema = randomSchema();
    let store: PostgresStore;
    before(async () => {
      store = new PostgresStore({ url, schema });
      await store.migrate();
    });
    after(async () => {
      await store.close();
      await dropSchemas(url, [schema]);
    });

    it('accepts each id once over two processes appending the same ids concurrently', async () => {
      const tenant = await newTenant(store);
      const meter = mkMeter(tenant, uid('calls'), 'COUNT');
      await createMeter(store, meter);
      const kids = [child(url, schema, tenant, 1), child(url, schema, tenant, 2)];
      for (const k of kids) assert.equal(await k.line(), 'ready');
      for (const k of kids) k.go();
      const results = await Promise.all(kids.map(async (k) => JSON.parse(await k.line()) as Record<string, string[]>));
      for (const k of kids) assert.equal(await k.exited, 0);

      for (let i = 0; i < IDS; i++) {
        const all = results.flatMap((r) => r[`ev-${i}`]);
        assert.equal(all.length, 6, `ev-${i} sent three times by each process`);
        assert.equal(all.filter((s) => s === 'accepted').length, 1, `ev-${i}: ${all}`);
        assert.equal(all.filter((s) => s === 'duplicate').length, 5, `ev-${i}: ${all}`);
      }
      const stored = await store.listEvents(tenant, {}, undefined, IDS * 2);
      assert.equal(stored.length, IDS);
      assert.equal(new Set(stored.map((e) => e.id)).size, IDS);
      const rollups = await store.readRollups(tenant, { meterId: meter.id, ...ALL_BUCKETS });
      assert.equal(rollups.reduce((n, r) => n + r.partial.count, 0), IDS);
    });
  });
} else {
  const why = 'skip' in postgres ? postgres.skip : postgres.fail;
  if ('skip' in postgres) console.log(`\n*** multi-process test skipped: ${why} ***\n`);
  describe('exactly-once across processes [postgres]', { skip: 'skip' in postgres ? why : false }, () => {
    it('needs PostgreSQL', () => assert.fail(why));
  });
}

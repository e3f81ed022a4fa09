// What a PostgreSQL fold costs per event for a given batch: in-process (no HTTP), with background folds
// off, PER events of the bench's shape are appended (BATCH events per call, CALLS calls in flight, times
// now), then folded in one go; ROUNDS times. The schema is kept between runs and seeded with N events the
// first time, so the rollup tables have rows to update. Prints the fold's wall time per event (the server
// should be otherwise idle: the fold runs in one PostgreSQL backend).
//   PER=12000 node --import tsx bench/fold-cost.ts               (DROP SCHEMA foldcost CASCADE to start over)
//   PER=48000 BATCH=100 CALLS=8 node --import tsx bench/fold-cost.ts
import { eventLimitsOf } from '../src/main.js';
import { keptSchema, liveBatch } from './seed.js';
import { TENANT } from './workload.js';

const env = (name: string, def: number) => Number(process.env[name] ?? def);
const PG = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const SCHEMA = process.env.SCHEMA ?? 'foldcost';
const N = env('N', 300_000);
const BATCH = env('BATCH', 1);
const CALLS = env('CALLS', 64);
const PER = env('PER', 6000);
const ROUNDS = env('ROUNDS', 5);

// Folds only when asked (settle), in transactions of 25,000 events (the default).
const s = await keptSchema(PG, SCHEMA, N, { ROLLUP_FOLD_EVENTS: '10000000', ROLLUP_FOLD_INTERVAL_MS: '3600000' });
try {
  await s.store.settle();
  const limits = eventLimitsOf(s.config);
  for (let round = 0; round < ROUNDS; round++) {
    let sent = 0;
    await Promise.all(Array.from({ length: CALLS }, async () => {
      while (sent < PER) {
        sent += BATCH;
        await s.events.append(TENANT, liveBatch(BATCH, limits));
      }
    }));
    const t0 = performance.now();
    await s.store.settle();
    const ms = performance.now() - t0;
    console.log(`round ${round + 1}: ${sent.toLocaleString('en-US')} events folded in ${ms.toFixed(0)} ms, ${((ms * 1000) / sent).toFixed(1)} us per event`);
  }
} finally {
  await s.store.close();
}

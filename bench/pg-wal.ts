// WAL written per event by B2-shaped ingestion on PostgreSQL, in-process (no HTTP): batches of BATCH=100
// random-UUID events at time = now, CALLS=32 in flight (BATCH=1 CALLS=64: B1-shaped), for SECS seconds, into a schema that is kept between
// runs and seeded with N events (the bench's month, through the bulk path) the first time. Prints events/s,
// WAL bytes per event and full-page images per event (pg_stat_wal, so the server should be otherwise idle).
//   N=3000000 SECS=15 SCHEMA=walbench node --import tsx bench/pg-wal.ts    (drop the schema to start over)
import pg from 'pg';
import { eventLimitsOf } from '../src/main.js';
import { keptSchema, liveBatch } from './seed.js';
import { TENANT } from './workload.js';

const PG = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const SCHEMA = process.env.SCHEMA ?? 'walbench';
const N = Number(process.env.N ?? 3_000_000);
const SECS = Number(process.env.SECS ?? 15);
const BATCH = Number(process.env.BATCH ?? 100);
const CALLS = Number(process.env.CALLS ?? 32);

const admin = new pg.Client({ connectionString: PG });
await admin.connect();
const s = await keptSchema(PG, SCHEMA, N);
try {
  const limits = eventLimitsOf(s.config);
  const wal = async () => (await admin.query<{ lsn: string; fpi: string }>('SELECT pg_current_wal_lsn()::text AS lsn, wal_fpi::text AS fpi FROM pg_stat_wal')).rows[0];
  const before = await wal();
  const end = Date.now() + SECS * 1000;
  let events = 0;
  await Promise.all(Array.from({ length: CALLS }, async () => {
    while (Date.now() < end) {
      await s.events.append(TENANT, liveBatch(BATCH, limits));
      events += BATCH;
    }
  }));
  const after = await wal();
  const bytes = Number((await admin.query<{ d: string }>('SELECT pg_wal_lsn_diff($1, $2)::text AS d', [after.lsn, before.lsn])).rows[0].d);
  console.log(`${events.toLocaleString('en-US')} events in ${SECS} s (${Math.round(events / SECS)} events/s): ${(bytes / events / 1024).toFixed(2)} KB of WAL and ${((Number(after.fpi) - Number(before.fpi)) / events).toFixed(3)} full-page images per event`);
} finally {
  await s.store.close();
  await admin.end();
}

// WAL written per event by B2-shaped ingestion on PostgreSQL, in-process (no HTTP): batches of BATCH=100
// random-UUID events at time = now, CALLS=32 in flight (BATCH=1 CALLS=64: B1-shaped), for SECS seconds, into a schema that is kept between
// runs and seeded with N events (the bench's month, through the bulk path) the first time. Prints events/s,
// WAL bytes per event and full-page images per event (pg_stat_wal, so the server should be otherwise idle).
//   N=3000000 SECS=15 SCHEMA=walbench node --import tsx bench/pg-wal.ts    (drop the schema to start over)
import pg from 'pg';
import { eventLimitsOf, openServices } from '../src/main.js';
import { loadConfig } from '../src/config.js';
import { validateEvent } from '../src/modules/events/event-validation.js';
import { seedEvents, setupTenant } from './seed.js';
import { TENANT, eventJson, seedMonth } from './workload.js';

const PG = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const SCHEMA = process.env.SCHEMA ?? 'walbench';
const N = Number(process.env.N ?? 3_000_000);
const SECS = Number(process.env.SECS ?? 15);
const BATCH = Number(process.env.BATCH ?? 100);
const CALLS = Number(process.env.CALLS ?? 32);

const admin = new pg.Client({ connectionString: PG });
await admin.connect();
const fresh = (await admin.query('SELECT 1 FROM information_schema.schemata WHERE schema_name = $1', [SCHEMA])).rowCount === 0;
const s = await openServices(loadConfig({ DATABASE_URL: `${PG}?schema=${SCHEMA}`, LOG_LEVEL: 'warn' }));
try {
  if (fresh) {
    await setupTenant(s);
    const r = await seedEvents(s, N, seedMonth(), { batch: 5000, concurrency: 4 });
    await s.store.settle();
    console.log(`seeded ${N.toLocaleString('en-US')} events at ${Math.round(r.eventsPerSec)} events/s`);
  }
  const limits = eventLimitsOf(s.config);
  const wal = async () => (await admin.query<{ lsn: string; fpi: string }>('SELECT pg_current_wal_lsn()::text AS lsn, wal_fpi::text AS fpi FROM pg_stat_wal')).rows[0];
  const before = await wal();
  const end = Date.now() + SECS * 1000;
  let events = 0;
  await Promise.all(Array.from({ length: CALLS }, async () => {
    while (Date.now() < end) {
      const now = Date.now();
      const batch = Array.from({ length: BATCH }, () => {
        const v = validateEvent(JSON.parse(eventJson(new Date(now).toISOString())), limits, now);
        if (!v.ok) throw new Error(v.error);
        return v.event;
      });
      await s.events.append(TENANT, batch);
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

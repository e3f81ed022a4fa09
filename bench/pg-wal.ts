// WAL written per event by B2-shaped ingestion on PostgreSQL, in-process (no HTTP): batches of BATCH=100
// random-UUID events at time = now, CALLS=32 in flight (BATCH=1 CALLS=64: B1-shaped), for SECS seconds, into a schema that is kept between
// runs and seeded with N events (the bench's month, through the bulk path) the first time. Prints events/s,
// WAL bytes per event and full-page images per event (pg_stat_wal, so the server should be otherwise idle), and the
// CPU per event of every PostgreSQL process together (/proc, so this machine must be the database's) and of this
// process. FOLDS=0 leaves the background folds out: the commit path alone.
//   N=3000000 SECS=15 SCHEMA=walbench node --import tsx bench/pg-wal.ts    (drop the schema to start over)
//   N=300000 BATCH=1 CALLS=64 FOLDS=0 node --import tsx bench/pg-wal.ts  (B1-shaped commits, no folds)
import pg from 'pg';
import { readdirSync, readFileSync } from 'node:fs';
import { eventLimitsOf } from '../src/main.js';
import { keptSchema, liveBatch } from './seed.js';
import { TENANT } from './workload.js';
import { cpuSeconds } from './procs.js';

const PG = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const SCHEMA = process.env.SCHEMA ?? 'walbench';
const N = Number(process.env.N ?? 3_000_000);
const SECS = Number(process.env.SECS ?? 15);
const BATCH = Number(process.env.BATCH ?? 100);
const CALLS = Number(process.env.CALLS ?? 32);
// Folds only when asked (never here) when FOLDS=0; the backlog bound follows the trigger up.
const NO_FOLDS = { ROLLUP_FOLD_EVENTS: '10000000', ROLLUP_FOLD_INTERVAL_MS: '3600000' };

/** CPU seconds of every process named postgres so far. */
function postgresCpuSeconds(): number {
  let total = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('postgres')) continue;
    } catch {
      continue; // ended between the listing and the read
    }
    const s = cpuSeconds(Number(pid));
    if (Number.isFinite(s)) total += s;
  }
  return total;
}

const admin = new pg.Client({ connectionString: PG });
await admin.connect();
const s = await keptSchema(PG, SCHEMA, N, process.env.FOLDS === '0' ? NO_FOLDS : {});
try {
  const limits = eventLimitsOf(s.config);
  const wal = async () => (await admin.query<{ lsn: string; fpi: string }>('SELECT pg_current_wal_lsn()::text AS lsn, wal_fpi::text AS fpi FROM pg_stat_wal')).rows[0];
  const before = await wal();
  const pgCpu = postgresCpuSeconds();
  const ownCpu = process.cpuUsage();
  const end = Date.now() + SECS * 1000;
  let events = 0;
  await Promise.all(Array.from({ length: CALLS }, async () => {
    while (Date.now() < end) {
      await s.events.append(TENANT, liveBatch(BATCH, limits));
      events += BATCH;
    }
  }));
  const after = await wal();
  const pgUs = ((postgresCpuSeconds() - pgCpu) * 1e6) / events;
  const own = process.cpuUsage(ownCpu);
  const bytes = Number((await admin.query<{ d: string }>('SELECT pg_wal_lsn_diff($1, $2)::text AS d', [after.lsn, before.lsn])).rows[0].d);
  console.log(`${events.toLocaleString('en-US')} events in ${SECS} s (${Math.round(events / SECS)} events/s): ${(bytes / events / 1024).toFixed(2)} KB of WAL and ${((Number(after.fpi) - Number(before.fpi)) / events).toFixed(3)} full-page images per event; CPU per event: PostgreSQL ${pgUs.toFixed(1)} µs, this process ${((own.user + own.system) / events).toFixed(1)} µs`);
} finally {
  await s.store.close();
  await admin.end();
}

// The bench's B4 queries in-process (no HTTP) against an existing seeded database, one at a time for
// SECS seconds each: p50 and p99 per case, to see what a query costs inside meterd and its database.
//   DB='postgres://postgres@127.0.0.1:5432/test?schema=walbench' node --import tsx bench/query-times.ts
// (a schema bench/pg-wal.ts seeded; DB=sqlite:<path> for a SQLite file; ONLY=B4b,B4d; SECS=4)
import { openServices } from '../src/main.js';
import { loadConfig } from '../src/config.js';
import { systemCtx } from '../src/core/context.js';
import { parseUsageQuery } from '../src/modules/usage/usage.query.js';
import { queryCases } from './cases.js';
import { TENANT, seedMonth } from './workload.js';

const DB = process.env.DB ?? 'postgres://postgres@127.0.0.1:5432/test?schema=walbench';
const SECS = Number(process.env.SECS ?? 4);
const only = process.env.ONLY?.split(',');
const s = await openServices(loadConfig({ DATABASE_URL: DB, LOG_LEVEL: 'warn' }));
const ctx = systemCtx(TENANT);
try {
  for (const c of queryCases(seedMonth(), 1)) {
    if ((only && !only.includes(c.id)) || c.work.kind !== 'query') continue;
    const times: number[] = [];
    let rows = 0;
    const end = performance.now() + SECS * 1000;
    for (let i = 0; performance.now() < end; i++) {
      const url = new URL(c.work.paths[i % c.work.paths.length], 'http://meterd');
      const params: Record<string, unknown> = Object.fromEntries(url.searchParams);
      const t0 = performance.now();
      const r = await s.usage.query(ctx, url.pathname.split('/')[3], parseUsageQuery(params));
      times.push(performance.now() - t0);
      rows = r.data.length;
    }
    times.sort((a, b) => a - b);
    const at = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))].toFixed(2);
    console.log(`${c.id}: ${times.length} queries, p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, ${rows} rows`);
  }
} finally {
  await s.store.close();
}

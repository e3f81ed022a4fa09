// Where the server's memory goes during the B4 queries: meterd as npm start runs it (dist, build it
// first) on a SQLite file of N seeded events (made once and kept in DIR), each B4 case run alone for
// SECS seconds, one query at a time; after each case the process's RSS split into anonymous and
// file-backed memory (/proc/<pid>/status) and V8's heap (from /metrics).
//   npm run build && N=3000000 node --import tsx bench/query-memory.ts
// The server inherits this environment, so settings can be compared (MALLOC_ARENA_MAX=2 …).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { loadConfig } from '../src/config.js';
import { openServices } from '../src/main.js';
import { queryCases } from './cases.js';
import { startMeterd, stopServers } from './servers.js';
import { seedEvents, settleKeyRuns, setupTenant } from './seed.js';
import { seedMonth } from './workload.js';

const N = Number(process.env.N ?? 3_000_000);
const SECS = Number(process.env.SECS ?? 8);
const dir = process.env.DIR ?? `/tmp/meterd-query-memory-${N}`;
const file = join(dir, 'meterd.db');
const monthFile = join(dir, 'month.json');

if (!existsSync(monthFile)) {
  mkdirSync(dir, { recursive: true });
  console.log(`seeding ${N.toLocaleString('en-US')} events into ${file} (kept for the next run)…`);
  const s = await openServices(loadConfig({ DATABASE_URL: `sqlite:${file}`, LOG_LEVEL: 'warn' }));
  await setupTenant(s);
  const month = seedMonth();
  await seedEvents(s, N, month, { batch: 5000, concurrency: 2 });
  await settleKeyRuns(file);
  await s.store.close();
  writeFileSync(monthFile, JSON.stringify(month));
}
const month = JSON.parse(readFileSync(monthFile, 'utf8')) as { from: number; to: number };

const admin = `mk_bench_${randomBytes(24).toString('hex')}`;
const metricsToken = randomBytes(16).toString('hex');
// LOG_LEVEL error: the server's log goes to DIR/meterd-0.log, and only failures are of interest.
const server = await startMeterd(0, { databaseUrl: `sqlite:${file}`, adminKey: admin, entry: 'dist', logDir: dir, protection: false, env: { METRICS_TOKEN: metricsToken, LOG_LEVEL: 'error' } });
const base = server.url;
try {
  const mb = (kb: string) => Math.round(Number.parseInt(kb, 10) / 1024);
  const report = async (label: string) => {
    const status = Object.fromEntries(readFileSync(`/proc/${server.pid}/status`, 'utf8').split('\n').map((l) => l.split(/:\s+/)));
    const metrics = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } })).text();
    const heap = (name: string) => Math.round(Number(new RegExp(`^${name} (\\S+)`, 'm').exec(metrics)?.[1] ?? NaN) / 1e6);
    console.log(`${label.padEnd(16)} RSS ${mb(status.VmRSS)} MB (peak ${mb(status.VmHWM)}): anonymous ${mb(status.RssAnon)}, files ${mb(status.RssFile)}; V8 heap ${heap('nodejs_heap_size_used_bytes')} used of ${heap('nodejs_heap_size_total_bytes')} MB`);
  };
  await report('started');
  for (const c of queryCases(month, 1)) {
    if (c.work.kind !== 'query') continue;
    const { paths } = c.work;
    let n = 0;
    for (const until = performance.now() + SECS * 1000; performance.now() < until; n++) {
      const r = await fetch(base + paths[n % paths.length], { headers: { authorization: `Bearer ${admin}` } });
      if (r.status !== 200) throw new Error(`${c.id}: ${r.status} ${(await r.text()).slice(0, 200)}`);
      await r.arrayBuffer();
    }
    await report(`${c.id} (${n} queries)`);
  }
} finally {
  await stopServers([server]);
}

// Running one case: warm-up, the measured load, server CPU over it, and for ingestion a check that
// the events the receipts acknowledged are really stored (counted by the COUNT meter).
import { join } from 'node:path';
import type { Services } from '../src/main.js';
import { systemCtx } from '../src/core/context.js';
import { ceilHour, floorHour } from '../src/core/time.js';
import type { CaseDef, CaseResult } from './cases.js';
import { runLoad } from './load.js';
import { cpuOf, sampleMemory, type Server } from './servers.js';
import { COUNT_METER, TENANT } from './workload.js';

export interface MeasureContext {
  token: string;
  durationSec: number;
  warmupSec: number;
  logDir: string;
  /** In-process services on the same database, to count stored events. */
  services: Services;
}

/** Events the COUNT meter holds with a time in [from, to). */
async function storedCount(s: Services, from: number, to: number): Promise<number> {
  const r = await s.usage.query(systemCtx(TENANT, 'bench'), COUNT_METER, { from, to, windowTimeZone: 'UTC', groupBy: [], filterGroupBy: {} });
  return Number(r.data[0]?.value ?? 0);
}

/**
 * How long a server takes to answer a usage query of the COUNT meter over the whole UTC hours around
 * [from, to): whole hours come from the rollups alone, so the time is the fold of what was pending.
 */
async function firstRead(server: Server, token: string, from: number, to: number): Promise<number> {
  const range = `from=${new Date(floorHour(from)).toISOString()}&to=${new Date(ceilHour(to)).toISOString()}`;
  const t0 = performance.now();
  const r = await fetch(`${server.url}/v1/meters/${COUNT_METER}/query?${range}`, { headers: { authorization: `Bearer ${token}` } });
  await r.arrayBuffer();
  if (!r.ok) throw new Error(`usage query after the load answered ${r.status}`);
  return performance.now() - t0;
}

/**
 * Waits until the servers are idle (under 10% of a core over half a second), at most 120 s: a query
 * abandoned by the previous load still runs on the event loop and would be charged to the next case.
 */
export async function drain(servers: Server[]): Promise<number> {
  const t0 = performance.now();
  let before = cpuOf(servers);
  for (let i = 0; i < 240; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const now = cpuOf(servers);
    const busy = Math.max(...now.map((c, k) => c - before[k]));
    before = now;
    if (!(busy > 0.05)) break;
  }
  return (performance.now() - t0) / 1000;
}

export async function measure(def: CaseDef, servers: Server[], m: MeasureContext): Promise<CaseResult> {
  const spec = { urls: servers.map((s) => s.url), token: m.token, connections: def.connections, durationSec: m.durationSec, work: def.work };
  const log = join(m.logDir, `loadgen-${def.id}.log`);
  const drained = await drain(servers);
  if (m.warmupSec > 0) {
    await runLoad({ ...spec, durationSec: m.warmupSec }, log);
    await drain(servers);
  }
  const checkStored = def.work.kind === 'ingest' && def.target === 'meterd';
  const cpu0 = cpuOf(servers);
  const t0 = performance.now();
  // The generator stamps each event with the time its request is built, so the events of this run (and
  // not the warm-up's or the previous case's late commits) are those with a time in [wall0, wall1).
  const wall0 = Date.now();
  const r = await runLoad(spec, log);
  const wall1 = Date.now() + 1;
  const elapsed = (performance.now() - t0) / 1000;
  const cpu1 = cpuOf(servers);
  sampleMemory(servers);

  const problems: string[] = [];
  const warnings: string[] = [];
  // No answer inside the window is a slow server, not a wrong one: the figures are n/a, the run still valid.
  if (r.requests === 0) warnings.push(`no answer within ${m.durationSec} s`);
  if (drained > 5) warnings.push(`waited ${drained.toFixed(0)} s for the server to finish earlier work`);
  if (r.non2xx > 0) problems.push(`${r.non2xx} non-2xx (${JSON.stringify(r.statuses)})`);
  if (r.errors > 0) problems.push(`${r.errors} connection errors`);
  if (r.timeouts > 0) problems.push(`${r.timeouts} timeouts`);
  if (r.badBodies > 0) problems.push(`${r.badBodies} answers without a receipt`);
  let stored: CaseResult['stored'];
  let unfolded: CaseResult['unfolded'];
  if (def.work.kind === 'ingest') {
    const sent = r.ok2xx * def.work.batch;
    if (r.acceptedEvents !== sent) problems.push(`${sent - r.acceptedEvents} events in 200 answers were not accepted`);
    if (checkStored) {
      // The first read goes to a server, whose writer folds what is pending before it answers.
      const events = await m.services.store.unfoldedEvents();
      unfolded = { events, firstReadMs: await firstRead(servers[0], m.token, wall0, wall1) };
      // Acknowledged means committed, so every acknowledged event must be counted already; requests still
      // in flight when the load stopped may add at most one batch per connection.
      const delta = await storedCount(m.services, wall0, wall1);
      const slack = def.connections * def.work.batch;
      const ok = delta >= r.acceptedEvents && delta <= r.acceptedEvents + slack;
      stored = { acknowledged: r.acceptedEvents, storedInRun: delta, ok };
      if (!ok) problems.push(`stored ${delta} events but receipts acknowledged ${r.acceptedEvents}`);
    }
  }
  const serverCpu = cpu1.reduce((a, c, i) => a + (c - cpu0[i]), 0);
  // After the checks too: the first read's fold belongs to this case.
  sampleMemory(servers);
  return {
    id: def.id,
    title: def.title,
    instances: servers.length,
    connections: def.connections,
    durationSec: r.durationSec,
    requestsPerSec: r.requests / r.durationSec,
    eventsPerSec: def.work.kind === 'ingest' ? r.acceptedEvents / r.durationSec : undefined,
    latencyMs: r.latencyMs,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    statuses: r.statuses,
    serverCpuPercent: (serverCpu / elapsed) * 100,
    clientCpuPercent: r.clientCpuPercent,
    stored,
    unfolded,
    serverRssMb: servers.map((s) => Math.round(s.lastRssMb)),
    serverPeakRssMb: servers.map((s) => Math.round(s.peakHwmMb)),
    valid: problems.length === 0,
    problems,
    warnings,
  };
}

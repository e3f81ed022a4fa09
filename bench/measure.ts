// Running cases: warm-up, the measured load, server CPU over it, and for ingestion a check that the
// events the receipts acknowledged are really stored (counted by the COUNT meter).
//
// A case and the reference its target is a ratio to (B1 and baseline1, B2 and baseline100, B3 and B2
// on an empty database) are measured in turns: rounds of one slice each, every server up all along.
// This machine's speed drifts by up to 2x within a minute (a fixed CPU loop ran 418 to 869 rounds per
// 2 s over 40 s, with no steal), so cases measured minutes apart gave B3 at 78% to 138% of B2 on the
// same data; taken in turns, the drift falls on both sides of a ratio.
import { join } from 'node:path';
import type { Services } from '../src/main.js';
import { systemCtx } from '../src/core/context.js';
import { ceilHour, floorHour } from '../src/core/time.js';
import type { CaseDef, CaseResult } from './cases.js';
import { runLoad, type LoadResult, type LoadSpec } from './load.js';
import { Samples } from './latency.js';
import { cpuOf, sampleMemory, type Server } from './servers.js';
import { machineShares, machineTicks, threadTimes, ticksBetween, type MachineTicks, type ThreadTime } from './procs.js';
import { COUNT_METER, TENANT } from './workload.js';

export interface MeasureContext {
  token: string;
  durationSec: number;
  warmupSec: number;
  logDir: string;
}

/** A case on its servers, with in-process services on the same database (to count stored events). */
export interface Subject {
  def: CaseDef;
  servers: Server[];
  services?: Services;
  /** Log file name for the load generator (default loadgen-<id>.log). */
  logName?: string;
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

const spec = (x: Subject, m: MeasureContext, durationSec: number): LoadSpec => ({
  urls: x.servers.map((s) => s.url), token: m.token, connections: x.def.connections, durationSec, work: x.def.work, samples: true,
});
const logOf = (x: Subject, m: MeasureContext) => join(m.logDir, x.logName ?? `loadgen-${x.def.id}.log`);

interface Slice {
  load: LoadResult;
  elapsed: number;
  serverCpu: number;
  machine?: MachineTicks;
  /** Per server thread kind: ns run on a CPU and ns waited for one over the slice, all servers together. */
  threads: Map<string, ThreadSpan>;
  /** Ingest: events the COUNT meter holds with a time inside the slice. */
  storedInRun?: number;
}

type ThreadSpan = Pick<ThreadTime, 'runNs' | 'waitNs'>;

/**
 * Thread time between two readings, by kind: the main thread, a named thread (meterd's SQLite writer),
 * and every other thread together (libuv's pool, V8's workers: each of them alone is noise).
 */
function threadsBetween(before: ThreadTime[], after: ThreadTime[]): Slice['threads'] {
  const was = new Map(before.map((t) => [t.tid, t]));
  const out: Slice['threads'] = new Map();
  for (const t of after) {
    const b = was.get(t.tid);
    const kind = t.name === 'main' || t.name.startsWith('meterd-') ? t.name : 'other threads';
    const k = out.get(kind) ?? { runNs: 0, waitNs: 0 };
    k.runNs += t.runNs - (b?.runNs ?? 0);
    k.waitNs += t.waitNs - (b?.waitNs ?? 0);
    out.set(kind, k);
  }
  return out;
}

/** One measured slice of a subject's load. */
async function slice(x: Subject, m: MeasureContext, last: boolean): Promise<{ slice: Slice; unfolded?: CaseResult['unfolded'] }> {
  const cpu0 = cpuOf(x.servers);
  const threads0 = x.servers.map((s) => threadTimes(s.pid));
  const machine0 = machineTicks();
  const t0 = performance.now();
  // The generator stamps each event with the time its request is built, so the events of this slice (and
  // not the warm-up's or an earlier slice's late commits) are those with a time in [wall0, wall1).
  const wall0 = Date.now();
  const load = await runLoad(spec(x, m, m.durationSec), logOf(x, m));
  const wall1 = Date.now() + 1;
  const elapsed = (performance.now() - t0) / 1000;
  const cpu1 = cpuOf(x.servers);
  const threads1 = x.servers.map((s) => threadTimes(s.pid));
  const machine1 = machineTicks();
  sampleMemory(x.servers);
  const out: Slice = {
    load, elapsed, serverCpu: cpu1.reduce((a, c, i) => a + (c - cpu0[i]), 0), machine: machine0 && machine1 ? ticksBetween(machine0, machine1) : undefined,
    threads: threadsBetween(threads0.flat(), threads1.flat()),
  };
  let unfolded: CaseResult['unfolded'];
  if (x.def.work.kind === 'ingest' && x.def.target === 'meterd' && x.services) {
    if (last) {
      // The first read goes to a server, whose writer folds what is pending before it answers.
      const events = await x.services.store.unfoldedEvents();
      unfolded = { events, firstReadMs: await firstRead(x.servers[0], m.token, wall0, wall1) };
    }
    out.storedInRun = await storedCount(x.services, wall0, wall1);
  }
  // After the checks too: the first read's fold belongs to this case.
  sampleMemory(x.servers);
  return { slice: out, unfolded };
}

/**
 * Measures the subjects in turns: each one's warm-up, then `rounds` rounds in which every subject runs
 * one slice of durationSec, all servers drained (idle) before each slice. One result per subject, from
 * all its slices together.
 */
export async function measureInTurns(subjects: Subject[], m: MeasureContext, rounds: number): Promise<CaseResult[]> {
  const everyServer = subjects.flatMap((x) => x.servers);
  const drained = subjects.map(() => 0);
  for (const [k, x] of subjects.entries()) {
    drained[k] = await drain(everyServer);
    if (m.warmupSec > 0) await runLoad(spec(x, m, m.warmupSec), logOf(x, m));
  }
  const slices: Slice[][] = subjects.map(() => []);
  const unfolded: Array<CaseResult['unfolded']> = subjects.map(() => undefined);
  for (let round = 0; round < rounds; round++) {
    for (const [k, x] of subjects.entries()) {
      drained[k] = Math.max(drained[k], await drain(everyServer));
      const r = await slice(x, m, round === rounds - 1);
      slices[k].push(r.slice);
      if (r.unfolded) unfolded[k] = r.unfolded;
    }
  }
  return subjects.map((x, k) => combine(x, slices[k], drained[k], unfolded[k], rounds));
}

/** One case alone, in one slice (the B4 queries). */
export function measure(def: CaseDef, servers: Server[], m: MeasureContext): Promise<CaseResult> {
  return measureInTurns([{ def, servers }], m, 1).then((r) => r[0]);
}

function combine(x: Subject, slices: Slice[], drained: number, unfolded: CaseResult['unfolded'], rounds: number): CaseResult {
  const { def, servers } = x;
  const sum = (f: (s: Slice) => number) => slices.reduce((a, s) => a + f(s), 0);
  const durationSec = sum((s) => s.load.durationSec);
  const elapsed = sum((s) => s.elapsed);
  const requests = sum((s) => s.load.requests);
  const accepted = sum((s) => s.load.acceptedEvents);
  const non2xx = sum((s) => s.load.non2xx);
  const errors = sum((s) => s.load.errors);
  const timeouts = sum((s) => s.load.timeouts);
  const badBodies = sum((s) => s.load.badBodies);
  const statuses: Record<string, number> = {};
  for (const s of slices) for (const [code, n] of Object.entries(s.load.statuses)) statuses[code] = (statuses[code] ?? 0) + n;
  const latency = new Samples();
  for (const s of slices) for (const ms of s.load.samples ?? []) latency.add(ms);
  const machine = slices.every((s) => s.machine) ? machineShares(slices.map((s) => s.machine!)) : undefined;

  const problems: string[] = [];
  const warnings: string[] = [];
  // No answer inside the window is a slow server, not a wrong one: the figures are n/a, the run still valid.
  if (requests === 0) warnings.push(`no answer within ${durationSec.toFixed(0)} s`);
  if (drained > 5) warnings.push(`waited ${drained.toFixed(0)} s for the servers to finish earlier work`);
  if (non2xx > 0) problems.push(`${non2xx} non-2xx (${JSON.stringify(statuses)})`);
  if (errors > 0) problems.push(`${errors} connection errors`);
  if (timeouts > 0) problems.push(`${timeouts} timeouts`);
  if (badBodies > 0) problems.push(`${badBodies} answers without a receipt`);
  let stored: CaseResult['stored'];
  if (def.work.kind === 'ingest') {
    const batch = def.work.batch;
    const sent = sum((s) => s.load.ok2xx) * batch;
    if (accepted !== sent) problems.push(`${sent - accepted} events in 200 answers were not accepted`);
    if (slices.every((s) => s.storedInRun !== undefined)) {
      // Acknowledged means committed, so every acknowledged event must be counted already; requests still
      // in flight when a slice's load stopped may add at most one batch per connection.
      const ok = slices.every((s) => s.storedInRun! >= s.load.acceptedEvents && s.storedInRun! <= s.load.acceptedEvents + def.connections * batch);
      const delta = sum((s) => s.storedInRun!);
      stored = { acknowledged: accepted, storedInRun: delta, ok };
      if (!ok) problems.push(`stored ${delta} events but receipts acknowledged ${accepted}`);
    }
  }
  // Per instance, in percent of one core over the measured time.
  const threads: CaseResult['threads'] = [];
  for (const kind of new Set(slices.flatMap((s) => [...s.threads.keys()]))) {
    const ns = (f: (t: ThreadSpan) => number) => sum((s) => { const t = s.threads.get(kind); return t ? f(t) : 0; });
    const pct = (v: number) => Math.round((v / 1e9 / elapsed / servers.length) * 1000) / 10;
    threads.push({ thread: kind, runPercent: pct(ns((t) => t.runNs)), waitPercent: pct(ns((t) => t.waitNs)) });
  }
  const clientCpuPercent = durationSec > 0 ? sum((s) => s.load.clientCpuPercent * s.load.durationSec) / durationSec : 0;
  return {
    id: def.id,
    title: def.title,
    instances: servers.length,
    connections: def.connections,
    rounds,
    durationSec,
    requestsPerSec: requests / durationSec,
    eventsPerSec: def.work.kind === 'ingest' ? accepted / durationSec : undefined,
    latencyMs: latency.percentiles(),
    non2xx,
    errors,
    timeouts,
    statuses,
    serverCpuPercent: (sum((s) => s.serverCpu) / elapsed) * 100,
    clientCpuPercent,
    machineCpu: machine,
    threads,
    stored,
    unfolded,
    serverRssMb: servers.map((s) => Math.round(s.lastRssMb)),
    serverPeakRssMb: servers.map((s) => Math.round(s.peakHwmMb)),
    valid: problems.length === 0,
    problems,
    warnings,
  };
}

// The cases of issue #5 and their targets. A case is a load (bench/load.ts) against the baseline or
// meterd; targets are only reported, never enforced.
import { DateTime } from 'luxon';
import { CUSTOMERS, subjectOf } from './workload.js';
import type { LoadResult, Work } from './load.js';
import type { MachineShares } from './procs.js';

export type Engine = 'sqlite' | 'postgres';
export type CaseId = 'baseline1' | 'baseline100' | 'B1' | 'B2' | 'B3' | 'B4a' | 'B4b' | 'B4c' | 'B4d';
export const ALL_CASES: CaseId[] = ['baseline1', 'baseline100', 'B1', 'B2', 'B3', 'B4a', 'B4b', 'B4c', 'B4d'];
export const QUERY_TZ = 'America/New_York';

export interface CaseDef {
  id: CaseId;
  title: string;
  target: 'baseline' | 'meterd';
  work: Work;
  /** Keep-alive connections in all (split across instances). */
  connections: number;
}

const ingest = (id: CaseId, title: string, target: CaseDef['target'], batch: number, connections: number): CaseDef => ({
  id, title, target, connections, work: { kind: 'ingest', batch },
});

export function ingestCases(connections: number): CaseDef[] {
  return [
    ingest('baseline1', 'baseline: 1 event/request, parse + answer, no storage', 'baseline', 1, connections),
    ingest('baseline100', 'baseline: 100 events/request, parse + answer, no storage', 'baseline', 100, connections),
    ingest('B1', '1 event/request, durable ack', 'meterd', 1, connections),
    ingest('B2', '100 events/request, random UUIDv4 ids', 'meterd', 100, connections),
    ingest('B3', 'B2 with the seeded events already stored', 'meterd', 100, connections),
  ];
}

/** The B4 queries over the seeded month; each request picks one of its paths at random. */
export function queryCases(month: { from: number; to: number }, connections: number): CaseDef[] {
  const iso = (ms: number) => new Date(ms).toISOString();
  const range = `from=${encodeURIComponent(iso(month.from))}&to=${encodeURIComponent(iso(month.to))}`;
  // Local midnights in the zone, 30 days apart, so windows follow New York days and hours.
  const day = DateTime.fromMillis(month.from, { zone: 'UTC' }).toISODate()!;
  const tzFrom = DateTime.fromISO(day, { zone: QUERY_TZ });
  const tzRange = `from=${encodeURIComponent(tzFrom.toUTC().toISO()!)}&to=${encodeURIComponent(tzFrom.plus({ days: 30 }).toUTC().toISO()!)}`;
  const q = (slug: string, rest: string) => `/v1/meters/${slug}/query?${rest}`;
  // SUM/COUNT meters rotate so no answer can be served from one hot cache entry.
  const sumMeters = ['tokens_in', 'tokens_out', 'requests'];
  const mk = (id: CaseId, title: string, paths: string[]): CaseDef => ({ id, title, target: 'meterd', connections, work: { kind: 'query', paths } });
  return [
    mk('B4a', 'query: 1 customer, 1 meter, month in DAY windows', Array.from({ length: CUSTOMERS }, (_, i) => q('tokens_in', `${range}&windowSize=DAY&subject=${subjectOf(i)}`))),
    mk('B4b', 'query: 1 meter, month, grouped by subject (1:1 customers)', sumMeters.map((m) => q(m, `${range}&groupBy=subject`))),
    mk('B4c', `query: 1 meter, month in HOUR windows by model, ${QUERY_TZ}`, sumMeters.map((m) => q(m, `${tzRange}&windowSize=HOUR&windowTimeZone=${encodeURIComponent(QUERY_TZ)}&groupBy=model`))),
    mk('B4d', 'query: UNIQUE_COUNT of users over the month', [q('users', range)]),
  ];
}

export interface CaseResult {
  id: CaseId;
  title: string;
  instances: number;
  connections: number;
  /** Slices the case was measured in, taken in turns with its reference (bench/measure.ts). */
  rounds?: number;
  durationSec: number;
  requestsPerSec: number;
  /** Accepted events per second (ingest cases), from the receipts. */
  eventsPerSec?: number;
  latencyMs: LoadResult['latencyMs'];
  non2xx: number;
  errors: number;
  timeouts: number;
  statuses: Record<string, number>;
  serverCpuPercent: number;
  clientCpuPercent: number;
  /** B3: the B2 load on an empty database, measured in turns with it; B3's target is a ratio to this. */
  reference?: { title: string; eventsPerSec?: number; requestsPerSec: number; latencyMs: LoadResult['latencyMs']; serverCpuPercent: number };
  /** The whole machine over the measured run, in percent of all cores' time (/proc/stat). */
  machineCpu?: MachineShares;
  /**
   * Each server thread's share of the measured time, per instance, in percent of one core: running, and
   * runnable but waiting for a CPU (/proc schedstat). A thread near 100% running bounds the case; time
   * neither running nor waiting is time it slept (for I/O, a lock or another thread's answer).
   */
  threads?: Array<{ thread: string; runPercent: number; waitPercent: number }>;
  /** Ingest check: events stored with a time inside the measured run (the COUNT meter) vs acknowledged. */
  stored?: { acknowledged: number; storedInRun: number; ok: boolean };
  /**
   * Ingest cases: events left unfolded when the load stopped, and how long the first usage query then
   * took (it folds them first). Folds that fell behind the commits would show here, not in events/s.
   */
  unfolded?: { events: number; firstReadMs: number };
  /** Each server's peak RSS (VmHWM) so far, read once the case and its checks are done: which case set the peak. */
  serverPeakRssMb?: number[];
  serverRssMb?: number[];
  /** False when the case had errors or lost events: its figures do not count. */
  valid: boolean;
  problems: string[];
  warnings: string[];
}

export interface TargetResult {
  id: string;
  description: string;
  limit: string;
  measured: string;
  pass: boolean | null;
}

/** startedAt: the SQLite run the figures come from. */
export interface SqliteReference { startedAt: string; B4a?: number; B4b?: number; B4c?: number; B4d?: number }

/** Issue #5's targets against what was measured (null = not measured in this run). */
export function evaluateTargets(engine: Engine, byId: Partial<Record<CaseId, CaseResult>>, peakRssMb: number | undefined, sqliteRef?: SqliteReference): TargetResult[] {
  const pg = engine === 'postgres';
  const out: TargetResult[] = [];
  const fmt = (n: number | null, d = 1) => (n !== null && Number.isFinite(n) ? n.toFixed(d) : 'n/a');
  const invalid = (id: string) => ['B1', 'B2', 'B3', 'B4a', 'B4b', 'B4c', 'B4d'].includes(id) && byId[id as CaseId]?.valid === false;
  // A figure from a case with errors or lost events never passes.
  const add = (id: string, description: string, limit: string, measured: number | undefined, pass: (v: number) => boolean, show: (v: number) => string) =>
    out.push({
      id, description, limit,
      measured: measured === undefined ? 'not run' : measured === null || !Number.isFinite(measured) ? 'no answer in the window' : `${show(measured)}${invalid(id) ? ' (invalid run)' : ''}`,
      // No answer inside the measured window (NaN, null in JSON) is a failure, not a pass.
      pass: measured === undefined ? null : measured !== null && Number.isFinite(measured) && pass(measured) && !invalid(id),
    });

  const { B1, B2, B3, baseline1 } = byId;
  const b1Ratio = B1 && baseline1 ? B1.requestsPerSec / baseline1.requestsPerSec : undefined;
  const minB1 = pg ? 0.25 : 0.5;
  add('B1', 'req/s vs baseline (1 event/request)', `>= ${minB1 * 100}%`, b1Ratio, (v) => v >= minB1, (v) => `${fmt(v * 100)}%`);
  const minB2 = pg ? 50_000 : 150_000;
  add('B2', 'events/s, batches of 100', `>= ${minB2.toLocaleString('en-US')}`, B2?.eventsPerSec, (v) => v >= minB2, (v) => Math.round(v).toLocaleString('en-US'));
  // Against the B2 load measured in turns with B3 (runs before the reference existed: the B2 case).
  const b3Base = B3?.reference ? B3.reference.eventsPerSec : B2?.eventsPerSec;
  const b3Ratio = B3?.eventsPerSec !== undefined && b3Base ? B3.eventsPerSec / b3Base : undefined;
  add('B3', `events/s vs B2${B3?.reference ? ' (in turns)' : ''} with data stored`, '>= 80%', b3Ratio, (v) => v >= 0.8, (v) => `${fmt(v * 100)}%`);
  const sqliteLimits: Record<'B4a' | 'B4b' | 'B4c' | 'B4d', number> = { B4a: 5, B4b: 50, B4c: 50, B4d: 100 };
  for (const id of ['B4a', 'B4b', 'B4c', 'B4d'] as const) {
    // PostgreSQL: at most 2x the SQLite figure of the last SQLite run on this kind of machine, else 2x its target.
    const ref = sqliteRef?.[id];
    const limit = pg ? 2 * (ref ?? sqliteLimits[id]) : sqliteLimits[id];
    const label = pg ? `<= ${fmt(limit)} ms (2x ${ref !== undefined ? `SQLite run of ${sqliteRef!.startedAt.slice(0, 16).replace('T', ' ')} UTC` : 'SQLite target'})` : `<= ${limit} ms`;
    add(id, 'query p99', label, byId[id]?.latencyMs.p99, (v) => v <= limit, (v) => `${fmt(v, 2)} ms`);
  }
  add('RSS', 'peak server RSS (per instance)', '<= 300 MB', peakRssMb, (v) => v <= 300, (v) => `${fmt(v, 0)} MB`);
  return out;
}

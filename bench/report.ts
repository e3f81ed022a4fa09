// The run's record: the machine, every case, the targets; written as JSON (timestamped and latest)
// and as a Markdown table (latest.md, for the README), and printed.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import type { CaseResult, Engine, SqliteReference, TargetResult } from './cases.js';
import type { SeedResult } from './seed.js';
import type { VacuumLog } from './autovacuum.js';

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGb: number;
  node: string;
  engine: Engine;
  engineVersion?: string;
  dbFilesystem?: string;
  loadAvgStart: number[];
  loadAvgEnd?: number[];
}

export interface SoakReport {
  minutes: number;
  targetEventsPerSec: number;
  samples: Array<{ atSec: number; eventsPerSec: number; p99: number; rssMb: number }>;
  p99Flat: boolean;
  rssFlat: boolean;
  rateHeld: boolean;
}

export interface RunReport {
  startedAt: string;
  mode: 'quick' | 'full';
  options: Record<string, unknown>;
  machine: Machine;
  seed?: SeedResult;
  /** PostgreSQL with autovacuum off: what the bench's emulation of it did (bench/autovacuum.ts). */
  autovacuum?: VacuumLog;
  cases: CaseResult[];
  peakRssMb: number[];
  targets: TargetResult[];
  soak?: SoakReport;
  profiles?: string[];
  valid: boolean;
}

export function machineInfo(engine: Engine, dbDir?: string): Machine {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpuModel = m[1].trim();
  } catch {
    // not Linux: os.cpus() it is
  }
  let dbFilesystem: string | undefined;
  if (dbDir) {
    try {
      dbFilesystem = execFileSync('df', ['-T', dbDir], { encoding: 'utf8' }).trim().split('\n')[1]?.split(/\s+/)[1];
    } catch {
      // df missing: leave it out
    }
  }
  return { cpuModel, cores: cpus().length, memoryGb: Math.round((totalmem() / 2 ** 30) * 10) / 10, node: process.version, engine, dbFilesystem, loadAvgStart: loadavg().map((x) => Math.round(x * 100) / 100) };
}

const n0 = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '' : Math.round(v).toLocaleString('en-US'));
const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(v < 10 ? 2 : 1) : '');

/** The case by whose end the peak was reached, if the cases recorded it. */
function peakCase(r: RunReport): string {
  if (r.peakRssMb.length === 0) return '';
  const peak = Math.max(...r.peakRssMb);
  const c = r.cases.find((x) => x.serverPeakRssMb !== undefined && Math.max(...x.serverPeakRssMb) >= peak);
  return c ? ` (reached by the end of ${c.id})` : '';
}

const notes = (c: CaseResult) =>
  [
    ...(c.valid ? [] : [`INVALID: ${c.problems.join('; ')}`]),
    ...(c.warnings ?? []),
    // Only when it is large enough to explain a slow case.
    ...(c.machineCpu && c.machineCpu.steal >= 2 ? [`steal ${c.machineCpu.steal}% of the machine`] : []),
    ...(c.machineCpu && c.machineCpu.iowait >= 5 ? [`iowait ${c.machineCpu.iowait}%`] : []),
    ...(c.valid && c.stored ? ['stored = acked'] : []),
    ...(c.reference ? [`in turns with ${c.reference.title}: ${n0(c.reference.eventsPerSec)} events/s, p99 ${ms(c.reference.latencyMs.p99)} ms`] : []),
    ...(c.rounds && c.rounds > 1 ? [`${c.rounds} slices in turns`] : []),
    ...(c.unfolded ? [`${n0(c.unfolded.events)} unfolded at the end, first read ${ms(c.unfolded.firstReadMs)} ms`] : []),
  ].join('; ');

/** The thread kinds a case reports, e.g. "main 68.2% run + 12.5% waiting". */
export const threadLine = (c: CaseResult) => (c.threads ?? []).map((t) => `${t.thread} ${t.runPercent}% run + ${t.waitPercent}% waiting`).join(', ');

/**
 * Where each server spent the measured time, per thread kind: the thread that runs nearly all the time
 * bounds the case; one that waits long for a CPU is crowded off the cores by the others.
 */
function threadTable(r: RunReport): string[] {
  const cases = r.cases.filter((c) => c.threads?.length);
  if (cases.length === 0) return [];
  const kinds = [...new Set(cases.flatMap((c) => c.threads!.map((t) => t.thread)))];
  const cell = (c: CaseResult, kind: string) => {
    const t = c.threads!.find((x) => x.thread === kind);
    return t ? `${t.runPercent.toFixed(0)}% + ${t.waitPercent.toFixed(0)}%` : '';
  };
  return [
    'Server threads over each case, per instance, in % of one core: running + runnable but waiting for a CPU (/proc schedstat).',
    '',
    `| case | ${kinds.join(' | ')} |`,
    `|---|${kinds.map(() => '---:').join('|')}|`,
    ...cases.map((c) => `| ${c.id} | ${kinds.map((k) => cell(c, k)).join(' | ')} |`),
    '',
  ];
}

export function markdown(r: RunReport): string {
  const m = r.machine;
  const base = (c: CaseResult) => {
    const b = r.cases.find((x) => x.id === (c.id === 'B1' ? 'baseline1' : 'baseline100'));
    // B3 is measured in turns with its own reference (a B2 on an empty database), not with the baseline.
    if (!b || !['B1', 'B2'].includes(c.id)) return '';
    return `${((c.requestsPerSec / b.requestsPerSec) * 100).toFixed(1)}%`;
  };
  const lines = [
    `meterd benchmark (${r.mode}, ${m.engine}${m.engineVersion ? ` ${m.engineVersion}` : ''}) — ${r.startedAt}`,
    '',
    `Machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryGb} GB RAM, Node ${m.node}${m.dbFilesystem ? `, database on ${m.dbFilesystem}` : ''}; ` +
      `load average ${m.loadAvgStart.join(' ')} at start${m.loadAvgEnd ? `, ${m.loadAvgEnd.join(' ')} at end` : ''} (other work on the machine makes absolute numbers noisy; compare ratios to the same-run baseline).`,
    `Load: autocannon in a separate process on loopback, ${r.options.connections} keep-alive connections for ingestion, ${r.options.queryConnections} for queries, ${r.options.durationSec} s per case after ${r.options.warmupSec} s warm-up.`,
    ...(r.autovacuum ? [`Autovacuum is off on this server, so the bench applied its dead-row rule once a minute (bench/autovacuum.ts): ${r.autovacuum.vacuums} table vacuum${r.autovacuum.vacuums === 1 ? '' : 's'}, ${r.autovacuum.seconds.toFixed(1)} s in all.`] : []),
    r.seed ? `Seeded ${r.seed.events.toLocaleString('en-US')} events in-process (bulk append, batches of ${r.options.seedBatch}) at ${n0(r.seed.eventsPerSec)} events/s (${r.seed.seconds.toFixed(1)} s).` : r.options.seedFile ? `Seeded data: a copy of ${r.options.seedFile} (kept by an earlier run; servers restarted on it before B3).` : 'Nothing seeded.',
    '',
    '| case | what | events/s | req/s | vs baseline (req/s) | p50 ms | p99 ms | server CPU | client CPU | notes |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---|',
    ...r.cases.map((c) =>
      `| ${c.id} | ${c.title}${c.instances > 1 ? ` (${c.instances} instances)` : ''} | ${n0(c.eventsPerSec)} | ${n0(c.requestsPerSec)} | ${base(c)} | ${ms(c.latencyMs.p50)} | ${ms(c.latencyMs.p99)} | ${c.serverCpuPercent.toFixed(0)}% | ${c.clientCpuPercent.toFixed(0)}% | ${notes(c)} |`),
    '',
    `Peak server RSS (VmHWM): ${r.peakRssMb.map((x) => `${x.toFixed(0)} MB`).join(', ') || 'n/a'}${peakCase(r)}.`,
    '',
    ...threadTable(r),
    '| target | measure | limit | measured | result |',
    '|---|---|---|---|---|',
    ...r.targets.map((t) => `| ${t.id} | ${t.description} | ${t.limit} | ${t.measured} | ${t.pass === null ? '—' : t.pass ? 'pass' : 'FAIL'} |`),
  ];
  if (r.soak) {
    const s = r.soak;
    lines.push('', `Soak: ${s.minutes} min at ${n0(s.targetEventsPerSec)} events/s (half of B2): p99 ${s.p99Flat ? 'flat' : 'NOT flat'}, RSS ${s.rssFlat ? 'flat' : 'NOT flat'}, rate ${s.rateHeld ? 'held' : 'NOT held'}.`, '',
      '| t (s) | events/s | p99 ms | RSS MB |', '|---:|---:|---:|---:|',
      ...s.samples.map((x) => `| ${x.atSec.toFixed(0)} | ${n0(x.eventsPerSec)} | ${ms(x.p99)} | ${x.rssMb.toFixed(0)} |`));
  }
  if (r.profiles?.length) lines.push('', `CPU profiles: ${r.profiles.join(', ')}`);
  return `${lines.join('\n')}\n`;
}

export function writeReport(dir: string, r: RunReport): { json: string; md: string } {
  mkdirSync(dir, { recursive: true });
  const stamp = r.startedAt.replace(/[:.]/g, '-');
  const json = `${JSON.stringify(r, null, 2)}\n`;
  const file = join(dir, `${stamp}-${r.machine.engine}-${r.mode}.json`);
  writeFileSync(file, json);
  writeFileSync(join(dir, 'latest.json'), json);
  writeFileSync(join(dir, `latest-${r.machine.engine}.json`), json);
  const md = markdown(r);
  writeFileSync(join(dir, 'latest.md'), md);
  return { json: file, md };
}

/**
 * B4 p99 figures of the newest full SQLite run with the same seed size on the same kind of machine (CPU
 * model and cores), among the runs kept in `dir`, for PostgreSQL's "2x SQLite" targets: a figure from
 * other hardware says nothing about this run. Not only latest-sqlite.json: the last SQLite run may
 * have been on another kind of machine while an earlier one was on this kind.
 */
export function sqliteReference(dir: string, seedEvents: number, machine: Pick<Machine, 'cpuModel' | 'cores'>): SqliteReference | undefined {
  let best: SqliteReference | undefined;
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('-sqlite-full.json') || f === 'latest-sqlite.json');
  } catch {
    return undefined;
  }
  for (const file of files) {
    let r: RunReport;
    try {
      r = JSON.parse(readFileSync(join(dir, file), 'utf8')) as RunReport;
    } catch {
      continue;
    }
    if (r.mode !== 'full' || r.options?.seedEvents !== seedEvents || r.machine?.engine !== 'sqlite') continue;
    if (r.machine.cpuModel !== machine.cpuModel || r.machine.cores !== machine.cores) continue;
    const p99 = (id: string) => {
      const c = r.cases?.find((x) => x.id === id);
      const v = c?.latencyMs?.p99;
      return c?.valid && typeof v === 'number' && Number.isFinite(v) ? v : undefined;
    };
    const ref = { startedAt: r.startedAt, B4a: p99('B4a'), B4b: p99('B4b'), B4c: p99('B4c'), B4d: p99('B4d') };
    if (ref.B4a === undefined && ref.B4b === undefined && ref.B4c === undefined && ref.B4d === undefined) continue;
    if (!best || ref.startedAt > best.startedAt) best = ref;
  }
  return best;
}

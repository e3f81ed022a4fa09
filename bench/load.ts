// Runs the load generator (bench/loadgen.ts) as a child process and collects what it reports.
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { startNode, stop } from './procs.js';

export type Work = { kind: 'ingest'; batch: number } | { kind: 'query'; paths: string[] };

export interface LoadSpec {
  urls: string[];
  token: string;
  connections: number;
  durationSec: number;
  /** Overall requests per second (soak); unlimited when absent. */
  rate?: number;
  /** Print an interval line this often (soak). */
  intervalSec?: number;
  work: Work;
  /** Return every latency (ms), so slices measured apart can be combined. */
  samples?: boolean;
}

export interface Percentiles { p50: number; p90: number; p99: number; max: number }

export interface LoadResult {
  type: 'result';
  durationSec: number;
  requests: number;
  ok2xx: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statuses: Record<string, number>;
  /** Events the receipts said were accepted (ingest only). */
  acceptedEvents: number;
  /** 200 answers without a readable receipt. */
  badBodies: number;
  latencyMs: Percentiles;
  /** Every answer's latency in ms, when the spec asked. */
  samples?: number[];
  clientCpuPercent: number;
}

export interface IntervalLine { type: 'interval'; atSec: number; requests: number; eventsPerSec: number; p50: number; p99: number }

const LOADGEN = join(import.meta.dirname, 'loadgen.ts');

export async function runLoad(spec: LoadSpec, logFile: string, onInterval?: (l: IntervalLine) => void): Promise<LoadResult> {
  // The spec goes in a file: a B4a path list is too long for a command line.
  const specFile = `${logFile}.spec.json`;
  writeFileSync(specFile, JSON.stringify(spec));
  const p = startNode(['--import', 'tsx', LOADGEN, specFile], {}, logFile, true);
  // The generator stops itself after durationSec; this only catches a hung one.
  const watchdog = setTimeout(() => void stop(p, 5000), (spec.durationSec + 60) * 1000);
  let result: LoadResult | undefined;
  const lines = createInterface({ input: p.child.stdout! });
  lines.on('line', (line) => {
    let msg: LoadResult | IntervalLine;
    try {
      msg = JSON.parse(line) as LoadResult | IntervalLine;
    } catch {
      return;
    }
    if (msg.type === 'result') result = msg;
    else onInterval?.(msg);
  });
  const [code] = await Promise.all([p.exited, once(lines, 'close')]);
  clearTimeout(watchdog);
  if (!result) throw new Error(`load generator exited (code ${code}) without a result; see ${logFile}`);
  return result;
}

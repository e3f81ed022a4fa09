// Child processes of a run (servers, load generators): started here, tracked, and always stopped —
// on success, on error, on Ctrl-C. Also reads a process's memory and CPU time from /proc.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

const live = new Set<ChildProcess>();

process.on('exit', () => {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

export interface Started {
  child: ChildProcess;
  exited: Promise<number | null>;
}

/** Starts a node script; its stderr (and stdout unless piped) goes to logFile. */
export function startNode(args: string[], env: Record<string, string>, logFile: string, pipeStdout = false): Started {
  return startProgram(process.execPath, args, env, logFile, pipeStdout);
}

/** Starts a program (valgrind, say: bench/instructions.ts); output as startNode's. */
export function startProgram(command: string, args: string[], env: Record<string, string>, logFile: string, pipeStdout = false): Started {
  const child = spawn(command, args, {
    cwd: join(import.meta.dirname, '..'),
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const log = createWriteStream(logFile, { flags: 'a' });
  if (!pipeStdout) child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      live.delete(child);
      resolve(code);
    });
  });
  return { child, exited };
}

/** SIGTERM, then SIGKILL after graceMs. Resolves once the process is gone. */
export async function stop(p: Started, graceMs = 20_000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(timer);
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((child) => stop({ child, exited: new Promise((r) => child.once('exit', r)) })));
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Polls url until it answers 2xx, for at most timeoutMs; fails at once if the process exits. */
export async function waitHealthy(url: string, p: Started, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void p.exited.then(() => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`process exited (code ${p.child.exitCode}) before ${url} answered`);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (r.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms`);
}

/** Resident and peak resident memory in MB, or undefined when the process is gone. */
export function memoryMb(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
    return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/** The machine's CPU time so far, all cores, in clock ticks by kind (the first line of /proc/stat). */
export interface MachineTicks { busy: number; idle: number; iowait: number; steal: number }

export function machineTicks(): MachineTicks | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
    // cpu user nice system idle iowait irq softirq steal ...
    const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(Number);
    return { busy: user + nice + system + irq + softirq, idle, iowait, steal };
  } catch {
    return undefined;
  }
}

/** CPU time the machine spent between two readings, by kind. */
export const ticksBetween = (a: MachineTicks, b: MachineTicks): MachineTicks => ({ busy: b.busy - a.busy, idle: b.idle - a.idle, iowait: b.iowait - a.iowait, steal: b.steal - a.steal });

/**
 * Shares of the machine's CPU time over some periods (ticksBetween each), in percent of all cores:
 * steal (taken by the host for other guests) and iowait show when a slow case was the machine's doing.
 */
export interface MachineShares { busy: number; iowait: number; steal: number }

export function machineShares(periods: MachineTicks[]): MachineShares | undefined {
  const t = periods.reduce((a, p) => ({ busy: a.busy + p.busy, idle: a.idle + p.idle, iowait: a.iowait + p.iowait, steal: a.steal + p.steal }), { busy: 0, idle: 0, iowait: 0, steal: 0 });
  const total = t.busy + t.idle + t.iowait + t.steal;
  if (!(total > 0)) return undefined;
  const pct = (v: number) => Math.round((v / total) * 1000) / 10;
  return { busy: pct(t.busy), iowait: pct(t.iowait), steal: pct(t.steal) };
}

/** User + system CPU seconds the process has used so far (clock ticks are 100 Hz on Linux). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** One thread's scheduler accounting so far (/proc/<pid>/task/<tid>/schedstat), in nanoseconds. */
export interface ThreadTime { tid: number; name: string; runNs: number; waitNs: number }

/**
 * Every thread of a process: its name (the main thread is "main"; meterd names its SQLite writer
 * "meterd-writer"), the time it ran on a CPU and the time it waited, runnable, for one. Waiting
 * shows threads of one process (or the load generator) crowding each other off the machine's cores.
 */
export function threadTimes(pid: number): ThreadTime[] {
  const out: ThreadTime[] = [];
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tids) {
    try {
      const [run, wait] = readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ').map(Number);
      const tid = Number(t);
      out.push({ tid, name: tid === pid ? 'main' : readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim(), runNs: run, waitNs: wait });
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

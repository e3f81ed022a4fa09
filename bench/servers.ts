// Starting the servers under test (the baseline, or one or more meterd instances) as separate
// processes on loopback, and watching their memory and CPU while they run.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { cpuSeconds, freePort, memoryMb, startNode, stop, waitHealthy, type Started } from './procs.js';

export const ROOT = join(import.meta.dirname, '..');

/** Compiles src to dist in `root`, so the server measured is the one `npm start` runs (no tsx in the process). */
export function buildDist(root = ROOT): void {
  execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
}

export interface Server {
  name: string;
  url: string;
  proc: Started;
  pid: number;
  peakHwmMb: number;
  lastRssMb: number;
}

export interface MeterdOptions {
  databaseUrl: string;
  adminKey: string;
  /** 'src' runs the TypeScript through tsx (the tree as it is now); 'dist' runs the last build. */
  entry: 'src' | 'dist';
  profileDir?: string;
  logDir: string;
  /** Keep meterd's rate limit and load shedding on (off by default: the bench measures capacity, and a
   * per-key limit or a 503 under saturation would cap or void the figure). */
  protection: boolean;
  /** More settings for meterd, over the bench's own. */
  env?: Record<string, string>;
  /** Process name, for its log file (default meterd): meterd-<name>-<i>.log. */
  name?: string;
  /** Another checkout to run meterd from (bench/ab.ts compares builds); default this one. */
  root?: string;
}

/** The settings the bench changes from meterd's defaults (unknown names are ignored by older builds). */
export const measureEnv = (protection: boolean): Record<string, string> => (protection ? {} : { RATE_LIMIT_PER_SECOND: '0', SHED_EVENT_LOOP_DELAY_MS: '0' });

async function launch(name: string, script: string[], env: Record<string, string>, logDir: string, profileDir?: string): Promise<Server> {
  const port = await freePort();
  const args = [...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []), ...script];
  const proc = startNode(args, { ...env, PORT: String(port) }, join(logDir, `${name}.log`));
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(`${url}/healthz`, proc);
  return { name, url, proc, pid: proc.child.pid!, peakHwmMb: 0, lastRssMb: 0 };
}

export function startBaseline(logDir: string): Promise<Server> {
  return launch('baseline', ['--import', 'tsx', join(ROOT, 'bench/baseline-server.ts')], {}, logDir);
}

export function startMeterd(i: number, o: MeterdOptions): Promise<Server> {
  const root = o.root ?? ROOT;
  const script = o.entry === 'dist' ? [join(root, 'dist/cli/index.js'), 'serve'] : ['--import', 'tsx', join(root, 'src/cli/index.ts'), 'serve'];
  const env = { METERD_ADMIN_KEY: o.adminKey, DATABASE_URL: o.databaseUrl, HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...measureEnv(o.protection), ...o.env };
  return launch(`${o.name ?? 'meterd'}-${i}`, script, env, o.logDir, o.profileDir);
}

/** Reads every server's memory now; VmHWM is the kernel's own peak, so nothing between samples is missed. */
export function sampleMemory(servers: Server[]): void {
  for (const s of servers) {
    const m = memoryMb(s.pid);
    if (!m) continue;
    s.peakHwmMb = Math.max(s.peakHwmMb, m.hwm);
    s.lastRssMb = m.rss;
  }
}

export const cpuOf = (servers: Server[]) => servers.map((s) => cpuSeconds(s.pid));

export async function stopServers(servers: Server[]): Promise<void> {
  sampleMemory(servers);
  await Promise.all(servers.map((s) => stop(s.proc)));
}

// A/B comparison of two meterd builds (or settings) under one ingestion case, in turns with the baseline:
// each round runs the baseline, A and B one slice each, so the machine's drift (up to 2x within a minute
// here) falls on all three alike. Reports each side's ratio to the baseline and B/A per round.
//   node --import tsx bench/ab.ts --b-ref HEAD~1                 (this tree against a commit: built in a worktree)
//   node --import tsx bench/ab.ts --b-env WRITER_X=1 --batch 100  (the same build with other settings)
//   node --import tsx bench/ab.ts --engine postgres ...            (each side on its own schema, 2 instances)
import { Command, InvalidArgumentError, Option } from 'commander';
import pg from 'pg';
import { positive, positiveInt } from './args.js';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ingestCases, type CaseResult } from './cases.js';
import { measureInTurns, type Subject } from './measure.js';
import { stopAll } from './procs.js';
import { benchDatabase, schemaUrl } from './seed.js';
import { openServices, type Services } from '../src/main.js';
import { loadConfig } from '../src/config.js';
import { ROOT, buildDist, startBaseline, startMeterd, stopServers, type Server } from './servers.js';

const envList = (v: string, prev: Record<string, string> = {}) => {
  const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(v);
  if (!m) throw new InvalidArgumentError('expected NAME=value');
  return { ...prev, [m[1]]: m[2] };
};
const o = new Command('ab')
  .description('meterd A (this tree) against B (--b-ref or --b-env), in turns with the baseline')
  .option('--b-ref <ref>', 'B is meterd at this git commit, built in a temporary worktree')
  .option('--a-env <NAME=value>', 'setting for A (repeatable)', envList, {})
  .option('--b-env <NAME=value>', 'setting for B (repeatable)', envList, {})
  .option('--batch <n>', 'events per request: 1 (B1) or 100 (B2)', positiveInt, 1)
  .option('--rounds <n>', 'rounds of baseline, A, B', positiveInt, 6)
  .option('--duration <s>', 'seconds per slice', positive, 8)
  .option('--warmup <s>', 'unmeasured seconds before each side', positive, 3)
  .option('--connections <n>', 'keep-alive connections', positiveInt, 64)
  .addOption(new Option('--engine <engine>', 'database engine').choices(['sqlite', 'postgres']).default('sqlite'))
  .option('--instances <n>', 'meterd instances per side (default 1 on SQLite, 2 on PostgreSQL)', positiveInt)
  .option('--pg-url <url>', 'PostgreSQL server (a schema per side is made and dropped)', 'postgres://postgres@127.0.0.1:5432/test')
  .parse()
  .opts<{
    bRef?: string; aEnv: Record<string, string>; bEnv: Record<string, string>; batch: number; rounds: number; duration: number; warmup: number; connections: number;
    engine: 'sqlite' | 'postgres'; instances?: number; pgUrl: string;
  }>();
const instances = o.instances ?? (o.engine === 'postgres' ? 2 : 1);
/** PostgreSQL schemas made for the sides, dropped at the end. */
const schemas: string[] = [];
const services: Services[] = [];

const work = mkdtempSync(join(tmpdir(), 'meterd-ab-'));
const say = (s: string) => process.stderr.write(`${s}\n`);

/** A worktree of the ref with this tree's node_modules (the lockfile must not differ), built. */
function checkout(ref: string): string {
  const dir = join(work, 'b-tree');
  execFileSync('git', ['-C', ROOT, 'worktree', 'add', '--detach', dir, ref], { stdio: 'ignore' });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  buildDist(dir);
  return dir;
}

/** The setup and in-process services of the checkout at `root` (this tree's own when it is this tree). */
async function codeOf(root: string): Promise<{ benchDatabase: typeof benchDatabase; openServices: typeof openServices; loadConfig: typeof loadConfig }> {
  if (root === ROOT) return { benchDatabase, openServices, loadConfig };
  const [seed, main, config] = await Promise.all([import(join(root, 'bench/seed.ts')), import(join(root, 'src/main.ts')), import(join(root, 'src/config.ts'))]);
  return { benchDatabase: seed.benchDatabase, openServices: main.openServices, loadConfig: config.loadConfig };
}

const label = (env: Record<string, string>) => (Object.keys(env).length > 0 ? ` ${JSON.stringify(env)}` : '');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const [base1, base100, b1, b2] = ingestCases(o.connections);
  const [baseDef, caseDef] = o.batch === 1 ? [base1, b1] : [base100, b2];
  const adminKey = `bench-${randomBytes(16).toString('hex')}`;
  buildDist();
  const bRoot = o.bRef ? checkout(o.bRef) : ROOT;
  const servers: Server[] = [await startBaseline(work)];
  const side = async (name: string, env: Record<string, string>, root: string): Promise<Subject> => {
    let url = `sqlite:${join(work, `${name}.db`)}`;
    if (o.engine === 'postgres') {
      const schema = `ab_${name}_${Date.now()}_${process.pid}`;
      schemas.push(schema);
      url = schemaUrl(o.pgUrl, schema);
    }
    // The side's own code sets up its database and reads it: the tree's code would migrate B's
    // database to the tree's schema, which B's servers may not read.
    const lib = await codeOf(root);
    const databaseUrl = await lib.benchDatabase(url);
    const mine: Server[] = [];
    for (let i = 0; i < instances; i++) mine.push(await startMeterd(i, { databaseUrl, adminKey, entry: 'dist', logDir: work, protection: false, env, name, root }));
    servers.push(...mine);
    // In-process services on the side's database: they count what was stored and report what a read must fold first.
    const sv = await lib.openServices(lib.loadConfig({ DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' }));
    services.push(sv);
    return { def: { ...caseDef, title: name.toUpperCase() }, servers: mine, services: sv, logName: `loadgen-${name}.log` };
  };
  const subjects: Subject[] = [{ def: baseDef, servers: [servers[0]] }, await side('a', o.aEnv, ROOT), await side('b', o.bEnv, bRoot)];
  const m = { token: adminKey, durationSec: o.duration, warmupSec: o.warmup, logDir: work };
  const rows: CaseResult[][] = [];
  for (let round = 0; round < o.rounds; round++) {
    // Warm-up once; the order alternates so that neither side always follows the baseline.
    const order = round % 2 === 0 ? subjects : [subjects[0], subjects[2], subjects[1]];
    const rs = await measureInTurns(order, { ...m, warmupSec: round === 0 ? o.warmup : 0 }, 1);
    const byTitle = (t: string) => rs.find((r) => r.title === t)!;
    const row = [rs.find((r) => r.id === baseDef.id)!, byTitle('A'), byTitle('B')];
    rows.push(row);
    const [rb, ra, rbb] = row.map((r) => r.requestsPerSec);
    say(`round ${round + 1}: baseline ${rb.toFixed(0)} req/s, A ${ra.toFixed(0)} (${((ra / rb) * 100).toFixed(1)}%), B ${rbb.toFixed(0)} (${((rbb / rb) * 100).toFixed(1)}%), B/A ${(rbb / ra).toFixed(3)}${row.every((r) => r.valid) ? '' : ' INVALID'}`);
  }
  const events = (r: CaseResult) => r.eventsPerSec ?? r.requestsPerSec;
  // Per side, the mean over all its slices, weighted by their lengths.
  const mean = (k: number, f: (r: CaseResult) => number) => rows.reduce((s, row) => s + f(row[k]) * row[k].durationSec, 0) / rows.reduce((s, row) => s + row[k].durationSec, 0);
  const [base, ra, rb] = [0, 1, 2].map((k) => mean(k, (r) => r.requestsPerSec));
  console.log(`A (this tree)${label(o.aEnv)}: ${mean(1, events).toFixed(0)} events/s, ${((ra / base) * 100).toFixed(1)}% of baseline`);
  console.log(`B (${o.bRef ?? 'this tree'})${label(o.bEnv)}: ${mean(2, events).toFixed(0)} events/s, ${((rb / base) * 100).toFixed(1)}% of baseline`);
  const reads = (k: number) => rows.map((row) => row[k].unfolded).filter((u) => u !== undefined).map((u) => `${u.events} unfolded, first read ${u.firstReadMs.toFixed(0)} ms`);
  console.log(`after each slice, A: ${reads(1).join('; ')}`);
  console.log(`after each slice, B: ${reads(2).join('; ')}`);
  console.log(`B/A over all rounds ${(rb / ra).toFixed(3)}, median of rounds ${median(rows.map((r) => r[2].requestsPerSec / r[1].requestsPerSec)).toFixed(3)} (${o.rounds} rounds of ${o.duration} s, batch ${o.batch}, ${o.engine}, ${instances} instance(s) per side)`);
  await stopServers(servers);
}

/** The worktree and the temporary files go whatever happens (the servers are killed on exit by procs.ts). */
function cleanUp() {
  if (existsSync(join(work, 'b-tree'))) execFileSync('git', ['-C', ROOT, 'worktree', 'remove', '--force', join(work, 'b-tree')], { stdio: 'ignore' });
  rmSync(work, { recursive: true, force: true });
}
process.once('SIGINT', () => {
  cleanUp();
  process.exit(130);
});

/** A failed run's server logs, kept where the bench keeps its own (bench/results/logs/). */
function keepLogs() {
  const dir = join(ROOT, 'bench/results/logs', `ab-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  for (const f of readdirSync(work).filter((f) => f.endsWith('.log'))) cpSync(join(work, f), join(dir, f));
  console.error(`server logs: ${dir}`);
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(async () => {
    await stopAll();
    for (const sv of services) await sv.store.close().catch(() => {});
    await dropSchemas();
    if (process.exitCode) keepLogs();
    cleanUp();
  });

async function dropSchemas() {
  if (schemas.length === 0) return;
  const c = new pg.Client({ connectionString: o.pgUrl });
  try {
    await c.connect();
    for (const schema of schemas) await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } catch (e) {
    say(`could not drop schemas ${schemas.join(', ')}: ${(e as Error).message}`);
  } finally {
    await c.end().catch(() => {});
  }
}

// npm run bench [-- --quick] [--engine sqlite|postgres] [--seed-events N] [--soak MINUTES] [--only B2,B4b] [--profile]
// Issue #5's benchmark: a no-storage Fastify baseline and meterd (cases B1-B4) under the same load
// generator, in one run; writes bench/results/ (quick runs: bench/results/quick/). Targets are reported,
// never enforced: the exit code is 1 only when the harness broke or a case got errors or lost events.
import { Command, InvalidArgumentError, Option } from 'commander';
import { int, positive } from './args.js';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { loadConfig } from '../src/config.js';
import { openServices, type Services } from '../src/main.js';
import { ALL_CASES, evaluateTargets, ingestCases, queryCases, type CaseId, type CaseResult, type Engine } from './cases.js';
import { measure, measureInTurns, type Subject } from './measure.js';
import { formatSummary, summarise } from './profile.js';
import { stopAll } from './procs.js';
import { machineInfo, markdown, sqliteReference, threadLine, writeReport, type RunReport } from './report.js';
import { schemaUrl, seedEvents, settleKeyRuns, setupTenant, type SeedResult } from './seed.js';
import { ROOT, buildDist, measureEnv, sampleMemory, startBaseline, startMeterd, stopServers, type Server } from './servers.js';
import { soak } from './soak.js';
import { emulateAutovacuum } from './autovacuum.js';
import { seedMonth } from './workload.js';

const caseList = (v: string) => {
  const ids = v.split(',').map((s) => s.trim());
  for (const id of ids) if (!ALL_CASES.includes(id as CaseId)) throw new InvalidArgumentError(`unknown case ${id} (cases: ${ALL_CASES.join(', ')})`);
  return ids as CaseId[];
};

const program = new Command('bench')
  .description("meterd's benchmark (issue #5)")
  .option('--quick', 'seconds, not minutes: 3 s per case, 20k seeded events (CI)')
  .addOption(new Option('--engine <engine>', 'storage engine').choices(['sqlite', 'postgres']).default('sqlite'))
  .option('--seed-events <n>', 'events stored before B3/B4 (default 10,000,000; quick 20,000)', int)
  .option('--duration <s>', 'measured seconds per case (default 15; quick 3)', positive)
  .option('--warmup <s>', 'unmeasured seconds before each case (default 3; quick 1)', Number)
  .option('--connections <n>', 'keep-alive connections for ingestion', int, 64)
  .option('--query-connections <n>', 'connections for the B4 queries (1 = latency of one query at a time)', int, 1)
  .option('--only <cases>', `run only these cases (${ALL_CASES.join(',')})`, caseList)
  .option('--soak <minutes>', 'after the cases, ingest at half the B2 rate for this long, sampling every 10 s', positive)
  .option('--profile', 'run the server(s) with --cpu-prof and summarise the profile')
  .option('--instances <n>', 'meterd instances (default 1 on SQLite, 2 on PostgreSQL)', int)
  .option('--pg-url <url>', 'PostgreSQL server (a fresh schema is made and dropped)', 'postgres://postgres@127.0.0.1:5432/test')
  .addOption(new Option('--server <entry>', 'run meterd as built by npm run build (dist, what npm start runs; built first) or from src through tsx').choices(['src', 'dist']).default('dist'))
  .option('--server-protection', "keep meterd's rate limit and load shedding on (the bench turns them off to measure capacity)")
  .option('--seed-batch <n>', 'events per bulk append when seeding', int, 5000)
  .option('--rounds <n>', 'slices per ingestion case, taken in turns with its reference (default 3; quick 1)', int)
  .option('--seed-file <path>', 'SQLite: keep the seeded database here and, when it exists, start B3/B4 from a copy of it instead of seeding (the servers restart on the copy)');

interface Opts {
  quick?: boolean; engine: Engine; seedEvents?: number; duration?: number; warmup?: number; connections: number; queryConnections: number;
  only?: CaseId[]; soak?: number; profile?: boolean; instances?: number; pgUrl: string; server: 'src' | 'dist'; seedBatch: number; serverProtection?: boolean; seedFile?: string; rounds?: number;
}

async function main(): Promise<number> {
  const o = program.parse().opts<Opts>();
  const quick = !!o.quick;
  const durationSec = o.duration ?? (quick ? 3 : 15);
  const warmupSec = o.warmup ?? (quick ? 1 : 3);
  const seedTotal = o.seedEvents ?? (quick ? 20_000 : 10_000_000);
  const instances = o.instances ?? (o.engine === 'postgres' ? 2 : 1);
  const rounds = Math.max(1, o.rounds ?? (quick ? 1 : 3));
  if (o.seedFile && o.engine !== 'sqlite') program.error('--seed-file keeps a SQLite database; it does not apply to --engine postgres');
  const wanted = new Set<CaseId>(o.only ?? ALL_CASES);
  if (o.soak) wanted.add('B2');
  const startedAt = new Date().toISOString();
  // Quick and partial (--only) runs never replace the full run's latest.*; they go to their own (ignored) folder.
  const resultsDir = join(ROOT, 'bench', 'results', ...(quick ? ['quick'] : o.only ? ['partial'] : []));
  const workDir = mkdtempSync(join(tmpdir(), 'meterd-bench-'));
  const profileDir = o.profile ? join(ROOT, 'bench', 'results', 'profiles', startedAt.replace(/[:.]/g, '-')) : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const schema = `bench_${Date.now()}_${process.pid}`;
  const databaseUrl = o.engine === 'sqlite' ? `sqlite:${join(workDir, 'bench.db')}` : schemaUrl(o.pgUrl, schema);
  // B3's reference: the B2 load on an empty database of its own, measured in turns with B3.
  const refUrl = o.engine === 'sqlite' ? `sqlite:${join(workDir, 'reference.db')}` : schemaUrl(o.pgUrl, `${schema}_ref`);
  const adminKey = `bench-${randomBytes(16).toString('hex')}`;
  const say = (s: string) => process.stderr.write(`${s}\n`);

  let services: Services | undefined;
  let refServices: Services | undefined;
  let servers: Server[] = [];
  let vacuum: ReturnType<typeof emulateAutovacuum> | undefined;
  let keepLogs = true;
  const cleanup = async () => {
    await stopAll().catch(() => {});
    await vacuum?.stop();
    if (keepLogs) {
      // Server and load-generator logs of a failed or invalid run, for the post-mortem.
      const logs = join(ROOT, 'bench', 'results', 'logs', startedAt.replace(/[:.]/g, '-'));
      mkdirSync(logs, { recursive: true });
      for (const f of readdirSync(workDir).filter((x) => x.endsWith('.log'))) copyFileSync(join(workDir, f), join(logs, f));
      say(`logs kept in ${logs}`);
    }
    await services?.store.close().catch(() => {});
    await refServices?.store.close().catch(() => {});
    services = undefined;
    refServices = undefined;
    if (o.engine === 'postgres') {
      const c = new pg.Client({ connectionString: o.pgUrl });
      await c
        .connect()
        .then(() => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; DROP SCHEMA IF EXISTS ${schema}_ref CASCADE`))
        .catch((e) => say(`could not drop schema ${schema}: ${(e as Error).message}`))
        .finally(() => c.end().catch(() => {}));
    }
    rmSync(workDir, { recursive: true, force: true });
  };
  let interrupted = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      interrupted = true;
      say(`\n${sig}: stopping servers and removing temporary data…`);
      void cleanup().finally(() => process.exit(130));
    });
  }

  try {
    const machine = machineInfo(o.engine, o.engine === 'sqlite' ? workDir : undefined);
    say(`meterd bench (${quick ? 'quick' : 'full'}, ${o.engine}, ${instances} instance(s)) on ${machine.cpuModel}, ${machine.cores} cores; load ${machine.loadAvgStart.join(' ')}`);
    services = await openServices(loadConfig({ DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' }));
    if (o.engine === 'postgres') {
      const c = new pg.Client({ connectionString: o.pgUrl });
      await c.connect();
      // shared_buffers too: the rollup tables and their keys outgrow PostgreSQL's default 128 MB within a few
      // million events, and then folds and reads go through the OS page cache (see bench/README.md).
      const { version, autovacuum, buffers } = (await c.query<{ version: string; autovacuum: string; buffers: string }>(
        "SELECT current_setting('server_version') AS version, current_setting('autovacuum') AS autovacuum, current_setting('shared_buffers') AS buffers",
      )).rows[0];
      machine.engineVersion = `${version}, autovacuum ${autovacuum}, shared_buffers ${buffers}`;
      await c.end();
      // Off (as on the machines this was written on), the rollup tables would keep every dead row for B4 to read.
      if (autovacuum === 'off') vacuum = emulateAutovacuum(o.pgUrl, schema);
    }
    await setupTenant(services);
    const month = seedMonth();
    const m = { token: adminKey, durationSec, warmupSec, logDir: workDir };
    const results: CaseResult[] = [];
    // Percentiles of a case without answers are NaN, which JSON carries as null.
    const f = (v: number | null) => (v === null || !Number.isFinite(v) ? 'n/a' : v.toFixed(2));
    const show = (r: CaseResult, label: string = r.id) => {
      say(`  ${label}: ${r.eventsPerSec !== undefined ? `${Math.round(r.eventsPerSec)} events/s, ` : ''}${Math.round(r.requestsPerSec)} req/s, p50 ${f(r.latencyMs.p50)} ms, p99 ${f(r.latencyMs.p99)} ms${r.machineCpu ? ` (machine: busy ${r.machineCpu.busy}%, iowait ${r.machineCpu.iowait}%, steal ${r.machineCpu.steal}%)` : ''}${r.valid ? '' : ` — INVALID: ${r.problems.join('; ')}`}${r.warnings.length ? ` (${r.warnings.join('; ')})` : ''}`);
      if (r.threads?.length) say(`    threads: ${threadLine(r)}`);
    };
    /** The wanted subjects, measured in turns; their results are kept. */
    const inTurns = async (subjects: Subject[]) => {
      const chosen = subjects.filter((x) => wanted.has(x.def.id));
      if (chosen.length === 0 || interrupted) return;
      say(`${chosen.map((x) => x.def.id).join(' and ')}${chosen.length > 1 ? `, in turns (${rounds} rounds of ${durationSec} s)` : ''}: ${chosen.map((x) => x.def.title).join(' | ')}…`);
      const rs = await measureInTurns(chosen, m, chosen.length > 1 || chosen[0].def.work.kind === 'ingest' ? rounds : 1);
      for (const r of rs) show(r);
      results.push(...rs);
    };

    const [base1, base100, b1, b2, b3] = ingestCases(o.connections);
    // The baseline stays up beside meterd: B1 and B2 are measured in turns with it.
    const baseline = wanted.has('baseline1') || wanted.has('baseline100') ? [await startBaseline(workDir)] : [];
    if (o.server === 'dist') {
      say('building dist (npm run build) ...');
      buildDist();
    }
    const meterdOpts = { databaseUrl, adminKey, entry: o.server, profileDir, logDir: workDir, protection: !!o.serverProtection };
    for (let i = 0; i < instances; i++) servers.push(await startMeterd(i, meterdOpts));
    const sampler = setInterval(() => sampleMemory(servers), 500);
    await inTurns([{ def: base1, servers: baseline }, { def: b1, servers, services }]);
    await inTurns([{ def: base100, servers: baseline }, { def: b2, servers, services }]);
    await stopServers(baseline);

    let seed: SeedResult | undefined;
    const needsData = ['B3', 'B4a', 'B4b', 'B4c', 'B4d'].some((id) => wanted.has(id as CaseId));
    const dbPath = databaseUrl.slice('sqlite:'.length);
    let peakBeforeRestart = 0;
    if (needsData && o.engine === 'sqlite' && o.seedFile && existsSync(o.seedFile) && !interrupted) {
      // A kept seed: the servers stop, the file is replaced by a copy of the seed, and they start again.
      say(`reusing the seeded database ${o.seedFile} (not seeding)…`);
      await stopServers(servers);
      peakBeforeRestart = Math.max(0, ...servers.map((s) => s.peakHwmMb));
      await services.store.close();
      for (const suffix of ['-wal', '-shm']) rmSync(dbPath + suffix, { force: true });
      copyFileSync(o.seedFile, dbPath);
      services = await openServices(loadConfig({ DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' }));
      servers = [];
      for (let i = 0; i < instances; i++) servers.push(await startMeterd(i, meterdOpts));
    } else if (needsData && seedTotal > 0 && !interrupted) {
      say(`seeding ${seedTotal.toLocaleString('en-US')} events over ${new Date(month.from).toISOString().slice(0, 10)}..${new Date(month.to).toISOString().slice(0, 10)}…`);
      let shown = 0;
      seed = await seedEvents(services, seedTotal, month, {
        batch: o.seedBatch,
        concurrency: o.engine === 'postgres' ? 4 : 2,
        onProgress: (done) => {
          if (done * 10 >= (shown + 1) * seedTotal) {
            shown = Math.floor((done * 10) / seedTotal);
            say(`  ${done.toLocaleString('en-US')} seeded`);
          }
        },
      });
      say(`  ${Math.round(seed.eventsPerSec)} events/s over ${seed.seconds.toFixed(1)} s`);
      if (o.engine === 'sqlite') {
        // The seeder's writer thread goes on with its event-key upkeep (merging runs) after the last
        // append. Left running, it would take turns at SQLite's write lock with the server during
        // B3; closed mid-merge, it would leave the server a merge it did not start (whose filter
        // it must then read back from the keys). Either way B3 would measure a hand-over, so the
        // seeder finishes first, as one process would after a bulk load.
        const settling = performance.now();
        await settleKeyRuns(databaseUrl.slice('sqlite:'.length));
        say(`  event-key upkeep after the last append: ${((performance.now() - settling) / 1000).toFixed(1)} s`);
        await services.store.close();
        if (o.seedFile) {
          // SQLite's online backup: a consistent copy while the (idle) servers keep the file open.
          const db = new Database(dbPath, { readonly: true });
          await db.backup(o.seedFile).finally(() => db.close());
          say(`  kept the seeded database in ${o.seedFile}`);
        }
        services = await openServices(loadConfig({ DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' }));
      }
      if (o.engine === 'postgres') {
        // The seeder folds what it left pending (its own rollup work), as one process would after a bulk load.
        const settling = performance.now();
        await services.store.settle();
        say(`  rollup folds after the last append: ${((performance.now() - settling) / 1000).toFixed(1)} s`);
        // Planner statistics, as autovacuum would have gathered them on a database that grew over time.
        const c = new pg.Client({ connectionString: o.pgUrl });
        await c.connect();
        try {
          const tables = ['events', 'event_ids', 'rollups', 'rollups_subject_day', 'rollups_total', 'rollup_uniques', 'rollup_uniques_days'];
          await c.query(`ANALYZE ${tables.map((t) => `${schema}.${t}`).join(', ')}`);
        } finally {
          await c.end();
        }
      }
    }
    if (wanted.has('B3') && !interrupted) {
      // The reference: fresh servers on an empty database, up only while B3 is measured.
      refServices = await openServices(loadConfig({ DATABASE_URL: refUrl, LOG_LEVEL: 'warn' }));
      await setupTenant(refServices);
      const refServers: Server[] = [];
      for (let i = 0; i < instances; i++) refServers.push(await startMeterd(i, { ...meterdOpts, databaseUrl: refUrl, profileDir: undefined, name: 'meterd-reference' }));
      try {
        const reference = { ...b2, title: 'B2 on an empty database' };
        const [ref, r3] = await measureInTurns([{ def: reference, servers: refServers, services: refServices, logName: 'loadgen-B3-reference.log' }, { def: b3, servers, services }], m, rounds);
        say(`B3 and its reference, in turns (${rounds} rounds of ${durationSec} s):`);
        show(ref, 'B3 reference (B2 on an empty database)');
        show(r3);
        if (!ref.valid) r3.problems.push(`its reference (B2 on an empty database) was invalid: ${ref.problems.join('; ')}`);
        results.push({ ...r3, valid: r3.valid && ref.valid, reference: { title: ref.title, eventsPerSec: ref.eventsPerSec, requestsPerSec: ref.requestsPerSec, latencyMs: ref.latencyMs, serverCpuPercent: ref.serverCpuPercent } });
      } finally {
        await stopServers(refServers);
        await refServices.store.close();
        refServices = undefined;
      }
    }
    for (const q of queryCases(month, o.queryConnections)) {
      if (!wanted.has(q.id) || interrupted) continue;
      say(`${q.id}: ${q.title}…`);
      const r = await measure(q, servers, m);
      show(r);
      results.push(r);
    }

    const byId = Object.fromEntries(results.map((r) => [r.id, r])) as Partial<Record<CaseId, CaseResult>>;
    let soakReport: RunReport['soak'];
    if (o.soak && byId.B2?.eventsPerSec && !interrupted) {
      say(`soak: ${o.soak} min at ${Math.round(byId.B2.eventsPerSec / 2)} events/s…`);
      soakReport = await soak(servers, { token: adminKey, connections: o.connections, minutes: o.soak, b2EventsPerSec: byId.B2.eventsPerSec, logDir: workDir });
    }
    clearInterval(sampler);
    const vacuumed = await vacuum?.stop();
    vacuum = undefined;
    await stopServers(servers);
    const peakRssMb = servers.map((s) => Math.round(Math.max(s.peakHwmMb, peakBeforeRestart)));
    servers = [];

    const profiles: string[] = [];
    if (profileDir) {
      for (const f of readdirSync(profileDir).filter((x) => x.endsWith('.cpuprofile'))) {
        const file = join(profileDir, f);
        profiles.push(file);
        say(formatSummary(summarise(file, 25)));
      }
    }
    machine.loadAvgEnd = loadavg().map((x) => Math.round(x * 100) / 100);
    const report: RunReport = {
      startedAt,
      mode: quick ? 'quick' : 'full',
      options: { durationSec, warmupSec, connections: o.connections, queryConnections: o.queryConnections, seedEvents: seedTotal, seedBatch: o.seedBatch, instances, server: o.server, serverEnv: measureEnv(!!o.serverProtection), only: o.only ?? null, seedFile: o.seedFile ?? null, rounds },
      machine,
      seed,
      autovacuum: vacuumed,
      cases: results,
      peakRssMb,
      targets: evaluateTargets(o.engine, byId, peakRssMb.length ? Math.max(...peakRssMb) : undefined, o.engine === 'postgres' && !quick ? sqliteReference(join(ROOT, 'bench', 'results'), seedTotal, machine) : undefined),
      soak: soakReport,
      profiles,
      valid: results.every((r) => r.valid),
    };
    const files = writeReport(resultsDir, report);
    process.stdout.write(`\n${markdown(report)}\nwrote ${files.json} and ${join(resultsDir, 'latest.md')}\n`);
    keepLogs = !report.valid;
    if (!report.valid) say('some cases had errors or lost events: see INVALID above');
    return report.valid ? 0 : 1;
  } finally {
    await cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);

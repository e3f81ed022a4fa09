// CPU instructions per event, counted by valgrind's callgrind: meterd (dist, SQLite) under a fixed
// number of ingestion requests, per thread (the request thread, the writer thread, the rest: V8's
// helpers, libuv). Instruction counts do not drift with the machine's speed the way this machine's
// wall-clock figures do (the same build measured twice in turns: B1 at 0.72 to 1.03 of itself), so two
// builds measured one after the other compare directly. Kernel time (syscalls, fsync) is not counted.
//   node --import tsx bench/instructions.ts [--batch 100] [--requests 3000] [--baseline] [--top 30]
import { Command } from 'commander';
import { positiveInt } from './args.js';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startProgram, stop, waitHealthy } from './procs.js';
import { benchDatabase } from './seed.js';
import { ROOT, buildDist, measureEnv } from './servers.js';
import { ingestBody } from './workload.js';

const o = new Command('instructions')
  .description('instructions per event of meterd (SQLite) under callgrind, per thread')
  .option('--batch <n>', 'events per request', positiveInt, 1)
  .option('--requests <n>', 'measured requests (default 3,000 for batch 1, 200 otherwise)', positiveInt)
  .option('--warmup <n>', 'unmeasured requests first (default: as many as measured)', positiveInt)
  .option('--concurrency <n>', 'requests in flight', positiveInt, 16)
  .option('--baseline', "also count the baseline server's instructions per request")
  .option('--top <n>', 'list the functions that cost most (own instructions): request thread, writer, the other threads together', positiveInt)
  .parse()
  .opts<{ batch: number; requests?: number; warmup?: number; concurrency: number; baseline?: boolean; top?: number }>();

const requests = o.requests ?? (o.batch === 1 ? 3000 : 200);
const warmup = o.warmup ?? requests;
const work = mkdtempSync(join(tmpdir(), 'meterd-instructions-'));
const say = (s: string) => process.stderr.write(`${s}\n`);

/** Sends `n` ingestion requests, `concurrency` at a time; fails on any answer but 200 with every event accepted. */
async function send(port: number, token: string, n: number): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: o.concurrency });
  let sent = 0;
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/events', agent, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          const accepted = Number(/"accepted":(\d+)/.exec(body)?.[1]);
          if (res.statusCode !== 200 || accepted !== o.batch) reject(new Error(`answer ${res.statusCode}: ${body.slice(0, 200)}`));
          else resolve();
        });
      });
      req.on('error', reject);
      req.end(ingestBody(o.batch));
    });
  const worker = async () => {
    while (sent < n) {
      sent++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  agent.destroy();
}

/** valgrind's gdb server names its pipes after $HOST, which meterd's settings use too: the same here. */
const control = (pid: number, action: string) => execFileSync('callgrind_control', [action, String(pid)], { env: { ...process.env, HOST: '127.0.0.1' }, stdio: 'ignore' });

interface ThreadCost { thread: string; instructions: number; file: string }

/** Own instructions per function of one uncompressed callgrind file. */
function ownCosts(file: string): Map<string, number> {
  const costs = new Map<string, number>();
  let object = '';
  let fn = '';
  let afterCall = false;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.startsWith('ob=')) object = line.slice(3).split('/').pop() ?? '';
    else if (line.startsWith('fn=')) fn = line.slice(3);
    else if (line.startsWith('calls=')) afterCall = true;
    else if (/^[\d+*-]/.test(line)) {
      const cost = Number(line.split(' ')[1] ?? 0);
      // The line after calls= is the call's inclusive cost, not the function's own.
      if (afterCall) afterCall = false;
      else if (cost > 0) costs.set(`${object} ${fn}`, (costs.get(`${object} ${fn}`) ?? 0) + cost);
    }
  }
  return costs;
}

/** Runs one server under callgrind through warm-up and the measured requests; instructions per thread. */
async function count(name: string, script: string[], env: Record<string, string>, token: string): Promise<ThreadCost[]> {
  const port = await freePort();
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const args = ['--tool=callgrind', `--callgrind-out-file=${dir}/cg.%p`, '--separate-threads=yes', '--compress-strings=no', '--compress-pos=no', '--dump-instr=no', '--smc-check=all-non-file', process.execPath, ...script];
  const server = startProgram('valgrind', args, { ...env, PORT: String(port) }, join(dir, 'log'));
  try {
    say(`${name}: starting under callgrind (slow)…`);
    await waitHealthy(`http://127.0.0.1:${port}/healthz`, server, 300_000);
    say(`${name}: ${warmup} warm-up requests…`);
    await send(port, token, warmup);
    await new Promise((r) => setTimeout(r, 2000));
    control(server.child.pid!, '-z');
    say(`${name}: ${requests} measured requests of ${o.batch} event(s)…`);
    await send(port, token, requests);
    control(server.child.pid!, '-d');
    const dumped = () => readdirSync(dir).filter((f) => /^cg\.\d+\.1-\d+$/.test(f));
    for (let i = 0; i < 600 && dumped().length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 1000));
    return dumped().map((f) => {
      const file = join(dir, f);
      const totals = /^totals: (\d+)/m.exec(readFileSync(file, 'utf8'));
      return { thread: f.split('-').pop()!, instructions: Number(totals?.[1] ?? 0), file };
    });
  } finally {
    await stop(server, 60_000);
  }
}

async function main() {
  const adminKey = `bench-${randomBytes(16).toString('hex')}`;
  buildDist();
  const databaseUrl = await benchDatabase(`sqlite:${join(work, 'meterd.db')}`);
  const events = requests * o.batch;
  const report = (name: string, threads: ThreadCost[]) => {
    const main = threads.find((t) => t.thread === '01');
    const rest = threads.filter((t) => t !== main).sort((a, b) => b.instructions - a.instructions);
    // The writer is the thread that runs SQLite's code: the one whose file names it, with the most instructions.
    const writer = rest.find((t) => readFileSync(t.file, 'utf8').includes('better_sqlite3.node'));
    const others = rest.filter((t) => t !== writer).reduce((s, t) => s + t.instructions, 0);
    const total = threads.reduce((s, t) => s + t.instructions, 0);
    const k = (n: number) => `${(n / events / 1000).toFixed(1)}k`;
    console.log(`${name}: ${k(total)} instructions per event: request thread ${k(main?.instructions ?? 0)}, writer ${writer ? k(writer.instructions) : '-'}, other threads ${k(others)} (${requests} requests of ${o.batch}, ${o.concurrency} in flight)`);
    if (o.top) {
      const groups: Array<[string, ThreadCost[]]> = [['request thread', main ? [main] : []], ['writer', writer ? [writer] : []], ['other threads', rest.filter((t) => t !== writer)]];
      for (const [label, ts] of groups) {
        if (ts.length === 0) continue;
        console.log(`  ${label}, own instructions per event:`);
        const merged = new Map<string, number>();
        for (const t of ts) for (const [fn, c] of ownCosts(t.file)) merged.set(fn, (merged.get(fn) ?? 0) + c);
        const top = [...merged].sort((a, b) => b[1] - a[1]).slice(0, o.top);
        for (const [fn, c] of top) console.log(`    ${k(c).padStart(8)}  ${fn.slice(0, 140)}`);
      }
    }
  };
  const env = { METERD_ADMIN_KEY: adminKey, DATABASE_URL: databaseUrl, HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...measureEnv(false) };
  report('meterd', await count('meterd', [join(ROOT, 'dist/cli/index.js'), 'serve'], env, adminKey));
  if (o.baseline) report('baseline', await count('baseline', ['--import', 'tsx', join(ROOT, 'bench/baseline-server.ts')], {}, adminKey));
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => {
    if (existsSync(work)) rmSync(work, { recursive: true, force: true });
  });

// The load generator, always its own process (so it never shares the server's event loop): drives
// autocannon against loopback URLs for a bounded time and prints JSON lines — an `interval` line every
// spec.intervalSec when asked (soak), then one `result` line.
// Run by bench/load.ts as: node --import tsx bench/loadgen.ts <LoadSpec JSON file>
import { readFileSync } from 'node:fs';
import autocannon, { type Request } from 'autocannon';
import { ingestBody } from './workload.js';
import { Samples } from './latency.js';
import type { LoadResult, LoadSpec } from './load.js';

const ACCEPTED = /"accepted":(\d+)/;

function main() {
  const spec = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as LoadSpec;
  const all = new Samples();
  const interval = new Samples();
  let accepted = 0;
  let intervalAccepted = 0;
  let badBodies = 0;
  const statuses: Record<string, number> = {};

  const onResponse = (status: number, body: string) => {
    if (spec.work.kind !== 'ingest' || status !== 200) return;
    // Receipts say how many events were really accepted; only those count as throughput.
    const m = ACCEPTED.exec(body);
    if (!m) badBodies++;
    else {
      accepted += Number(m[1]);
      intervalAccepted += Number(m[1]);
    }
  };
  const work = spec.work;
  const request: Request =
    work.kind === 'ingest'
      ? { method: 'POST', path: '/v1/events', setupRequest: (r) => ({ ...r, body: ingestBody(work.batch) }), onResponse }
      : {
          method: 'GET',
          setupRequest: (r) => ({ ...r, path: work.paths[Math.floor(Math.random() * work.paths.length)] }),
          onResponse,
        };

  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let tick: NodeJS.Timeout | undefined;
  const instance = autocannon(
    {
      url: spec.urls,
      connections: spec.connections,
      duration: spec.durationSec,
      overallRate: spec.rate,
      timeout: 30,
      headers: { authorization: `Bearer ${spec.token}`, 'content-type': 'application/json' },
      requests: [request],
    },
    (err, r) => {
      if (tick) clearInterval(tick);
      if (err) {
        process.stderr.write(`autocannon failed: ${err.message}\n`);
        process.exit(2);
      }
      const elapsedSec = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const result: LoadResult = {
        type: 'result',
        durationSec: elapsedSec,
        requests: all.size,
        ok2xx: r['2xx'],
        non2xx: r.non2xx,
        errors: r.errors,
        timeouts: r.timeouts,
        statuses,
        acceptedEvents: accepted,
        badBodies,
        latencyMs: all.percentiles(),
        samples: spec.samples ? all.values() : undefined,
        clientCpuPercent: ((cpu.user + cpu.system) / 1000 / (elapsedSec * 1000)) * 100,
      };
      process.stdout.write(`${JSON.stringify(result)}\n`);
    },
  );
  instance.on('response', (_c, status, _bytes, ms) => {
    all.add(ms);
    interval.add(ms);
    statuses[status] = (statuses[status] ?? 0) + 1;
  });
  if (spec.intervalSec) {
    let t = performance.now();
    tick = setInterval(() => {
      const now = performance.now();
      const p = interval.percentiles();
      const line = { type: 'interval', atSec: (now - t0) / 1000, requests: interval.size, eventsPerSec: intervalAccepted / ((now - t) / 1000), p50: p.p50, p99: p.p99 };
      process.stdout.write(`${JSON.stringify(line)}\n`);
      interval.reset();
      intervalAccepted = 0;
      t = now;
    }, spec.intervalSec * 1000);
  }
  const stop = () => instance.stop();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main();

// --soak: ingestion at half the measured B2 capacity for N minutes, p99 and RSS sampled every 10 s,
// and whether they stay flat (last third of the run against the first third).
import { join } from 'node:path';
import { runLoad } from './load.js';
import type { SoakReport } from './report.js';
import { sampleMemory, type Server } from './servers.js';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)];
};

export async function soak(servers: Server[], o: { token: string; connections: number; minutes: number; b2EventsPerSec: number; logDir: string }): Promise<SoakReport> {
  const targetEventsPerSec = o.b2EventsPerSec / 2;
  const samples: SoakReport['samples'] = [];
  await runLoad(
    { urls: servers.map((s) => s.url), token: o.token, connections: o.connections, durationSec: Math.round(o.minutes * 60), rate: targetEventsPerSec / 100, intervalSec: 10, work: { kind: 'ingest', batch: 100 } },
    join(o.logDir, 'loadgen-soak.log'),
    (line) => {
      sampleMemory(servers);
      const rssMb = Math.max(...servers.map((s) => s.lastRssMb));
      samples.push({ atSec: line.atSec, eventsPerSec: line.eventsPerSec, p99: line.p99, rssMb });
      process.stderr.write(`  soak t=${line.atSec.toFixed(0)}s ${Math.round(line.eventsPerSec)} events/s p99 ${line.p99.toFixed(1)} ms RSS ${rssMb.toFixed(0)} MB\n`);
    },
  );
  // The first interval includes connection set-up and JIT warm-up.
  const steady = samples.slice(1);
  const third = Math.max(1, Math.floor(steady.length / 3));
  const first = steady.slice(0, third);
  const last = steady.slice(-third);
  const p99First = median(first.map((s) => s.p99));
  const rssFirst = median(first.map((s) => s.rssMb));
  return {
    minutes: o.minutes,
    targetEventsPerSec,
    samples,
    p99Flat: median(last.map((s) => s.p99)) <= p99First * 1.5 + 2,
    rssFlat: median(last.map((s) => s.rssMb)) <= rssFirst * 1.2,
    rateHeld: steady.every((s) => s.eventsPerSec >= targetEventsPerSec * 0.9),
  };
}

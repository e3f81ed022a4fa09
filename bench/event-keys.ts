// The SQLite event-key runs alone, in-process: N events with random UUIDs and no meters appended in
// commits of PER through the writer's own path, upkeep (sealing, merging) run to the end after each
// commit. Prints µs per event for commits and for upkeep, the longest upkeep step, and process RSS.
//   node --import tsx bench/event-keys.ts            (N=2000000 PER=6400 by default)
import { mkdtempSync, rmSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../src/store/sqlite/open.js';
import { sqliteMigrations } from '../src/store/sqlite/migrations.js';
import { AppendWriter, type WireEvent } from '../src/store/sqlite/append-writer.js';

const N = Number(process.env.N ?? 2_000_000);
const PER = Number(process.env.PER ?? 6400);
const dir = mkdtempSync(join(tmpdir(), 'meterd-keys-bench-'));
try {
  // The writer thread's page cache (half the default 32 MiB).
  const db = openDatabase(join(dir, 'keys.db'), 16);
  for (const m of sqliteMigrations) db.exec(m.up);
  const writer = new AppendWriter(db);
  let commitMs = 0, upkeepMs = 0, steps = 0, longest = 0, peakRss = 0;
  const report = (done: number) => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    const perEvent = (ms: number) => ((ms * 1000) / done).toFixed(1);
    console.log(`${done.toLocaleString('en-US')} events: commit ${perEvent(commitMs)} µs/event, upkeep ${perEvent(upkeepMs)} µs/event, longest step ${longest.toFixed(0)} ms, ${writer.keyRuns().length} runs, RSS ${Math.round(peakRss / 1e6)} MB`);
  };
  for (let done = 0; done < N; ) {
    const events: WireEvent[] = Array.from({ length: Math.min(PER, N - done) }, () => ['bench', randomUUID(), 'bench', 'customer-0001', Date.now(), '{"n":1}', 'hash', []]);
    let t = performance.now();
    writer.commit([{ tenantId: 'default', metersVersion: 0, meters: [], groups: [], events }]);
    commitMs += performance.now() - t;
    for (let more = true; more; steps++) {
      t = performance.now();
      more = writer.upkeepStep();
      const ms = performance.now() - t;
      upkeepMs += ms;
      longest = Math.max(longest, ms);
    }
    done += events.length;
    if (done % (PER * 100) === 0 || done === N) report(done);
  }
  console.log(`runs (level, keys, state): ${JSON.stringify(writer.keyRuns().map((r) => [r.level, r.keys, r.state]))}; ${steps} upkeep calls`);
  db.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}

// The SQLite writer alone, in-process: commits of B2-shaped events (bench/workload.ts: 1,000 customers,
// 4 models, 10 users each, five meters) through the writer thread's own path into a fresh file, event-key
// upkeep run after each commit. Prints µs per event over the commits after a warm-up. No HTTP, no thread
// hop, so changes to the write path can be compared without the HTTP bench's ±15% noise.
//   node --import tsx bench/writer.ts              (PER=3200 events per commit in jobs of JOB=100, COMMITS=60; PER=32 JOB=1 is B1-shaped)
import { mkdtempSync, rmSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../src/store/sqlite/open.js';
import { sqliteMigrations } from '../src/store/sqlite/migrations.js';
import { AppendWriter, type WireEvent } from '../src/store/sqlite/append-writer.js';
import { FOLD_DEFAULTS } from '../src/store/sqlite/pending-rollups.js';
import { CUSTOMERS, MODELS, USERS_PER_CUSTOMER, subjectOf } from './workload.js';

const PER = Number(process.env.PER ?? 3200);
// Events per job (one request's events); a commit holds PER / JOB jobs.
const JOB = Math.max(1, Math.min(PER, Number(process.env.JOB ?? 100)));
const COMMITS = Number(process.env.COMMITS ?? 60);
const WARM_UP = 5;
// Events between folds (the writer thread folds after FOLD_DEFAULTS.events, or sooner on a timer).
const FOLD_EVENTS = Number(process.env.FOLD_EVENTS ?? FOLD_DEFAULTS.events);
const TENANT = '0f8fad5b-d9cb-469f-a165-70867728950e';
// Meter ids as long as real ones; contributions name them by index (see WireEvent).
const METERS = ['tokens_in', 'tokens_out', 'requests', 'users', 'latency'].map((m) => `meter-${m}`.padEnd(26, '0'));
const rnd = (n: number) => Math.floor(Math.random() * n);

// Group keys as the server makes them (canonical JSON of the dimensions); contributions name them by index.
const GROUPS = MODELS.map((model) => JSON.stringify({ model }));

function event(): WireEvent {
  const c = rnd(CUSTOMERS);
  const g = rnd(GROUPS.length);
  // Per meter: index, group index, value (null for COUNT and UNIQUE_COUNT), distinct value.
  const contributions = [0, g, String(1 + rnd(4000)), null, 1, g, String(1 + rnd(2000)), null, 2, g, null, null, 3, g, null, `u-${c}-${rnd(USERS_PER_CUSTOMER)}`, 4, g, String(5 + rnd(3000)), null];
  return ['bench', randomUUID(), 'llm.completion', subjectOf(c), Date.now() - rnd(1000), '{"n":1}', 'hash', contributions];
}

const dir = mkdtempSync(join(tmpdir(), 'meterd-writer-bench-'));
try {
  // The writer thread's page cache, as the server gives it.
  const db = openDatabase(join(dir, 'writer.db'), 16);
  for (const m of sqliteMigrations) db.exec(m.up);
  db.prepare("INSERT INTO tenants (id, name, created_at, meters_version) VALUES (?, 'bench', 0, 0)").run(TENANT);
  // Rollup rows name meters by their series number, looked up in this table.
  const meter = db.prepare("INSERT INTO meters (id, tenant_id, slug, event_type, aggregation, group_by, created_at, series) VALUES (?, ?, ?, 'llm.completion', 'SUM', '[]', 0, ?)");
  METERS.forEach((id, i) => meter.run(id, TENANT, id, i + 1));
  const writer = new AppendWriter(db);
  let ms = 0;
  let measured = 0;
  let unfolded = 0;
  for (let i = 0; i < COMMITS + WARM_UP; i++) {
    const jobs = Array.from({ length: Math.ceil(PER / JOB) }, (_, j) => ({
      tenantId: TENANT,
      metersVersion: 0,
      meters: METERS,
      groups: GROUPS,
      events: Array.from({ length: Math.min(JOB, PER - j * JOB) }, event),
    }));
    const t = performance.now();
    writer.commit(jobs);
    while (writer.upkeepStep());
    // The folds the writer thread would run between commits (its timers do not fire in this loop).
    unfolded += PER;
    if (unfolded >= FOLD_EVENTS || i === COMMITS + WARM_UP - 1) {
      writer.foldAll();
      unfolded = 0;
    }
    if (i >= WARM_UP) {
      ms += performance.now() - t;
      measured += PER;
    }
  }
  writer.stop();
  // A writer that dropped contributions would look fast: every event must be in every meter's rollups.
  const rolledUp = db.prepare('SELECT sum(count) FROM rollups_total').pluck().get();
  if (rolledUp !== (COMMITS + WARM_UP) * PER * METERS.length) throw new Error(`rollups hold ${rolledUp} contributions, not ${(COMMITS + WARM_UP) * PER * METERS.length}`);
  console.log(`${((ms * 1000) / measured).toFixed(1)} µs per event (${measured.toLocaleString('en-US')} events in commits of ${PER}, jobs of ${JOB}, after ${WARM_UP} warm-up commits)`);
  db.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}

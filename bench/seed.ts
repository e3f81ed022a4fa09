// Setting up the benchmark tenant in-process (meters first, so seeded events get their rollups; then
// customers) and seeding events in bulk through the same append path the HTTP API uses.
import Database from 'better-sqlite3';
import pg from 'pg';
import { systemCtx } from '../src/core/context.js';
import { openServices, type Services } from '../src/main.js';
import { loadConfig } from '../src/config.js';
import { validateEvent, type EventLimits } from '../src/modules/events/event-validation.js';
import type { NewEvent } from '../src/modules/events/events.types.js';
import { CUSTOMERS, EVENT_TYPE, GROUP_BY, METERS, TENANT, eventJson, seedEvent, seedMonth, subjectOf } from './workload.js';

const ctx = systemCtx(TENANT, 'bench');

/** The database URL of one schema on a PostgreSQL server. */
export const schemaUrl = (pgUrl: string, schema: string) => `${pgUrl}${pgUrl.includes('?') ? '&' : '?'}schema=${schema}`;

/**
 * Services on a PostgreSQL schema that an in-process tool keeps between runs: set up and seeded with
 * `seed` events of the bench's month the first time (drop the schema to start over).
 */
export async function keptSchema(pgUrl: string, schema: string, seed: number, settings: Record<string, string> = {}): Promise<Services> {
  const admin = new pg.Client({ connectionString: pgUrl });
  await admin.connect();
  const fresh = await admin.query('SELECT 1 FROM information_schema.schemata WHERE schema_name = $1', [schema]).then((r) => r.rowCount === 0).finally(() => admin.end());
  const s = await openServices(loadConfig({ DATABASE_URL: schemaUrl(pgUrl, schema), LOG_LEVEL: 'warn', ...settings }));
  if (fresh) {
    await setupTenant(s);
    const r = await seedEvents(s, seed, seedMonth(), { batch: 5000, concurrency: 4 });
    await s.store.settle();
    console.log(`seeded ${seed.toLocaleString('en-US')} events at ${Math.round(r.eventsPerSec)} events/s`);
  }
  return s;
}

/** `size` events as the load generator sends them (time now), validated for an in-process append. */
export function liveBatch(size: number, limits: EventLimits): NewEvent[] {
  const now = Date.now();
  return Array.from({ length: size }, () => {
    const v = validateEvent(JSON.parse(eventJson(new Date(now).toISOString())), limits, now);
    if (!v.ok) throw new Error(v.error);
    return v.event;
  });
}

export async function setupTenant(s: Services): Promise<void> {
  for (const m of METERS) {
    await s.meters.create(ctx, { slug: m.slug, eventType: EVENT_TYPE, aggregation: m.aggregation, valueProperty: m.valueProperty, groupBy: GROUP_BY });
  }
  for (let i = 0; i < CUSTOMERS; i++) {
    const subject = subjectOf(i);
    await s.customers.create(ctx, { key: subject, name: `Customer ${i}`, subjects: [subject] });
  }
}

/** A fresh database with the bench tenant set up, closed again for a server to open (bench/ab.ts, bench/instructions.ts). */
export async function benchDatabase(databaseUrl: string): Promise<string> {
  const services = await openServices(loadConfig({ DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' }));
  await setupTenant(services);
  await services.store.close();
  return databaseUrl;
}

export interface SeedResult { events: number; seconds: number; eventsPerSec: number }

/**
 * Appends `total` events spread over [from, to) in batches, `concurrency` batches in flight.
 * Bounded: exactly ceil(total / batch) appends. Batch k holds times from the k-th slice of the
 * range, as a chronological import would send them (times within a batch are random).
 */
export async function seedEvents(
  s: Services,
  total: number,
  range: { from: number; to: number },
  opts: { batch: number; concurrency: number; onProgress?: (done: number) => void },
): Promise<SeedResult> {
  const c = s.config;
  const limits = { maxIdLength: c.MAX_ID_LENGTH, maxDataBytes: c.MAX_DATA_BYTES, maxDataDepth: c.MAX_DATA_DEPTH, maxPastMs: c.EVENT_MAX_PAST_DAYS * 86_400_000, maxFutureMs: c.EVENT_MAX_FUTURE_MINUTES * 60_000 };
  const t0 = performance.now();
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < total) {
      const n = Math.min(opts.batch, total - next);
      const span = (range.to - range.from) / total;
      const slice = { from: Math.floor(range.from + next * span), to: Math.floor(range.from + (next + n) * span) + 1 };
      next += n;
      const now = Date.now();
      const batch: NewEvent[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const v = validateEvent(seedEvent(slice.from, Math.min(slice.to, range.to)), limits, now);
        if (!v.ok) throw new Error(`seed event rejected: ${v.error}`);
        batch[i] = v.event;
      }
      const statuses = await s.events.append(TENANT, batch);
      const bad = statuses.filter((st) => st !== 'accepted').length;
      if (bad > 0) throw new Error(`${bad} seeded events were not accepted`);
      done += n;
      opts.onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency) }, worker));
  const seconds = (performance.now() - t0) / 1000;
  return { events: total, seconds, eventsPerSec: total / seconds };
}

/**
 * Waits until the seeding process's SQLite writer has finished its event-key upkeep (sealing and
 * merging runs, which goes on after the last append): the generation every upkeep step bumps has
 * stood still for a second. Then the server starts B3 as a single writer would after a bulk load.
 */
export async function settleKeyRuns(path: string, timeoutMs = 15 * 60_000): Promise<void> {
  const db = new Database(path, { readonly: true });
  try {
    const generation = db.prepare<[], number>('SELECT generation FROM event_key_state WHERE id = 1').pluck();
    const deadline = Date.now() + timeoutMs;
    for (let last = -1; Date.now() < deadline; ) {
      const now = generation.get()!;
      if (now === last) return;
      last = now;
      await new Promise((r) => setTimeout(r, 1000));
    }
    throw new Error('the seeded event keys are still being merged after 15 minutes');
  } finally {
    db.close();
  }
}

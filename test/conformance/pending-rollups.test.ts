// Pending rollups (src/store/sqlite/pending-rollups.ts, src/store/postgres/pending.ts): contributions
// stored with their events and folded into the rollup tables later. Whenever folds run (between
// commits, in small transactions, by another store on the same database, never until a read), every
// read equals the raw events. Run on SQLite always, on PostgreSQL when TEST_DATABASE_URL is set.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import fc from 'fast-check';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { ROLLUP_TABLES } from '../../src/store/levels.js';
import type { Store } from '../../src/store/store.js';
import { Decimal, formatDecimal } from '../../src/core/decimal.js';
import type { Meter } from '../../src/modules/meters/meters.types.js';
import type { NewEvent } from '../../src/modules/events/events.types.js';
import { ALL_BUCKETS, append, assertRollupsMatchEvents, backfillFor, createMeter, mkEvent, mkMeter, newTenant } from './helpers.js';
import { dropSchemas, postgresAvailability, randomSchema } from './engines.js';
import { reconcileMeter } from '../../src/cli/reconcile.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2024, 4, 31, 20);
const NEVER = { events: 1e12, afterMs: 1e9 };

interface Fold {
  events?: number;
  afterMs?: number;
  perTransaction?: number;
}
type SettlingStore = Store & { settle(): Promise<void> };

interface PendingDb {
  /** A store on this database; `here` asks SQLite for its writer on this thread (PostgreSQL ignores it). */
  open(fold: Fold, here?: boolean): SettlingStore;
  /** Rows waiting in rollup_pending, and a meter's rows in each rollup table, read beside the stores. */
  onDisk(meterId?: string): Promise<{ pending: number; tables: Record<string, number> }>;
}

interface Fixture {
  name: string;
  fresh(): Promise<PendingDb>;
  cleanup(): Promise<void>;
}

function sqliteFixture(): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'meterd-pending-'));
  const stores: Store[] = [];
  let files = 0;
  return {
    name: 'sqlite',
    async fresh() {
      const path = join(dir, `db${files++}.sqlite`);
      return {
        open(fold, here = false) {
          const s = new SqliteStore({ path, fold, writerThread: !here });
          stores.push(s);
          return s;
        },
        async onDisk(meterId) {
          const db = new Database(path, { readonly: true });
          try {
            const count = (sql: string, ...args: string[]) => db.prepare(sql).pluck().get(...args) as number;
            const pending = count('SELECT count(*) FROM rollup_pending');
            const tables = Object.fromEntries(ROLLUP_TABLES.map((t) => [t, meterId ? count(`SELECT count(*) FROM ${t} WHERE series = (SELECT series FROM meters WHERE id = ?)`, meterId) : 0]));
            return { pending, tables };
          } finally {
            db.close();
          }
        },
      };
    },
    async cleanup() {
      for (const s of stores) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgresFixture(url: string): Fixture {
  const schemas: string[] = [];
  const stores: Store[] = [];
  return {
    name: 'postgres',
    async fresh() {
      const schema = randomSchema();
      schemas.push(schema);
      return {
        open(fold) {
          const s = new PostgresStore({ url, schema, poolSize: 5, fold });
          stores.push(s);
          return s;
        },
        async onDisk(meterId) {
          const c = new pg.Client({ connectionString: url });
          await c.connect();
          try {
            const count = async (sql: string, ...args: string[]) => Number((await c.query<{ n: string }>(sql, args)).rows[0].n);
            const pending = await count(`SELECT count(*) AS n FROM ${schema}.rollup_pending`);
            const tables: Record<string, number> = {};
            for (const t of ROLLUP_TABLES) tables[t] = meterId ? await count(`SELECT count(*) AS n FROM ${schema}.${t} WHERE series = (SELECT series FROM ${schema}.meters WHERE id = $1)`, meterId) : 0;
            return { pending, tables };
          } finally {
            await c.end();
          }
        },
      };
    },
    async cleanup() {
      try {
        for (const s of stores) await s.close();
      } finally {
        await dropSchemas(url, schemas);
      }
    },
  };
}

const postgres = await postgresAvailability();
const fixtures = [sqliteFixture()];
if ('url' in postgres) fixtures.push(postgresFixture(postgres.url));
// store.test.ts reports a skipped or unreachable PostgreSQL; this file just runs what it can.

async function sum(store: Store, t: string, m: Meter): Promise<string> {
  let total = new Decimal(0);
  for (const r of await store.readRollups(t, { meterId: m.id, ...ALL_BUCKETS })) total = total.plus(r.partial.sum);
  return formatDecimal(total);
}

function meters(t: string): Meter[] {
  return [
    mkMeter(t, 'tokens', 'SUM', { value: '$.tokens', groupBy: { model: '$.model' } }),
    mkMeter(t, 'max', 'MAX', { value: '$.tokens' }),
    mkMeter(t, 'users', 'UNIQUE_COUNT', { value: '$.user', groupBy: { model: '$.model' } }),
    mkMeter(t, 'latest', 'LATEST', { value: '$.tokens' }),
  ];
}

const noRows = () => Object.fromEntries(ROLLUP_TABLES.map((x) => [x, 0]));

for (const fixture of fixtures) {
  describe(`pending rollups [${fixture.name}]`, () => {
    after(() => fixture.cleanup());

    it('equal raw events whenever folds run: after commits, in small transactions, by another store, on reads', async () => {
      const events = fc.array(fc.record({ n: fc.integer({ min: 0, max: 60 }), late: fc.integer({ min: 0, max: 50 }), tokens: fc.option(fc.integer({ min: -5, max: 500 }), { freq: 4 }), frac: fc.boolean(), model: fc.constantFrom('s', 'l'), user: fc.option(fc.constantFrom('u1', 'u2', 'u3')), subject: fc.constantFrom('a', 'b') }), { minLength: 1, maxLength: 12 });
      const op = fc.oneof(
        fc.record({ kind: fc.constant('append' as const), by: fc.integer({ min: 0, max: 1 }), events }),
        // Both stores at once: their commits, and the folds they start, overlap.
        fc.record({ kind: fc.constant('together' as const), events: fc.tuple(events, events) }),
        // Several requests to one store at once: one commit of several jobs, each naming its own meters.
        fc.record({ kind: fc.constant('burst' as const), by: fc.integer({ min: 0, max: 1 }), jobs: fc.array(events, { minLength: 2, maxLength: 4 }) }),
        fc.record({ kind: fc.constant('settle' as const), by: fc.integer({ min: 0, max: 1 }) }),
        fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 4 }) }),
      );
      type Generated = { n: number; late: number; tokens: number | null; frac: boolean; model: string; user: string | null; subject: string };
      const toEvents = (es: Generated[]): NewEvent[] => es.map((e) => mkEvent({
        // The same n is the same event: a duplicate, or a conflict when its content differs.
        id: `e${e.n}`,
        time: T0 - e.late * HOUR + e.n,
        subject: e.subject,
        // Without tokens or a user an event contributes to fewer meters, so jobs name different meters.
        data: { model: e.model, ...(e.tokens === null ? {} : { tokens: e.frac ? `${e.tokens}.25` : String(e.tokens) }), ...(e.user === null ? {} : { user: e.user }) },
      }));
      const fold = fc.record({ events: fc.integer({ min: 1, max: 40 }), afterMs: fc.integer({ min: 0, max: 3 }), perTransaction: fc.integer({ min: 1, max: 30 }) });
      await fc.assert(
        fc.asyncProperty(fold, fc.array(op, { minLength: 1, maxLength: 12 }), async (foldOptions, ops) => {
          const db = await fixture.fresh();
          // One store folds often (on SQLite on its writer thread), the other only when it reads (on SQLite on its own connection).
          const stores = [db.open(foldOptions), db.open(NEVER, true)];
          await stores[0].migrate();
          const t = await newTenant(stores[0]);
          const ms = meters(t);
          for (const m of ms) await createMeter(stores[0], m);
          for (const o of ops) {
            if (o.kind === 'wait') await new Promise((r) => setTimeout(r, o.ms));
            else if (o.kind === 'settle') await stores[o.by].settle();
            else if (o.kind === 'together') await Promise.all(stores.map((s, i) => append(s, t, toEvents(o.events[i]))));
            else if (o.kind === 'burst') await Promise.all(o.jobs.map((es) => append(stores[o.by], t, toEvents(es))));
            else await append(stores[o.by], t, toEvents(o.events));
          }
          for (const store of stores) for (const m of ms) await assertRollupsMatchEvents(store, t, m);
          // The coarser levels too (per subject and day, per hour over subjects, distinct values per month).
          for (const m of ms) assert.deepEqual(await reconcileMeter({ store: stores[1] }, t, m), [], m.slug);
          assert.equal((await db.onDisk()).pending, 0);
          for (const s of stores) await s.close();
        }),
        { numRuns: 12 },
      );
    });

    it('are folded in the background, without a read, in several steps and transactions', async () => {
      const db = await fixture.fresh();
      const store = db.open({ events: 1, afterMs: 0, perTransaction: 1500 });
      await store.migrate();
      const t = await newTenant(store);
      const m = mkMeter(t, 'tokens', 'SUM');
      await createMeter(store, m);
      // 3,000 events in pending rows of up to 1,000: more than one gathering step and one transaction.
      for (let b = 0; b < 3; b++) await append(store, t, Array.from({ length: 1000 }, (_, i) => mkEvent({ id: `${b}-${i}`, time: T0 + (i % 5) * HOUR, data: { value: '2' } })));
      let disk = await db.onDisk(m.id);
      for (let waited = 0; disk.pending > 0 && waited < 10_000; waited += 50) {
        await new Promise((r) => setTimeout(r, 50));
        disk = await db.onDisk(m.id);
      }
      assert.equal(disk.pending, 0, 'nothing left pending without a read');
      assert.equal(disk.tables.rollups, 5);
      assert.equal(await sum(store, t, m), '6000');
    });

    it('stay pending until a read, which folds what another store wrote, once', async () => {
      const db = await fixture.fresh();
      const writer = db.open(NEVER);
      const reader = db.open(NEVER);
      await writer.migrate();
      const t = await newTenant(writer);
      const m = mkMeter(t, 'tokens', 'SUM');
      await createMeter(writer, m);
      for (let b = 0; b < 3; b++) await append(writer, t, Array.from({ length: 5 }, (_, i) => mkEvent({ id: `${b}-${i}`, time: T0 + i * HOUR, data: { value: '10' } })));
      assert.deepEqual(await db.onDisk(m.id), { pending: 3, tables: noRows() });
      // What /metrics reports as meterd_unfolded_events: every process's pending events.
      assert.equal(await reader.unfoldedEvents(), 15);
      assert.equal(await sum(reader, t, m), '150');
      assert.equal(await writer.unfoldedEvents(), 0);
      assert.equal((await db.onDisk(m.id)).pending, 0);
      // Folded again into the rows the first fold wrote.
      await append(writer, t, [mkEvent({ id: 'late', time: T0, data: { value: '7' } }), mkEvent({ id: '0-0', time: T0, data: { value: '10' } })]);
      assert.equal((await db.onDisk(m.id)).pending, 1);
      assert.equal(await sum(writer, t, m), '157');
      assert.equal(await sum(reader, t, m), '157');
      await assertRollupsMatchEvents(reader, t, m);
    });

    it('keep each job\'s meters and group keys apart when one commit gathers many jobs, over several pending rows', async () => {
      const db = await fixture.fresh();
      const store = db.open(NEVER);
      await store.migrate();
      const t = await newTenant(store);
      const ms = meters(t);
      for (const m of ms) await createMeter(store, m);
      // Even jobs have tokens and no user (three meters), odd ones a user and no tokens (one meter, first
      // in their own list): 3,000 events in one commit, more than one pending row holds.
      const job = (j: number) => Array.from({ length: 500 }, (_, i) => mkEvent({
        id: `${j}-${i}`,
        time: T0 + (i % 7) * HOUR,
        subject: i % 2 ? 'a' : 'b',
        // Each job meets the models in its own order, so its group key indexes differ from the row's.
        data: { model: (i + j) % 3 ? 's' : 'l', ...(j % 2 ? { user: `u${i % 5}` } : { tokens: String(i % 13) }) },
      }));
      const statuses = await Promise.all(Array.from({ length: 6 }, (_, j) => append(store, t, job(j))));
      assert.equal(statuses.flat().filter((x) => x === 'accepted').length, 3000);
      assert.ok((await db.onDisk()).pending > 1);
      for (const m of ms) await assertRollupsMatchEvents(store, t, m);
      for (const m of ms) assert.deepEqual(await reconcileMeter({ store }, t, m), [], m.slug);
    });

    it("count each event once when stores take turns appending and folding each other's rows", async () => {
      const db = await fixture.fresh();
      // a: on SQLite the in-thread writer, so its folds run here; b: another store on the database.
      const a = db.open(NEVER, true);
      const b = db.open(NEVER);
      await a.migrate();
      const t = await newTenant(a);
      const m = mkMeter(t, 'tokens', 'SUM');
      await createMeter(a, m);
      const one = (id: string, value: string) => [mkEvent({ id, time: T0, data: { value } })];
      await append(a, t, one('e1', '1'));
      await b.settle();
      await append(b, t, one('e2', '20'));
      await append(a, t, one('e3', '300'));
      assert.equal((await db.onDisk()).pending, 2);
      await a.settle();
      assert.equal(await sum(a, t, m), '321');
      assert.equal(await sum(b, t, m), '321');
    });

    it('are folded before a meter is rebuilt, deleted or created, so none is lost or counted twice', async () => {
      const db = await fixture.fresh();
      const store = db.open(NEVER);
      await store.migrate();
      const t = await newTenant(store);
      const [kept, dropped] = [mkMeter(t, 'kept', 'SUM'), mkMeter(t, 'dropped', 'COUNT')];
      for (const m of [kept, dropped]) await createMeter(store, m);
      const events = (p: string) => Array.from({ length: 4 }, (_, i) => mkEvent({ id: `${p}${i}`, time: T0 + i * HOUR, data: { value: '2.5' } }));
      await append(store, t, events('a'));
      assert.equal((await db.onDisk()).pending, 1);
      await store.rebuildRollups(t, kept.id, backfillFor(kept));
      assert.equal(await sum(store, t, kept), '10');
      await append(store, t, events('b'));
      assert.ok(await store.deleteMeter(t, dropped.slug));
      await store.settle();
      assert.deepEqual((await db.onDisk(dropped.id)).tables, noRows());
      await append(store, t, events('c'));
      const later = mkMeter(t, 'later', 'SUM');
      await createMeter(store, later);
      assert.equal(await sum(store, t, later), '30');
      assert.equal(await sum(store, t, kept), '30');
      await assertRollupsMatchEvents(store, t, kept);
      await assertRollupsMatchEvents(store, t, later);
    });
  });
}

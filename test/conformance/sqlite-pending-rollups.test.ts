// SQLite's pending rollups (src/store/sqlite/pending-rollups.ts): contributions stored with their
// events and folded into the rollup tables later. Whenever folds run (between commits, in small
// transactions, by another store on the same file, never until a read), every read equals the raw events.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { ROLLUP_TABLES } from '../../src/store/levels.js';
import { Decimal, formatDecimal } from '../../src/core/decimal.js';
import type { Meter } from '../../src/modules/meters/meters.types.js';
import type { NewEvent } from '../../src/modules/events/events.types.js';
import { ALL_BUCKETS, append, assertRollupsMatchEvents, backfillFor, createMeter, mkEvent, mkMeter, newTenant } from './helpers.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2024, 4, 31, 20);
const NEVER = { events: 1e12, afterMs: 1e9 };
const dir = mkdtempSync(join(tmpdir(), 'meterd-pending-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshPath = () => join(dir, `db${files++}.sqlite`);

/** Rows waiting in rollup_pending, and a meter's rows in each rollup table, read beside the stores. */
function onDisk(path: string, meterId?: string) {
  const db = new Database(path, { readonly: true });
  try {
    const pending = db.prepare('SELECT count(*) FROM rollup_pending').pluck().get() as number;
    const tables = Object.fromEntries(ROLLUP_TABLES.map((t) => [t, meterId ? (db.prepare(`SELECT count(*) FROM ${t} WHERE meter_id = ?`).pluck().get(meterId) as number) : 0]));
    return { pending, tables };
  } finally {
    db.close();
  }
}

async function sum(store: SqliteStore, t: string, m: Meter): Promise<string> {
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

describe('sqlite pending rollups', () => {
  it('equal raw events whenever folds run: after commits, in small transactions, by another store, on reads', async () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('append' as const), by: fc.integer({ min: 0, max: 1 }), events: fc.array(fc.record({ n: fc.integer({ min: 0, max: 60 }), late: fc.integer({ min: 0, max: 50 }), tokens: fc.integer({ min: -5, max: 500 }), frac: fc.boolean(), model: fc.constantFrom('s', 'l'), user: fc.constantFrom('u1', 'u2', 'u3'), subject: fc.constantFrom('a', 'b') }), { minLength: 1, maxLength: 12 }) }),
      fc.record({ kind: fc.constant('settle' as const), by: fc.integer({ min: 0, max: 1 }) }),
      fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 4 }) }),
    );
    const fold = fc.record({ events: fc.integer({ min: 1, max: 40 }), afterMs: fc.integer({ min: 0, max: 3 }), perTransaction: fc.integer({ min: 1, max: 30 }) });
    await fc.assert(
      fc.asyncProperty(fold, fc.array(op, { minLength: 1, maxLength: 12 }), async (foldOptions, ops) => {
        const path = freshPath();
        // One store folds often on its writer thread, the other only when it reads, on its own connection.
        const stores = [new SqliteStore({ path, fold: foldOptions }), new SqliteStore({ path, writerThread: false, fold: NEVER })];
        try {
          await stores[0].migrate();
          const t = await newTenant(stores[0]);
          const ms = meters(t);
          for (const m of ms) await createMeter(stores[0], m);
          for (const o of ops) {
            if (o.kind === 'wait') await new Promise((r) => setTimeout(r, o.ms));
            else if (o.kind === 'settle') await stores[o.by].settle();
            else {
              const events: NewEvent[] = o.events.map((e) => mkEvent({
                // The same n is the same event: a duplicate, or a conflict when its content differs.
                id: `e${e.n}`,
                time: T0 - e.late * HOUR + e.n,
                subject: e.subject,
                data: { tokens: e.frac ? `${e.tokens}.25` : String(e.tokens), model: e.model, user: e.user },
              }));
              await append(stores[o.by], t, events);
            }
          }
          for (const store of stores) for (const m of ms) await assertRollupsMatchEvents(store, t, m);
          assert.equal(onDisk(path).pending, 0);
        } finally {
          for (const s of stores) await s.close();
        }
      }),
      { numRuns: 12 },
    );
  });

  it('stay pending until a read, which folds what another store wrote, once', async () => {
    const path = freshPath();
    const writer = new SqliteStore({ path, fold: NEVER });
    const reader = new SqliteStore({ path, fold: NEVER });
    try {
      await writer.migrate();
      const t = await newTenant(writer);
      const m = mkMeter(t, 'tokens', 'SUM');
      await createMeter(writer, m);
      for (let b = 0; b < 3; b++) await append(writer, t, Array.from({ length: 5 }, (_, i) => mkEvent({ id: `${b}-${i}`, time: T0 + i * HOUR, data: { value: '10' } })));
      assert.deepEqual(onDisk(path, m.id), { pending: 3, tables: Object.fromEntries(ROLLUP_TABLES.map((x) => [x, 0])) });
      assert.equal(await sum(reader, t, m), '150');
      assert.equal(onDisk(path, m.id).pending, 0);
      // Folded again into the rows the first fold wrote.
      await append(writer, t, [mkEvent({ id: 'late', time: T0, data: { value: '7' } }), mkEvent({ id: '0-0', time: T0, data: { value: '10' } })]);
      assert.equal(onDisk(path, m.id).pending, 1);
      assert.equal(await sum(writer, t, m), '157');
      assert.equal(await sum(reader, t, m), '157');
      await assertRollupsMatchEvents(reader, t, m);
    } finally {
      await writer.close();
      await reader.close();
    }
  });

  it('count each event once when stores take turns appending and folding each other\'s rows', async () => {
    const path = freshPath();
    // a: the in-thread writer, so its folds run here; b: another store on the file.
    const a = new SqliteStore({ path, writerThread: false, fold: NEVER });
    const b = new SqliteStore({ path, fold: NEVER });
    try {
      await a.migrate();
      const t = await newTenant(a);
      const m = mkMeter(t, 'tokens', 'SUM');
      await createMeter(a, m);
      const one = (id: string, value: string) => [mkEvent({ id, time: T0, data: { value } })];
      await append(a, t, one('e1', '1'));
      await b.settle();
      await append(b, t, one('e2', '20'));
      await append(a, t, one('e3', '300'));
      assert.equal(onDisk(path).pending, 2);
      await a.settle();
      assert.equal(await sum(a, t, m), '321');
      assert.equal(await sum(b, t, m), '321');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('are folded before a meter is rebuilt, deleted or created, so none is lost or counted twice', async () => {
    const path = freshPath();
    const store = new SqliteStore({ path, fold: NEVER });
    try {
      await store.migrate();
      const t = await newTenant(store);
      const [kept, dropped] = [mkMeter(t, 'kept', 'SUM'), mkMeter(t, 'dropped', 'COUNT')];
      for (const m of [kept, dropped]) await createMeter(store, m);
      const events = (p: string) => Array.from({ length: 4 }, (_, i) => mkEvent({ id: `${p}${i}`, time: T0 + i * HOUR, data: { value: '2.5' } }));
      await append(store, t, events('a'));
      assert.equal(onDisk(path).pending, 1);
      await store.rebuildRollups(t, kept.id, backfillFor(kept));
      assert.equal(await sum(store, t, kept), '10');
      await append(store, t, events('b'));
      assert.ok(await store.deleteMeter(t, dropped.slug));
      await store.settle();
      assert.deepEqual(onDisk(path, dropped.id).tables, Object.fromEntries(ROLLUP_TABLES.map((x) => [x, 0])));
      await append(store, t, events('c'));
      const later = mkMeter(t, 'later', 'SUM');
      await createMeter(store, later);
      assert.equal(await sum(store, t, later), '30');
      assert.equal(await sum(store, t, kept), '30');
      await assertRollupsMatchEvents(store, t, kept);
      await assertRollupsMatchEvents(store, t, later);
    } finally {
      await store.close();
    }
  });
});

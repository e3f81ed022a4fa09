// How SQLite lays rollups out. Amounts: small integers as INTEGER (so upserts and SUM add them
// natively, exactly), everything else as exact decimal text; a JS number would be bound as REAL and
// skip that path. Keys: bucket first, so the rows a commit updates are neighbours.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { openDatabase } from '../../src/store/sqlite/open.js';
import { sqliteMigrations } from '../../src/store/sqlite/migrations.js';
import { NEXT_SERIES } from '../../src/store/sqlite/series.js';
import { SchemaTooNewError } from '../../src/store/migrations.js';
import { PendingRollups } from '../../src/store/sqlite/pending-rollups.js';
import { AppendWriter, HARD_BACKLOG_FACTOR, type WireJob } from '../../src/store/sqlite/append-writer.js';
import { RollupWriter } from '../../src/store/sqlite/rollup-writer.js';
import { append, assertRollupsMatchEvents, createMeter, mkEvent, mkMeter, newTenant, rekeyFixture } from './helpers.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2024, 4, 31, 20);
const LEVELS = ['rollups', 'rollups_subject_day', 'rollups_total'];
const dir = mkdtempSync(join(tmpdir(), 'meterd-amounts-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A database as meterd opens it, migrated up to `version` only. */
function databaseAt(name: string, version: number) {
  const db = openDatabase(join(dir, name));
  for (const m of sqliteMigrations.filter((x) => x.version <= version)) db.exec(m.up);
  return db;
}

/** A meter row as createMeter writes it (rollup rows name it by its series), for a test that writes through AppendWriter alone. */
function insertMeter(db: Database.Database, tenant: string, id: string) {
  db.prepare(`INSERT INTO meters (id, tenant_id, slug, event_type, aggregation, group_by, created_at, series) VALUES (?, ?, ?, 'call', 'COUNT', '[]', 0, ${NEXT_SERIES})`).run(id, tenant, id);
}

/** typeof() of amount columns, per level, for one meter. */
function storedTypes(path: string, meterId: string, columns = ['sum', 'max', 'latest_value']) {
  const db = new Database(path, { readonly: true });
  try {
    const types = columns.map((c) => `typeof(${c})`).join(` || ',' || `);
    return Object.fromEntries(LEVELS.map((t) => [t, db.prepare(`SELECT DISTINCT ${types} FROM ${t} WHERE series = (SELECT series FROM meters WHERE id = ?)`).pluck().all(meterId)]));
  } finally {
    db.close();
  }
}

describe('sqlite storage', () => {
  it('refuses a database a newer meterd migrated, up or down, and changes nothing', async () => {
    const path = join(dir, 'newer.sqlite');
    const store = new SqliteStore({ path, writerThread: false });
    await store.migrate();
    const newest = Math.max(...sqliteMigrations.map((m) => m.version));
    const raw = new Database(path);
    try {
      raw.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from the future', 0)").run(newest + 1);
      for (const run of [() => store.migrate(), () => store.migrateDown()]) {
        await assert.rejects(run(), (e: Error) => e instanceof SchemaTooNewError && e.message.includes(`at version ${newest + 1}, newer than this meterd knows (${newest})`));
      }
      assert.deepEqual(raw.prepare('SELECT max(version) AS v, count(*) AS n FROM schema_migrations').get(), { v: newest + 1, n: sqliteMigrations.length + 1 });
      raw.prepare('DELETE FROM schema_migrations WHERE version = ?').run(newest + 1);
      await store.migrate();
    } finally {
      raw.close();
      await store.close();
    }
  });

  it('are INTEGER for small integers and text otherwise, on every level, after appends and merges', async () => {
    const path = join(dir, 'types.sqlite');
    const store = new SqliteStore({ path });
    await store.migrate();
    try {
      const t = await newTenant(store);
      const ints = mkMeter(t, 'ints', 'SUM');
      const maxes = mkMeter(t, 'maxes', 'MAX', { type: 'other' });
      await createMeter(store, ints);
      await createMeter(store, maxes);
      // Two commits into the same buckets, so the second one goes through the upsert's merge.
      for (const round of [0, 1]) {
        await append(store, t, [
          mkEvent({ id: `i${round}a`, time: T0, data: { value: '120' } }),
          mkEvent({ id: `i${round}b`, time: T0 + HOUR, data: { value: '-7' } }),
          mkEvent({ id: `m${round}`, type: 'other', time: T0, data: { value: round === 0 ? '2.5' : '999999999999999' } }),
        ]);
        // Folded into the tables per round, so the second round's fold merges with stored rows.
        await store.settle();
      }
      const types = storedTypes(path, ints.id);
      for (const t of LEVELS) assert.deepEqual(types[t], ['integer,integer,integer'], t);
      // A decimal, then a greater 15-digit integer: MAX and the latest value are that integer again.
      for (const [t, v] of Object.entries(storedTypes(path, maxes.id, ['max', 'latest_value']))) assert.deepEqual(v, ['integer,integer'], t);
      await append(store, t, [mkEvent({ id: 'frac', time: T0, data: { value: '0.25' } }), mkEvent({ id: 'big', time: T0 + HOUR, data: { value: '5000000000000000' } })]);
      await store.settle();
      // A fraction, and a sum past 15 digits: exact text from then on.
      const after = storedTypes(path, ints.id, ['sum']);
      for (const t of LEVELS) assert.deepEqual(after[t], ['text'], t);
      await assertRollupsMatchEvents(store, t, ints);
      await assertRollupsMatchEvents(store, t, maxes);
    } finally {
      await store.close();
    }
  });

  it('written as REAL or text by earlier versions become INTEGER in migration 5, unchanged in value', async () => {
    const db = databaseAt('migrate.sqlite', 4);
    const cols = 'tenant_id, meter_id, subject, bucket, group_key, count, sum, min, max, latest_time, latest_seq, latest_value';
    const put = db.prepare(`INSERT INTO rollups (${cols}) VALUES ('t', 'm', ?, 0, '', 1, ?, ?, ?, 0, 0, ?)`);
    put.run('real', 120, -3.0, 999999999999999, 5); // JS numbers: bound as REAL
    put.run('text', '120', '-3', null, '5');
    put.run('decimal', '0.5', '1e3x', '1000000000000000', null);
    db.exec(sqliteMigrations.find((x) => x.version === 5)!.up);
    const rows = db.prepare('SELECT subject, sum, typeof(sum) ts, min, typeof(min) tm, max, typeof(max) tx, latest_value, typeof(latest_value) tl FROM rollups ORDER BY subject').all();
    db.close();
    assert.deepEqual(rows, [
      { subject: 'decimal', sum: '0.5', ts: 'text', min: '1e3x', tm: 'text', max: '1000000000000000', tx: 'text', latest_value: null, tl: 'null' },
      { subject: 'real', sum: 120, ts: 'integer', min: -3, tm: 'integer', max: 999999999999999, tx: 'integer', latest_value: 5, tl: 'integer' },
      { subject: 'text', sum: 120, ts: 'integer', min: -3, tm: 'integer', max: null, tx: 'null', latest_value: 5, tl: 'integer' },
    ]);
  });

  it('keeps every rollup row through migration 6 (bucket-first keys) and back', async () => {
    const db = databaseAt('reorder.sqlite', 5);
    const amounts = "1, 5, 1, 4, 7, 9, '2.5'";
    for (const [subject, bucket] of [['b', 7200000], ['a', 3600000], ['a', 0], ['c', 0]] as const) {
      db.prepare(`INSERT INTO rollups VALUES ('t', 'm', ?, ?, '{}', ${amounts})`).run(subject, bucket);
      db.prepare(`INSERT INTO rollups_subject_day VALUES ('t', 'm', ?, ?, ${amounts})`).run(subject, bucket);
      db.prepare("INSERT INTO rollup_uniques VALUES ('t', 'm', ?, ?, '{}', 'u1'), ('t', 'm', ?, ?, '{}', 'u2')").run(subject, bucket, subject, bucket);
    }
    const dump = () => Object.fromEntries(['rollups', 'rollups_subject_day', 'rollup_uniques'].map((t) => [t, db.prepare(`SELECT * FROM ${t} ORDER BY subject, bucket`).all()]));
    const keyOrder = (t: string) => db.prepare(`SELECT subject || '@' || bucket, latest_time FROM ${t}`).pluck().all();
    const before = dump();
    const v6 = sqliteMigrations.find((x) => x.version === 6)!;
    db.exec(v6.up);
    assert.deepEqual(dump(), before);
    // A scan that needs the amounts reads the table itself, in primary key order: bucket first now.
    assert.deepEqual(keyOrder('rollups_subject_day'), ['a@0', 'c@0', 'a@3600000', 'b@7200000']);
    assert.match(db.prepare("SELECT sql FROM sqlite_master WHERE name = 'rollups'").pluck().get() as string, /PRIMARY KEY \(tenant_id, meter_id, bucket, subject, group_key\)/);
    db.exec(v6.down);
    assert.deepEqual(dump(), before);
    assert.deepEqual(keyOrder('rollups_subject_day'), ['a@0', 'a@3600000', 'b@7200000', 'c@0']);
    db.close();
  });

  it('keys rollups by meter series (migration 12), with the same answers before, after and back', async () => {
    const path = join(dir, 'series.sqlite');
    let store = new SqliteStore({ path, writerThread: false });
    await store.migrate();
    const { t, check } = await rekeyFixture(store);
    await store.settle();
    await store.close();

    const v12 = sqliteMigrations.find((x) => x.version === 12)!;
    const db = openDatabase(path);
    const columns = () => db.prepare("SELECT group_concat(name) FROM pragma_table_info('rollups')").pluck().get() as string;
    assert.match(columns(), /^series,subject,bucket,group_key,/);
    db.transaction(() => {
      db.exec(v12.down);
      db.prepare('DELETE FROM schema_migrations WHERE version = 12').run();
    })();
    assert.match(columns(), /^tenant_id,meter_id,subject,/);
    db.close();
    store = new SqliteStore({ path, writerThread: false });
    try {
      await store.migrate();
      await check(store);
      // A new meter takes the next series.
      const fourth = mkMeter(t, 'calls', 'COUNT');
      await createMeter(store, fourth);
      await assertRollupsMatchEvents(store, t, fourth);
    } finally {
      await store.close();
    }
    const raw = new Database(path, { readonly: true });
    assert.deepEqual(raw.prepare('SELECT series FROM meters ORDER BY series').pluck().all(), [1, 2, 3, 4]);
    raw.close();
  });

  it('writes a fold gathered between commits only if no other fold ran meanwhile', async () => {
    const path = join(dir, 'gathered.db');
    const store = new SqliteStore({ path, fold: { events: 1e12, afterMs: 1e9 }, writerThread: false });
    await store.migrate();
    const t = await newTenant(store);
    const m = mkMeter(t, 'tokens', 'SUM');
    await createMeter(store, m);
    const batch = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => mkEvent({ id: `${prefix}${i}`, time: T0 + (i % 3) * HOUR, data: { value: '1' } }));
    // A second connection gathers as a background fold does: outside the write lock, a row at a time.
    const db = openDatabase(path);
    const pending = new PendingRollups(db);
    const rollups = new RollupWriter(db);
    const gather = () => {
      const g = { generation: pending.generation(), lastId: 0, events: 0 };
      assert.ok(pending.gatherSome(rollups, g, 1) > 0);
      return g;
    };
    try {
      // Undisturbed: written, and its rows are gone.
      for (const b of ['a', 'b']) await append(store, t, batch(b, 10));
      let g = gather();
      assert.equal(db.transaction(() => pending.commitGathered(rollups, g)).immediate(), true);
      assert.equal(g.events, 10);
      await store.settle();
      await assertRollupsMatchEvents(store, t, m);

      // Another fold takes the rows in between, and newer rows may reuse their ids: dropped, not written.
      await append(store, t, batch('c', 10));
      g = gather();
      await store.settle();
      for (const b of ['d', 'e']) await append(store, t, batch(b, 10));
      assert.equal(db.transaction(() => pending.commitGathered(rollups, g)).immediate(), false);
      rollups.clear();
      await store.settle();
      await assertRollupsMatchEvents(store, t, m);
    } finally {
      db.close();
      await store.close();
    }
  });

  it('folds pending rows stored by earlier versions, with group keys written inline', async () => {
    const path = join(dir, 'inline-groups.db');
    const store = new SqliteStore({ path, fold: { events: 1e12, afterMs: 1e9 }, writerThread: false });
    await store.migrate();
    const t = await newTenant(store);
    const ms = [
      mkMeter(t, 'tokens', 'SUM', { value: '$.tokens', groupBy: { model: '$.model' } }),
      mkMeter(t, 'users', 'UNIQUE_COUNT', { value: '$.user', groupBy: { model: '$.model' } }),
    ];
    for (const m of ms) await createMeter(store, m);
    const events = Array.from({ length: 60 }, (_, i) => mkEvent({ id: `e${i}`, time: T0 + (i % 4) * HOUR, subject: `s${i % 3}`, data: { model: ['a', 'b', 'c'][i % 5 % 3], tokens: String(i), user: `u${i % 7}` } }));
    await append(store, t, events.slice(0, 30));
    await append(store, t, events.slice(30));
    // The rows as earlier versions stored them: [meters, flat], each contribution's group key as text.
    const db = new Database(path);
    try {
      const rows = db.prepare<[], { id: number; body: string }>('SELECT id, body FROM rollup_pending').all();
      assert.equal(rows.length, 2);
      for (const row of rows) {
        const [meters, groups, flat] = JSON.parse(row.body) as [string[], string[], Array<number | string | null>];
        assert.ok(groups.length > 1, 'group keys are indexed');
        for (let i = 0; i < flat.length; ) {
          const end = i + 4 + 4 * (flat[i + 3] as number);
          for (let k = i + 4; k < end; k += 4) flat[k + 1] = groups[flat[k + 1] as number];
          i = end;
        }
        db.prepare('UPDATE rollup_pending SET body = ? WHERE id = ?').run(JSON.stringify([meters, flat]), row.id);
      }
    } finally {
      db.close();
    }
    await store.settle();
    for (const m of ms) await assertRollupsMatchEvents(store, t, m);
    await store.close();
  });

  it('keeps the fold backlog bounded while commits outpace background folds, and loses nothing', async () => {
    const db = databaseAt('backlog.db', Number.MAX_SAFE_INTEGER);
    const tenant = 'tenant-backlog';
    db.prepare("INSERT INTO tenants (id, name, created_at, meters_version) VALUES (?, 'backlog', 0, 0)").run(tenant);
    insertMeter(db, tenant, 'meter-count');
    // Background folds only (no timer, no reads). A gathering step takes ~500 events, at least a pending
    // row (up to 1,000); each commit stores 3,000 events in three rows.
    const writer = new AppendWriter(db, { fold: { events: 1000, afterMs: 1e9, perTransaction: 6000, backlog: 3000 } });
    const pendingEvents = db.prepare('SELECT coalesce(sum(events), 0) FROM rollup_pending').pluck();
    const job = (c: number, j: number): WireJob => ({
      tenantId: tenant,
      metersVersion: 0,
      meters: ['meter-count'],
      groups: [''],
      events: Array.from({ length: 1000 }, (_, i) => ['test', `${c}-${j}-${i}`, 'call', `s${i % 7}`, T0 + (i % 3) * HOUR, null, 'h', [0, 0, null, null]]),
    });
    try {
      let most = 0;
      for (let c = 0; c < 40; c++) {
        const results = writer.commit([0, 1, 2].map((j) => job(c, j)));
        assert.deepEqual(new Set(results.flat()), new Set(['accepted']));
        // One turn of the event loop between commits: one gathering step, as under a steady stream.
        await new Promise((r) => setImmediate(r));
        most = Math.max(most, pendingEvents.get() as number);
      }
      // Without the bound, each turn folds 1,000 of the 3,000 committed: ~80,000 pending by the end.
      assert.ok(most <= 3000 + 6000 + 3000, `at most the backlog, a fold transaction and a commit pending; saw ${most}`);
      writer.stop();
      writer.foldAll();
      assert.equal(pendingEvents.get(), 0);
      assert.equal(db.prepare("SELECT sum(count) FROM rollups WHERE series = (SELECT series FROM meters WHERE id = 'meter-count')").pluck().get(), 120_000);
      assert.equal(db.prepare("SELECT sum(count) FROM rollups_total WHERE series = (SELECT series FROM meters WHERE id = 'meter-count')").pluck().get(), 120_000);
    } finally {
      writer.stop();
      db.close();
    }
  });

  it('folds before answering a commit once the backlog passes its hard bound, whatever starves the background folds', () => {
    const db = databaseAt('hard-backlog.db', Number.MAX_SAFE_INTEGER);
    const tenant = 'tenant-hard';
    db.prepare("INSERT INTO tenants (id, name, created_at, meters_version) VALUES (?, 'hard', 0, 0)").run(tenant);
    insertMeter(db, tenant, 'meter-count');
    const backlog = 3000;
    const writer = new AppendWriter(db, { fold: { events: 1e9, afterMs: 1e9, perTransaction: 6000, backlog } });
    const pendingEvents = db.prepare('SELECT coalesce(sum(events), 0) FROM rollup_pending').pluck();
    const job = (c: number): WireJob => ({
      tenantId: tenant,
      metersVersion: 0,
      meters: ['meter-count'],
      groups: [''],
      events: Array.from({ length: 1000 }, (_, i) => ['test', `${c}-${i}`, 'call', `s${i % 7}`, T0 + (i % 3) * HOUR, null, 'h', [0, 0, null, null]]),
    });
    try {
      let most = 0;
      // Commits back to back, the event loop never turning: no background fold step can run.
      for (let c = 0; c < 60; c++) {
        assert.deepEqual(new Set(writer.commit([job(c)]).flat()), new Set(['accepted']));
        most = Math.max(most, pendingEvents.get() as number);
      }
      assert.ok(most < HARD_BACKLOG_FACTOR * backlog + 1000, `at most the hard bound and a commit pending; saw ${most}`);
      assert.ok(most >= HARD_BACKLOG_FACTOR * backlog - 1000, `and folds waited for it; saw ${most}`);
      writer.stop();
      writer.foldAll();
      assert.equal(db.prepare("SELECT sum(count) FROM rollups WHERE series = (SELECT series FROM meters WHERE id = 'meter-count')").pluck().get(), 60_000);
    } finally {
      writer.stop();
      db.close();
    }
  });
});

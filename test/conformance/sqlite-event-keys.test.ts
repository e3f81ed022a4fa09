// Exactly-once on SQLite rests on the event key runs (src/store/sqlite/dedupe): a key must be found
// whether it sits in the open run, a sealed run, a merge's source or its target, across reopening,
// and a database from before the runs must keep its keys. Runs here are a few keys long, so a short
// workload seals, merges and cascades levels many times.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type Database from 'better-sqlite3';
import { AppendWriter, type WireEvent } from '../../src/store/sqlite/append-writer.js';
import { openDatabase } from '../../src/store/sqlite/open.js';
import { sqliteMigrations } from '../../src/store/sqlite/migrations.js';
import { KeyFilter, hashKey } from '../../src/store/sqlite/dedupe/key-filter.js';
import { UNMERGED_LEVEL } from '../../src/store/sqlite/dedupe/event-keys.js';
import { eventKey } from '../../src/store/store.js';
import type { AppendStatus } from '../../src/modules/events/events.types.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 150);
const TINY = { runKeys: 3, fanIn: 2, chunkKeys: 2 };
const dir = mkdtempSync(join(tmpdir(), 'meterd-keys-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

function databaseAt(path: string, version = Infinity): Database.Database {
  const db = openDatabase(path);
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  for (const m of sqliteMigrations.filter((x) => x.version <= version)) db.exec(m.up);
  return db;
}

/** An event with no meters: only its key and content matter here. */
const wire = (source: string, id: string, content: number): WireEvent => [source, id, 'api.call', 'sub', 1_700_000_000_000, `{"v":${content}}`, `hash-${content}`, []];

function append(writer: AppendWriter, tenant: string, events: WireEvent[]): AppendStatus[] {
  const [r] = writer.commit([{ tenantId: tenant, metersVersion: 0, meters: [], groups: [], events }]);
  assert.ok(Array.isArray(r), JSON.stringify(r));
  return r;
}

/** Every key: those of the sealed runs and merges, and those of the open run's log. */
const ALL_KEYS = 'SELECT key, seq FROM event_keys UNION ALL SELECT key, seq FROM event_key_log';

/** Every stored event's key is in exactly one run, and every run's row says what it holds. */
function assertKeysSound(db: Database.Database) {
  const events = db.prepare('SELECT count(*) FROM events').pluck().get();
  const keys = db.prepare(`SELECT count(*) FROM (${ALL_KEYS})`).pluck().get();
  assert.equal(keys, events, 'one key per stored event');
  const twice = db.prepare(`SELECT key FROM (${ALL_KEYS}) GROUP BY key HAVING count(*) > 1`).pluck().all();
  assert.deepEqual(twice, [], 'no key in two runs');
  const orphans = db.prepare('SELECT DISTINCT run FROM event_keys WHERE run NOT IN (SELECT run FROM event_key_runs)').pluck().all();
  assert.deepEqual(orphans, [], 'every key in a known run');
  assert.equal(db.prepare("SELECT count(*) FROM event_keys WHERE run IN (SELECT run FROM event_key_runs WHERE state = 'open')").pluck().get(), 0, 'the open run is its log');
  const wrong = db.prepare(
    `SELECT k.key FROM (${ALL_KEYS}) k JOIN events e ON e.seq = k.seq
     WHERE k.key != e.tenant_id || char(0) || e.source || char(0) || e.event_id`,
  ).pluck().all();
  assert.deepEqual(wrong, [], 'each key points at its own event');
  const sealed = db.prepare<[], { run: number; keys: number; n: number }>(
    "SELECT r.run, r.keys, (SELECT count(*) FROM event_keys k WHERE k.run = r.run) AS n FROM event_key_runs r WHERE r.state = 'sealed' AND r.merge_into IS NULL",
  ).all();
  for (const r of sealed) assert.equal(r.n, r.keys, `sealed run ${r.run} holds its count`);
}

describe('sqlite event keys', () => {
  it('answer like a map of every event ever stored, through seals, merges, reopening and two writers', () => {
    // Two writers on one file stand for two processes (the CLI beside a server): each has its own
    // filters in memory, and must see the keys and runs the other one wrote.
    type Op =
      | { kind: 'append'; writer: number; events: Array<{ id: number; content: number }> }
      | { kind: 'steps'; writer: number; n: number }
      | { kind: 'reopen' };
    const writer = fc.nat(1);
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 5, arbitrary: fc.record({ kind: fc.constant('append' as const), writer, events: fc.array(fc.record({ id: fc.nat(40), content: fc.nat(1) }), { minLength: 1, maxLength: 8 }) }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('steps' as const), writer, n: fc.integer({ min: 1, max: 6 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
    );
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), (ops) => {
        const path = join(dir, `prop-${files++}.sqlite`);
        const first = databaseAt(path);
        let dbs = [first, openDatabase(path)];
        let writers = dbs.map((db) => new AppendWriter(db, { dedupe: TINY }));
        const model = new Map<string, number>();
        try {
          for (const o of ops) {
            if (o.kind === 'steps') for (let i = 0; i < o.n && writers[o.writer].upkeepStep(); i++);
            else if (o.kind === 'reopen') {
              for (const db of dbs) db.close();
              dbs = [openDatabase(path), openDatabase(path)];
              writers = dbs.map((db) => new AppendWriter(db, { dedupe: TINY }));
            } else {
              const expected = o.events.map(({ id, content }): AppendStatus => {
                const key = `e${id}`;
                const had = model.get(key);
                if (had === undefined) {
                  model.set(key, content);
                  return 'accepted';
                }
                return had === content ? 'duplicate' : 'conflict';
              });
              assert.deepEqual(append(writers[o.writer], 'ten', o.events.map(({ id, content }) => wire('src', `e${id}`, content))), expected);
            }
          }
          // Both writers take turns until neither has upkeep left.
          for (let busy = true; busy; ) busy = [writers[0].upkeepStep(), writers[1].upkeepStep()].some(Boolean);
          assertKeysSound(dbs[0]);
          // Everything settled: every key is still found, in whichever run it ended up, by either writer.
          const all = [...model].map(([id, content]) => wire('src', id, content));
          for (const w of writers) if (all.length > 0) assert.deepEqual(append(w, 'ten', all), all.map(() => 'duplicate'));
        } finally {
          for (const db of dbs) db.close();
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('find keys another writer moved into a merge this writer knows', () => {
    const path = join(dir, 'two-writers.sqlite');
    const dbs = [databaseAt(path), openDatabase(path)];
    try {
      const [a, b] = dbs.map((db) => new AppendWriter(db, { dedupe: { runKeys: 2, fanIn: 2, chunkKeys: 2 } }));
      const keys = ['k1', 'k2', 'k3', 'k4'].map((id) => wire('src', id, 0));
      append(a, 'ten', keys.slice(0, 2));
      assert.equal(a.upkeepStep(), true); // seal
      append(a, 'ten', keys.slice(2));
      assert.equal(a.upkeepStep(), true); // seal
      assert.equal(a.upkeepStep(), true); // start the merge
      assert.equal(a.keyRuns().filter((r) => r.state === 'target').length, 1);
      // The other writer learns of the merge at its next commit, then moves the first chunk.
      assert.deepEqual(append(b, 'ten', [wire('src', 'k9', 0)]), ['accepted']);
      assert.equal(b.upkeepStep(), true);
      assert.deepEqual(append(a, 'ten', keys), ['duplicate', 'duplicate', 'duplicate', 'duplicate']);
      while (a.upkeepStep());
      assert.deepEqual(append(b, 'ten', keys), ['duplicate', 'duplicate', 'duplicate', 'duplicate']);
      assertKeysSound(dbs[0]);
    } finally {
      for (const db of dbs) db.close();
    }
  });

  it('seal full runs and merge a level into the next, in key order', () => {
    const path = join(dir, 'levels.sqlite');
    const db = databaseAt(path);
    try {
      const writer = new AppendWriter(db, { dedupe: { runKeys: 4, fanIn: 2, chunkKeys: 3 } });
      for (let i = 0; i < 64; i++) {
        append(writer, 'ten', [wire('src', `id-${(i * 7919) % 64}`, 0)]);
        while (writer.upkeepStep());
      }
      const shape = writer.keyRuns();
      // 64 keys in runs of 4, two to one: the levels hold 64 = 4 * 2^4, i.e. one run of level 4.
      assert.deepEqual(shape.filter((r) => r.state === 'sealed').map((r) => [r.level, r.keys]), [[4, 64]]);
      assert.equal(shape.find((r) => r.state === 'open')?.keys, 0);
      // The merged run was written in key order: its rowids-free table lists keys in order anyway,
      // so check the sequence against the events it points to instead.
      assertKeysSound(db);
      // Tenants and sources are part of the key: the same id elsewhere is a new event.
      assert.deepEqual(append(writer, 'ten', [wire('src', 'id-5', 0), wire('other', 'id-5', 0)]), ['duplicate', 'accepted']);
      assert.deepEqual(append(writer, 'ten2', [wire('src', 'id-5', 1)]), ['accepted']);
    } finally {
      db.close();
    }
  });

  it('keep the keys of a database from before the runs (migration 7), both ways', () => {
    const path = join(dir, 'migrate.sqlite');
    const db = databaseAt(path, 6);
    try {
      const insert = db.prepare('INSERT INTO events (tenant_id, source, event_id, type, subject, time, data, hash, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
      for (let i = 0; i < 500; i++) insert.run('ten', i % 2 ? 'a' : 'b', `old-${i}`, 'api.call', 'sub', 1, '{"v":0}', 'hash-0', 1);
      db.exec(sqliteMigrations.find((m) => m.version === 7)!.up);
      assert.deepEqual(db.prepare('SELECT run, level, keys, state, filter FROM event_key_runs').all(), [{ run: 1, level: UNMERGED_LEVEL, keys: 500, state: 'sealed', filter: null }]);
      // The writer needs the migrations after 7 as well.
      for (const m of sqliteMigrations.filter((x) => x.version > 7)) db.exec(m.up);
      const writer = new AppendWriter(db, { dedupe: TINY });
      // Opening the writer made and saved the old run's filter.
      assert.ok(db.prepare('SELECT filter FROM event_key_runs WHERE run = 1').pluck().get());
      assert.deepEqual(append(writer, 'ten', [wire('a', 'old-1', 0), wire('b', 'old-2', 1), wire('a', 'old-2', 0), wire('b', 'old-2', 0)]), ['duplicate', 'conflict', 'accepted', 'duplicate']);
      for (let i = 0; i < 20; i++) append(writer, 'ten', [wire('new', `n-${i}`, 0)]);
      while (writer.upkeepStep());
      // The migrated run is never merged: rewriting every old key for a few new ones would cost more than it saves.
      assert.equal(writer.keyRuns().filter((r) => r.level === UNMERGED_LEVEL).length, 1);
      assertKeysSound(db);
      writer.stop();
      for (const m of sqliteMigrations.filter((x) => x.version >= 7).reverse()) db.exec(m.down);
      assert.equal(db.prepare("SELECT count(*) FROM sqlite_master WHERE name IN ('event_keys', 'event_key_runs', 'event_key_state')").pluck().get(), 0);
      assert.throws(() => insert.run('ten', 'a', 'old-1', null, null, 1, null, 'x', 1), /UNIQUE constraint failed/);
    } finally {
      db.close();
    }
  });

  it('keep the open run of a database from before the log (migration 10), both ways', () => {
    const path = join(dir, 'migrate-log.sqlite');
    const db = databaseAt(path, 9);
    try {
      const insert = db.prepare('INSERT INTO events (tenant_id, source, event_id, type, subject, time, data, hash, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
      // As version 9 left it: a sealed run and an open run, both in event_keys.
      db.exec("INSERT INTO event_key_runs (run, level, keys, state) VALUES (1, 0, 2, 'sealed'), (2, 0, 2, 'open')");
      for (const [run, id] of [[1, 'a'], [1, 'b'], [2, 'c'], [2, 'd']] as const) {
        const seq = Number(insert.run('ten', 'src', id, 'api.call', 'sub', 1, '{"v":0}', 'hash-0', 1).lastInsertRowid);
        db.prepare('INSERT INTO event_keys (run, key, seq) VALUES (?, ?, ?)').run(run, eventKey('ten', 'src', id), seq);
      }
      db.exec(sqliteMigrations.find((m) => m.version === 10)!.up);
      assert.deepEqual(db.prepare('SELECT key FROM event_key_log ORDER BY seq').pluck().all(), ['c', 'd'].map((id) => eventKey('ten', 'src', id)));
      // The rest of the way up, for this version's writer.
      const later = sqliteMigrations.filter((m) => m.version > 10);
      for (const m of later) db.exec(m.up);
      const writer = new AppendWriter(db, { dedupe: { runKeys: 3, fanIn: 4, chunkKeys: 2 } });
      assert.deepEqual(append(writer, 'ten', ['a', 'b', 'c', 'd', 'e'].map((id) => wire('src', id, 0))), ['duplicate', 'duplicate', 'duplicate', 'duplicate', 'accepted']);
      assertKeysSound(db);
      writer.stop();
      for (const m of [...later].reverse()) db.exec(m.down);
      db.exec(sqliteMigrations.find((m) => m.version === 10)!.down);
      assert.deepEqual(db.prepare('SELECT run, count(*) AS n FROM event_keys GROUP BY run').all(), [{ run: 1, n: 2 }, { run: 2, n: 3 }]);
    } finally {
      db.close();
    }
  });

  it('forget the keys of a commit that failed: retried, its events are new', () => {
    const path = join(dir, 'rollback.sqlite');
    const db = databaseAt(path);
    try {
      const writer = new AppendWriter(db, { dedupe: TINY });
      append(writer, 'ten', [wire('src', 'before', 0)]);
      // The second event breaks the transaction (events.source is NOT NULL) after the first one's key was added.
      const broken = [wire('src', 'first', 0), [null, 'second', 'api.call', 'sub', 1, null, 'h', []] as unknown as WireEvent];
      assert.throws(() => writer.commit([{ tenantId: 'ten', metersVersion: 0, meters: [], groups: [], events: broken }]), /NOT NULL/);
      assert.deepEqual(append(writer, 'ten', [wire('src', 'first', 0), wire('src', 'before', 0)]), ['accepted', 'duplicate']);
      assertKeysSound(db);
    } finally {
      db.close();
    }
  });

  it('filters never miss a key they were given, survive a round trip, and rarely say maybe wrongly', () => {
    const keys = Array.from({ length: 20_000 }, (_, i) => eventKey('ten', 'src', `k-${i}`));
    const filter = KeyFilter.sized(10_000);
    for (const k of keys.slice(0, 10_000)) filter.add(hashKey(k));
    const copy = KeyFilter.fromBytes(filter.toBytes());
    for (const k of keys.slice(0, 10_000)) assert.ok(copy.mayContain(hashKey(k)), k);
    const falsePositives = keys.slice(10_000).filter((k) => copy.mayContain(hashKey(k))).length;
    assert.ok(falsePositives < 400, `${falsePositives} false positives in 10,000`);
  });
});

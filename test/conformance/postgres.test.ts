// PostgreSQL-only mechanics under the conformance behaviour: session settings, schema from the
// URL, ping failing fast, time partitions (rows routed by month, moved out of the default), and
// reads waiting for another instance's fold of pending rollups, and event keys stored as digests
// (the migration's digest is the writer's; a digest shared by two keys never passes for a repeat).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import type { FoldOptions } from '../../src/store/postgres/folds.js';
import { Partitions, partitionName } from '../../src/store/postgres/partitions.js';
import { dropSchemas, postgresAvailability, randomSchema } from './engines.js';
import { ALL_BUCKETS, append, assertRollupsMatchEvents, createMeter, mkEvent, mkMeter, newTenant, rekeyFixture } from './helpers.js';
import { FOLD_LOCK, foldSome, lockFolds } from '../../src/store/postgres/pending.js';
import { keyDigest } from '../../src/store/postgres/append.js';
import { postgresMigrations } from '../../src/store/postgres/migrations.js';
import { SchemaTooNewError } from '../../src/store/migrations.js';
import pg from 'pg';
import { reconcileMeter } from '../../src/cli/reconcile.js';
import { formatInstant } from '../../src/core/time.js';

const postgres = await postgresAvailability();

if ('url' in postgres) {
  const url = postgres.url;
  describe('postgres engine mechanics', () => {
    const schema = randomSchema();
    let store: PostgresStore;
    before(async () => {
      const u = new URL(url);
      u.searchParams.set('schema', schema);
      store = new PostgresStore({ url: u.toString(), statementTimeoutMs: 12_345, poolSize: 3 });
      await store.migrate();
    });
    after(async () => {
      await store.close();
      await dropSchemas(url, [schema]);
    });
    /** Another instance on this test's schema, with its own fold settings. */
    const instance = (fold: FoldOptions, statementTimeoutMs?: number) => {
      const u = new URL(url);
      u.searchParams.set('schema', schema);
      return new PostgresStore({ url: u.toString(), poolSize: 3, fold, statementTimeoutMs });
    };
    /** Takes these migrations back, newest first, as if they had never run; store.migrate() runs them again. */
    const undo = async (...versions: number[]) => {
      for (const v of versions) {
        await store.rawPool.query(postgresMigrations.find((x) => x.version === v)!.down);
        await store.rawPool.query('DELETE FROM schema_migrations WHERE version = $1', [v]);
      }
    };
    const pendingRows = async (p: pg.Pool) => Number((await p.query<{ n: string }>('SELECT count(*) AS n FROM rollup_pending')).rows[0].n);
    /** Whether some session waits for a lock on rollups_total (a fold the test holds mid-statement), asked through c. */
    const waitsForTotals = (c: pg.PoolClient) => async () =>
      (await c.query<{ n: string }>(`SELECT count(*) AS n FROM pg_locks WHERE NOT granted AND relation = 'rollups_total'::regclass`)).rows[0].n !== '0';
    /** Polls until done() holds or ms pass; false if they passed. */
    const until = async (ms: number, done: () => Promise<boolean>) => {
      const end = Date.now() + ms;
      while (!(await done())) {
        if (Date.now() > end) return false;
        await new Promise((r) => setTimeout(r, 25));
      }
      return true;
    };

    it('uses the schema from ?schema= and sets durable session settings, without parallel plans or JIT compilation', async () => {
      const r = await store.rawPool.query('SELECT current_schema() AS s, current_setting($1) AS sc, current_setting($2) AS st, current_setting($3) AS par, current_setting($4) AS jit',
        ['synchronous_commit', 'statement_timeout', 'max_parallel_workers_per_gather', 'jit']);
      assert.deepEqual(r.rows[0], { s: schema, sc: 'on', st: '12345ms', par: '0', jit: 'off' });
      const t = await store.rawPool.query('SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2', [schema, 'event_ids']);
      assert.equal(t.rows[0].n, 1);
    });

    it('survives a checked-out connection losing its server between two queries: the next query fails', async () => {
      const c = await store.rawPool.connect();
      const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      // Without a listener on the client this 'error' event would end the test process.
      await store.rawPool.query('SELECT pg_terminate_backend($1)', [pid]);
      await new Promise((r) => setTimeout(r, 200));
      await assert.rejects(c.query('SELECT 1'));
      c.release(true);
      assert.deepEqual((await store.rawPool.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
    });

    it("warns at start when the server's autovacuum is off, and only then", async () => {
      const setting = (await store.rawPool.query<{ autovacuum: string }>('SHOW autovacuum')).rows[0].autovacuum;
      const warnings = await store.warnings();
      if (setting === 'on') assert.deepEqual(warnings, []);
      else assert.match(warnings.join('\n'), /autovacuum off: .*turn autovacuum on, or VACUUM this schema regularly/);
    });

    it('refuses schema names that are not plain identifiers', () => {
      assert.throws(() => new PostgresStore({ url, schema: 'x; DROP TABLE y' }), /schema must match/);
    });

    it('fails ping when the database is unreachable', async () => {
      const dead = new PostgresStore({ url: 'postgres://postgres@127.0.0.1:1/none' });
      await assert.rejects(dead.ping());
      await dead.close();
    });

    it('routes events into monthly partitions and far-off months into the default one', async () => {
      const t = await newTenant(store);
      const march = Date.UTC(2024, 2, 10);
      const far = Date.UTC(9000, 0, 1);
      await append(store, t, [mkEvent({ id: 'm', time: march }), mkEvent({ id: 'f', time: far })]);
      const r = await store.rawPool.query('SELECT event_id, tableoid::regclass::text AS part FROM events WHERE tenant_id = $1 ORDER BY event_id', [t]);
      assert.deepEqual(r.rows, [
        { event_id: 'f', part: 'events_default' },
        { event_id: 'm', part: 'events_p202403' },
      ]);
    });

    it('moves a month out of the default partition when it gets its own', async () => {
      const t = await newTenant(store);
      const far = Date.UTC(8000, 5, 15);
      await append(store, t, [mkEvent({ id: 'x', time: far }), mkEvent({ id: 'y', time: far + 1 })]);
      await new Partitions(store.rawPool).ensure([far], far);
      const r = await store.rawPool.query('SELECT DISTINCT tableoid::regclass::text AS part FROM events WHERE tenant_id = $1', [t]);
      assert.deepEqual(r.rows, [{ part: 'events_p800006' }]);
      assert.equal(partitionName(8000 * 12 + 5), 'events_p800006');
      assert.deepEqual(await append(store, t, [mkEvent({ id: 'x', time: far }), mkEvent({ id: 'z', time: far })]), ['duplicate', 'accepted']);
      assert.equal((await store.listEvents(t, {}, undefined, 10)).length, 3);
    });

    it('refuses, before its group commits, a job with text PostgreSQL would refuse mid-way; the others commit', async () => {
      const t = await newTenant(store);
      const [bad, good] = await Promise.allSettled([
        append(store, t, [mkEvent({ id: 'lone', subject: 'x\ud800', time: Date.UTC(2024, 0, 1) })]),
        append(store, t, [mkEvent({ id: 'fine', time: Date.UTC(2024, 0, 1) })]),
      ]);
      assert.equal(bad.status, 'rejected');
      assert.match(String((bad as PromiseRejectedResult).reason?.message), /well-formed/);
      assert.deepEqual(good, { status: 'fulfilled', value: ['accepted'] });
    });

    it('migrates text event keys to digests that the writer computes alike: repeats stay duplicates or conflicts', async () => {
      const old = randomSchema();
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      const u = new URL(url);
      u.searchParams.set('schema', old);
      let s2: PostgresStore | undefined;
      try {
        // The schema as version 5 left it, with one stored event (keys with non-ASCII text).
        await admin.query(`CREATE SCHEMA ${old}; SET search_path = ${old}`);
        await admin.query('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
        for (const m of postgresMigrations.filter((x) => x.version <= 5)) {
          await admin.query(m.up);
          await admin.query('INSERT INTO schema_migrations VALUES ($1, $2, 0)', [m.version, m.name]);
        }
        const e = mkEvent({ id: 'ünï-1', source: 'src/é', time: Date.UTC(2024, 0, 1) });
        await admin.query("INSERT INTO tenants (id, name, created_at, meters_version) VALUES ('tën', 'tën', 1, 0)");
        await admin.query("INSERT INTO events (seq, tenant_id, source, event_id, type, subject, time, data, ingested_at) VALUES (1, 'tën', $1, $2, $3, $4, $5, NULL, 1)", [e.source, e.id, e.type, e.subject, e.time]);
        await admin.query("INSERT INTO event_keys (tenant_id, source, event_id, hash, seq, time) VALUES ('tën', $1, $2, $3, 1, $4)", [e.source, e.id, e.hash, e.time]);
        await admin.query("SELECT setval('event_seq', 1)");

        s2 = new PostgresStore({ url: u.toString(), poolSize: 2 });
        await s2.migrate();
        const k = await admin.query('SELECT key::text AS key FROM event_ids');
        assert.deepEqual(k.rows, [{ key: keyDigest('tën', e.source, e.id) }]);
        assert.deepEqual(await append(s2, 'tën', [e, mkEvent({ id: e.id, source: e.source, time: Date.UTC(2024, 0, 2) }), mkEvent({ id: 'ünï-2', source: e.source, time: e.time })]), ['duplicate', 'conflict', 'accepted']);
        // Version 6 down makes the text keys again from the events; up again, the same digests.
        await admin.query(postgresMigrations.find((m) => m.version === 6)!.down);
        await admin.query('DELETE FROM schema_migrations WHERE version = 6');
        assert.equal((await admin.query('SELECT count(*)::int AS n FROM event_keys')).rows[0].n, 2);
        await s2.migrate();
        assert.deepEqual(await append(s2, 'tën', [e, mkEvent({ id: 'ünï-2', source: e.source, time: e.time })]), ['duplicate', 'duplicate']);
      } finally {
        await s2?.close();
        await admin.end();
        await dropSchemas(url, [old]);
      }
    });

    it('fails a job whose key shares its digest with another stored event, rather than call it a repeat', async () => {
      const t = await newTenant(store);
      const time = Date.UTC(2024, 0, 1);
      assert.deepEqual(await append(store, t, [mkEvent({ id: 'first', time })]), ['accepted']);
      // A stand-in for a collision: the digest of "second" made to point at the stored "first".
      await store.rawPool.query('UPDATE event_ids SET key = $1 WHERE key = $2', [keyDigest(t, 'test', 'second'), keyDigest(t, 'test', 'first')]);
      const second = mkEvent({ id: 'second', time });
      await assert.rejects(append(store, t, [second]), /digest of its key equals that of another stored event/);
      assert.deepEqual((await store.listEvents(t, {}, undefined, 10)).map((e) => e.id), ['first']);
    });

    it("makes a read wait for another instance's fold rather than answer without what is pending", async () => {
      const quiet = instance({ events: 1e12, afterMs: 1e9 });
      const other = await store.rawPool.connect();
      try {
        const t = await newTenant(quiet);
        const m = mkMeter(t, 'tokens', 'SUM');
        await createMeter(quiet, m);
        // Another instance folding: it holds the fold lock.
        await other.query('SELECT pg_advisory_lock($1, hashtext($2))', [FOLD_LOCK, schema]);
        await append(quiet, t, [mkEvent({ id: 'a', time: Date.UTC(2024, 0, 1), data: { value: '2.5' } })]);
        let answered = false;
        const read = quiet.readRollups(t, { meterId: m.id, ...ALL_BUCKETS }).finally(() => (answered = true));
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(answered, false);
        await other.query('SELECT pg_advisory_unlock($1, hashtext($2))', [FOLD_LOCK, schema]);
        assert.deepEqual((await read).map((r) => r.partial.sum.toString()), ['2.5']);
      } finally {
        other.release();
        await quiet.close();
      }
    });

    it('says whether a fold pass left rows, so background folds stop once they have taken what they saw', async () => {
      const quiet = instance({ events: 1e12, afterMs: 1e9 });
      try {
        await quiet.settle();
        const t = await newTenant(quiet);
        await createMeter(quiet, mkMeter(t, 'tokens', 'SUM'));
        // Five commits, five pending rows of one event each.
        for (const id of ['a', 'b', 'c', 'd', 'e']) await append(quiet, t, [mkEvent({ id, time: Date.UTC(2024, 0, 1), data: { value: '1' } })]);
        const c = await quiet.rawPool.connect();
        try {
          await c.query('BEGIN');
          await lockFolds(c, schema);
          assert.deepEqual(await foldSome(c, 2), { events: 2, more: true });
          assert.deepEqual(await foldSome(c, 100), { events: 3, more: false });
          assert.deepEqual(await foldSome(c, 100), { events: 0, more: false });
          await c.query('ROLLBACK');
        } finally {
          c.release();
        }
      } finally {
        await quiet.close();
      }
    });

    it('times background folds by the oldest pending row, whichever instance stored it', async () => {
      const afterMs = 2000;
      const open = () => instance({ events: 1e12, afterMs });
      const a = open();
      const b = open();
      try {
        await a.settle();
        const t = await newTenant(a);
        await createMeter(a, mkMeter(t, 'tokens', 'SUM'));
        const pending = () => pendingRows(a.rawPool);
        const event = (id: string) => [mkEvent({ id, time: Date.UTC(2024, 0, 1), data: { value: '1' } })];
        const t0 = Date.now();
        await append(a, t, event('a')); // a's timer: due at t0 + 2000
        await new Promise((r) => setTimeout(r, 1000));
        await append(b, t, event('b')); // b's timer: fires at t0 + 3000
        // a's fold takes both rows.
        assert.ok(await until(3000, async () => (await pending()) === 0), 'the first fold came');
        const late = Date.now();
        await append(b, t, event('c'));
        // b's timer has fired (t0 + 3000) and found c younger than the interval: it waits for c's age, not its own timer.
        await new Promise((r) => setTimeout(r, Math.max(0, t0 + 3500 - Date.now())));
        assert.ok(Date.now() - late < afterMs - 300, 'the test ran too slowly to judge');
        assert.equal(await pending(), 1, 'c is still pending: it is younger than the interval');
        assert.ok(await until(afterMs + 2000, async () => (await pending()) === 0), 'c is folded once it is old enough');
        assert.ok(Date.now() - late >= afterMs - 100, 'and not before');
      } finally {
        await a.close();
        await b.close();
      }
    });

    // Each background fold stops after a pass that took every row it saw, so rows committed while it
    // ran, or while another instance's fold ran, need a later check even when no commit follows.
    describe('folds in the background what was committed while a fold ran', () => {
      const event = (id: string) => [mkEvent({ id, time: Date.UTC(2024, 0, 1), data: { value: '1' } })];

      it('by this instance', async () => {
        const eager = instance({ events: 1, afterMs: 0 });
        const blocker = await store.rawPool.connect();
        try {
          await eager.settle();
          const t = await newTenant(eager);
          await createMeter(eager, mkMeter(t, 'tokens', 'SUM'));
          // Hold the fold mid-statement: it has read the pending rows and waits to write the totals.
          await blocker.query('BEGIN');
          await blocker.query('LOCK TABLE rollups_total IN SHARE MODE');
          await append(eager, t, event('a'));
          assert.ok(await until(5000, waitsForTotals(blocker)), 'the fold started and waits for the lock');
          await append(eager, t, event('b')); // committed after the fold read the pending rows
          await blocker.query('ROLLBACK');
          assert.ok(await until(5000, async () => (await pendingRows(store.rawPool)) === 0), 'b is folded without another commit or a read');
        } finally {
          await blocker.query('ROLLBACK').catch(() => {});
          blocker.release();
          await eager.close();
        }
      });

      it('by another instance, to which this one gave way', async () => {
        const eager = instance({ events: 1, afterMs: 200 });
        const other = await store.rawPool.connect();
        try {
          await eager.settle();
          const t = await newTenant(eager);
          await createMeter(eager, mkMeter(t, 'tokens', 'SUM'));
          // Another instance folding: it holds the fold lock, and its fold will not take this row.
          await other.query('SELECT pg_advisory_lock($1, hashtext($2))', [FOLD_LOCK, schema]);
          await append(eager, t, event('a'));
          await new Promise((r) => setTimeout(r, 600)); // a's fold came, found the lock taken and gave way
          assert.equal(await pendingRows(store.rawPool), 1);
          await other.query('SELECT pg_advisory_unlock($1, hashtext($2))', [FOLD_LOCK, schema]);
          assert.ok(await until(5000, async () => (await pendingRows(store.rawPool)) === 0), 'a is folded without another commit or a read');
        } finally {
          other.release();
          await eager.close();
        }
      });
    });

    it('folds past the statement timeout of requests, so a slow fold cannot fail every read', async () => {
      // Folds only when a read asks; every statement of this instance may take at most 500 ms.
      const strict = instance({ events: 1e9, afterMs: 1e9 }, 500);
      const blocker = await store.rawPool.connect();
      try {
        await strict.settle();
        const t = await newTenant(strict);
        await createMeter(strict, mkMeter(t, 'tokens', 'SUM'));
        await append(strict, t, [mkEvent({ id: 'a', time: Date.UTC(2024, 0, 1), data: { value: '1' } })]);
        // Hold the fold mid-statement for longer than the timeout.
        await blocker.query('BEGIN');
        await blocker.query('LOCK TABLE rollups_total IN SHARE MODE');
        const settled = strict.settle();
        assert.ok(await until(5000, waitsForTotals(blocker)), 'the fold started and waits for the lock');
        await new Promise((r) => setTimeout(r, 1200));
        await blocker.query('ROLLBACK');
        await settled;
        assert.equal(await pendingRows(store.rawPool), 0);
      } finally {
        await blocker.query('ROLLBACK').catch(() => {});
        blocker.release();
        await strict.close();
      }
    });

    it('keeps per-subject week rollups, which reconcile checks and migration 7 fills from the day level', async () => {
      const t = await newTenant(store);
      const m = mkMeter(t, 'tokens', 'SUM', { value: '$.value' });
      await createMeter(store, m);
      const HOUR = 3_600_000;
      const monday = Date.UTC(2024, 3, 1);
      const sunday = monday - 24 * HOUR;
      // Sunday night before the first week, its Monday, the next Sunday's last hour, the next Monday (late, after the rest).
      await append(store, t, [
        mkEvent({ id: 'a', subject: 'a', time: sunday + 23 * HOUR, data: { value: '1.5' } }),
        mkEvent({ id: 'b', subject: 'a', time: monday, data: { value: '2' } }),
        mkEvent({ id: 'c', subject: 'a', time: monday + 7 * 24 * HOUR - 1, data: { value: '3' } }),
        mkEvent({ id: 'd', subject: 'b', time: monday + 3 * 24 * HOUR, data: { value: '10' } }),
      ]);
      await append(store, t, [mkEvent({ id: 'e', subject: 'a', time: monday + 7 * 24 * HOUR, data: { value: '4' } })]);
      const weeks = async () => {
        await store.settle();
        return (await store.rawPool.query('SELECT subject, bucket, sum::text AS sum, count::int AS count FROM rollups_subject_week WHERE series = (SELECT series FROM meters WHERE id = $1) ORDER BY 1, 2', [m.id])).rows
          .map((r) => [r.subject, formatInstant(Number(r.bucket)), r.sum, r.count]);
      };
      const expected = [
        ['a', formatInstant(monday - 7 * 24 * HOUR), '1.5', 1],
        ['a', formatInstant(monday), '5', 2],
        ['a', formatInstant(monday + 7 * 24 * HOUR), '4', 1],
        ['b', formatInstant(monday), '10', 1],
      ];
      assert.deepEqual(await weeks(), expected);
      assert.deepEqual(await reconcileMeter({ store }, t, m), []);

      await store.rawPool.query('UPDATE rollups_subject_week SET sum = sum + 1 WHERE series = (SELECT series FROM meters WHERE id = $1) AND subject = $2 AND bucket = $3', [m.id, 'a', monday]);
      assert.deepEqual((await reconcileMeter({ store }, t, m)).map((d) => [d.kind, d.subject, d.bucket]), [['rollup subject-week', 'a', formatInstant(monday)]]);

      // Down drops the level; up rebuilds it from the day level, which the damage did not touch.
      await undo(10, 7);
      await store.migrate();
      assert.deepEqual(await weeks(), expected);
      assert.deepEqual(await reconcileMeter({ store }, t, m), []);
    });

    it('keeps the day bits of distinct values in their key index (migration 9), and answers alike without them there', async () => {
      const t = await newTenant(store);
      const m = mkMeter(t, 'users', 'UNIQUE_COUNT', { value: '$.user', groupBy: { model: '$.model' } });
      await createMeter(store, m);
      const DAY = 86_400_000;
      const may30 = Date.UTC(2024, 4, 30);
      // Over the end of May: u1 on all four days (models y and x in turn), u2 on June 1st only.
      await append(store, t, [0, 1, 2, 3].flatMap((d) => [
        mkEvent({ id: `a${d}`, time: may30 + d * DAY + 5_000, data: { user: 'u1', model: d % 2 ? 'x' : 'y' } }),
        ...(d === 2 ? [mkEvent({ id: `b${d}`, time: may30 + d * DAY + 9_000, data: { user: 'u2', model: 'x' } })] : []),
      ]));
      await store.settle();
      const keyIndex = async () => (await store.rawPool.query<{ def: string }>("SELECT pg_get_indexdef('rollup_uniques_days_pkey'::regclass) AS def")).rows[0].def;
      // One window over both months, and DAY windows (several per month); by model and merged.
      const reads = [[may30], [may30, may30 + DAY, may30 + 2 * DAY, may30 + 3 * DAY]].flatMap((windowStarts) => [true, false].map((byGroup) => ({
        meterId: m.id, fromBucket: may30, toBucket: may30 + 4 * DAY, windowStarts, bySubject: false, byGroup, aggregation: 'UNIQUE_COUNT' as const,
      })));
      const answers = async () => {
        const out = [];
        for (const a of reads) out.push((await store.aggregateUniques(t, a)).map((r) => `${r.window} ${r.groupKey} ${r.value}`).sort());
        return out;
      };
      assert.match(await keyIndex(), /INCLUDE \(days\)$/);
      const withBits = await answers();
      assert.deepEqual(withBits[0], ['0 {"model":"x"} u1', '0 {"model":"x"} u2', '0 {"model":"y"} u1']);
      assert.deepEqual(withBits[3], ['0  u1', '1  u1', '2  u1', '2  u2', '3  u1']);

      // The same key without the day bits (migration 9's down, on today's columns).
      await store.rawPool.query('ALTER TABLE rollup_uniques_days DROP CONSTRAINT rollup_uniques_days_pkey, ADD PRIMARY KEY (series, month, value, group_key)');
      assert.doesNotMatch(await keyIndex(), /INCLUDE/);
      assert.deepEqual(await answers(), withBits);
      await store.rawPool.query('ALTER TABLE rollup_uniques_days DROP CONSTRAINT rollup_uniques_days_pkey, ADD PRIMARY KEY (series, month, value, group_key) INCLUDE (days)');
      // Migration 9 itself, down and up again (10 down first: 9 knows the columns before it).
      await undo(10, 9);
      assert.doesNotMatch(await keyIndex(), /INCLUDE/);
      await store.migrate();
      assert.match(await keyIndex(), /INCLUDE \(days\)$/);
      assert.deepEqual(await answers(), withBits);
    });

    it('refuses a schema a newer meterd migrated, up or down, and changes nothing', async () => {
      const newest = Math.max(...postgresMigrations.map((m) => m.version));
      await store.rawPool.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'from the future', 0)", [newest + 1]);
      // A migration down folds what is pending first; this code must refuse before that. With the
      // fold lock held elsewhere, a fold would wait for it: the refusal has to come without one.
      const holder = await store.rawPool.connect();
      await holder.query('BEGIN');
      await lockFolds(holder, schema);
      try {
        for (const run of [() => store.migrate(), () => store.migrateDown()]) {
          await assert.rejects(run(), (e: Error) => e instanceof SchemaTooNewError && e.message.includes(`at version ${newest + 1}, newer than this meterd knows (${newest})`));
        }
        const r = await store.rawPool.query<{ v: number; n: number }>('SELECT max(version) AS v, count(*)::int AS n FROM schema_migrations');
        assert.deepEqual(r.rows[0], { v: newest + 1, n: postgresMigrations.length + 1 });
      } finally {
        await holder.query('ROLLBACK');
        holder.release();
        await store.rawPool.query('DELETE FROM schema_migrations WHERE version = $1', [newest + 1]);
      }
      await store.migrate();
    });

    it('keys rollups by meter series (migration 10), with the same answers before, after and back', async () => {
      const { check } = await rekeyFixture(store);
      const columns = async () => (await store.rawPool.query<{ c: string }>(
        "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) AS c FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'rollups'")).rows[0].c;
      assert.match(await columns(), /^series,subject,bucket,group_key,/);
      await undo(10);
      assert.match(await columns(), /^tenant_id,meter_id,subject,/);
      await store.migrate();
      assert.match(await columns(), /^series,/);
      await check(store);
    });

    it('folds pending rows in the compact form and in the full form earlier versions stored', async () => {
      const quiet = instance({ events: 1e12, afterMs: 1e9 });
      try {
        const t = await newTenant(quiet);
        const ms = [
          mkMeter(t, 'tokens', 'SUM', { value: '$.tokens', groupBy: { model: '$.model' } }),
          mkMeter(t, 'latest', 'LATEST', { value: '$.tokens' }),
          mkMeter(t, 'calls', 'COUNT', { groupBy: { model: '$.model' } }),
          mkMeter(t, 'users', 'UNIQUE_COUNT', { value: '$.user', groupBy: { model: '$.model' } }),
        ];
        for (const m of ms) await createMeter(quiet, m);
        const T0 = Date.UTC(2024, 4, 31, 20);
        const events = (from: number) => Array.from({ length: 30 }, (_, i) => mkEvent({
          id: `e${from + i}`,
          time: T0 + ((from + i) % 5) * 3_600_000 + i,
          subject: `s${i % 3}`,
          data: { model: ['a', 'b', 'c'][(from + i) % 5 % 3], tokens: `${i}.${from % 7}`, user: `u${i % 4}` },
        }));
        await append(quiet, t, events(0));
        await append(quiet, t, events(30));
        const pending = await quiet.rawPool.query<{ id: string; body: string }>('SELECT id, body FROM rollup_pending ORDER BY id');
        assert.equal(pending.rows.length, 2);
        // The second row as earlier versions wrote it: per contribution [meter, subject, group, bucket,
        // count, sum, min, max, latest time, latest seq, latest value, (distinct value, month, day bit)].
        type Compact = { m: string[]; g: string[]; e: Array<[string, number, number, number, number, number, Array<[number, number, string | null, string | null]>]> };
        const body = JSON.parse(pending.rows[1].body) as Compact;
        assert.ok(body.g.length > 1 && body.e.length === 30, 'the compact form');
        const d = body.e.flatMap(([subject, bucket, time, seq, month, bit, cs]) => cs.map(([m, g, v, unique]) => [
          m, subject, body.g[g], bucket, 1, v ?? '0', v, v, time, seq, v, ...(unique === null ? [] : [unique, month, bit]),
        ]));
        await quiet.rawPool.query('UPDATE rollup_pending SET body = $1 WHERE id = $2', [JSON.stringify({ m: body.m, d }), pending.rows[1].id]);
        await quiet.settle();
        assert.equal((await quiet.rawPool.query('SELECT count(*)::int AS n FROM rollup_pending')).rows[0].n, 0);
        for (const m of ms) await assertRollupsMatchEvents(quiet, t, m);
        for (const m of ms) assert.deepEqual(await reconcileMeter({ store: quiet }, t, m), [], m.slug);
      } finally {
        await quiet.close();
      }
    });

    it('answers a usage read in one statement when nothing is pending, and folds first when something is', async () => {
      const quiet = instance({ events: 1e12, afterMs: 1e9 });
      const pool = quiet.rawPool;
      const query = pool.query.bind(pool);
      let statements = 0;
      pool.query = ((...args: Parameters<typeof query>) => (statements++, query(...args))) as typeof pool.query;
      try {
        const t = await newTenant(quiet);
        const tokens = mkMeter(t, 'tokens', 'SUM', { value: '$.value' });
        const users = mkMeter(t, 'users', 'UNIQUE_COUNT', { value: '$.user' });
        await createMeter(quiet, tokens);
        await createMeter(quiet, users);
        const day = Date.UTC(2024, 0, 1);
        const read = { fromBucket: day, toBucket: day + 86_400_000, windowStarts: [day], bySubject: false, byGroup: false };
        const sums = async () => (await quiet.aggregateRollups(t, { ...read, meterId: tokens.id, aggregation: 'SUM' })).map((r) => r.partial.sum.toString());
        const values = async () => (await quiet.aggregateUniques(t, { ...read, meterId: users.id, aggregation: 'UNIQUE_COUNT' })).map((r) => r.value).sort();

        // Nothing stored yet: no rows to carry the flag, so each read checks and reads again.
        assert.deepEqual(await sums(), []);
        assert.deepEqual(await values(), []);

        await append(quiet, t, [mkEvent({ id: 'a', time: day + 1000, data: { value: '2.5', user: 'u1' } })]);
        assert.deepEqual(await sums(), ['2.5']);
        await append(quiet, t, [mkEvent({ id: 'b', time: day + 2000, data: { value: '1', user: 'u2' } })]);
        assert.deepEqual(await values(), ['u1', 'u2']);
        assert.equal((await pool.query('SELECT count(*)::int AS n FROM rollup_pending')).rows[0].n, 0);

        // Folded: each read is its one statement.
        statements = 0;
        assert.deepEqual(await sums(), ['3.5']);
        assert.deepEqual(await values(), ['u1', 'u2']);
        assert.equal(statements, 2);
      } finally {
        pool.query = query;
        await quiet.close();
      }
    });
  });
} else {
  const why = 'skip' in postgres ? postgres.skip : postgres.fail;
  describe('postgres engine mechanics', { skip: 'skip' in postgres ? why : false }, () => {
    it('needs PostgreSQL', () => assert.fail(why));
  });
}

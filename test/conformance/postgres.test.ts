// PostgreSQL-only mechanics under the conformance behaviour: session settings, schema from the
// URL, ping failing fast, time partitions (rows routed by month, moved out of the default), and
// reads waiting for another instance's fold of pending rollups.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { Partitions, partitionName } from '../../src/store/postgres/partitions.js';
import { dropSchemas, postgresAvailability, randomSchema } from './engines.js';
import { ALL_BUCKETS, append, createMeter, mkEvent, mkMeter, newTenant } from './helpers.js';
import { FOLD_LOCK } from '../../src/store/postgres/pending.js';

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

    it('uses the schema from ?schema= and sets durable session settings', async () => {
      const r = await store.rawPool.query('SELECT current_schema() AS s, current_setting($1) AS sc, current_setting($2) AS st', ['synchronous_commit', 'statement_timeout']);
      assert.deepEqual(r.rows[0], { s: schema, sc: 'on', st: '12345ms' });
      const t = await store.rawPool.query('SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2', [schema, 'event_keys']);
      assert.equal(t.rows[0].n, 1);
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

    it("makes a read wait for another instance's fold rather than answer without what is pending", async () => {
      const u = new URL(url);
      u.searchParams.set('schema', schema);
      const quiet = new PostgresStore({ url: u.toString(), poolSize: 3, fold: { events: 1e12, afterMs: 1e9 } });
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
  });
} else {
  const why = 'skip' in postgres ? postgres.skip : postgres.fail;
  describe('postgres engine mechanics', { skip: 'skip' in postgres ? why : false }, () => {
    it('needs PostgreSQL', () => assert.fail(why));
  });
}

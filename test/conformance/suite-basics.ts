// Migrations, tenants, API keys, meters and customers.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Suite } from './suite-context.js';
import type { Customer } from '../../src/modules/customers/customers.types.js';
import { StaleMetersError } from '../../src/store/store.js';
import { ApiKeysService } from '../../src/modules/api-keys/api-keys.service.js';
import { ALL_BUCKETS, append, assertRollupsMatchEvents, createMeter, mkEvent, mkMeter, newTenant, uid } from './helpers.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2024, 0, 15, 10);

export function basicsSuite(ctx: Suite) {
  describe('migrations', () => {
    it('go up, down and up again, and are safe to run twice or concurrently', async () => {
      const db = await ctx.engine.fresh();
      const a = db.open();
      const b = db.open();
      await Promise.all([a.migrate(), b.migrate()]);
      await a.migrate();
      assert.equal(await a.createTenant({ id: 't1', name: 'one', createdAt: 5 }), true);
      await a.migrateDown();
      await assert.rejects(a.listTenants());
      await a.migrateDown();
      await a.migrate();
      assert.deepEqual(await a.listTenants(), []);
      assert.equal(await a.createTenant({ id: 't1', name: 'one', createdAt: 5 }), true);
      assert.deepEqual(await b.getTenant('t1'), { id: 't1', name: 'one', createdAt: 5 });
    });
  });

  describe('tenants', () => {
    it('are created once, read back and listed', async () => {
      const id = uid('ten');
      assert.equal(await ctx.store.createTenant({ id, name: 'Acme', createdAt: 1_700_000_000_123 }), true);
      assert.equal(await ctx.store.createTenant({ id, name: 'Other', createdAt: 2 }), false);
      assert.deepEqual(await ctx.store.getTenant(id), { id, name: 'Acme', createdAt: 1_700_000_000_123 });
      assert.equal(await ctx.store.getTenant(uid('missing')), undefined);
      assert.ok((await ctx.store.listTenants()).some((t) => t.id === id));
      const ids = (await ctx.store.listTenants()).map((t) => t.id);
      assert.deepEqual(ids, [...ids].sort());
    });
  });

  describe('api keys', () => {
    it('seeded by several instances at once: one key, every instance gets it', async () => {
      const t = await newTenant(ctx.store);
      // Separate services, as separate processes have; each reads "absent" before any writes.
      const key = `${uid('seeded')}-operator-chosen-secret`;
      const seeds = await Promise.all(Array.from({ length: 6 }, () => new ApiKeysService(ctx.store).seed(t, 'admin', ['admin'], key)));
      assert.equal(new Set(seeds.map((k) => JSON.stringify(k))).size, 1);
      assert.equal((await ctx.store.listApiKeys(t)).length, 1);
    });

    it('are inserted, read, listed and revoked within their tenant only', async () => {
      const a = await newTenant(ctx.store);
      const b = await newTenant(ctx.store);
      const k1 = { id: uid('key'), tenantId: a, name: 'one', secretHash: 'h1', scopes: ['ingest', 'read'] as const, createdAt: 10, revokedAt: null };
      const k2 = { id: uid('key'), tenantId: a, name: 'two', secretHash: 'h2', scopes: ['admin'] as const, createdAt: 20, revokedAt: null };
      const k3 = { id: uid('key'), tenantId: b, name: 'three', secretHash: 'h3', scopes: ['read'] as const, createdAt: 5, revokedAt: null };
      for (const k of [k2, k1, k3]) assert.equal(await ctx.store.insertApiKey({ ...k, scopes: [...k.scopes] }), true);
      // The same id again (instances seeding one key at once) writes nothing and says so.
      assert.equal(await ctx.store.insertApiKey({ ...k1, name: 'again', secretHash: 'other', scopes: ['admin'] }), false);
      assert.deepEqual(await ctx.store.getApiKey(k1.id), { ...k1, scopes: ['ingest', 'read'] });
      assert.deepEqual((await ctx.store.listApiKeys(a)).map((k) => k.id), [k1.id, k2.id]);
      assert.deepEqual((await ctx.store.listApiKeys(b)).map((k) => k.id), [k3.id]);
      assert.equal(await ctx.store.revokeApiKey(b, k1.id, 99), false);
      assert.equal((await ctx.store.getApiKey(k1.id))?.revokedAt, null);
      assert.equal(await ctx.store.revokeApiKey(a, k1.id, 100), true);
      assert.equal(await ctx.store.revokeApiKey(a, k1.id, 200), true);
      assert.equal((await ctx.store.getApiKey(k1.id))?.revokedAt, 100);
      assert.equal(await ctx.store.revokeApiKey(a, uid('missing'), 1), false);
    });
  });

  describe('meters', () => {
    it('are created once, listed by slug, deleted with their rollups, and bump the meters version', async () => {
      const t = await newTenant(ctx.store);
      assert.deepEqual(await ctx.store.listMeters(t), { version: 0, meters: [] });
      const m1 = mkMeter(t, 'tokens', 'SUM', { groupBy: { model: '$.model' } });
      const m2 = mkMeter(t, 'calls', 'COUNT');
      assert.equal(await createMeter(ctx.store, m1), 'created');
      assert.equal(await createMeter(ctx.store, m2), 'created');
      assert.equal(await createMeter(ctx.store, { ...mkMeter(t, 'tokens', 'MAX') }), 'exists');
      const listed = await ctx.store.listMeters(t);
      assert.equal(listed.version, 2);
      assert.deepEqual(listed.meters, [m2, m1]);
      assert.deepEqual(await ctx.store.getMeter(t, 'tokens'), m1);
      assert.equal(await ctx.store.getMeter(t, 'nope'), undefined);

      await append(ctx.store, t, [mkEvent({ id: 'e1', time: T0, data: { value: '3', model: 'x' } })]);
      assert.equal((await ctx.store.readRollups(t, { meterId: m1.id, ...ALL_BUCKETS })).length, 1);
      assert.equal(await ctx.store.deleteMeter(t, 'tokens'), true);
      assert.equal(await ctx.store.deleteMeter(t, 'tokens'), false);
      assert.deepEqual(await ctx.store.readRollups(t, { meterId: m1.id, ...ALL_BUCKETS }), []);
      assert.deepEqual(await ctx.store.listMeters(t), { version: 3, meters: [m2] });
    });

    it('backfill rollups from events stored before the meter existed', async () => {
      const t = await newTenant(ctx.store);
      const events = Array.from({ length: 30 }, (_, i) =>
        mkEvent({ id: `e${i}`, time: T0 + i * 17 * 60_000, subject: `s${i % 3}`, data: { value: `${i}.25`, model: i % 2 ? 'a' : 'b', user: `u${i % 4}` } }),
      );
      await append(ctx.store, t, events);
      for (const m of [
        mkMeter(t, 'sum', 'SUM', { groupBy: { model: '$.model' } }),
        mkMeter(t, 'latest', 'LATEST'),
        mkMeter(t, 'users', 'UNIQUE_COUNT', { value: '$.user' }),
      ]) {
        assert.equal(await createMeter(ctx.store, m), 'created');
        assert.ok((await ctx.store.readRollups(t, { meterId: m.id, ...ALL_BUCKETS })).length > 0);
        await assertRollupsMatchEvents(ctx.store, t, m);
      }
    });

    it('make appends computed for an older meters version fail with StaleMetersError', async () => {
      const t = await newTenant(ctx.store);
      const { version } = await ctx.store.listMeters(t);
      const ev = { event: mkEvent({ id: 'e1', time: T0 }), deltas: [] };
      assert.deepEqual(await ctx.store.appendEvents(t, version, [ev]), ['accepted']);
      await createMeter(ctx.store, mkMeter(t, 'calls', 'COUNT'));
      await assert.rejects(ctx.store.appendEvents(t, version, [{ event: mkEvent({ id: 'e2', time: T0 }), deltas: [] }]), StaleMetersError);
      await ctx.store.deleteMeter(t, 'calls');
      await assert.rejects(ctx.store.appendEvents(t, version + 1, [{ event: mkEvent({ id: 'e2', time: T0 }), deltas: [] }]), StaleMetersError);
      // Nothing of a refused job is stored.
      assert.deepEqual((await ctx.store.listEvents(t, {}, undefined, 10)).map((e) => e.id), ['e1']);
      assert.deepEqual(await ctx.store.appendEvents(t, version + 2, [{ event: mkEvent({ id: 'e2', time: T0 }), deltas: [] }]), ['accepted']);
    });
  });

  describe('customers', () => {
    const customer = (tenantId: string, key: string, subjects: string[], name = key): Customer => ({
      id: uid('cus'),
      tenantId,
      key,
      name,
      subjects,
      metadata: { tier: 'gold', region: 'eu' },
      createdAt: 1,
      updatedAt: 1,
    });

    it('own their subjects exclusively, on create and on update', async () => {
      const t = await newTenant(ctx.store);
      const c1 = customer(t, 'c1', ['s1', 's2']);
      assert.equal(await ctx.store.createCustomer(c1), 'created');
      assert.deepEqual(await ctx.store.getCustomer(t, 'c1'), c1);
      assert.deepEqual(await ctx.store.createCustomer(customer(t, 'c1', ['s9'])), { conflict: 'key' });
      assert.deepEqual(await ctx.store.createCustomer(customer(t, 'c3', ['s3', 's2'])), { conflict: 'subject', subject: 's2' });
      assert.equal(await ctx.store.getCustomer(t, 'c3'), undefined);
      assert.deepEqual(await ctx.store.customersOfSubjects(t), new Map([['s1', 'c1'], ['s2', 'c1']]));

      const moved = { ...c1, name: 'renamed', subjects: ['s2', 's4'], metadata: { a: '1' }, updatedAt: 9 };
      assert.equal(await ctx.store.updateCustomer(moved), 'updated');
      assert.deepEqual(await ctx.store.getCustomer(t, 'c1'), moved);
      assert.equal(await ctx.store.updateCustomer(customer(t, 'ghost', [])), 'missing');

      const c5 = customer(t, 'c5', ['s1']);
      assert.equal(await ctx.store.createCustomer(c5), 'created');
      assert.deepEqual(await ctx.store.updateCustomer({ ...c5, name: 'x', subjects: ['s1', 's4'] }), { conflict: 'subject', subject: 's4' });
      assert.deepEqual(await ctx.store.getCustomer(t, 'c5'), c5);
      assert.deepEqual(await ctx.store.customersOfSubjects(t, ['s1', 's4', 'nobody']), new Map([['s1', 'c5'], ['s4', 'c1']]));
    });

    it('list in key byte order with paging', async () => {
      const t = await newTenant(ctx.store);
      const keys = ['b', 'B', 'a', 'A', 'a-1', 'Z', '_x', '0'];
      for (const k of keys) assert.equal(await ctx.store.createCustomer(customer(t, k, [`subj-${k}`])), 'created');
      const seen: string[] = [];
      for (let after: string | undefined; ; ) {
        const page = await ctx.store.listCustomers(t, after, 3);
        if (page.length === 0) break;
        assert.ok(page.length <= 3);
        for (const c of page) assert.deepEqual(c.subjects, [`subj-${c.key}`]);
        seen.push(...page.map((c) => c.key));
        after = page[page.length - 1].key;
      }
      assert.deepEqual(seen, [...keys].sort());
    });
  });
}

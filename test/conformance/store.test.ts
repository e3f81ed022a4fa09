// One storage conformance suite, run on every engine: SQLite always, PostgreSQL when
// TEST_DATABASE_URL is set. Engine differences are named properties (EngineProps), not skips.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { engines } from './engines.js';
import type { Suite } from './suite-context.js';
import { basicsSuite } from './suite-basics.js';
import { eventsSuite } from './suite-events.js';
import { rollupsSuite } from './suite-rollups.js';
import { aggregateSuite } from './suite-aggregate.js';

const { fixtures, postgres } = await engines();

for (const engine of fixtures) {
  describe(`store conformance [${engine.name}]`, () => {
    const ctx = {} as Suite;
    before(async () => {
      const db = await engine.fresh();
      ctx.engine = engine;
      ctx.db = db;
      ctx.store = db.open();
      await ctx.store.migrate();
    });
    after(() => engine.cleanup());
    basicsSuite(ctx);
    eventsSuite(ctx);
    rollupsSuite(ctx);
    aggregateSuite(ctx);
  });
}

if ('skip' in postgres) {
  console.log(`\n*** ${postgres.skip} ***\n`);
  describe('store conformance [postgres]', { skip: postgres.skip }, () => {
    it('runs the whole suite on PostgreSQL');
  });
}
if ('fail' in postgres) {
  describe('store conformance [postgres]', () => {
    it('has a reachable PostgreSQL', () => assert.fail(postgres.fail));
  });
}

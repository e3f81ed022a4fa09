// Usage reads on PostgreSQL run as named statements, one name per statement text, up to a bound:
// each name stays prepared on every pooled connection, so past NAMED_READS shapes reads run unnamed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NAMED_READS, statementName } from '../../src/store/postgres/aggregate.js';

describe('names of usage read statements', () => {
  it('gives each text one stable name, different texts different names, and none past the bound', () => {
    const first = statementName('SELECT 1 AS shape_a');
    assert.ok(first);
    assert.equal(statementName('SELECT 1 AS shape_a'), first);
    const names = new Set([first]);
    let unnamed = 0;
    for (let i = 0; i < NAMED_READS + 10; i++) {
      const name = statementName(`SELECT ${i} AS shape_b`);
      if (name === undefined) unnamed++;
      else names.add(name);
    }
    assert.equal(names.size, NAMED_READS, 'every name distinct, up to the bound');
    assert.equal(unnamed, 11);
    assert.equal(statementName('SELECT 1 AS shape_a'), first, 'a named text keeps its name');
  });
});

// planSources decides which rollup level answers which part of a query's range. Whatever the windows,
// its sources must tile the range exactly, and every row a coarse source reads (a UTC day, or a UTC
// week from Monday) must lie inside one window, or the row's amounts would land in the wrong window.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { HOUR_LEVEL, SUBJECT_DAY_LEVEL, SUBJECT_WEEK_LEVEL, WEEK_MS, planSources, weekOf, type Source } from '../../src/store/levels.js';
import type { RollupAggregation } from '../../src/store/store.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
// A Wednesday, so ranges start mid-week as often as not.
const BASE = Date.UTC(2024, 3, 3);

const windowOf = (starts: number[], t: number) => starts.findLastIndex((s) => s <= t);

function assertTiles(a: RollupAggregation, from: number, sources: Source[], weeks: boolean) {
  let cursor = from;
  for (const s of sources) {
    assert.equal(s.from, cursor, 'sources are contiguous and sorted');
    assert.ok(s.to > s.from, 'no empty source');
    cursor = s.to;
    const row = s.level === SUBJECT_WEEK_LEVEL ? WEEK_MS : s.level === SUBJECT_DAY_LEVEL ? DAY : 0;
    if (row === 0) continue;
    assert.ok(weeks || s.level !== SUBJECT_WEEK_LEVEL, 'weeks only where the engine keeps them');
    if (row === WEEK_MS) assert.equal(weekOf(s.from), s.from, 'weeks start on Monday');
    assert.equal((s.to - s.from) % row, 0);
    for (let r = s.from; r < s.to; r += row) {
      assert.equal(r % DAY, 0, 'rows start at UTC midnight');
      assert.ok(r >= from && r + row <= a.toBucket, 'a row inside the range');
      assert.equal(windowOf(a.windowStarts, r), windowOf(a.windowStarts, r + row - 1), 'a row inside one window');
    }
  }
  assert.equal(cursor, a.toBucket, 'the sources cover the range');
}

describe('rollup level planning', () => {
  it('tiles any range with sources whose rows each lie inside one window', () => {
    const query = fc.record({
      starts: fc.uniqueArray(fc.integer({ min: 0, max: 24 * 60 }), { minLength: 1, maxLength: 8 }),
      dayStarts: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
      fromOffset: fc.integer({ min: 0, max: 24 * 20 }),
      length: fc.integer({ min: 1, max: 24 * 70 }),
      weeks: fc.boolean(),
    });
    fc.assert(
      fc.property(query, ({ starts, dayStarts, fromOffset, length, weeks }) => {
        // Window starts on hours, many of them on midnights.
        const windowStarts = starts.map((h, i) => BASE + (dayStarts[i] ? Math.round(h / 24) * DAY : h * HOUR)).sort((x, y) => x - y);
        const windowStartsUnique = [...new Set(windowStarts)];
        const from = windowStartsUnique[0] + fromOffset * HOUR;
        const a: RollupAggregation = { meterId: 'm', fromBucket: from, toBucket: from + length * HOUR, windowStarts: windowStartsUnique, bySubject: true, byGroup: false };
        assertTiles(a, from, planSources(a, from, weeks), weeks);
      }),
      { numRuns: 2000 },
    );
  });

  it('reads a 30-day month over every subject mostly from weeks where the engine keeps them', () => {
    // The bench's B4b: 30 whole UTC days from a Wednesday, one window.
    const a: RollupAggregation = { meterId: 'm', fromBucket: BASE, toBucket: BASE + 30 * DAY, windowStarts: [BASE], bySubject: true, byGroup: false };
    const plan = (weeks: boolean) => planSources(a, BASE, weeks).map((s) => [s.level.table, (s.to - s.from) / DAY]);
    assert.deepEqual(plan(false), [[SUBJECT_DAY_LEVEL.table, 30]]);
    // Wednesday April 3rd to Sunday (5 days), three weeks from Monday the 8th, Monday April 29th to Thursday May 2nd (4 days).
    assert.deepEqual(plan(true), [[SUBJECT_DAY_LEVEL.table, 5], [SUBJECT_WEEK_LEVEL.table, 21], [SUBJECT_DAY_LEVEL.table, 4]]);
    // Groups kept apart, or one subject's hours: the hourly level alone.
    assert.deepEqual(planSources({ ...a, byGroup: undefined }, BASE, true).map((s) => s.level), [HOUR_LEVEL]);
  });
});

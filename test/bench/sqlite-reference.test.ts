// The bench's choice of the SQLite run that PostgreSQL's "2x SQLite" B4 limits come from.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sqliteReference } from '../../bench/report.js';

const AMD = { cpuModel: 'AMD EPYC', cores: 2 };
const INTEL = { cpuModel: 'Intel(R) Xeon(R) Processor', cores: 2 };

function run(startedAt: string, machine: { cpuModel: string; cores: number }, over: { mode?: string; seedEvents?: number; engine?: string; b4a?: number } = {}) {
  const b4 = (id: string, p99: number) => ({ id, valid: true, latencyMs: { p50: p99 / 2, p99 } });
  return {
    startedAt,
    mode: over.mode ?? 'full',
    options: { seedEvents: over.seedEvents ?? 10_000_000 },
    machine: { ...machine, engine: over.engine ?? 'sqlite' },
    cases: [b4('B4a', over.b4a ?? 2), b4('B4b', 20), b4('B4c', 30), b4('B4d', 60)],
  };
}

describe('bench: the SQLite reference for PostgreSQL B4 limits', () => {
  it('is the newest full SQLite run with the same seed on the same kind of machine, wherever it is kept', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meterd-ref-'));
    try {
      const put = (name: string, r: unknown) => writeFileSync(join(dir, name), JSON.stringify(r));
      put('2026-01-01T00-00-00-000Z-sqlite-full.json', run('2026-01-01T00:00:00.000Z', AMD, { b4a: 1 }));
      put('2026-01-02T00-00-00-000Z-sqlite-full.json', run('2026-01-02T00:00:00.000Z', AMD, { b4a: 3 }));
      // Newer, but not a match: another machine, another seed size, quick mode, another engine.
      put('latest-sqlite.json', run('2026-01-05T00:00:00.000Z', INTEL, { b4a: 5 }));
      put('2026-01-03T00-00-00-000Z-sqlite-full.json', run('2026-01-03T00:00:00.000Z', AMD, { seedEvents: 1_000_000, b4a: 7 }));
      put('2026-01-04T00-00-00-000Z-postgres-full.json', run('2026-01-04T00:00:00.000Z', AMD, { engine: 'postgres', b4a: 9 }));
      put('2026-01-04T01-00-00-000Z-sqlite-quick.json', run('2026-01-04T01:00:00.000Z', AMD, { mode: 'quick', b4a: 11 }));
      put('not-json-sqlite-full.json', '{');
      assert.deepEqual(sqliteReference(dir, 10_000_000, AMD), { startedAt: '2026-01-02T00:00:00.000Z', B4a: 3, B4b: 20, B4c: 30, B4d: 60 });
      assert.equal(sqliteReference(dir, 10_000_000, INTEL)?.B4a, 5);
      assert.equal(sqliteReference(dir, 1_000_000, AMD)?.B4a, 7);
      assert.equal(sqliteReference(dir, 10_000_000, { cpuModel: 'AMD EPYC', cores: 4 }), undefined);
      assert.equal(sqliteReference(join(dir, 'missing'), 10_000_000, AMD), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// SQLite's writer remembers which distinct-value rows are stored and skips writing them again
// (known-uniques.ts). These tests show that it skips, and that it never skips a row that is not
// there: after a rolled-back fold, and once rollup rows may have been deleted (the epoch).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../../src/store/sqlite/open.js';
import { sqliteMigrations } from '../../src/store/sqlite/migrations.js';
import { AppendWriter, type WireJob } from '../../src/store/sqlite/append-writer.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { append, createMeter, mkEvent, mkMeter, newTenant } from './helpers.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2024, 4, 31, 20);
const TENANT = 'tenant-known';
const METER = 'meter-users';
const dir = mkdtempSync(join(tmpdir(), 'meterd-known-uniques-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function setup(name: string) {
  const db = openDatabase(join(dir, name));
  for (const m of sqliteMigrations) db.exec(m.up);
  db.prepare("INSERT INTO tenants (id, name, created_at, meters_version) VALUES (?, 'known', 0, 0)").run(TENANT);
  db.prepare("INSERT INTO meters (id, tenant_id, slug, event_type, aggregation, group_by, created_at, series) VALUES (?, ?, 'users', 'call', 'UNIQUE_COUNT', '[]', 0, 1)").run(METER, TENANT);
  // Folds only when asked (foldAll).
  const writer = new AppendWriter(db, { fold: { events: 1e9, afterMs: 1e9 } });
  let n = 0;
  /** One commit: an event per user, in the hour of T0, for subject s1. */
  const commit = (users: string[]) => {
    const job: WireJob = {
      tenantId: TENANT,
      metersVersion: 0,
      meters: [METER],
      groups: ['{"model":"a"}'],
      events: users.map((u) => ['test', `e${n++}`, 'call', 's1', T0 + n, null, 'h', [0, 0, null, u]]),
    };
    assert.deepEqual(new Set(writer.commit([job]).flat()), new Set(['accepted']));
  };
  const stored = () => ({
    hourly: db.prepare('SELECT value FROM rollup_uniques WHERE series = (SELECT series FROM meters WHERE id = ?) ORDER BY value').pluck().all(METER),
    monthly: db.prepare('SELECT value FROM rollup_uniques_days WHERE series = (SELECT series FROM meters WHERE id = ?) ORDER BY value').pluck().all(METER),
  });
  return { db, writer, commit, stored };
}

describe('SQLite: distinct-value rows a writer knows are stored', () => {
  it('are not written again, and are written again once rollup rows may have been deleted', () => {
    const { db, writer, commit, stored } = setup('epoch.db');
    try {
      commit(['u1', 'u2']);
      writer.foldAll();
      assert.deepEqual(stored(), { hourly: ['u1', 'u2'], monthly: ['u1', 'u2'] });
      // Removed behind the writer's back (no epoch bump): a known row is not written again. This is
      // what the shortcut saves, and why every deletion of rollup rows must bump the epoch.
      db.prepare("DELETE FROM rollup_uniques WHERE value = 'u1'").run();
      db.prepare("DELETE FROM rollup_uniques_days WHERE value = 'u1'").run();
      commit(['u1', 'u3']);
      writer.foldAll();
      assert.deepEqual(stored(), { hourly: ['u2', 'u3'], monthly: ['u2', 'u3'] });
      // With the epoch bumped, as deleting rollups does, the writer forgets what it knew.
      db.prepare('UPDATE fold_state SET rollups_epoch = rollups_epoch + 1').run();
      commit(['u1']);
      writer.foldAll();
      assert.deepEqual(stored(), { hourly: ['u1', 'u2', 'u3'], monthly: ['u1', 'u2', 'u3'] });
    } finally {
      writer.stop();
      db.close();
    }
  });

  it('are not known from a fold whose transaction rolled back', () => {
    const { db, writer, commit, stored } = setup('rollback.db');
    try {
      commit(['u1', 'u2']);
      // The fold runs nested in a transaction that then rolls back: its rows and deletes are undone.
      assert.throws(
        () =>
          db.transaction(() => {
            writer.foldAll();
            throw new Error('rolled back');
          }).immediate(),
        /rolled back/,
      );
      assert.deepEqual(stored(), { hourly: [], monthly: [] });
      writer.foldAll();
      assert.deepEqual(stored(), { hourly: ['u1', 'u2'], monthly: ['u1', 'u2'] });
    } finally {
      writer.stop();
      db.close();
    }
  });

  it('are forgotten when a meter is deleted or rebuilt, in any process: deleting rollup rows bumps the epoch', async () => {
    const path = join(dir, 'store.db');
    const store = new SqliteStore({ path });
    const epoch = () => {
      const db = openDatabase(path);
      try {
        return db.prepare('SELECT rollups_epoch FROM fold_state').pluck().get() as number;
      } finally {
        db.close();
      }
    };
    try {
      await store.migrate();
      const t = await newTenant(store);
      const m = mkMeter(t, 'users', 'UNIQUE_COUNT', { value: '$.user' });
      await createMeter(store, m);
      await append(store, t, [mkEvent({ id: 'e1', time: T0 + HOUR, data: { user: 'u1' } })]);
      const before = epoch();
      await store.rebuildRollups(t, m.id, () => []);
      const rebuilt = epoch();
      assert.notEqual(rebuilt, before);
      await store.deleteMeter(t, 'users');
      assert.notEqual(epoch(), rebuilt);
    } finally {
      await store.close();
    }
  });
});

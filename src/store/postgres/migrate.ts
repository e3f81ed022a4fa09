// Runs migrations under a session advisory lock, so instances starting together apply each
// version once; each version commits with its schema_migrations row or not at all.
import type pg from 'pg';
import { postgresMigrations } from './migrations.js';
import { refuseNewerSchema } from '../migrations.js';

/** Lock namespace for migrations (pg_advisory_lock(int, int)); the second key is the schema. */
const MIGRATION_LOCK = 0x6d74_726d; // "mtrm"

async function locked(pool: pg.Pool, schema: string | undefined, run: (c: pg.PoolClient) => Promise<void>): Promise<void> {
  const c = await pool.connect();
  let broken: Error | undefined;
  try {
    // Waiting for another instance's migration, or a long migration, is not a stuck statement.
    await c.query('SET statement_timeout = 0');
    await c.query('SELECT pg_advisory_lock($1, hashtext($2))', [MIGRATION_LOCK, schema ?? 'public']);
    try {
      if (schema !== undefined) await c.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await c.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
      await run(c);
    } finally {
      await c.query('SELECT pg_advisory_unlock($1, hashtext($2))', [MIGRATION_LOCK, schema ?? 'public']);
      await c.query('RESET statement_timeout');
    }
  } catch (e) {
    broken = e as Error;
    throw e;
  } finally {
    // Dropping a failed session also drops any lock it still held.
    c.release(broken);
  }
}

async function applied(c: pg.Pool | pg.PoolClient): Promise<Set<number>> {
  const r = await c.query<{ version: number }>('SELECT version FROM schema_migrations');
  return new Set(r.rows.map((x) => x.version));
}

async function step(c: pg.PoolClient, sql: string, record: () => Promise<unknown>) {
  await c.query('BEGIN');
  try {
    await c.query(sql);
    await record();
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {});
    throw e;
  }
}

export function migrateUp(pool: pg.Pool, schema: string | undefined): Promise<void> {
  return locked(pool, schema, async (c) => {
    const done = await applied(c);
    refuseNewerSchema(done, postgresMigrations);
    for (const m of postgresMigrations) {
      if (done.has(m.version)) continue;
      await step(c, m.up, () => c.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, Date.now()]));
    }
  });
}

/** refuseNewerSchema before anything else touches the schema (a migration down folds what is pending first). */
export async function refuseIfNewer(pool: pg.Pool): Promise<void> {
  const r = await pool.query<{ migrated: boolean }>("SELECT to_regclass('schema_migrations') IS NOT NULL AS migrated");
  if (!r.rows[0].migrated) return;
  refuseNewerSchema(await applied(pool), postgresMigrations);
}

export function migrateDown(pool: pg.Pool, schema: string | undefined): Promise<void> {
  return locked(pool, schema, async (c) => {
    const done = await applied(c);
    refuseNewerSchema(done, postgresMigrations);
    for (const m of [...postgresMigrations].reverse()) {
      if (!done.has(m.version)) continue;
      await step(c, m.down, () => c.query('DELETE FROM schema_migrations WHERE version = $1', [m.version]));
    }
  });
}

// Meters. Creating or deleting one bumps tenants.meters_version with an UPDATE, which waits for
// in-flight appends (they hold the row FOR SHARE) and makes later ones see a stale version.
import type pg from 'pg';
import { POSTGRES_ROLLUP_TABLES } from '../levels.js';
import type { DeltaFn } from '../store.js';
import type { Meter } from '../../modules/meters/meters.types.js';
import { meterFromRow, type MeterRow } from '../rows.js';
import { withRetry } from './pool.js';
import { backfill } from './events.js';
import { foldAllHere, lockFolds } from './pending.js';

const BUMP_VERSION = 'UPDATE tenants SET meters_version = meters_version + 1 WHERE id = $1';

export function createMeter(pool: pg.Pool, m: Meter, fn: DeltaFn): Promise<'created' | 'exists'> {
  return withRetry(pool, async (c) => {
    const r = await c.query(
      `INSERT INTO meters (id, tenant_id, slug, event_type, aggregation, value_property, group_by, description, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id, slug) DO NOTHING`,
      [m.id, m.tenantId, m.slug, m.eventType, m.aggregation, m.valueProperty, JSON.stringify(m.groupBy), m.description, m.createdAt],
    );
    if (r.rowCount === 0) return 'exists';
    // After this UPDATE every append that could have missed the new meter has committed, so the
    // backfill's next statements (READ COMMITTED: fresh snapshots) see all of their events.
    await c.query(BUMP_VERSION, [m.tenantId]);
    await backfill(c, m.tenantId, m.eventType, fn);
    return 'created';
  });
}

export async function getMeter(pool: pg.Pool, tenantId: string, slug: string): Promise<Meter | undefined> {
  const r = await pool.query<MeterRow>('SELECT * FROM meters WHERE tenant_id = $1 AND slug = $2', [tenantId, slug]);
  return r.rows[0] && meterFromRow(r.rows[0]);
}

export async function listMeters(pool: pg.Pool, tenantId: string): Promise<{ version: number; meters: Meter[] }> {
  // One statement, one snapshot: the version always matches the meters listed with it.
  const r = await pool.query<MeterRow & { version: string }>(
    `SELECT t.meters_version AS version, m.* FROM (SELECT $1::text AS id) x
     LEFT JOIN tenants t ON t.id = x.id LEFT JOIN meters m ON m.tenant_id = x.id ORDER BY m.slug`,
    [tenantId],
  );
  return {
    version: Number(r.rows[0]?.version ?? 0),
    meters: r.rows.filter((row) => row.id !== null).map(meterFromRow),
  };
}

export function deleteMeter(pool: pg.Pool, schema: string | undefined, tenantId: string, slug: string): Promise<boolean> {
  return withRetry(pool, async (c) => {
    const found = await c.query('SELECT 1 FROM meters WHERE tenant_id = $1 AND slug = $2', [tenantId, slug]);
    if (found.rowCount === 0) return false;
    // The fold lock before the tenant row (folds never wait for a tenant row); then the version:
    // rollup rows are locked only after in-flight appends are done with them. The meter's pending
    // contributions must not be folded into rows after they are deleted, so fold them now.
    await lockFolds(c, schema);
    await c.query(BUMP_VERSION, [tenantId]);
    await foldAllHere(c, schema);
    const gone = await c.query<{ series: number }>('DELETE FROM meters WHERE tenant_id = $1 AND slug = $2 RETURNING series', [tenantId, slug]);
    if (gone.rows.length === 0) throw new MeterVanished();
    // By series alone: the meter row that scopes it to the tenant is gone.
    for (const table of POSTGRES_ROLLUP_TABLES) await c.query(`DELETE FROM ${table} WHERE series = $1`, [gone.rows[0].series]);
    return true;
  }).catch((e) => {
    if (e instanceof MeterVanished) return false;
    throw e;
  });
}

/** A concurrent delete won: roll back our version bump and report the meter as not found. */
class MeterVanished extends Error {}

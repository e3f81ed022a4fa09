// Monthly (UTC) partitions of `events`, created on demand before a batch is written.
// Months far from now go to events_default, so odd timestamps cannot create thousands of tables;
// when such a month later comes into range, its rows move out of the default partition.
import type pg from 'pg';
import { inTransaction } from './pool.js';

/** Months created on demand: from this many months before now to this many after. */
const MONTHS_BACK = 240;
const MONTHS_AHEAD = 3;

/** Lock namespace for partition DDL (pg_advisory_xact_lock(int, int)). */
const PARTITION_LOCK = 0x6d74_7270; // "mtrp"

const monthIndex = (t: number) => {
  const d = new Date(t);
  return d.getUTCFullYear() * 12 + d.getUTCMonth();
};
const monthStart = (m: number) => Date.UTC(Math.floor(m / 12), m % 12, 1);
export const partitionName = (m: number) => `events_p${Math.floor(m / 12)}${String((m % 12) + 1).padStart(2, '0')}`;

/** After a failed creation, rows of that month go to the default partition for this long. */
const RETRY_AFTER_MS = 60_000;

export class Partitions {
  /** Months known to have their own partition. */
  private readonly known = new Set<number>();
  private readonly failedAt = new Map<number, number>();
  /** The last creation failure, for diagnostics; appends never fail because of one. */
  lastError: unknown;

  constructor(private readonly pool: pg.Pool) {}

  /** Makes sure every month in `times` that should have a partition has one. */
  async ensure(times: Iterable<number>, now = Date.now()): Promise<void> {
    const lo = monthIndex(now) - MONTHS_BACK;
    const hi = monthIndex(now) + MONTHS_AHEAD;
    const missing = new Set<number>();
    for (const t of times) {
      const m = monthIndex(t);
      if (m >= lo && m <= hi && !this.known.has(m) && !(now - (this.failedAt.get(m) ?? -Infinity) < RETRY_AFTER_MS)) missing.add(m);
    }
    for (const m of [...missing].sort((a, b) => a - b)) {
      try {
        await this.create(m);
        this.known.add(m);
        this.failedAt.delete(m);
      } catch (e) {
        // The rows still land safely in events_default; a later creation moves them out.
        this.lastError = e;
        this.failedAt.set(m, now);
      }
    }
  }

  /** Creates one month's partition, moving any rows of that month out of the default partition. */
  private async create(m: number): Promise<void> {
    const name = partitionName(m);
    if (await exists(this.pool, name)) return;
    const from = monthStart(m);
    const to = monthStart(m + 1);
    await inTransaction(this.pool, async (c) => {
      // Serialises partition DDL across processes; the schema's oid keeps schemas apart.
      await c.query(`SELECT pg_advisory_xact_lock(${PARTITION_LOCK}, (SELECT oid::int FROM pg_namespace WHERE nspname = current_schema()))`);
      if (await exists(c, name)) return;
      // Taken first so no writer can slip a row of this month into the default partition
      // between the move and the attach (which would then fail its check).
      await c.query('LOCK TABLE events_default IN SHARE ROW EXCLUSIVE MODE');
      await c.query(`CREATE TABLE ${name} (LIKE events INCLUDING DEFAULTS)`);
      await c.query(`ALTER TABLE ${name} ADD CONSTRAINT ${name}_range CHECK (time >= ${from} AND time < ${to})`);
      await c.query(
        `WITH moved AS (DELETE FROM events_default WHERE time >= ${from} AND time < ${to} RETURNING *)
         INSERT INTO ${name} SELECT * FROM moved`,
      );
      await c.query(`ALTER TABLE events ATTACH PARTITION ${name} FOR VALUES FROM (${from}) TO (${to})`);
      await c.query(`ALTER TABLE ${name} DROP CONSTRAINT ${name}_range`);
    }).catch((e) => {
      throw (e as { cause?: unknown }).cause ?? e;
    });
  }
}

/**
 * Asks pg_class with an MVCC snapshot. (to_regclass reads the catalog cache, which may still
 * hold a "no such table" entry from before another process created it.)
 */
async function exists(c: pg.Pool | pg.ClientBase, name: string): Promise<boolean> {
  const r = await c.query(
    'SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = $1 AND n.nspname = current_schema()',
    [name],
  );
  return r.rowCount === 1;
}

// Rollup contributions stored with their events and folded into the rollup tables later, in bulk
// (as on SQLite, see ../sqlite/pending-rollups.ts).
//
// Why: upserting every level's rows in each commit made a commit's cost ~5 upserts per event, and
// two instances committing at once waited on each other's row locks. Now a commit inserts one
// rollup_pending row per tenant and 1,000 events (their contributions as JSON) in the transaction
// that stores the events, and a fold merges thousands of events' contributions into the rollup
// tables with one statement: PostgreSQL parses, groups and upserts them itself, so the decimals
// never become objects in this process (in JavaScript the fold cost more CPU and garbage than
// everything else the server did: bench B2 profile).
//
// The rollups are the tables plus rollup_pending, always: a fold moves contributions from one to
// the other in one statement. Folds hold a transaction-scoped advisory lock, so one instance folds
// at a time, and readers fold before they read (folds.ts), so a query never sees a table without
// what is still pending, whichever instance stored it.
import type pg from 'pg';
import type { RollupDelta } from '../../modules/usage/usage.types.js';
import { formatDecimal } from '../../core/decimal.js';
import { HOUR_LEVEL, SUBJECT_DAY_LEVEL, SUBJECT_WEEK_LEVEL, TOTAL_LEVEL, monthDayBit } from '../levels.js';
import { DAY_OF_BUCKET, WEEK_OF_BUCKET } from './bucket-starts.js';
import { onConflictSql, UNIQUE_DAYS_ON_CONFLICT } from './writes.js';
import { indexIn } from '../index-in.js';

/** Lock namespace for folds (pg_advisory_xact_lock(int, int)); the second key is the schema. */
export const FOLD_LOCK = 0x6d74_666c; // "mtfl"
/**
 * Events folded per transaction by default. A fold's cost follows the rollup rows it touches more than
 * its events, so larger batches cost less per event; this bounds how long one fold holds the lock
 * (~2.5-3.5 s on the AMD EPYC machine). 50,000 pending B2-shaped events (bench/fold-cost.ts, PER=50000
 * BATCH=100 CALLS=8, in turns): 3.9-4.5 s in two transactions of 25,000, 2.5-3.5 s in one; bench B2
 * (bench/ab.ts --engine postgres --batch 100, 4 rounds of 15 s): 9,407 -> 11,485 events/s, every round
 * 18-25% faster. 100,000 measured no better than 50,000 (B/A 0.62-1.20 over 4 rounds).
 */
export const FOLD_BATCH_EVENTS = 50_000;
/** Most pending rows one fold considers. */
const HEADS_READ = 5000;
/** Events per pending row at most: a fold takes whole rows, so this bounds how far a batch can overshoot. */
const CHUNK_EVENTS = 1000;

/** One pending row being gathered: its meters and group keys (each written once), its events. */
interface Chunk {
  tenant: string;
  events: unknown[];
  meters: string[];
  meterIds: Map<string, number>;
  groups: string[];
  groupIds: Map<string, number>;
}

/**
 * A commit's contributions, per tenant, in rows of at most CHUNK_EVENTS events. A row's body:
 * {"m": [meter ids], "g": [group keys], "e": [[subject, bucket, time, seq, UTC month, bit of the
 * day, [[meter index, group index, value, distinct value], ...]], ...]}. One event's contribution
 * is count 1 with its value (a decimal string, or null) as sum, min, max and latest value, so only
 * the value is written; what every meter of an event shares is written once per event, and a group
 * key once per row. Rows written before this form have "d" instead of "e" (see FOLD_SQL).
 * B2-shaped events: ~167 bytes of body each, against ~573 with a full row per contribution.
 */
export class PendingChunks {
  readonly chunks: Chunk[] = [];
  private readonly open = new Map<string, Chunk>();

  /** One accepted event's deltas (single-event partials, from MeterSet.deltasFor), its seq set. */
  add(tenant: string, deltas: RollupDelta[]): void {
    if (deltas.length === 0) return;
    let chunk = this.open.get(tenant);
    if (!chunk || chunk.events.length >= CHUNK_EVENTS) {
      this.open.set(tenant, (chunk = { tenant, events: [], meters: [], meterIds: new Map(), groups: [], groupIds: new Map() }));
      this.chunks.push(chunk);
    }
    const first = deltas[0];
    const contributions: unknown[] = new Array(deltas.length);
    for (let i = 0; i < deltas.length; i++) {
      const d = deltas[i];
      const v = d.partial.latestValue;
      contributions[i] = [indexIn(chunk.meters, chunk.meterIds, d.meterId), indexIn(chunk.groups, chunk.groupIds, d.groupKey), v === null ? null : formatDecimal(v), d.unique ?? null];
    }
    const { month, bit } = monthDayBit(first.bucket);
    chunk.events.push([first.subject, first.bucket, first.partial.latestTime, first.partial.latestSeq, month, bit, contributions]);
  }
}

/** Pending rows as one JSON parameter, bodies embedded as JSON (not as escaped strings): see append.ts. */
export const pendingJson = (chunks: PendingChunks['chunks']): string =>
  JSON.stringify(chunks.map((ch) => ({ t: ch.tenant, e: ch.events.length, b: { m: ch.meters, g: ch.groups, e: ch.events } })));

/** The insert of pending rows from such a parameter, read as p(t text, e int, b json). */
export const PENDING_INSERT = 'INSERT INTO rollup_pending (tenant_id, events, body) SELECT t, e, b::text';

/** Stores a commit's contributions, in the caller's (the commit's) transaction. */
export async function recordPending(c: pg.ClientBase, chunks: PendingChunks['chunks']): Promise<void> {
  if (chunks.length === 0) return;
  await c.query({
    name: 'meterd-pending-insert',
    text: `${PENDING_INSERT} FROM json_to_recordset($1::json) AS p(t text, e int, b json)`,
    values: [pendingJson(chunks)],
  });
}

const AMOUNT_COLUMNS = 'count, sum, min, max, latest_time, latest_seq, latest_value';
/** Added to times in latest keys so that any JavaScript date is a non-negative number of 17 digits. */
const TIME_SHIFT = '8640000000000000';
/**
 * A contribution's latest value keyed by its (time, seq), as text ordered like that pair: shifted
 * time in 17 digits, seq in 19, then the value ('' for none). The latest of a group is then one max()
 * of plain text. Three ordered array_agg()s sorted every group's rows three times: a quarter of a
 * 25,000-event fold, whose statement went from 1.33-1.44 s to 1.04-1.10 s (same pending rows, rolled back).
 */
const latestKey = (time: string, seq: string, value: string) =>
  `lpad((${time} + ${TIME_SHIFT})::text, 17, '0') || lpad(${seq}::text, 19, '0') || coalesce(${value}, '')`;
/** The greatest latest key of a group (see latestKey). */
const LATEST_KEY = 'max(lk COLLATE "C")';
/** latest_time, latest_seq and latest_value back from a latest key. */
const fromLatestKey = (k: string) =>
  `substr(${k}, 1, 17)::bigint - ${TIME_SHIFT}, substr(${k}, 18, 19)::bigint, nullif(substr(${k}, 37), '')::numeric`;
/** Contributions merged: exact sums, and the latest key. */
const MERGED = `sum(count) AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max, ${LATEST_KEY} AS lk`;
/** A coarser level's amounts from hourly rows, grouped. */
const MERGED_COLUMNS = `sum(count), sum(sum), min(min), max(max), ${fromLatestKey(LATEST_KEY)}`;

/**
 * One statement: the batch's pending rows deleted, their contributions grouped into hourly rows, the
 * coarser levels grouped from those, all upserted. Data-modifying CTEs all run, once, whether or
 * not the final SELECT reads them. Measured with EXPLAIN ANALYZE (10,000 B2-shaped events): sorts
 * spilled to disk under the default work_mem and grouping every level from the contributions cost
 * twice what grouping the hourly rows does. In c, each event's fields and each contribution's value
 * are read from the JSON once (OFFSET 0 keeps the planner from pulling those subqueries up, which
 * evaluated an event's fields for each of its contributions and the value four times, parsed as
 * NUMERIC three times): bench/fold-cost.ts (SCHEMA=walbench, 3M seeded, PER=50000 BATCH=100
 * CALLS=8, in turns) 27.7-29.5 us per event against 31.1-36.3, lower in all four pairs; B1-shaped
 * (PER=12000 BATCH=1 CALLS=64) 44.9-53.4 against 51.5-56.1.
 */
const FOLD_SQL = `
WITH batch AS (
  DELETE FROM rollup_pending WHERE id = ANY($1::bigint[]) RETURNING tenant_id, body::jsonb AS body
),
-- Each pending row's meters as series numbers, in the order its contributions index them (NULL for a
-- meter that no longer exists: its contributions are dropped).
b AS (
  SELECT body->'g' AS g, body->'e' AS es, body->'d' AS ds,
         (SELECT array_agg(m.series ORDER BY x.i) FROM jsonb_array_elements_text(body->'m') WITH ORDINALITY AS x(id, i)
          LEFT JOIN meters m ON m.tenant_id = batch.tenant_id AND m.id = x.id) AS series
  FROM batch
),
c AS (
  SELECT b.series[(x->>0)::int + 1] AS series, ev.subject, b.g->>((x->>1)::int) AS group_key, ev.bucket,
         1::bigint AS count, coalesce(xv.v, 0) AS sum, xv.v AS min, xv.v AS max,
         ev.lk || coalesce(xv.t, '') AS lk,
         x->>3 AS value, ev.month, ev.day_bit
  FROM (SELECT * FROM b OFFSET 0) b,
       jsonb_array_elements(b.es) e,
       LATERAL (SELECT e->>0 AS subject, (e->>1)::bigint AS bucket, ${latestKey("(e->>2)::bigint", "(e->>3)::bigint", "''")} AS lk,
                (e->>4)::bigint AS month, (e->>5)::int AS day_bit, e->6 AS xs OFFSET 0) ev,
       jsonb_array_elements(ev.xs) x,
       LATERAL (SELECT x->>2 AS t, (x->>2)::numeric AS v OFFSET 0) xv
  UNION ALL
  -- Rows stored by earlier versions: a full row per contribution.
  SELECT b.series[(e->>0)::int + 1], e->>1, e->>2, (e->>3)::bigint,
         (e->>4)::bigint, (e->>5)::numeric, (e->>6)::numeric, (e->>7)::numeric,
         ${latestKey("(e->>8)::bigint", "(e->>9)::bigint", "e->>10")},
         e->>11, (e->>12)::bigint, (e->>13)::int
  FROM b, jsonb_array_elements(b.ds) e
),
h AS MATERIALIZED (
  SELECT series, subject, bucket, group_key, ${MERGED} FROM c WHERE series IS NOT NULL GROUP BY 1, 2, 3, 4
),
hours AS (
  INSERT INTO ${HOUR_LEVEL.table} AS r (series, subject, bucket, group_key, ${AMOUNT_COLUMNS})
  SELECT series, subject, bucket, group_key, count, sum, min, max, ${fromLatestKey('lk')} FROM h
  ${onConflictSql(HOUR_LEVEL)}
),
days AS (
  INSERT INTO ${SUBJECT_DAY_LEVEL.table} AS r (series, subject, bucket, ${AMOUNT_COLUMNS})
  SELECT series, subject, ${DAY_OF_BUCKET}, ${MERGED_COLUMNS} FROM h GROUP BY 1, 2, 3
  ${onConflictSql(SUBJECT_DAY_LEVEL)}
),
weeks AS (
  INSERT INTO ${SUBJECT_WEEK_LEVEL.table} AS r (series, subject, bucket, ${AMOUNT_COLUMNS})
  SELECT series, subject, ${WEEK_OF_BUCKET}, ${MERGED_COLUMNS} FROM h GROUP BY 1, 2, 3
  ${onConflictSql(SUBJECT_WEEK_LEVEL)}
),
totals AS (
  INSERT INTO ${TOTAL_LEVEL.table} AS r (series, bucket, group_key, ${AMOUNT_COLUMNS})
  SELECT series, bucket, group_key, ${MERGED_COLUMNS} FROM h GROUP BY 1, 2, 3
  ${onConflictSql(TOTAL_LEVEL)}
),
uniques AS (
  INSERT INTO rollup_uniques (series, subject, bucket, group_key, value)
  SELECT DISTINCT series, subject, bucket, group_key, value FROM c WHERE value IS NOT NULL AND series IS NOT NULL
  ON CONFLICT DO NOTHING
),
unique_days AS (
  INSERT INTO rollup_uniques_days AS r (series, month, group_key, value, days)
  SELECT series, month, group_key, value, bit_or(day_bit) FROM c WHERE value IS NOT NULL AND series IS NOT NULL GROUP BY 1, 2, 3, 4
  ${UNIQUE_DAYS_ON_CONFLICT}
)
SELECT 1`;

/** Memory for the fold's sorts and groupings (one fold at a time per database): 10,000 events sort ~15 MB. */
const FOLD_WORK_MEM = '64MB';
/**
 * A fold's own statement timeout. The sessions' (DB_STATEMENT_TIMEOUT_MS, 30 s by default) is for
 * requests: a fold it cancelled would roll back and be tried again at the same size, and fail again,
 * and every read, which folds first, with it. A fold waits only for another fold or a meter change.
 */
const FOLD_STATEMENT_TIMEOUT = '10min';

/**
 * A fold transaction's settings, in one round trip. No Memoize: the planner put one over each event's
 * contributions (jsonb_array_elements), keyed by the event's whole JSON, which never repeats (EXPLAIN
 * ANALYZE of a 50,000-event fold: 50,000 misses, 0 hits, 37 MB). Without it, bench/fold-cost.ts
 * (SCHEMA=walbench, 3M seeded, PER=50000 BATCH=100 CALLS=8, in turns): 33.1-38.9 us per event against
 * 36.1-47.2, lower in all six pairs; B1-shaped folds (PER=12000 BATCH=1) unchanged.
 */
const FOLD_SETTINGS = `SET LOCAL work_mem = '${FOLD_WORK_MEM}'; SET LOCAL statement_timeout = '${FOLD_STATEMENT_TIMEOUT}'; SET LOCAL enable_memoize = off`;

/**
 * Folds the oldest pending rows, about `perTransaction` events, into the rollup tables, inside the
 * caller's transaction, which must hold the fold lock. Returns the events folded (0 once nothing is
 * pending) and whether rows were left: none were when it took every row it saw, so everything
 * committed before it began is folded.
 */
export async function foldSome(c: pg.ClientBase, perTransaction: number): Promise<{ events: number; more: boolean }> {
  const ids: string[] = [];
  let events = 0;
  const heads = await c.query<{ id: string; events: number }>({ name: 'meterd-fold-heads', text: 'SELECT id, events FROM rollup_pending ORDER BY id LIMIT $1', values: [HEADS_READ] });
  for (const h of heads.rows) {
    ids.push(h.id);
    events += h.events;
    if (events >= perTransaction) break;
  }
  if (ids.length === 0) return { events: 0, more: false };
  await c.query(FOLD_SETTINGS);
  await c.query({ name: 'meterd-fold', text: FOLD_SQL, values: [ids] });
  return { events: Math.max(events, 1), more: ids.length < heads.rows.length || heads.rows.length === HEADS_READ };
}

const foldLockArgs = (schema: string | undefined) => [FOLD_LOCK, schema ?? 'public'];

/** Takes the fold lock for the rest of the caller's transaction, waiting for another instance's fold. */
export async function lockFolds(c: pg.ClientBase, schema: string | undefined): Promise<void> {
  await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', foldLockArgs(schema));
}

/** Takes the fold lock unless another instance holds it; false if it does. */
export async function tryLockFolds(c: pg.ClientBase, schema: string | undefined): Promise<boolean> {
  const r = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1, hashtext($2)) AS ok', foldLockArgs(schema));
  return r.rows[0].ok;
}

/** Folds everything pending inside the caller's transaction (meter changes, rebuilds, migrations down), taking the lock first. */
export async function foldAllHere(c: pg.ClientBase, schema: string | undefined): Promise<void> {
  await lockFolds(c, schema);
  while ((await foldSome(c, FOLD_BATCH_EVENTS)).events > 0);
}

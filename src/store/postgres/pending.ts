// Rollup contributions stored with their events and folded into the rollup tables later, in bulk
// (as on SQLite, see ../sqlite/pending-rollups.ts).
//
// Why: upserting every level's rows in each commit made a commit's cost ~5 upserts per event, and
// two instances committing at once waited on each other's row locks. Now a commit inserts one
// rollup_pending row per tenant and 1,000 events (their contributions, combined) in the transaction that
// stores the events, and a fold merges thousands of events' contributions into the rollup tables
// at once, where most of them land on rows the fold already writes.
//
// The rollups are the tables plus rollup_pending, always: a fold moves contributions from one to
// the other in one transaction. Folds hold a transaction-scoped advisory lock, so one instance folds
// at a time, and readers fold before they read (Folds.settle), so a query never sees a table
// without what is still pending, whichever instance stored it.
import type pg from 'pg';
import { combineDeltas, deltaKey, mergeInto } from '../../modules/usage/partial.js';
import type { RollupDelta } from '../../modules/usage/usage.types.js';
import { partialFromRow, partialToColumns } from '../rows.js';
import { applyCombined, type CombinedDeltas } from './writes.js';
import { withRetry } from './pool.js';

export interface FoldOptions {
  /** Fold once this process has stored this many events' contributions since its last fold. */
  events?: number;
  /** Fold pending contributions at most this long after the commit that stored them. */
  afterMs?: number;
  /** Events folded per transaction, so one fold never holds the lock long or builds a huge batch. */
  perTransaction?: number;
  /** Events this process may store beyond what it has seen folded before its acknowledgements wait for a fold. */
  backlog?: number;
}

// Folds cost ~20 µs per rollup row written (in-process, rows spread over a month: no two events share
// one), so a bulk import can outrun them; backlog bounds what a read may have to wait for. A batch
// of 5,000 events holds up to ~50,000 rows and their decimals in memory.
export const FOLD_DEFAULTS: Required<FoldOptions> = { events: 25_000, afterMs: 2000, perTransaction: 5_000, backlog: 50_000 };

/** Lock namespace for folds (pg_advisory_xact_lock(int, int)); the second key is the schema. */
export const FOLD_LOCK = 0x6d74_666c; // "mtfl"
/** Most pending rows one fold considers (each holds one commit's events of one tenant). */
const HEADS_READ = 5000;

/** Rows per delta in a pending body: meter (index), subject, group, bucket, then the partial's 7 columns. */
const ROLLUP_WIDTH = 11;
/** Per distinct value: meter (index), subject, group, bucket, value. */
const UNIQUE_WIDTH = 5;
type Body = [meters: string[], rollups: Array<string | number | null>, uniques: Array<string | number>];

/** Events per pending row at most: a fold takes whole rows, so this bounds how far a batch can overshoot. */
const CHUNK_EVENTS = 1000;

/** A commit's contributions, per tenant, in rows of at most CHUNK_EVENTS events. */
export class PendingChunks {
  readonly chunks: Array<{ tenant: string; events: number; deltas: RollupDelta[] }> = [];
  private readonly open = new Map<string, { tenant: string; events: number; deltas: RollupDelta[] }>();

  /** One accepted event's deltas. */
  add(tenant: string, deltas: RollupDelta[]): void {
    let chunk = this.open.get(tenant);
    if (!chunk || chunk.events >= CHUNK_EVENTS) {
      this.open.set(tenant, (chunk = { tenant, events: 0, deltas: [] }));
      this.chunks.push(chunk);
    }
    chunk.events++;
    for (const d of deltas) chunk.deltas.push(d);
  }
}

/** Stores a commit's contributions, in the caller's (the commit's) transaction. */
export async function recordPending(c: pg.ClientBase, chunks: PendingChunks['chunks']): Promise<void> {
  const withDeltas = chunks.filter((ch) => ch.deltas.length > 0);
  if (withDeltas.length === 0) return;
  await c.query('INSERT INTO rollup_pending (tenant_id, events, body) SELECT * FROM unnest($1::text[], $2::int[], $3::text[])', [
    withDeltas.map((ch) => ch.tenant),
    withDeltas.map((ch) => ch.events),
    withDeltas.map((ch) => JSON.stringify(encode(combineDeltas(ch.deltas)))),
  ]);
}

function encode({ rollups, uniques }: CombinedDeltas): Body {
  const meters: string[] = [];
  const index = new Map<string, number>();
  const meter = (id: string) => {
    let i = index.get(id);
    if (i === undefined) index.set(id, (i = meters.push(id) - 1));
    return i;
  };
  const r: Body[1] = [];
  for (const d of rollups) {
    const p = partialToColumns(d.partial);
    r.push(meter(d.meterId), d.subject, d.groupKey, d.bucket, p.count, p.sum, p.min, p.max, p.latest_time, p.latest_seq, p.latest_value);
  }
  const u: Body[2] = [];
  for (const d of uniques) u.push(meter(d.meterId), d.subject, d.groupKey, d.bucket, d.unique!);
  return [meters, r, u];
}

/** A fold's batch: per tenant, one delta per rollup row and one per distinct value. */
class Batch {
  private readonly tenants = new Map<string, { rollups: Map<string, RollupDelta>; uniques: Map<string, RollupDelta> }>();

  add(tenant: string, [meters, r, u]: Body): void {
    let t = this.tenants.get(tenant);
    if (!t) this.tenants.set(tenant, (t = { rollups: new Map(), uniques: new Map() }));
    for (let i = 0; i < r.length; i += ROLLUP_WIDTH) {
      const d: RollupDelta = {
        meterId: meters[r[i] as number],
        subject: r[i + 1] as string,
        groupKey: r[i + 2] as string,
        bucket: r[i + 3] as number,
        partial: partialFromRow({ count: r[i + 4]!, sum: r[i + 5]!, min: r[i + 6], max: r[i + 7], latest_time: r[i + 8]!, latest_seq: r[i + 9]!, latest_value: r[i + 10] }),
      };
      const k = deltaKey(d);
      const cur = t.rollups.get(k);
      if (cur) mergeInto(cur.partial, d.partial);
      else t.rollups.set(k, d);
    }
    for (let i = 0; i < u.length; i += UNIQUE_WIDTH) {
      const d = { meterId: meters[u[i] as number], subject: u[i + 1] as string, groupKey: u[i + 2] as string, bucket: u[i + 3] as number, unique: u[i + 4] as string };
      t.uniques.set(`${deltaKey(d)}\u0000${d.unique}`, { ...d, partial: EMPTY });
    }
  }

  combined(): Map<string, CombinedDeltas> {
    return new Map([...this.tenants].map(([tenant, t]) => [tenant, { rollups: [...t.rollups.values()], uniques: [...t.uniques.values()] }]));
  }
}

/** Distinct values carry no amounts of their own (their event's amounts are in the rollup deltas). */
const EMPTY = partialFromRow({ count: 0, sum: '0', min: null, max: null, latest_time: -1, latest_seq: -1, latest_value: null });

/**
 * Folds the oldest pending rows, about `perTransaction` events, into the rollup tables, inside the
 * caller's transaction, which must hold the fold lock. Returns the events folded; 0 once nothing is pending.
 */
export async function foldSome(c: pg.ClientBase, perTransaction: number): Promise<number> {
  // The batch is chosen from ids and counts first: a bulk import stores thousands of events per row,
  // so reading a page of bodies could hold far more than a batch in memory.
  const ids: string[] = [];
  let events = 0;
  const heads = await c.query<{ id: string; events: number }>('SELECT id, events FROM rollup_pending ORDER BY id LIMIT $1', [HEADS_READ]);
  for (const h of heads.rows) {
    ids.push(h.id);
    events += h.events;
    if (events >= perTransaction) break;
  }
  if (ids.length === 0) return 0;
  const batch = new Batch();
  const rows = await c.query<{ tenant_id: string; body: string }>('SELECT tenant_id, body FROM rollup_pending WHERE id = ANY($1::bigint[])', [ids]);
  for (const row of rows.rows) batch.add(row.tenant_id, JSON.parse(row.body) as Body);
  await applyCombined(c, batch.combined());
  await c.query('DELETE FROM rollup_pending WHERE id = ANY($1::bigint[])', [ids]);
  return Math.max(events, 1);
}

const lockArgs = (schema: string | undefined) => [FOLD_LOCK, schema ?? 'public'];

/** Takes the fold lock for the rest of the caller's transaction, waiting for another instance's fold. */
export async function lockFolds(c: pg.ClientBase, schema: string | undefined): Promise<void> {
  await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', lockArgs(schema));
}

/** Folds everything pending inside the caller's transaction (meter changes, rebuilds), taking the lock first. */
export async function foldAllHere(c: pg.ClientBase, schema: string | undefined, perTransaction = FOLD_DEFAULTS.perTransaction): Promise<void> {
  await lockFolds(c, schema);
  while ((await foldSome(c, perTransaction)) > 0);
}

/**
 * This process's folds: after `events` committed events or `afterMs` after a commit, in the
 * background (skipped while another instance folds), and on demand before reads (settle).
 */
export class Folds {
  private readonly o: Required<FoldOptions>;
  /** Events this process stored since it last saw nothing pending. */
  private unfolded = 0;
  /** When a background fold last found another instance folding. */
  private gaveWayAt = -Infinity;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private queued?: Promise<void>;
  private closed = false;
  private nextWaits = false;
  /** Commits waiting for the next folded batch (backpressure). */
  private onBatch: Array<() => void> = [];

  constructor(
    private readonly pool: pg.Pool,
    private readonly schema: string | undefined,
    options: FoldOptions = {},
  ) {
    this.o = { ...FOLD_DEFAULTS, ...options };
  }

  /**
   * Called after a commit that stored `events` events' contributions. Resolves at once, or, while
   * this process has stored `backlog` events that may not be folded yet, after folds have caught up
   * by a batch: the commit's acknowledgements wait, so ingestion cannot outrun folds and leave reads
   * a long wait. Commits and folds still overlap below that.
   */
  async committed(events: number): Promise<void> {
    if (events === 0 || this.closed) return;
    this.unfolded += events;
    if (this.unfolded >= this.o.backlog) {
      const fold = this.request(true).catch(() => {});
      while (this.unfolded >= this.o.backlog && (this.running || this.queued)) await Promise.race([this.batchFolded(), fold]);
    } else if (this.unfolded >= this.o.events && performance.now() - this.gaveWayAt >= this.o.afterMs) this.background();
    else this.timer ??= setTimeout(() => this.background(), this.o.afterMs).unref();
  }

  /** Resolves once everything committed before the call is folded (readers call it first). */
  async settle(): Promise<void> {
    const r = await this.pool.query<{ any: boolean }>('SELECT EXISTS (SELECT 1 FROM rollup_pending) AS any');
    if (r.rows[0].any) await this.request(true);
  }

  /** Waits for this process's fold in progress; later commits' rows stay pending (they are durable). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.queued?.catch(() => {});
    await this.running?.catch(() => {});
  }

  private background(): void {
    // A failed background fold loses nothing: the rows stay pending for the next fold or read.
    this.request(false).catch(() => {});
  }

  /**
   * One fold at a time in this process. A caller arriving while one runs waits for the next one,
   * which starts after it and so sees every row committed before the caller asked. A fold a reader
   * waits for waits for the lock; a background one gives way to another instance's fold.
   */
  private request(wait: boolean): Promise<void> {
    if (wait) this.nextWaits = true;
    if (this.queued) return this.queued;
    if (!this.running) return this.start();
    this.queued = this.running
      .catch(() => {})
      .then(() => {
        this.queued = undefined;
        return this.start();
      });
    return this.queued;
  }

  private start(): Promise<void> {
    const wait = this.nextWaits;
    this.nextWaits = false;
    return (this.running = this.run(wait).finally(() => (this.running = undefined)));
  }

  private batchFolded(): Promise<void> {
    return new Promise((resolve) => this.onBatch.push(resolve));
  }

  private async run(wait: boolean): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    try {
      for (;;) {
        const folded = await withRetry(this.pool, async (c) => {
          if (wait) await lockFolds(c, this.schema);
          else {
            const r = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1, hashtext($2)) AS ok', lockArgs(this.schema));
            // Another instance is folding; it folds our rows too.
            if (!r.rows[0].ok) return -1;
          }
          return foldSome(c, this.o.perTransaction);
        });
        if (folded === -1) this.gaveWayAt = performance.now();
        // Nothing was pending: what this process stored before is folded.
        this.unfolded = folded === 0 ? 0 : Math.max(0, this.unfolded - Math.max(folded, 0));
        if (folded <= 0) return;
        this.wakeBatchWaiters();
      }
    } finally {
      this.wakeBatchWaiters();
    }
  }

  private wakeBatchWaiters(): void {
    const waiting = this.onBatch;
    this.onBatch = [];
    for (const resolve of waiting) resolve();
  }
}

// Rollup contributions stored with their events and folded into the rollup tables later, in bulk.
//
// Why: writing every level's rows in each commit cost ~10 row upserts and ~9 dirty pages per event,
// because a commit's events belong to rows spread over the whole current hour. Now a commit appends
// a row per tenant and up to 1,000 events to rollup_pending (their contributions, a few pages written in sequence),
// in the transaction that stores the events, and a fold merges thousands of events' contributions
// into the rollup tables at once, where most of them land on rows the fold already touches.
//
// The rollups are the tables plus rollup_pending, always: a fold moves contributions from one to the
// other in one transaction. Readers fold before they read the tables (SqliteStore.settle), so a
// query never sees one without the other, whichever process wrote the pending rows. Folds read the
// rows back rather than keep the commits' contributions in memory: gathering them as commits ran
// measured the same throughput and ~40 MB more peak RSS (bench, 1M seeded).
import type Database from 'better-sqlite3';
import { floorHour } from '../../core/time.js';
import type { RollupWriter } from './rollup-writer.js';
import { indexIn } from '../index-in.js';

/**
 * A pending row's events (accepted, with contributions), flat: per event its seq, subject, time
 * and number of contributions, then per contribution the meter (an index into the row's meters),
 * the group key (an index into the row's group keys), the value (decimal text, or null) and the
 * distinct value (or null). Group keys are JSON text repeated by every meter of an event; written
 * once per row, they are not escaped into the body again and again (see record()).
 */
export type PendingEvents = Array<number | string | null>;

export interface FoldOptions {
  /** Fold once this writer has stored this many events' contributions since its last fold. */
  events?: number;
  /** Fold pending contributions at most this long after the commit that stored them. */
  afterMs?: number;
  /** Events folded per transaction, so one fold never holds the write lock long or builds a huge batch. */
  perTransaction?: number;
  /**
   * Events this writer may have stored unfolded before its folds take precedence over its commits:
   * beyond it, each gather step takes twice the events committed since the step before, so the
   * backlog (what the next read must fold first) stays bounded however long ingestion runs.
   */
  backlog?: number;
}

// Measured with bench B1/B2 (same session): 0.5 s between folds stalled B1's commits ~100 ms every 0.5 s
// (p99 167 ms); 2 s gives p99 33 ms at the same throughput. 50,000 events per fold stalled B2 ~1 s.
// Without a backlog bound, B2's folds fell behind (a 500-event step per ~3,200-event commit): 270,000
// events were pending after 15 s, for the next read to fold first. With 50,000, at most ~78,000 were.
export const FOLD_DEFAULTS: Required<FoldOptions> = { events: 25_000, afterMs: 2000, perTransaction: 50_000, backlog: 50_000 };

/**
 * A fold gathered a step at a time between commits: the pending rows up to lastId, added to a
 * RollupWriter, since a fold generation. While no other fold runs no row is deleted, so a newer
 * row always has a larger id than every row before it.
 */
export interface GatheredFold {
  generation: number;
  lastId: number;
  events: number;
}

/** A pending row being gathered: its meters and group keys (and their indexes), its events and their flat contributions. */
interface PendingRow {
  meters: string[];
  meterIds: Map<string, number>;
  groups: string[];
  groupIds: Map<string, number>;
  events: number;
  flat: PendingEvents;
}

/** Events per pending row at most (a row is parsed whole when folded). */
const ROW_EVENTS = 1000;

/**
 * One transaction's contributions, gathered per tenant: a commit writes a pending row per tenant
 * and ~ROW_EVENTS events, not one per job. B1 commits ~32 one-event jobs; a row each made folds cost
 * ~18 µs per event against ~13.6 gathered (per-row SQLite steps, JSON.parse calls and deletes).
 */
export class PendingBatch {
  private readonly byTenant = new Map<string, PendingRow>();

  constructor(private readonly pending: PendingRollups) {}

  /**
   * The row a job's events go to, and the job's meter and group key indexes mapped to the row's. The
   * caller pushes per event its seq, subject, time and contribution count, then its contributions,
   * onto row.flat, and adds the events it pushed to row.events.
   */
  forJob(tenantId: string, jobMeters: string[], jobGroups: string[]): { row: PendingRow; meterIndex: number[]; groupIndex: number[] } {
    let row = this.byTenant.get(tenantId);
    if (row && row.events >= ROW_EVENTS) {
      this.pending.record(tenantId, row);
      row = undefined;
    }
    if (!row) this.byTenant.set(tenantId, (row = { meters: [], meterIds: new Map(), groups: [], groupIds: new Map(), events: 0, flat: [] }));
    const r = row;
    return { row: r, meterIndex: jobMeters.map((m) => indexIn(r.meters, r.meterIds, m)), groupIndex: jobGroups.map((g) => indexIn(r.groups, r.groupIds, g)) };
  }

  /** Records the rows still gathered (inside the transaction) and forgets them. */
  recordAll(): void {
    for (const [tenantId, row] of this.byTenant) this.pending.record(tenantId, row);
    this.byTenant.clear();
  }

  /** Forgets what was gathered (the transaction rolled back). */
  clear(): void {
    this.byTenant.clear();
  }
}

export class PendingRollups {
  private readonly s;

  constructor(db: Database.Database, private readonly perTransaction = FOLD_DEFAULTS.perTransaction) {
    this.s = {
      insert: db.prepare<[string, number, string]>('INSERT INTO rollup_pending (tenant_id, events, body) VALUES (?, ?, ?)'),
      any: db.prepare<[], number>('SELECT EXISTS (SELECT 1 FROM rollup_pending)').pluck(),
      remove: db.prepare<[number]>('DELETE FROM rollup_pending WHERE id <= ?'),
      after: db.prepare<[number], { id: number; tenant_id: string; events: number; body: string }>('SELECT id, tenant_id, events, body FROM rollup_pending WHERE id > ? ORDER BY id'),
      generation: db.prepare<[], number>('SELECT generation FROM fold_state WHERE id = 1').pluck(),
      bump: db.prepare('UPDATE fold_state SET generation = generation + 1 WHERE id = 1'),
    };
  }

  /** The fold generation: it changes with every fold, whichever connection or process folds. */
  generation(): number {
    return this.s.generation.get() ?? 0;
  }

  /**
   * Stores a row of contributions (inside the transaction that stores their events). With the
   * group keys written once per row, a B2-shaped event's share of the body is ~116 bytes, not ~247.
   */
  record(tenantId: string, row: { meters: string[]; groups: string[]; events: number; flat: PendingEvents }): void {
    if (row.events > 0) this.s.insert.run(tenantId, row.events, JSON.stringify([row.meters, row.groups, row.flat]));
  }

  /** Whether any contributions wait to be folded. */
  any(): boolean {
    return this.s.any.get() === 1;
  }

  /**
   * Folds the oldest pending rows, about perTransaction events, into the rollup tables (inside the
   * caller's write transaction). Returns the events folded; 0 once nothing is pending.
   */
  foldSome(rollups: RollupWriter): number {
    const fold: GatheredFold = { generation: 0, lastId: 0, events: 0 };
    if (this.gatherSome(rollups, fold, this.perTransaction) === 0) return 0;
    this.write(rollups, fold.lastId);
    return fold.events;
  }

  /**
   * Adds the pending rows after `fold.lastId` to `rollups`, about `maxEvents` events' worth, outside
   * any write transaction (a read of committed rows). Returns the events added; 0 once none are left.
   */
  gatherSome(rollups: RollupWriter, fold: GatheredFold, maxEvents: number): number {
    let added = 0;
    for (const row of this.s.after.iterate(fold.lastId)) {
      const body = JSON.parse(row.body) as [string[], string[], PendingEvents] | [string[], PendingEvents];
      // Two entries: a row stored before group keys were indexed, with them written inline.
      if (body.length === 2) addPending(rollups, row.tenant_id, body[0], null, body[1]);
      else addPending(rollups, row.tenant_id, body[0], body[1], body[2]);
      fold.lastId = row.id;
      added += row.events;
      if (added >= maxEvents) break;
    }
    fold.events += added;
    return added;
  }

  /**
   * Writes a gathered fold (inside the caller's write transaction): its rollups, then its pending
   * rows deleted. False, writing nothing, if another fold ran since the gathering began: its rows
   * may be gone, or their ids reused by newer rows.
   */
  commitGathered(rollups: RollupWriter, fold: GatheredFold): boolean {
    if (this.generation() !== fold.generation) return false;
    this.write(rollups, fold.lastId);
    return true;
  }

  /** The write half of every fold: the merged rows, the pending rows up to lastId deleted, the generation bumped. */
  private write(rollups: RollupWriter, lastId: number): void {
    rollups.flush();
    this.s.remove.run(lastId);
    this.s.bump.run();
  }

  /** Folds everything pending, in the caller's transaction (meter changes, rebuilds, migrations down). */
  foldAll(rollups: RollupWriter): void {
    try {
      while (this.foldSome(rollups) > 0);
    } finally {
      rollups.clear();
    }
  }
}

function addPending(rollups: RollupWriter, tenant: string, meters: string[], groups: string[] | null, flat: PendingEvents): void {
  const series = meters.map((m) => rollups.seriesOf(tenant, m));
  for (let i = 0; i < flat.length;) {
    const seq = flat[i] as number;
    const subject = flat[i + 1] as string;
    const time = flat[i + 2] as number;
    const end = i + 4 + 4 * (flat[i + 3] as number);
    const bucket = floorHour(time);
    for (let k = i + 4; k < end; k += 4) {
      const group = groups === null ? (flat[k + 1] as string) : groups[flat[k + 1] as number];
      rollups.addTo(series[flat[k] as number], subject, group, bucket, time, flat[k + 2] as string | null, flat[k + 3] as string | null, seq);
    }
    i = end;
  }
}

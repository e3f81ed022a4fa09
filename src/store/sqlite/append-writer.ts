// The write half of appends: one transaction for a group of append jobs. It runs on SQLite's writer
// thread (see writer-thread.ts) so that commits and their fsync overlap with request parsing on the
// main thread; it takes plain data (decimals as text) because it crosses a thread boundary.
import type Database from 'better-sqlite3';
import { eventKey, type AppendItem } from '../store.js';
import type { AppendStatus } from '../../modules/events/events.types.js';
import { formatDecimal } from '../../core/decimal.js';
import { RollupWriter } from './rollup-writer.js';
import { KnownUniques } from './known-uniques.js';
import { indexIn } from '../index-in.js';
import { EventKeys, type DedupeOptions } from './dedupe/event-keys.js';
import { hashKey } from './dedupe/key-filter.js';
import { FOLD_DEFAULTS, PendingBatch, PendingRollups, type FoldOptions, type GatheredFold } from './pending-rollups.js';

/**
 * An event as it crosses to the writer thread. Tuples and one flat array of contributions, because
 * copying between threads costs per object and per property name: this form copies in about half
 * the time of objects. Per contribution, four slots: the meter (an index into WireJob.meters), the
 * group key (an index into WireJob.groups: every meter of an event usually has the same one), the
 * value as decimal text (null: COUNT, UNIQUE_COUNT) and the distinct value (or null).
 */
export type WireEvent = [
  source: string,
  id: string,
  type: string | null,
  subject: string | null,
  time: number,
  dataJson: string | null,
  hash: string,
  contributions: Array<number | string | null>,
];

export interface WireJob {
  tenantId: string;
  metersVersion: number;
  meters: string[];
  groups: string[];
  events: WireEvent[];
}

export type WireResult = AppendStatus[] | { stale: true } | { error: string; code?: string };

export interface WriterOptions {
  dedupe?: DedupeOptions;
  fold?: FoldOptions;
}

export function toWire(tenantId: string, metersVersion: number, items: AppendItem[]): WireJob {
  const meters: string[] = [];
  const meterIds = new Map<string, number>();
  const groups: string[] = [];
  const groupIds = new Map<string, number>();
  const events = items.map(({ event: e, deltas }): WireEvent => {
    const contributions: Array<number | string | null> = [];
    for (const d of deltas) {
      // A single event's partial (partialOf): its value is the latest value.
      const v = d.partial.latestValue;
      contributions.push(indexIn(meters, meterIds, d.meterId), indexIn(groups, groupIds, d.groupKey), v === null ? null : formatDecimal(v), d.unique ?? null);
    }
    return [e.source, e.id, e.type, e.subject, e.time, e.dataJson, e.hash, contributions];
  });
  return { tenantId, metersVersion, meters, groups, events };
}

/**
 * Events a background fold reads and merges per step (a few ms), so commits queued behind a step wait
 * little. bench --only baseline1,B1,B2: 500 gave B1 p99 16-18 ms, 2,000 gave 24-25 ms (whole folds: 15-17).
 */
const GATHER_STEP_EVENTS = 500;

/** Events owed beyond this many backlogs make each commit fold a batch before it is answered (see foldBatchNow). */
export const HARD_BACKLOG_FACTOR = 4;

export class AppendWriter {
  private readonly s;
  private readonly rollups: RollupWriter;
  private readonly pending: PendingRollups;
  private readonly batch: PendingBatch;
  private readonly fold: Required<FoldOptions>;
  /** Events this writer stored since its last fold. */
  private unfolded = 0;
  /** Events with contributions the transaction being written recorded as pending. */
  private recorded = 0;
  /** Events this writer stored that no fold has written yet: what the next read would fold first. */
  private owed = 0;
  /** Events committed since the last gather step (see FoldOptions.backlog). */
  private sinceStep = 0;
  private foldTimer: NodeJS.Timeout | undefined;
  /** A background fold is gathering (see startFold). */
  private folding = false;
  private gathered: GatheredFold | undefined;
  private readonly keys: EventKeys;
  private upkeep = false;
  private readonly transaction: Database.Transaction<(jobs: WireJob[]) => WireResult[]>;
  /** One fold transaction of up to perTransaction events; returns the events folded. */
  private readonly foldOnce: Database.Transaction<() => number>;

  constructor(private readonly db: Database.Database, options: WriterOptions = {}) {
    this.s = {
      metersVersion: db.prepare<[string], { meters_version: number }>('SELECT meters_version FROM tenants WHERE id = ?'),
      insertEvent: db.prepare(
        `INSERT INTO events (tenant_id, source, event_id, type, subject, time, data, hash, ingested_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      eventHash: db.prepare<[number], string>('SELECT hash FROM events WHERE seq = ?').pluck(),
    };
    this.keys = new EventKeys(db, options.dedupe);
    this.rollups = new RollupWriter(db, new KnownUniques());
    // The backlog bound stays above the fold trigger (see FoldOptions.backlog).
    const events = options.fold?.events ?? FOLD_DEFAULTS.events;
    this.fold = { ...FOLD_DEFAULTS, backlog: Math.max(FOLD_DEFAULTS.backlog, 2 * events), ...options.fold };
    this.pending = new PendingRollups(db, this.fold.perTransaction);
    this.batch = new PendingBatch(this.pending);
    this.transaction = db.transaction((jobs: WireJob[]) => this.write(jobs));
    this.foldOnce = db.transaction(() => this.pending.foldSome(this.rollups));
  }

  /** One transaction, one fsync, for every job of the group; rollup contributions wait in rollup_pending. */
  commit(jobs: WireJob[]): WireResult[] {
    try {
      const results = this.transaction.immediate(jobs);
      this.upkeepSoon();
      if (this.recorded > 0) {
        this.owed += this.recorded;
        this.sinceStep += this.recorded;
        this.foldSoon(this.recorded);
      }
      if (this.owed >= HARD_BACKLOG_FACTOR * this.fold.backlog) this.foldBatchNow();
      return results;
    } catch (e) {
      this.keys.abandon();
      throw e;
    }
  }

  /**
   * Folds every pending contribution into the rollup tables, a transaction per perTransaction
   * events, including those other processes stored (readers call it through SqliteStore.settle).
   * What a background fold has gathered is written first.
   */
  foldAll(): void {
    clearTimeout(this.foldTimer);
    this.foldTimer = undefined;
    this.unfolded = 0;
    try {
      this.finishGathered();
      while (this.foldOnce.immediate() > 0) this.committed();
      this.owed = 0;
    } finally {
      this.rollups.clear();
    }
  }

  /**
   * One fold transaction now, before the commit that called it is answered: past the hard backlog,
   * folds take precedence over commits, so the backlog stays bounded whatever starves the background
   * folds. In one full bench run (2026-12-07 07:36) B3 ended with 691,500 events unfolded, the first
   * read took 4.1 s and peak RSS reached 393 MB; a rerun on the same kind of data left 16,200.
   */
  private foldBatchNow(): void {
    try {
      this.finishGathered();
      const folded = this.foldOnce.immediate();
      this.committed();
      this.owed = Math.max(0, this.owed - folded);
    } catch {
      // The commit stands; its contributions stay pending for the next fold.
    } finally {
      this.rollups.clear();
    }
  }

  /**
   * A background fold once enough events wait, or afterMs after the first unfolded commit. A fold
   * that fails (a full disk, say) leaves the rows pending; the next commit or read tries again.
   */
  private foldSoon(events: number): void {
    this.unfolded += events;
    if (this.folding) return;
    if (this.unfolded >= this.fold.events || this.owed >= this.fold.backlog) this.startFold();
    else if (!this.foldTimer) {
      this.foldTimer = setTimeout(() => this.startFold(), this.fold.afterMs);
      this.foldTimer.unref();
    }
  }

  /**
   * Background folds gather the pending rows a step at a time, between commits, outside the write
   * lock; only writing the gathered rows takes a transaction. Done whole, a B1 fold of 25,000 events
   * held every commit back ~340 ms, of which reading and merging the rows was more than half.
   */
  private startFold(): void {
    clearTimeout(this.foldTimer);
    this.foldTimer = undefined;
    if (this.folding) return;
    this.folding = true;
    this.unfolded = 0;
    setImmediate(() => this.gatherStep());
  }

  private gatherStep(): void {
    if (!this.folding) return;
    let more = false;
    try {
      if (this.db.open) {
        const g = (this.gathered ??= { generation: this.pending.generation(), lastId: 0, events: 0 });
        // Over the backlog, folding outpaces the commits between steps two to one until it is back under.
        const step = this.owed >= this.fold.backlog ? Math.min(this.fold.perTransaction, Math.max(GATHER_STEP_EVENTS, 2 * this.sinceStep)) : GATHER_STEP_EVENTS;
        this.sinceStep = 0;
        const added = this.pending.gatherSome(this.rollups, g, step);
        // Nothing pending at all (another process may have folded this writer's rows).
        if (added === 0 && g.lastId === 0) this.owed = 0;
        if (added > 0 && g.events < this.fold.perTransaction) {
          setImmediate(() => this.gatherStep());
          return;
        }
        this.finishGathered();
        // Stopped at perTransaction: more may wait.
        more = added > 0;
      }
    } catch {
      // Left pending: a later fold (or a reader's) takes them.
      this.gathered = undefined;
      this.rollups.clear();
    }
    if (more) {
      setImmediate(() => this.gatherStep());
      return;
    }
    this.folding = false;
    if (this.unfolded > 0) this.foldSoon(0);
  }

  /** Writes what a background fold gathered, unless another fold ran meanwhile (then it is dropped). */
  private finishGathered(): void {
    const g = this.gathered;
    if (!g) return;
    this.gathered = undefined;
    try {
      if (g.events > 0 && this.db.transaction(() => this.pending.commitGathered(this.rollups, g)).immediate()) {
        this.committed();
        this.owed = Math.max(0, this.owed - g.events);
      }
    } finally {
      this.rollups.clear();
    }
  }

  /** A fold's transaction returned: what it wrote is stored, unless it was nested in one still open. */
  private committed(): void {
    if (this.db.inTransaction) this.rollups.clear();
    else this.rollups.confirm();
  }

  /** Stops background folds (closing); what they gathered stays pending. */
  stop(): void {
    clearTimeout(this.foldTimer);
    this.foldTimer = undefined;
    this.folding = false;
    this.gathered = undefined;
    this.rollups.clear();
  }

  /** One step of the event keys' upkeep now; true while more remains (tests, bench/event-keys.ts). */
  upkeepStep(): boolean {
    return this.keys.maintain();
  }

  /** The event keys' runs (tests, bench/event-keys.ts). */
  keyRuns() {
    return this.keys.shape();
  }

  /**
   * The event keys' upkeep, one step per turn of the event loop so that commits waiting in the
   * queue go between steps. A step that fails (a full disk, say) ends the round; the next commit
   * starts another, and a commit meets the same fault and reports it.
   */
  private upkeepSoon(): void {
    if (this.upkeep) return;
    this.upkeep = true;
    const step = () => {
      let more = false;
      try {
        more = this.db.open && this.keys.maintain();
      } catch {
        more = false;
      }
      if (more) setImmediate(step);
      else this.upkeep = false;
    };
    setImmediate(step);
  }

  private write(jobs: WireJob[]): WireResult[] {
    const s = this.s;
    const now = Date.now();
    this.recorded = 0;
    this.keys.begin();
    this.batch.clear();
    // A tenant's meters cannot change inside this transaction (meter changes take the write lock).
    const versions = new Map<string, number>();
    const results = jobs.map((job): WireResult => {
      let current = versions.get(job.tenantId);
      if (current === undefined) versions.set(job.tenantId, (current = s.metersVersion.get(job.tenantId)?.meters_version ?? 0));
      if (current !== job.metersVersion) return { stale: true };
      const statuses: AppendStatus[] = [];
      const { row, meterIndex, groupIndex } = this.batch.forJob(job.tenantId, job.meters, job.groups);
      const { flat } = row;
      let accepted = 0;
      for (const [source, id, type, subject, time, dataJson, hash, contributions] of job.events) {
        const key = eventKey(job.tenantId, source, id);
        const h = hashKey(key);
        const stored = this.keys.find(key, h);
        if (stored !== undefined) {
          statuses.push(s.eventHash.get(stored) === hash ? 'duplicate' : 'conflict');
          continue;
        }
        statuses.push('accepted');
        const seq = Number(s.insertEvent.run(job.tenantId, source, id, type, subject, time, dataJson, hash, now).lastInsertRowid);
        this.keys.add(key, h, seq);
        if (contributions.length > 0) {
          flat.push(seq, subject ?? '', time, contributions.length / 4);
          for (let k = 0; k < contributions.length; k += 4) flat.push(meterIndex[contributions[k] as number], groupIndex[contributions[k + 1] as number], contributions[k + 2], contributions[k + 3]);
          accepted++;
        }
      }
      row.events += accepted;
      this.recorded += accepted;
      return statuses;
    });
    this.batch.recordAll();
    this.keys.end();
    return results;
  }
}

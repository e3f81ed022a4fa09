// When this process folds pending rollup contributions (see pending.ts): in the background after
// enough events or some time, before every rollup read (settle), and, once this process has stored
// more than a backlog the folds have not caught up with, before its commits are acknowledged.
import type pg from 'pg';
import { withRetry } from './pool.js';
import { FOLD_BATCH_EVENTS, foldSome, lockFolds, tryLockFolds } from './pending.js';

export interface FoldOptions {
  /** Fold once this many events are pending over every instance (checked once this process has stored that many since its last fold). */
  events?: number;
  /** Fold pending contributions at most this long after the commit that stored them. */
  afterMs?: number;
  /** Events folded per transaction, so one fold never holds the lock long. */
  perTransaction?: number;
  /** Events this process may store beyond what it has seen folded before its acknowledgements wait for a fold. */
  backlog?: number;
}

/** Least wait before a due check again, so a near-due fold does not check in a loop. */
const MIN_RECHECK_MS = 50;

export const FOLD_DEFAULTS: Required<FoldOptions> = { events: 25_000, afterMs: 2000, perTransaction: FOLD_BATCH_EVENTS, backlog: 50_000 };

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
  /** A background fold's due check, while it runs. */
  private checking?: Promise<void>;
  /** A due check came while a check or fold ran: check again once they end. */
  private dueAgain = false;
  /** Commits waiting for the next folded batch (backpressure). */
  private onBatch: Array<() => void> = [];

  constructor(
    private readonly pool: pg.Pool,
    private readonly schema: string | undefined,
    options: FoldOptions = {},
  ) {
    // The backlog bound stays above the fold trigger, or every commit past it would wait for a fold.
    const events = options.events ?? FOLD_DEFAULTS.events;
    this.o = { ...FOLD_DEFAULTS, backlog: Math.max(FOLD_DEFAULTS.backlog, 2 * events), ...options };
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
    const r = await this.pool.query<{ any: boolean }>({ name: 'meterd-pending-any', text: 'SELECT EXISTS (SELECT 1 FROM rollup_pending) AS any' });
    if (r.rows[0].any) await this.request(true);
  }

  /** Waits for this process's fold in progress; later commits' rows stay pending (they are durable). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.checking;
    await this.queued?.catch(() => {});
    await this.running?.catch(() => {});
  }

  /**
   * A background fold, if one is due. What is pending is shared by every instance and any fold takes
   * all of it, so the triggers count it all: this process's own count and timer alone made each of
   * two instances fold a second after the other, half of what the interval allows, and a fold's cost
   * grows with the rows it touches more than with its events (bench/fold-cost.ts: 3,000 events folded
   * at 81-97 us each, 12,000 at 42-50, 48,000 at 31-33).
   */
  private background(): void {
    // The timer is spent or replaced either way; the next commit arms it again if nothing does.
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed) return;
    // A fold in progress may not take what was committed after it looked (it stops after a pass that
    // took every row it saw), and no later commit may come to arm the timer again: check once it ends.
    if (this.checking || this.running || this.queued) {
      this.dueAgain = true;
      return;
    }
    this.checking = this.due()
      .then((wait) => {
        if (this.closed) return;
        if (wait === 0) return this.request(false);
        if (wait !== undefined) this.timer = setTimeout(() => this.background(), wait).unref();
      })
      // A failed background fold loses nothing: the rows stay pending for the next fold or read.
      .catch(() => {})
      .finally(() => {
        this.checking = undefined;
        this.checkAgainIfAsked();
      });
  }

  private checkAgainIfAsked(): void {
    if (!this.dueAgain || this.closed || this.checking || this.running || this.queued) return;
    this.dueAgain = false;
    this.background();
  }

  /** 0 when a fold is due, else how long until it will be (ms); undefined when nothing is pending. */
  private async due(): Promise<number | undefined> {
    const r = await this.pool.query<{ events: string; age: number | null }>({
      name: 'meterd-pending-due',
      text: 'SELECT coalesce(sum(events), 0)::text AS events, (extract(epoch FROM clock_timestamp() - min(stored_at)) * 1000)::float8 AS age FROM rollup_pending',
    });
    const { events, age } = r.rows[0];
    if (age === null) {
      this.unfolded = 0;
      return undefined;
    }
    // Another instance's folds took some of this process's events too.
    this.unfolded = Math.min(this.unfolded, Number(events));
    if (Number(events) >= this.o.events || age >= this.o.afterMs) return 0;
    return Math.max(MIN_RECHECK_MS, this.o.afterMs - age);
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
    return (this.running = this.run(wait).finally(() => {
      this.running = undefined;
      this.checkAgainIfAsked();
    }));
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
          // Another instance is folding; it folds our rows too.
          else if (!(await tryLockFolds(c, this.schema))) return -1;
          // A fold of its own need not wait for its WAL flush: lost in a crash, it is lost whole (its
          // pending rows come back with it), and any later commit that reaches the disk carries the
          // fold's WAL before its own. (Meter changes fold in their own, durable, transactions.)
          await c.query('SET LOCAL synchronous_commit = off');
          return foldSome(c, this.o.perTransaction);
        });
        if (folded === -1) {
          // The other fold may stop before rows committed after it looked, and no commit may follow.
          this.gaveWayAt = performance.now();
          if (!this.closed) this.timer ??= setTimeout(() => this.background(), Math.max(MIN_RECHECK_MS, this.o.afterMs / 4)).unref();
          return;
        }
        // Nothing was pending: what this process stored before is folded.
        this.unfolded = folded.events === 0 ? 0 : Math.max(0, this.unfolded - folded.events);
        if (folded.events > 0) this.wakeBatchWaiters();
        // A pass that took every row it saw has folded everything committed before this run began.
        // Folding on until nothing is pending never ended under steady ingestion: each pass folded
        // the few hundred events committed during the one before (B1: the fold ran back to back,
        // bench/ab.ts --engine postgres: 6,902 against 5,772 events/s with the shared timing above).
        if (!folded.more) return;
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

// When this process folds pending rollup contributions (see pending.ts): in the background after
// enough events or some time, before every rollup read (settle), and, once this process has stored
// more than a backlog the folds have not caught up with, before its commits are acknowledged.
import type pg from 'pg';
import { withRetry } from './pool.js';
import { FOLD_BATCH_EVENTS, foldSome, lockFolds, tryLockFolds } from './pending.js';

export interface FoldOptions {
  /** Fold once this process has stored this many events' contributions since its last fold. */
  events?: number;
  /** Fold pending contributions at most this long after the commit that stored them. */
  afterMs?: number;
  /** Events folded per transaction, so one fold never holds the lock long. */
  perTransaction?: number;
  /** Events this process may store beyond what it has seen folded before its acknowledgements wait for a fold. */
  backlog?: number;
}

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
    const r = await this.pool.query<{ any: boolean }>({ name: 'meterd-pending-any', text: 'SELECT EXISTS (SELECT 1 FROM rollup_pending) AS any' });
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
          // Another instance is folding; it folds our rows too.
          else if (!(await tryLockFolds(c, this.schema))) return -1;
          // A fold of its own need not wait for its WAL flush: lost in a crash, it is lost whole (its
          // pending rows come back with it), and any later commit that reaches the disk carries the
          // fold's WAL before its own. (Meter changes fold in their own, durable, transactions.)
          await c.query('SET LOCAL synchronous_commit = off');
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

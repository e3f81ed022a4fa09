// Group commit: appends that arrive while a commit is running wait for the next one, and the
// next one commits them all with one fsync. Durability then costs one disk flush per group,
// not per request.

type Result<R> = R | Error;

interface Pending<J, R> {
  job: J;
  resolve: (r: R) => void;
  reject: (e: Error) => void;
}

export class GroupCommit<J, R> {
  private queue: Pending<J, R>[] = [];
  /** Groups sent and not yet answered. */
  private readonly running = new Set<Promise<void>>();
  private scheduled = false;
  private pendingWeight = 0;

  /**
   * `weigh` measures a job (events in it) for `weight`, the work queued or committing. `maxInFlight`
   * groups may be committing at once; the commit function must keep them in order if it needs to.
   */
  constructor(
    private readonly commit: (jobs: J[]) => Result<R>[] | Promise<Result<R>[]>,
    private readonly maxJobs = 512,
    private readonly weigh: (job: J) => number = () => 1,
    private readonly maxInFlight = 1,
  ) {}

  submit(job: J): Promise<R> {
    const w = this.weigh(job);
    this.pendingWeight += w;
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      this.schedule();
    }).finally(() => {
      this.pendingWeight -= w;
    });
  }

  /** Weight of every job submitted and not yet answered. */
  get weight(): number {
    return this.pendingWeight;
  }

  private schedule() {
    if (this.scheduled || this.running.size >= this.maxInFlight) return;
    this.scheduled = true;
    // setImmediate lets every request already read from the sockets join this group.
    setImmediate(() => {
      this.scheduled = false;
      const group = this.flush().finally(() => {
        this.running.delete(group);
        if (this.queue.length > 0) this.schedule();
      });
      this.running.add(group);
      if (this.queue.length > 0) this.schedule();
    });
  }

  private async flush() {
    const group = this.queue.splice(0, this.maxJobs);
    if (group.length === 0) return;
    try {
      const results = await this.commit(group.map((p) => p.job));
      group.forEach((p, i) => {
        const r = results[i];
        if (r instanceof Error) p.reject(r);
        else p.resolve(r);
      });
    } catch (e) {
      for (const p of group) p.reject(e as Error);
    }
  }

  /** Resolves once everything submitted so far is committed (graceful shutdown). */
  async drain(): Promise<void> {
    while (this.queue.length > 0 || this.running.size > 0 || this.scheduled) {
      if (this.running.size > 0) await Promise.all(this.running);
      else await new Promise((r) => setImmediate(r));
    }
  }

}

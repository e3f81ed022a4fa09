// Named locks across every process on the database: session advisory locks held on connections
// of their own pool, so holders waiting for the main pool can never be starved by lock waiters.
import type pg from 'pg';

export class AdvisoryLocks {
  private pool?: pg.Pool;
  /** In-process queue per name: at most one connection per name waits on the server. */
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(private readonly open: () => pg.Pool) {}

  run<T>(tenantId: string, key: string, fn: () => Promise<T>): Promise<T> {
    const name = `${tenantId}\u001f${key}`;
    const previous = this.chains.get(name) ?? Promise.resolve();
    const run = previous.then(
      () => this.holding(name, fn),
      () => this.holding(name, fn),
    );
    const tail = run.catch(() => undefined);
    this.chains.set(name, tail);
    void tail.then(() => {
      if (this.chains.get(name) === tail) this.chains.delete(name);
    });
    return run;
  }

  private async holding<T>(name: string, fn: () => Promise<T>): Promise<T> {
    this.pool ??= this.open();
    const c = await this.pool.connect();
    let broken: Error | undefined;
    try {
      // 64-bit key in the single-bigint space, apart from the (int, int) keys of migrations and partitions.
      await c.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [name]);
      try {
        return await fn();
      } finally {
        await c.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [name]).catch((e) => (broken = e as Error));
      }
    } catch (e) {
      broken ??= e as Error;
      throw e;
    } finally {
      // Destroying the session releases whatever lock it may still hold.
      c.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.pool?.end();
  }
}

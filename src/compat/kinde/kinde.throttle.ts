// Per-client token buckets: a burst, then a steady rate. In-process, so each meterd instance
// throttles on its own (the limit scales with instances).
export interface ThrottleOptions {
  burst: number;
  perSecond: number;
}

export const DEFAULT_THROTTLE: ThrottleOptions = { burst: 100, perSecond: 20 };

export class Throttle {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly opts: ThrottleOptions = DEFAULT_THROTTLE) {}

  /** Takes one token for `client`; returns 0 when allowed, else the seconds to wait. */
  take(client: string, now = Date.now()): number {
    const b = this.buckets.get(client) ?? { tokens: this.opts.burst, at: now };
    b.tokens = Math.min(this.opts.burst, b.tokens + ((now - b.at) / 1000) * this.opts.perSecond);
    b.at = now;
    this.buckets.set(client, b);
    if (this.buckets.size > 100_000) this.sweep(now);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.opts.perSecond));
  }

  /** Forgets buckets that have refilled completely (they equal a fresh one). */
  private sweep(now: number) {
    for (const [k, b] of this.buckets) if (b.tokens + ((now - b.at) / 1000) * this.opts.perSecond >= this.opts.burst) this.buckets.delete(k);
  }
}

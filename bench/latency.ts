// Exact latency percentiles from every sample (autocannon's own histogram has 1 ms buckets,
// too coarse for a 5 ms target).
export class Samples {
  private buf = new Float64Array(1 << 14);
  size = 0;

  add(ms: number) {
    if (this.size === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.size++] = ms;
  }

  percentiles(): { p50: number; p90: number; p99: number; max: number } {
    if (this.size === 0) return { p50: NaN, p90: NaN, p99: NaN, max: NaN };
    const s = this.buf.slice(0, this.size).sort();
    const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
    return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s[s.length - 1] };
  }

  /** Every sample, rounded to the microsecond (they travel as JSON). */
  values(): number[] {
    return Array.from(this.buf.subarray(0, this.size), (ms) => Math.round(ms * 1000) / 1000);
  }

  reset() {
    this.size = 0;
  }
}

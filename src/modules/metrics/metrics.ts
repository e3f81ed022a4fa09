// What an operator scrapes: events by receipt status, how long a durable append takes, requests by
// route, the commit backlog, the events waiting to be folded, and (when scraping is on) Node's own
// process metrics. One registry per Services, so several servers in one process (tests) never share counters.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ReceiptStatus } from '../events/events.service.js';

export class Metrics {
  readonly registry = new Registry();
  private readonly receipts = new Counter({
    name: 'meterd_events_total',
    help: 'Events answered by ingestion (native and seed APIs), by receipt status',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  private readonly append = new Histogram({
    name: 'meterd_append_seconds',
    help: 'From handing validated events to the store until they are durable (group commit included)',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  private readonly requests = new Histogram({
    name: 'meterd_http_request_seconds',
    help: 'HTTP requests by method, route template and status code',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });

  constructor(sources: { backlog: () => number; unfolded: () => Promise<number> }, opts: { processMetrics: boolean }) {
    new Gauge({
      name: 'meterd_pending_events',
      help: 'Events of this instance waiting for a commit',
      registers: [this.registry],
      collect() {
        this.set(sources.backlog());
      },
    });
    new Gauge({
      name: 'meterd_unfolded_events',
      help: 'Stored events whose rollup contributions wait to be folded, by every instance (the next usage query folds them first)',
      registers: [this.registry],
      async collect() {
        // A database that cannot answer right now leaves the last reading; /metrics still answers.
        await sources.unfolded().then((n) => this.set(n), () => undefined);
      },
    });
    // Event-loop, heap and GC monitors run from their first call on: only when someone scrapes.
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  answered(status: ReceiptStatus, n: number): void {
    if (n > 0) this.receipts.inc({ status }, n);
  }

  appended(seconds: number): void {
    this.append.observe(seconds);
  }

  request(method: string, route: string, status: number, seconds: number): void {
    this.requests.observe({ method, route, status: String(status) }, seconds);
  }
}

// The embedded engine: one process, one SQLite file in WAL mode with synchronous=FULL,
// so a commit is on disk before its promise resolves. Writers share commits (group commit).
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { AppendItem, DeltaFn, EventScan, LevelRollupRow, RollupAggregation, RollupScan, Store, WindowRollupRow, WindowUniqueRow } from '../store.js';
import { StaleMetersError, checkMetersVersion } from '../store.js';
import type { Tenant } from '../../modules/tenants/tenants.types.js';
import type { ApiKeyRecord } from '../../modules/api-keys/api-keys.types.js';
import type { Meter } from '../../modules/meters/meters.types.js';
import type { Customer } from '../../modules/customers/customers.types.js';
import type { AppendStatus, EventCursor, EventFilter, StoredEvent } from '../../modules/events/events.types.js';
import type { RollupDelta, RollupRow, UniqueRow } from '../../modules/usage/usage.types.js';
import { PENDING_MIGRATION, sqliteMigrations } from './migrations.js';
import { NEXT_SERIES, SERIES_OF_POSITIONAL } from './series.js';
import { refuseNewerSchema } from '../migrations.js';
import {
  apiKeyFromRow,
  customerFromRow,
  meterFromRow,
  partialFromRow,
  type ApiKeyRow,
  type CustomerRow,
  type MeterRow,
  type PartialColumns,
} from '../rows.js';
import { GroupCommit } from '../group-commit.js';
import { DEFAULT_CACHE_MIB, openDatabase } from './open.js';
import { AppendWriter, toWire, type WireJob, type WireResult } from './append-writer.js';
import { PendingRollups, type FoldOptions } from './pending-rollups.js';
import { RollupWriter, addDelta } from './rollup-writer.js';
import { ROLLUP_TABLES } from '../levels.js';
import { WriterClient } from './writer-client.js';
import type { DedupeOptions } from './dedupe/event-keys.js';
import { RollupAggregator } from './aggregate.js';

interface EventRow {
  seq: number;
  source: string;
  event_id: string;
  type: string | null;
  subject: string | null;
  time: number;
  data: string | null;
  ingested_at: number;
}

const eventFromRow = (r: EventRow): StoredEvent => ({
  seq: r.seq,
  source: r.source,
  id: r.event_id,
  type: r.type,
  subject: r.subject,
  time: r.time,
  data: r.data === null ? null : JSON.parse(r.data),
  ingestedAt: r.ingested_at,
});

export interface SqliteOptions {
  path: string;
  /** Page cache in MiB. */
  cacheMiB?: number;
  /** Commit appends on a writer thread (default for files): fsync overlaps request parsing. */
  writerThread?: boolean;
  /** Sizes of the event key runs (tests make them tiny to exercise merges). */
  dedupe?: DedupeOptions;
  /** When pending rollup contributions are folded into the tables (tests fold often or never). */
  fold?: FoldOptions;
}

/** The writer, on its thread or in this one: appends, and folds of pending rollups. */
interface Writer {
  commit(jobs: WireJob[]): WireResult[] | Promise<WireResult[]>;
  foldAll(): void | Promise<void>;
}

/**
 * Groups sent to the writer thread before the first is answered. With one, the writer idles for each
 * answer's round trip through the busy main thread; with two, the next group is already queued when a
 * commit ends. bench --only baseline1,B1,B2, interleaved twice, folds bounded (FoldOptions.backlog):
 * B2 31,004 / 31,321 -> 34,816 / 35,300 events/s, B1 unchanged (10,788 / 11,127 against 10,695 / 10,879);
 * three or four gained nothing more for B2 and cost B1. (PostgreSQL: no change, so it keeps one.)
 */
const COMMITS_IN_FLIGHT = 2;

export class SqliteStore implements Store {
  readonly engine = 'sqlite' as const;
  readonly coarseLevels = ['subject-day', 'total-hour'] as const;
  private readonly db: Database.Database;
  private prepared?: ReturnType<SqliteStore['prepare']>;
  private readonly commits: GroupCommit<WireJob, AppendStatus[]>;
  private appendWriter?: Writer;
  private inThreadWriter?: AppendWriter;
  private writerThread?: WriterClient;
  private aggregator?: RollupAggregator;

  constructor(private readonly opts: SqliteOptions) {
    if (opts.path !== ':memory:') mkdirSync(dirname(opts.path), { recursive: true });
    this.db = openDatabase(opts.path, opts.cacheMiB ?? DEFAULT_CACHE_MIB);
    this.commits = new GroupCommit((jobs) => this.commitJobs(jobs), 512, (job) => job.events.length, COMMITS_IN_FLIGHT);
  }

  /** Appends go to a writer thread for a file database, in-thread for ":memory:" (one connection only). */
  private writer(): Writer {
    if (!this.appendWriter) {
      const options = { dedupe: this.opts.dedupe, fold: this.opts.fold };
      this.appendWriter =
        this.opts.path === ':memory:' || this.opts.writerThread === false
          ? (this.inThreadWriter = new AppendWriter(this.db, options))
          // The writer's cache holds the pages appends touch (index and rollup leaves of recent hours): half the readers'.
          : (this.writerThread = new WriterClient(this.opts.path, Math.ceil((this.opts.cacheMiB ?? DEFAULT_CACHE_MIB) / 2), options));
    }
    return this.appendWriter;
  }

  /**
   * Folds pending rollup contributions into the tables, through the writer so that it queues behind
   * the commits already sent. Every read of the rollup tables calls it first; with nothing pending
   * (the usual case between bursts of ingestion) it costs one indexed lookup.
   */
  async settle(): Promise<void> {
    if (this.s.pending.any()) await this.writer().foldAll();
  }

  /** Folds everything pending inside the caller's write transaction on this connection. */
  private foldHere(): void {
    this.s.pending.foldAll(this.s.rollups);
  }

  private get s() {
    if (!this.prepared) this.prepared = this.prepare();
    return this.prepared;
  }

  private prepare() {
    const db = this.db;
    return {
      metersVersion: db.prepare<[string], { meters_version: number }>('SELECT meters_version FROM tenants WHERE id = ?'),
      rollups: new RollupWriter(db),
      pending: new PendingRollups(db),
      unfolded: db.prepare<[], number>('SELECT coalesce(sum(events), 0) FROM rollup_pending').pluck(),
      hasEvents: db.prepare<[string, string, number, number], number>('SELECT EXISTS (SELECT 1 FROM events WHERE tenant_id = ? AND type = ? AND time >= ? AND time < ?)').pluck(),
    };
  }

  backlog(): number {
    return this.commits.weight;
  }

  async unfoldedEvents(): Promise<number> {
    return this.s.unfolded.get() ?? 0;
  }

  /** Everything SQLite needs, meterd sets itself when it opens the file. */
  async warnings(): Promise<string[]> {
    return [];
  }

  async migrate(): Promise<void> {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    const done = new Set(this.db.prepare<[], { version: number }>('SELECT version FROM schema_migrations').all().map((r) => r.version));
    refuseNewerSchema(done, sqliteMigrations);
    for (const m of sqliteMigrations) {
      if (done.has(m.version)) continue;
      this.db.transaction(() => {
        this.db.exec(m.up);
        this.db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
      }).immediate();
    }
    this.prepared = undefined;
    this.aggregator = undefined;
  }

  async migrateDown(): Promise<void> {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    const done = new Set(this.db.prepare<[], { version: number }>('SELECT version FROM schema_migrations').all().map((r) => r.version));
    refuseNewerSchema(done, sqliteMigrations);
    // Pending contributions live in a table a migration down drops: fold them first.
    if (done.has(PENDING_MIGRATION)) this.db.transaction(() => this.foldHere()).immediate();
    for (const m of [...sqliteMigrations].reverse()) {
      if (!done.has(m.version)) continue;
      this.db.transaction(() => {
        this.db.exec(m.down);
        this.db.prepare('DELETE FROM schema_migrations WHERE version = ?').run(m.version);
      }).immediate();
    }
    this.prepared = undefined;
    this.aggregator = undefined;
  }

  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
    this.writerThread?.check();
  }

  async close(): Promise<void> {
    await this.commits.drain();
    this.inThreadWriter?.stop();
    await this.writerThread?.close();
    if (this.db.open) this.db.close();
  }

  /** Runs SQLite's integrity check; 'ok' when the file is sound. */
  integrityCheck(): string {
    return String(this.db.pragma('integrity_check', { simple: true }));
  }

  // tenants

  async createTenant(t: Tenant): Promise<boolean> {
    const r = this.db.prepare('INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING').run(t.id, t.name, t.createdAt);
    return r.changes === 1;
  }

  async getTenant(id: string): Promise<Tenant | undefined> {
    const r = this.db.prepare<[string], { id: string; name: string; created_at: number }>('SELECT id, name, created_at FROM tenants WHERE id = ?').get(id);
    return r && { id: r.id, name: r.name, createdAt: r.created_at };
  }

  async listTenants(): Promise<Tenant[]> {
    return this.db
      .prepare<[], { id: string; name: string; created_at: number }>('SELECT id, name, created_at FROM tenants ORDER BY id')
      .all()
      .map((r) => ({ id: r.id, name: r.name, createdAt: r.created_at }));
  }

  // api keys

  async insertApiKey(k: ApiKeyRecord): Promise<boolean> {
    const r = this.db
      .prepare('INSERT INTO api_keys (id, tenant_id, name, secret_hash, scopes, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING')
      .run(k.id, k.tenantId, k.name, k.secretHash, k.scopes.join(','), k.createdAt, k.revokedAt);
    return r.changes === 1;
  }

  // Prepared once: authentication reads a key whenever its short-lived cache misses.
  private apiKeyById?: Database.Statement<[string], ApiKeyRow>;

  async getApiKey(id: string): Promise<ApiKeyRecord | undefined> {
    this.apiKeyById ??= this.db.prepare<[string], ApiKeyRow>('SELECT * FROM api_keys WHERE id = ?');
    const r = this.apiKeyById.get(id);
    return r && apiKeyFromRow(r);
  }

  async listApiKeys(tenantId: string): Promise<ApiKeyRecord[]> {
    return this.db.prepare<[string], ApiKeyRow>('SELECT * FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id').all(tenantId).map(apiKeyFromRow);
  }

  async revokeApiKey(tenantId: string, id: string, at: number): Promise<boolean> {
    const r = this.db.prepare('UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE tenant_id = ? AND id = ?').run(at, tenantId, id);
    return r.changes === 1;
  }

  // meters

  async createMeter(meter: Meter, backfill: DeltaFn): Promise<'created' | 'exists'> {
    return this.db
      .transaction((): 'created' | 'exists' => {
        const r = this.db
          .prepare(
            `INSERT INTO meters (id, tenant_id, slug, event_type, aggregation, value_property, group_by, description, created_at, series)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ${NEXT_SERIES}) ON CONFLICT (tenant_id, slug) DO NOTHING`,
          )
          .run(meter.id, meter.tenantId, meter.slug, meter.eventType, meter.aggregation, meter.valueProperty, JSON.stringify(meter.groupBy), meter.description, meter.createdAt);
        if (r.changes === 0) return 'exists';
        this.foldHere();
        this.db.prepare('UPDATE tenants SET meters_version = meters_version + 1 WHERE id = ?').run(meter.tenantId);
        this.backfillSync(meter.tenantId, meter.eventType, backfill);
        return 'created';
      })
      .immediate();
  }

  private backfillSync(tenantId: string, eventType: string, backfill: DeltaFn) {
    const page = this.db.prepare<[string, string, number], EventRow>(
      `SELECT seq, source, event_id, type, subject, time, data, ingested_at FROM events
       WHERE tenant_id = ? AND type = ? AND seq > ? ORDER BY seq LIMIT 5000`,
    );
    let after = 0;
    for (;;) {
      const rows = page.all(tenantId, eventType, after);
      if (rows.length === 0) break;
      const deltas: RollupDelta[] = [];
      for (const r of rows) {
        for (const d of backfill(eventFromRow(r))) {
          d.partial.latestSeq = r.seq;
          deltas.push(d);
        }
      }
      this.applyDeltas(tenantId, deltas);
      after = rows[rows.length - 1].seq;
    }
  }

  async getMeter(tenantId: string, slug: string): Promise<Meter | undefined> {
    const r = this.db.prepare<[string, string], MeterRow>('SELECT * FROM meters WHERE tenant_id = ? AND slug = ?').get(tenantId, slug);
    return r && meterFromRow(r);
  }

  async listMeters(tenantId: string): Promise<{ version: number; meters: Meter[] }> {
    return this.db.transaction(() => {
      const v = this.s.metersVersion.get(tenantId);
      const meters = this.db.prepare<[string], MeterRow>('SELECT * FROM meters WHERE tenant_id = ? ORDER BY slug').all(tenantId).map(meterFromRow);
      return { version: v?.meters_version ?? 0, meters };
    })();
  }

  async deleteMeter(tenantId: string, slug: string): Promise<boolean> {
    return this.db
      .transaction(() => {
        const m = this.db.prepare<[string, string], { id: string }>('SELECT id FROM meters WHERE tenant_id = ? AND slug = ?').get(tenantId, slug);
        if (!m) return false;
        // The meter's pending contributions must not be folded into rows after they are deleted.
        this.foldHere();
        this.deleteRollups(tenantId, m.id);
        this.db.prepare('DELETE FROM meters WHERE id = ?').run(m.id);
        this.db.prepare('UPDATE tenants SET meters_version = meters_version + 1 WHERE id = ?').run(tenantId);
        return true;
      })
      .immediate();
  }

  // customers

  private subjectsOf(customerId: string): string[] {
    return this.db
      .prepare<[string], { subject: string }>('SELECT subject FROM customer_subjects WHERE customer_id = ? ORDER BY subject')
      .all(customerId)
      .map((r) => r.subject);
  }

  private claimSubjects(c: Customer): string | undefined {
    const subjects = [...new Set(c.subjects)];
    const owner = this.db.prepare<[string, string], { customer_id: string }>('SELECT customer_id FROM customer_subjects WHERE tenant_id = ? AND subject = ?');
    for (const s of subjects) {
      const o = owner.get(c.tenantId, s);
      if (o && o.customer_id !== c.id) return s;
    }
    this.db.prepare('DELETE FROM customer_subjects WHERE customer_id = ?').run(c.id);
    const ins = this.db.prepare('INSERT INTO customer_subjects (tenant_id, subject, customer_id) VALUES (?, ?, ?)');
    for (const s of subjects) ins.run(c.tenantId, s, c.id);
    return undefined;
  }

  async createCustomer(c: Customer) {
    return subjectConflict(() => this.db
      .transaction((): 'created' | { conflict: 'key' | 'subject'; subject?: string } => {
        const r = this.db
          .prepare(
            `INSERT INTO customers (id, tenant_id, key, name, metadata, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, key) DO NOTHING`,
          )
          .run(c.id, c.tenantId, c.key, c.name, JSON.stringify(c.metadata), c.createdAt, c.updatedAt);
        if (r.changes === 0) return { conflict: 'key' };
        const taken = this.claimSubjects(c);
        if (taken !== undefined) throw new SubjectTaken(taken);
        return 'created';
      })
      .immediate());
  }

  async getCustomer(tenantId: string, key: string): Promise<Customer | undefined> {
    const r = this.db.prepare<[string, string], CustomerRow>('SELECT * FROM customers WHERE tenant_id = ? AND key = ?').get(tenantId, key);
    return r && customerFromRow(r, this.subjectsOf(r.id));
  }

  async listCustomers(tenantId: string, afterKey: string | undefined, limit: number): Promise<Customer[]> {
    return this.db
      .prepare<[string, string, number], CustomerRow>('SELECT * FROM customers WHERE tenant_id = ? AND key > ? ORDER BY key LIMIT ?')
      .all(tenantId, afterKey ?? '', limit)
      .map((r) => customerFromRow(r, this.subjectsOf(r.id)));
  }

  async updateCustomer(c: Customer) {
    return subjectConflict(() => this.db
      .transaction((): 'updated' | 'missing' | { conflict: 'subject'; subject: string } => {
        const r = this.db
          .prepare('UPDATE customers SET name = ?, metadata = ?, updated_at = ? WHERE tenant_id = ? AND id = ?')
          .run(c.name, JSON.stringify(c.metadata), c.updatedAt, c.tenantId, c.id);
        if (r.changes === 0) return 'missing';
        const taken = this.claimSubjects(c);
        if (taken !== undefined) throw new SubjectTaken(taken);
        return 'updated';
      })
      .immediate());
  }

  async customersOfSubjects(tenantId: string, subjects?: string[]): Promise<Map<string, string>> {
    const rows = this.db
      .prepare<[string], { subject: string; key: string }>(
        `SELECT s.subject, c.key FROM customer_subjects s JOIN customers c ON c.id = s.customer_id WHERE s.tenant_id = ?`,
      )
      .all(tenantId);
    const wanted = subjects && new Set(subjects);
    const out = new Map<string, string>();
    for (const r of rows) if (!wanted || wanted.has(r.subject)) out.set(r.subject, r.key);
    return out;
  }

  // events

  /**
   * Queued in the writer's form at once: under B2's load a job waits ~300 ms for its commit, and its
   * events' rollup deltas (decimals and all) would outlive young-generation collections meanwhile.
   */
  appendEvents(tenantId: string, metersVersion: number, items: AppendItem[]): Promise<AppendStatus[]> {
    return this.commits.submit(toWire(tenantId, metersVersion, items));
  }

  /** One transaction, one fsync, for every append that queued while the last commit ran. */
  private async commitJobs(jobs: WireJob[]): Promise<Array<AppendStatus[] | Error>> {
    const results = await this.writer().commit(jobs);
    return results.map((r) => {
      if (Array.isArray(r)) return r;
      if ('stale' in r) return new StaleMetersError();
      return Object.assign(new Error(r.error), { code: r.code });
    });
  }

  private applyDeltas(tenantId: string, deltas: RollupDelta[]) {
    const w = this.s.rollups;
    try {
      for (const d of deltas) addDelta(w, tenantId, d);
      w.flush();
    } finally {
      w.clear();
    }
  }

  async listEvents(tenantId: string, f: EventFilter, cursor: EventCursor | undefined, limit: number): Promise<StoredEvent[]> {
    const where = ['tenant_id = @tenant'];
    if (f.subject !== undefined) where.push('subject = @subject');
    if (f.type !== undefined) where.push('type = @type');
    if (f.from !== undefined) where.push('time >= @from');
    if (f.to !== undefined) where.push('time < @to');
    if (cursor) where.push('(time < @ctime OR (time = @ctime AND seq < @cseq))');
    const sql = `SELECT seq, source, event_id, type, subject, time, data, ingested_at FROM events
      WHERE ${where.join(' AND ')} ORDER BY time DESC, seq DESC LIMIT @limit`;
    return this.db
      .prepare<Record<string, unknown>, EventRow>(sql)
      .all({ tenant: tenantId, subject: f.subject, type: f.type, from: f.from, to: f.to, ctime: cursor?.time, cseq: cursor?.seq, limit })
      .map(eventFromRow);
  }

  async scanEvents(tenantId: string, scan: EventScan): Promise<StoredEvent[]> {
    const params: unknown[] = [tenantId, scan.type, scan.from, scan.to, scan.afterSeq ?? 0];
    let subjectClause = '';
    if (scan.subjects) {
      subjectClause = `AND subject IN (SELECT value FROM json_each(?))`;
      params.push(JSON.stringify(scan.subjects));
    }
    params.push(scan.limit);
    return this.db
      .prepare<unknown[], EventRow>(
        `SELECT seq, source, event_id, type, subject, time, data, ingested_at FROM events
         WHERE tenant_id = ? AND type = ? AND time >= ? AND time < ? AND seq > ? ${subjectClause}
         ORDER BY seq LIMIT ?`,
      )
      .all(...params)
      .map(eventFromRow);
  }

  async hasEvents(tenantId: string, type: string, from: number, to: number): Promise<boolean> {
    return this.s.hasEvents.get(tenantId, type, from, to) === 1;
  }

  // rollups

  async readRollups(tenantId: string, scan: RollupScan): Promise<RollupRow[]> {
    await this.settle();
    const { sql, params } = rollupQuery('rollups', 'subject, bucket, group_key, count, sum, min, max, latest_time, latest_seq, latest_value', tenantId, scan);
    return this.db
      .prepare<unknown[], PartialColumns & { subject: string; bucket: number; group_key: string }>(sql)
      .all(...params)
      .map((r) => ({ subject: r.subject, bucket: r.bucket, groupKey: r.group_key, partial: partialFromRow(r) }));
  }

  async readRollupLevels(tenantId: string, meterId: string): Promise<LevelRollupRow[]> {
    await this.settle();
    const amounts = 'count, sum, min, max, latest_time, latest_seq, latest_value';
    type Row = PartialColumns & { subject: string; bucket: number; group_key: string };
    const read = (level: LevelRollupRow['level'], sql: string) =>
      this.db
        .prepare<[string, string], Row>(sql)
        .all(tenantId, meterId)
        .map((r) => ({ level, subject: r.subject, bucket: r.bucket, groupKey: r.group_key, partial: partialFromRow(r) }));
    return [
      ...read('subject-day', `SELECT subject, bucket, '' AS group_key, ${amounts} FROM rollups_subject_day WHERE series = ${SERIES_OF_POSITIONAL}`),
      ...read('total-hour', `SELECT '' AS subject, bucket, group_key, ${amounts} FROM rollups_total WHERE series = ${SERIES_OF_POSITIONAL}`),
    ];
  }

  async readUniqueDays(tenantId: string, meterId: string) {
    await this.settle();
    return this.db
      .prepare<[string, string], { group_key: string; value: string; month: number; days: number }>(`SELECT group_key, value, month, days FROM rollup_uniques_days WHERE series = ${SERIES_OF_POSITIONAL}`)
      .all(tenantId, meterId)
      .map((r) => ({ groupKey: r.group_key, value: r.value, month: r.month, days: r.days }));
  }

  async aggregateRollups(tenantId: string, agg: RollupAggregation): Promise<WindowRollupRow[]> {
    await this.settle();
    const aggregator = (this.aggregator ??= new RollupAggregator(this.db));
    return this.checkedRead(tenantId, agg, () => aggregator.run(tenantId, agg));
  }

  async aggregateUniques(tenantId: string, agg: RollupAggregation): Promise<WindowUniqueRow[]> {
    await this.settle();
    const aggregator = (this.aggregator ??= new RollupAggregator(this.db));
    return this.checkedRead(tenantId, agg, () => aggregator.uniques(tenantId, agg));
  }

  /** A rollup read in one snapshot with the check of the caller's meters version (see RollupAggregation). */
  private checkedRead<T>(tenantId: string, agg: RollupAggregation, read: () => T): T {
    if (agg.metersVersion === undefined) return read();
    return this.db.transaction(() => {
      checkMetersVersion(agg.metersVersion, this.s.metersVersion.get(tenantId)?.meters_version);
      return read();
    })();
  }

  async readUniques(tenantId: string, scan: RollupScan): Promise<UniqueRow[]> {
    await this.settle();
    const { sql, params } = rollupQuery('rollup_uniques', 'subject, bucket, group_key, value', tenantId, scan);
    return this.db
      .prepare<unknown[], { subject: string; bucket: number; group_key: string; value: string }>(sql)
      .all(...params)
      .map((r) => ({ subject: r.subject, bucket: r.bucket, groupKey: r.group_key, value: r.value }));
  }

  private readonly locks = new Map<string, Promise<unknown>>();

  async withLock<T>(tenantId: string, key: string, fn: () => Promise<T>): Promise<T> {
    const name = `${tenantId}\u0000${key}`;
    const previous = this.locks.get(name) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(name, tail);
    tail.then(() => {
      if (this.locks.get(name) === tail) this.locks.delete(name);
    });
    return run;
  }

  private deleteRollups(tenantId: string, meterId: string) {
    for (const table of ROLLUP_TABLES) this.db.prepare(`DELETE FROM ${table} WHERE series = ${SERIES_OF_POSITIONAL}`).run(tenantId, meterId);
    // Writers that remember stored distinct-value rows forget them (see known-uniques.ts).
    this.db.prepare('UPDATE fold_state SET rollups_epoch = rollups_epoch + 1 WHERE id = 1').run();
  }

  async rebuildRollups(tenantId: string, meterId: string, backfill: DeltaFn): Promise<void> {
    const m = this.db.prepare<[string, string], { event_type: string }>('SELECT event_type FROM meters WHERE tenant_id = ? AND id = ?').get(tenantId, meterId);
    if (!m) return;
    this.db
      .transaction(() => {
        // Pending contributions are part of the rollups being replaced: fold them, then replace.
        this.foldHere();
        this.deleteRollups(tenantId, meterId);
        this.backfillSync(tenantId, m.event_type, backfill);
      })
      .immediate();
  }
}

/** Thrown inside a transaction to roll it back when a subject belongs to another customer. */
export class SubjectTaken extends Error {
  constructor(readonly subject: string) {
    super(`subject ${subject} is owned by another customer`);
  }
}

function subjectConflict<T>(run: () => T): T | { conflict: 'subject'; subject: string } {
  try {
    return run();
  } catch (e) {
    if (e instanceof SubjectTaken) return { conflict: 'subject', subject: e.subject };
    throw e;
  }
}

function rollupQuery(table: string, columns: string, tenantId: string, scan: RollupScan) {
  const params: unknown[] = [tenantId, scan.meterId, scan.fromBucket, scan.toBucket];
  let subjectClause = '';
  if (scan.subjects) {
    subjectClause = 'AND subject IN (SELECT value FROM json_each(?))';
    params.push(JSON.stringify(scan.subjects));
  }
  return {
    sql: `SELECT ${columns} FROM ${table} WHERE series = ${SERIES_OF_POSITIONAL} AND bucket >= ? AND bucket < ? ${subjectClause}`,
    params,
  };
}

// The server engine: a pg Pool, READ COMMITTED transactions, synchronous_commit=on. Several
// meterd processes may share one database: exactly-once and rollups rest on database keys and
// row locks, never on in-process state. Appends in one process share commits (group commit).
import type pg from 'pg';
import { POSTGRES_ROLLUP_TABLES } from '../levels.js';
import { checkMetersVersion, type AppendItem, type DeltaFn, type EventScan, type LevelRollupRow, type RollupAggregation, type RollupScan, type Store, type WindowRollupRow, type WindowUniqueRow } from '../store.js';
import type { Tenant } from '../../modules/tenants/tenants.types.js';
import type { ApiKeyRecord } from '../../modules/api-keys/api-keys.types.js';
import type { Meter } from '../../modules/meters/meters.types.js';
import type { Customer } from '../../modules/customers/customers.types.js';
import type { AppendStatus, EventCursor, EventFilter, StoredEvent } from '../../modules/events/events.types.js';
import type { RollupRow, UniqueRow } from '../../modules/usage/usage.types.js';
import { apiKeyFromRow, partialFromRow, type ApiKeyRow, type PartialColumns } from '../rows.js';
import { GroupCommit } from '../group-commit.js';
import { openPool, withRetry, inTransaction, isTransient, backoff, MAX_ATTEMPTS, TxFailure, type PostgresOptions } from './pool.js';
import { Partitions } from './partitions.js';
import { WHERE_SERIES } from './series.js';
import { commitAppends, unstorable, type AppendJob, type JobResult } from './append.js';
import { migrateDown, migrateUp, refuseIfNewer } from './migrate.js';
import { AdvisoryLocks } from './locks.js';
import { aggregateRollups, aggregateUniques } from './aggregate.js';
import { backfill, eventFromRow, EVENT_COLUMNS, type EventRow } from './events.js';
import * as meters from './meters.js';
import * as customers from './customers.js';
import { foldAllHere, lockFolds } from './pending.js';
import { Folds, type FoldOptions } from './folds.js';

export type { PostgresOptions } from './pool.js';

export interface PostgresStoreOptions extends PostgresOptions {
  /** When pending rollup contributions are folded into the tables (tests fold often or never). */
  fold?: FoldOptions;
}

/** How long ping waits before calling the database unreachable. */
const PING_TIMEOUT_MS = 2000;

export class PostgresStore implements Store {
  readonly engine = 'postgres' as const;
  readonly coarseLevels = ['subject-day', 'subject-week', 'total-hour'] as const;
  private readonly pool: pg.Pool;
  private readonly schema: string | undefined;
  private readonly partitions: Partitions;
  private readonly commits: GroupCommit<AppendJob, AppendStatus[]>;
  private readonly locks: AdvisoryLocks;
  private readonly folds: Folds;

  constructor(opts: PostgresStoreOptions) {
    const { pool, schema, newPool } = openPool(opts);
    this.pool = pool;
    this.locks = new AdvisoryLocks(() => newPool(opts.poolSize ?? 10));
    this.schema = schema;
    this.partitions = new Partitions(pool);
    this.folds = new Folds(pool, schema, opts.fold);
    this.commits = new GroupCommit((jobs) => this.commitJobs(jobs), 512, (job) => job.items.length);
  }

  migrate(): Promise<void> {
    return migrateUp(this.pool, this.schema);
  }

  async migrateDown(): Promise<void> {
    await refuseIfNewer(this.pool);
    // Pending contributions live in a table a migration down drops: fold them first.
    const r = await this.pool.query<{ pending: boolean }>("SELECT to_regclass('rollup_pending') IS NOT NULL AS pending");
    if (r.rows[0].pending) await withRetry(this.pool, (c) => foldAllHere(c, this.schema));
    return migrateDown(this.pool, this.schema);
  }

  /** Resolves once every contribution committed before the call is in the rollup tables (reads call it first). */
  settle(): Promise<void> {
    return this.folds.settle();
  }

  async ping(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`database did not answer within ${PING_TIMEOUT_MS} ms`)), PING_TIMEOUT_MS);
    });
    try {
      await Promise.race([this.pool.query('SELECT 1'), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private closing?: Promise<void>;

  /** Waits for queued appends, then ends the pools; later calls return the same promise. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.commits.drain();
      await this.folds.close();
      await this.locks.close();
      await this.pool.end();
    })();
    return this.closing;
  }

  // tenants

  async createTenant(t: Tenant): Promise<boolean> {
    const r = await this.pool.query('INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [t.id, t.name, t.createdAt]);
    return r.rowCount === 1;
  }

  async getTenant(id: string): Promise<Tenant | undefined> {
    const r = await this.pool.query<TenantRow>('SELECT id, name, created_at FROM tenants WHERE id = $1', [id]);
    return r.rows[0] && tenantFromRow(r.rows[0]);
  }

  async listTenants(): Promise<Tenant[]> {
    const r = await this.pool.query<TenantRow>('SELECT id, name, created_at FROM tenants ORDER BY id');
    return r.rows.map(tenantFromRow);
  }

  // api keys

  async insertApiKey(k: ApiKeyRecord): Promise<boolean> {
    const r = await this.pool.query(
      'INSERT INTO api_keys (id, tenant_id, name, secret_hash, scopes, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING',
      [k.id, k.tenantId, k.name, k.secretHash, k.scopes.join(','), k.createdAt, k.revokedAt],
    );
    return r.rowCount === 1;
  }

  async getApiKey(id: string): Promise<ApiKeyRecord | undefined> {
    const r = await this.pool.query<ApiKeyRow>('SELECT * FROM api_keys WHERE id = $1', [id]);
    return r.rows[0] && apiKeyFromRow(r.rows[0]);
  }

  async listApiKeys(tenantId: string): Promise<ApiKeyRecord[]> {
    const r = await this.pool.query<ApiKeyRow>('SELECT * FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id', [tenantId]);
    return r.rows.map(apiKeyFromRow);
  }

  async revokeApiKey(tenantId: string, id: string, at: number): Promise<boolean> {
    const r = await this.pool.query('UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE tenant_id = $2 AND id = $3', [at, tenantId, id]);
    return r.rowCount === 1;
  }

  // meters and customers (their queries live in meters.ts and customers.ts)

  createMeter(meter: Meter, fn: DeltaFn): Promise<'created' | 'exists'> {
    return meters.createMeter(this.pool, meter, fn);
  }

  getMeter(tenantId: string, slug: string): Promise<Meter | undefined> {
    return meters.getMeter(this.pool, tenantId, slug);
  }

  listMeters(tenantId: string): Promise<{ version: number; meters: Meter[] }> {
    return meters.listMeters(this.pool, tenantId);
  }

  deleteMeter(tenantId: string, slug: string): Promise<boolean> {
    return meters.deleteMeter(this.pool, this.schema, tenantId, slug);
  }

  createCustomer(c: Customer) {
    return customers.createCustomer(this.pool, c);
  }

  getCustomer(tenantId: string, key: string): Promise<Customer | undefined> {
    return customers.getCustomer(this.pool, tenantId, key);
  }

  listCustomers(tenantId: string, afterKey: string | undefined, limit: number): Promise<Customer[]> {
    return customers.listCustomers(this.pool, tenantId, afterKey, limit);
  }

  updateCustomer(c: Customer) {
    return customers.updateCustomer(this.pool, c);
  }

  customersOfSubjects(tenantId: string, subjects?: string[]): Promise<Map<string, string>> {
    return customers.customersOfSubjects(this.pool, tenantId, subjects);
  }

  // events

  /** Events waiting for or in a commit in this process (load shedding reads it). */
  backlog(): number {
    return this.commits.weight;
  }

  async unfoldedEvents(): Promise<number> {
    const r = await this.pool.query<{ n: string }>({ name: 'meterd-unfolded', text: 'SELECT coalesce(sum(events), 0)::bigint AS n FROM rollup_pending' });
    return Number(r.rows[0].n);
  }

  /**
   * Folds update the rollup rows and delete pending rows all the time; without vacuum the dead row
   * versions stay, and reads wade through them (the bench machine runs with autovacuum off).
   */
  async warnings(): Promise<string[]> {
    const r = await this.pool.query<{ setting: string }>("SELECT setting FROM pg_settings WHERE name = 'autovacuum'");
    return r.rows[0]?.setting === 'off'
      ? ["PostgreSQL runs with autovacuum off: meterd's rollup and pending tables keep every dead row version and usage queries slow down over time; turn autovacuum on, or VACUUM this schema regularly"]
      : [];
  }

  appendEvents(tenantId: string, metersVersion: number, items: AppendItem[]): Promise<AppendStatus[]> {
    return this.commits.submit({ tenantId, metersVersion, items });
  }

  /**
   * One transaction for every append that queued while the last one ran, retried on transient
   * errors. If the connection died during COMMIT the outcome is unknown; the retry is still safe
   * (dedupe makes it idempotent) and an event the lost attempt accepted, found again with our
   * own hash, is reported 'accepted', not 'duplicate'.
   */
  private async commitJobs(all: AppendJob[]): Promise<JobResult[]> {
    const results: JobResult[] = all.map((j) => unstorable(j) ?? []);
    const jobs = all.filter((_, i) => !(results[i] instanceof Error));
    const slots = all.map((_, i) => i).filter((i) => !(results[i] instanceof Error));
    if (jobs.length === 0) return results;
    await this.partitions.ensure(jobs.flatMap((j) => j.items.map((it) => it.event.time)));

    const maybeAccepted = new Set<string>();
    for (let attempt = 0; ; attempt++) {
      let attemptResult: JobResult[] | undefined;
      try {
        const out = await inTransaction(this.pool, async (c) => (attemptResult = await commitAppends(c, jobs, Date.now())));
        let accepted = 0;
        out.forEach((r, ji) => {
          if (!(r instanceof Error)) {
            r.forEach((s, ii) => {
              if (s === 'duplicate' && maybeAccepted.has(`${ji}:${ii}`)) r[ii] = 'accepted';
              if (r[ii] === 'accepted') accepted++;
            });
          }
          results[slots[ji]] = r;
        });
        // Backpressure (see Folds.committed); a failed fold leaves the rows pending, never fails the commit.
        await this.folds.committed(accepted).catch(() => {});
        return results;
      } catch (e) {
        const f = e as TxFailure;
        if (!(f instanceof TxFailure) || !isTransient(f.cause) || attempt + 1 >= MAX_ATTEMPTS) throw f instanceof TxFailure ? f.cause : f;
        if (f.commitUnknown && attemptResult) {
          attemptResult.forEach((r, ji) => !(r instanceof Error) && r.forEach((s, ii) => s === 'accepted' && maybeAccepted.add(`${ji}:${ii}`)));
        }
        await backoff(attempt);
      }
    }
  }

  async listEvents(tenantId: string, f: EventFilter, cursor: EventCursor | undefined, limit: number): Promise<StoredEvent[]> {
    const params: unknown[] = [tenantId];
    const where = ['tenant_id = $1'];
    const add = (sql: string, v: unknown) => {
      params.push(v);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (f.subject !== undefined) add('subject = ?', f.subject);
    if (f.type !== undefined) add('type = ?', f.type);
    if (f.from !== undefined) add('time >= ?', f.from);
    if (f.to !== undefined) add('time < ?', f.to);
    if (cursor) {
      params.push(cursor.time, cursor.seq);
      where.push(`(time, seq) < ($${params.length - 1}, $${params.length})`);
    }
    params.push(limit);
    const r = await this.pool.query<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM events WHERE ${where.join(' AND ')} ORDER BY time DESC, seq DESC LIMIT $${params.length}`,
      params,
    );
    return r.rows.map(eventFromRow);
  }

  async scanEvents(tenantId: string, scan: EventScan): Promise<StoredEvent[]> {
    const r = await this.pool.query<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM events
       WHERE tenant_id = $1 AND type = $2 AND time >= $3 AND time < $4 AND seq > $5
         AND ($6::text[] IS NULL OR subject = ANY($6::text[]))
       ORDER BY seq LIMIT $7`,
      [tenantId, scan.type, scan.from, scan.to, scan.afterSeq ?? 0, scan.subjects ?? null, scan.limit],
    );
    return r.rows.map(eventFromRow);
  }

  async hasEvents(tenantId: string, type: string, from: number, to: number): Promise<boolean> {
    const r = await this.pool.query<{ any: boolean }>({
      name: 'meterd-has-events',
      text: 'SELECT EXISTS (SELECT 1 FROM events WHERE tenant_id = $1 AND type = $2 AND time >= $3 AND time < $4) AS any',
      values: [tenantId, type, from, to],
    });
    return r.rows[0].any;
  }

  // rollups

  async readRollups(tenantId: string, scan: RollupScan): Promise<RollupRow[]> {
    await this.settle();
    const r = await this.pool.query<PartialColumns & { subject: string; bucket: string; group_key: string }>(
      `SELECT subject, bucket, group_key, count, sum::text AS sum, min::text AS min, max::text AS max,
              latest_time, latest_seq, latest_value::text AS latest_value
       FROM rollups ${rollupWhere}`,
      rollupParams(tenantId, scan),
    );
    return r.rows.map((x) => ({ subject: x.subject, bucket: Number(x.bucket), groupKey: x.group_key, partial: partialFromRow(x) }));
  }

  async readRollupLevels(tenantId: string, meterId: string): Promise<LevelRollupRow[]> {
    await this.settle();
    const amounts = 'count, sum::text AS sum, min::text AS min, max::text AS max, latest_time, latest_seq, latest_value::text AS latest_value';
    type Row = PartialColumns & { level: LevelRollupRow['level']; subject: string; bucket: string; group_key: string };
    const r = await this.pool.query<Row>(
      `SELECT 'subject-day' AS level, subject, bucket, '' AS group_key, ${amounts} FROM rollups_subject_day ${WHERE_SERIES}
       UNION ALL
       SELECT 'subject-week', subject, bucket, '', ${amounts} FROM rollups_subject_week ${WHERE_SERIES}
       UNION ALL
       SELECT 'total-hour', '', bucket, group_key, ${amounts} FROM rollups_total ${WHERE_SERIES}`,
      [tenantId, meterId],
    );
    return r.rows.map((x) => ({ level: x.level, subject: x.subject, bucket: Number(x.bucket), groupKey: x.group_key, partial: partialFromRow(x) }));
  }

  async readUniqueDays(tenantId: string, meterId: string) {
    await this.settle();
    const r = await this.pool.query<{ group_key: string; value: string; month: string; days: number }>(
      `SELECT group_key, value, month, days FROM rollup_uniques_days ${WHERE_SERIES}`,
      [tenantId, meterId],
    );
    return r.rows.map((x) => ({ groupKey: x.group_key, value: x.value, month: Number(x.month), days: x.days }));
  }

  async aggregateRollups(tenantId: string, agg: RollupAggregation): Promise<WindowRollupRow[]> {
    return this.readFolded(tenantId, agg, (check) => aggregateRollups(this.pool, tenantId, agg, check));
  }

  async aggregateUniques(tenantId: string, agg: RollupAggregation): Promise<WindowUniqueRow[]> {
    return this.readFolded(tenantId, agg, (check) => aggregateUniques(this.pool, tenantId, agg, check));
  }

  /**
   * A usage read in one round trip when nothing is pending and it finds rows (the read checks both
   * the pending rows and the meters version in its own statement, see aggregate.ts); otherwise fold,
   * read again without the check, and check the meters version on its own. The version only grows,
   * so the same one after the read as when the caller read its meter means none changed in between.
   */
  private async readFolded<T>(tenantId: string, agg: RollupAggregation, read: (checkPending: boolean) => Promise<T | undefined>): Promise<T> {
    const rows = await read(true);
    if (rows !== undefined) return rows;
    await this.settle();
    const again = (await read(false))!;
    if (agg.metersVersion !== undefined) {
      const v = await this.pool.query<{ v: string }>({ name: 'meterd-meters-version', text: 'SELECT meters_version AS v FROM tenants WHERE id = $1', values: [tenantId] });
      checkMetersVersion(agg.metersVersion, v.rows[0]?.v);
    }
    return again;
  }

  async readUniques(tenantId: string, scan: RollupScan): Promise<UniqueRow[]> {
    await this.settle();
    const r = await this.pool.query<{ subject: string; bucket: string; group_key: string; value: string }>(
      `SELECT subject, bucket, group_key, value FROM rollup_uniques ${rollupWhere}`,
      rollupParams(tenantId, scan),
    );
    return r.rows.map((x) => ({ subject: x.subject, bucket: Number(x.bucket), groupKey: x.group_key, value: x.value }));
  }

  /** Advisory lock named (tenant, key) across every process on this database; see locks.ts. */
  withLock<T>(tenantId: string, key: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(tenantId, key, fn);
  }

  async rebuildRollups(tenantId: string, meterId: string, fn: DeltaFn): Promise<void> {
    await withRetry(this.pool, async (c) => {
      // The fold lock first (folds never wait for a tenant row), then this tenant's appends, which
      // take its row FOR SHARE, wait until the rebuilt rollups commit. What they left pending is
      // part of the rollups being replaced: fold it, then replace.
      await lockFolds(c, this.schema);
      await c.query('SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE', [tenantId]);
      await foldAllHere(c, this.schema);
      const m = await c.query<{ event_type: string }>('SELECT event_type FROM meters WHERE tenant_id = $1 AND id = $2', [tenantId, meterId]);
      if (m.rows.length === 0) return;
      for (const table of POSTGRES_ROLLUP_TABLES) await c.query(`DELETE FROM ${table} ${WHERE_SERIES}`, [tenantId, meterId]);
      await backfill(c, tenantId, m.rows[0].event_type, fn);
    });
  }

  /** The pool, for tests and tools that need raw SQL (never used by services). */
  get rawPool(): pg.Pool {
    return this.pool;
  }
}

interface TenantRow {
  id: string;
  name: string;
  created_at: string;
}

const tenantFromRow = (r: TenantRow): Tenant => ({ id: r.id, name: r.name, createdAt: Number(r.created_at) });

const rollupWhere = `${WHERE_SERIES} AND bucket >= $3 AND bucket < $4
  AND ($5::text[] IS NULL OR subject = ANY($5::text[]))`;

const rollupParams = (tenantId: string, s: RollupScan) => [tenantId, s.meterId, s.fromBucket, s.toBucket, s.subjects ?? null];

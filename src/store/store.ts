// The storage interface, shaped like the domain. One implementation per engine
// (store/sqlite, store/postgres), picked in store/index.ts, and one conformance suite
// (test/conformance) that every engine passes.
import type { Tenant } from '../modules/tenants/tenants.types.js';
import type { ApiKeyRecord } from '../modules/api-keys/api-keys.types.js';
import type { Aggregation, Meter } from '../modules/meters/meters.types.js';
import type { Customer } from '../modules/customers/customers.types.js';
import type {
  AppendStatus,
  EventCursor,
  EventFilter,
  NewEvent,
  StoredEvent,
} from '../modules/events/events.types.js';
import type { Partial, RollupDelta, RollupRow, UniqueRow } from '../modules/usage/usage.types.js';

export type Engine = 'sqlite' | 'postgres';

/**
 * The exactly-once key of an event on every engine (SQLite stores it, PostgreSQL its digest): NUL
 * cannot occur in a source or an id (validation refuses it), so the joined text names one triple.
 */
export const eventKey = (tenantId: string, source: string, id: string) => `${tenantId}\u0000${source}\u0000${id}`;

/** An event to append with the rollup contributions it makes if it is newly accepted. */
export interface AppendItem {
  event: NewEvent;
  deltas: RollupDelta[];
}

/** Computes an already stored event's contributions to one meter (backfill, reconcile). */
export type DeltaFn = (event: StoredEvent) => RollupDelta[];

/**
 * Thrown by appendEvents when the meters changed since the caller computed its deltas, and by
 * rollup reads given a metersVersion that is no longer current.
 */
export class StaleMetersError extends Error {
  constructor() {
    super('meters changed; recompute rollup deltas');
  }
}

/** A read that saw another meters version than the caller's meter came from (no tenant row: 0) throws StaleMetersError. */
export function checkMetersVersion(expected: number | undefined, seen: number | string | null | undefined): void {
  if (expected !== undefined && Number(seen ?? 0) !== expected) throw new StaleMetersError();
}

export interface RollupScan {
  meterId: string;
  /** Inclusive first and exclusive last UTC hour bucket. */
  fromBucket: number;
  toBucket: number;
  /** Only these subjects (undefined: all). */
  subjects?: string[];
}

/** Rollups of a bucket range merged per window in the database (usage queries over whole hours). */
export interface RollupAggregation extends RollupScan {
  /** Sorted window starts: a bucket belongs to the last window starting at or before it; earlier buckets are left out. */
  windowStarts: number[];
  /** Keep subjects apart; otherwise every row has subject ''. */
  bySubject: boolean;
  /** false: the caller needs no dimension, so groups may be merged and every row has group key ''. */
  byGroup?: boolean;
  /**
   * Only what this aggregation reads is computed (COUNT: count; SUM, AVG: count and sum; MIN, MAX,
   * LATEST: count and theirs); the other parts stay empty as in emptyPartial. Undefined: all parts.
   */
  aggregation?: Aggregation;
  /**
   * The meters version the caller's meter definition came from (a cached one): the read throws
   * StaleMetersError when the tenant's meters changed since, checked in the read's own statement
   * where the engine can, so a cached meter costs a usage query no round trip of its own.
   */
  metersVersion?: number;
}

/** Which parts of a partial an aggregation reads (count is always there). */
export function partsOf(aggregation: Aggregation | undefined) {
  const all = aggregation === undefined;
  return {
    sum: all || aggregation === 'SUM' || aggregation === 'AVG',
    min: all || aggregation === 'MIN',
    max: all || aggregation === 'MAX',
    latest: all || aggregation === 'LATEST',
  };
}
export type Parts = ReturnType<typeof partsOf>;

/** A coarser rollup level (../levels.ts): per subject and UTC day or week, groups merged; per hour, subjects merged. */
export type CoarseLevel = 'subject-day' | 'subject-week' | 'total-hour';

export interface LevelRollupRow extends RollupRow {
  level: CoarseLevel;
}

/** One merged partial per (window index, subject or '', group key). */
export interface WindowRollupRow {
  window: number;
  subject: string;
  groupKey: string;
  partial: Partial;
}

/** One distinct value per (window index, subject or '', group key, value). */
export interface WindowUniqueRow {
  window: number;
  subject: string;
  groupKey: string;
  value: string;
}

export interface EventScan {
  type: string;
  from: number;
  to: number;
  subjects?: string[];
  /** Resume after this sequence number (exclusive). */
  afterSeq?: number;
  limit: number;
}

export interface Store {
  readonly engine: Engine;
  /** Events waiting for or in a commit in this process (load shedding reads it). */
  backlog?(): number;
  /** Stored events whose rollup contributions wait to be folded, by every process: what the next usage query folds first. */
  unfoldedEvents(): Promise<number>;
  /** What an operator should fix in the database's configuration, said once at start (serve logs each as a warning). */
  warnings(): Promise<string[]>;

  migrate(): Promise<void>;
  /** Reverts every migration (used by the migration test). */
  migrateDown(): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;

  // tenants
  createTenant(tenant: Tenant): Promise<boolean>;
  getTenant(id: string): Promise<Tenant | undefined>;
  listTenants(): Promise<Tenant[]>;

  // api keys
  /** False when a key with this id exists already (nothing is written): instances seeding one key at once. */
  insertApiKey(key: ApiKeyRecord): Promise<boolean>;
  getApiKey(id: string): Promise<ApiKeyRecord | undefined>;
  listApiKeys(tenantId: string): Promise<ApiKeyRecord[]>;
  revokeApiKey(tenantId: string, id: string, at: number): Promise<boolean>;

  // meters: creating or deleting one changes the tenant's meters version
  /** Inserts the meter and backfills its rollups from stored events in one transaction. */
  createMeter(meter: Meter, backfill: DeltaFn): Promise<'created' | 'exists'>;
  getMeter(tenantId: string, slug: string): Promise<Meter | undefined>;
  listMeters(tenantId: string): Promise<{ version: number; meters: Meter[] }>;
  deleteMeter(tenantId: string, slug: string): Promise<boolean>;

  // customers
  createCustomer(customer: Customer): Promise<'created' | { conflict: 'key' | 'subject'; subject?: string }>;
  getCustomer(tenantId: string, key: string): Promise<Customer | undefined>;
  listCustomers(tenantId: string, afterKey: string | undefined, limit: number): Promise<Customer[]>;
  updateCustomer(customer: Customer): Promise<'updated' | 'missing' | { conflict: 'subject'; subject: string }>;
  /** subject -> customer key, for the given subjects (all owned subjects when undefined). */
  customersOfSubjects(tenantId: string, subjects?: string[]): Promise<Map<string, string>>;

  // events
  /**
   * Appends events exactly once per (tenant, source, id), durably: the promise resolves only
   * after the commit is on disk. Deltas of newly accepted events are applied in the same
   * transaction. Throws StaleMetersError when `metersVersion` is no longer current.
   */
  appendEvents(tenantId: string, metersVersion: number, items: AppendItem[]): Promise<AppendStatus[]>;
  listEvents(tenantId: string, filter: EventFilter, cursor: EventCursor | undefined, limit: number): Promise<StoredEvent[]>;
  scanEvents(tenantId: string, scan: EventScan): Promise<StoredEvent[]>;
  /** Whether any stored event of this type has a time in [from, to). */
  hasEvents(tenantId: string, type: string, from: number, to: number): Promise<boolean>;

  // rollups
  readRollups(tenantId: string, scan: RollupScan): Promise<RollupRow[]>;
  /** The coarser levels this engine keeps (the week level is PostgreSQL's alone). */
  readonly coarseLevels: readonly CoarseLevel[];
  /**
   * Every row of the coarser rollup levels (../levels.ts: per subject and UTC day or week with groups
   * merged, group key ''; per hour and group with subjects merged, subject ''), so reconcile can check
   * them against the events too.
   */
  readRollupLevels(tenantId: string, meterId: string): Promise<LevelRollupRow[]>;
  /** Distinct values over all subjects: per (group, value, UTC month) the bits of the days seen (bit 0: the 1st). */
  readUniqueDays(tenantId: string, meterId: string): Promise<Array<{ groupKey: string; value: string; month: number; days: number }>>;
  readUniques(tenantId: string, scan: RollupScan): Promise<UniqueRow[]>;
  /** The rollups readRollups returns, merged exactly per window (and subject, if asked) and group key. */
  aggregateRollups(tenantId: string, agg: RollupAggregation): Promise<WindowRollupRow[]>;
  /** The distinct values readUniques returns, per window (and subject, if asked) and group key. */
  aggregateUniques(tenantId: string, agg: RollupAggregation): Promise<WindowUniqueRow[]>;
  /**
   * Resolves once every rollup contribution committed before the call is folded into the rollup
   * tables (commits store them as pending rows; see levels.ts). Every rollup read does this first;
   * callers need it only to hand a quiet database on (after a bulk load, before a benchmark).
   */
  settle(): Promise<void>;
  /**
   * Runs fn while holding a lock named `key` in this tenant, across every process on this
   * database (an advisory lock on PostgreSQL, in-process on SQLite, which has one writer process).
   * For read-then-append rules such as "debit only if the balance covers it".
   */
  withLock<T>(tenantId: string, key: string, fn: () => Promise<T>): Promise<T>;

  /** Replaces a meter's rollups with ones recomputed from raw events (meterd reconcile --fix). */
  rebuildRollups(tenantId: string, meterId: string, backfill: DeltaFn): Promise<void>;
}

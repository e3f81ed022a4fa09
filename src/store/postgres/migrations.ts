// PostgreSQL schema, numbered and append-only. Text compared or ordered by the API is COLLATE "C"
// so paging order is byte order, as in SQLite, whatever the database's locale.
import type { Migration } from '../migrations.js';
import { WEEK_OF_BUCKET } from './bucket-starts.js';

const AMOUNTS = `count BIGINT NOT NULL, sum NUMERIC NOT NULL, min NUMERIC, max NUMERIC,
        latest_time BIGINT NOT NULL, latest_seq BIGINT NOT NULL, latest_value NUMERIC`;
const LATEST = 'ORDER BY latest_time DESC, latest_seq DESC';
/** Hourly rollup rows merged: the latest is the value at the greatest (time, seq). */
const MERGED = `sum(count), sum(sum), min(min), max(max), (array_agg(latest_time ${LATEST}))[1], (array_agg(latest_seq ${LATEST}))[1], (array_agg(latest_value ${LATEST}))[1]`;

/** Event keys as text (versions 1 to 5; version 6 keeps digests instead, and its down makes these again). */
const TEXT_EVENT_KEY_COLUMNS = `tenant_id TEXT COLLATE "C" NOT NULL, source TEXT COLLATE "C" NOT NULL, event_id TEXT COLLATE "C" NOT NULL,
        hash TEXT NOT NULL, seq BIGINT NOT NULL, time BIGINT NOT NULL`;

/** A rollup table's columns after its meter (tenant and meter id, or series), its keys and fill factor. */
interface SeriesTable {
  table: string;
  columns: string;
  /** Primary key columns after the meter, and what the key INCLUDEs. */
  key: string;
  include?: string;
  /** The per-subject index's columns after the meter. */
  subjectIndex?: string;
  fillfactor?: number;
}

const KEY_TEXT = 'COLLATE "C" NOT NULL';
const SERIES_TABLES: SeriesTable[] = [
  { table: 'rollups', columns: `subject TEXT ${KEY_TEXT}, bucket BIGINT NOT NULL, group_key TEXT ${KEY_TEXT}, ${AMOUNTS}`, key: 'bucket, subject, group_key', subjectIndex: 'subject, bucket', fillfactor: 70 },
  { table: 'rollup_uniques', columns: `subject TEXT ${KEY_TEXT}, bucket BIGINT NOT NULL, group_key TEXT ${KEY_TEXT}, value TEXT ${KEY_TEXT}`, key: 'bucket, subject, group_key, value', subjectIndex: 'subject, bucket' },
  { table: 'rollups_subject_day', columns: `subject TEXT ${KEY_TEXT}, bucket BIGINT NOT NULL, ${AMOUNTS}`, key: 'bucket, subject', subjectIndex: 'subject, bucket', fillfactor: 70 },
  { table: 'rollups_subject_week', columns: `subject TEXT ${KEY_TEXT}, bucket BIGINT NOT NULL, ${AMOUNTS}`, key: 'bucket, subject', subjectIndex: 'subject, bucket', fillfactor: 70 },
  { table: 'rollups_total', columns: `bucket BIGINT NOT NULL, group_key TEXT ${KEY_TEXT}, ${AMOUNTS}`, key: 'bucket, group_key', fillfactor: 70 },
  { table: 'rollup_uniques_days', columns: `month BIGINT NOT NULL, group_key TEXT ${KEY_TEXT}, value TEXT ${KEY_TEXT}, days INTEGER NOT NULL`, key: 'month, value, group_key', include: 'days', fillfactor: 70 },
];

export const postgresMigrations: Migration[] = [
  {
    version: 1,
    name: 'core',
    up: `
      CREATE TABLE tenants (
        id TEXT COLLATE "C" PRIMARY KEY,
        name TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        meters_version BIGINT NOT NULL DEFAULT 0
      );
      CREATE TABLE api_keys (
        id TEXT COLLATE "C" PRIMARY KEY,
        tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        scopes TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        revoked_at BIGINT
      );
      CREATE INDEX api_keys_tenant ON api_keys (tenant_id);
      CREATE TABLE meters (
        id TEXT COLLATE "C" PRIMARY KEY,
        tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
        slug TEXT COLLATE "C" NOT NULL,
        event_type TEXT COLLATE "C" NOT NULL,
        aggregation TEXT NOT NULL,
        value_property TEXT,
        group_by TEXT NOT NULL,
        description TEXT,
        created_at BIGINT NOT NULL,
        UNIQUE (tenant_id, slug)
      );
      CREATE TABLE customers (
        id TEXT COLLATE "C" PRIMARY KEY,
        tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
        key TEXT COLLATE "C" NOT NULL,
        name TEXT NOT NULL,
        metadata TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        UNIQUE (tenant_id, key)
      );
      CREATE TABLE customer_subjects (
        tenant_id TEXT COLLATE "C" NOT NULL,
        subject TEXT COLLATE "C" NOT NULL,
        customer_id TEXT COLLATE "C" NOT NULL REFERENCES customers(id),
        PRIMARY KEY (tenant_id, subject)
      );
      CREATE INDEX customer_subjects_customer ON customer_subjects (customer_id);

      -- seq is allocated by the writer in arrival order (see postgres-store appendEvents).
      CREATE SEQUENCE event_seq AS BIGINT;
      -- Exactly-once: the dedupe key lives in one non-partitioned table, so it is unique across
      -- all time partitions of events (a partitioned UNIQUE would have to include time).
      CREATE TABLE event_keys (${TEXT_EVENT_KEY_COLUMNS}, PRIMARY KEY (tenant_id, source, event_id));
      CREATE TABLE events (
        seq BIGINT NOT NULL,
        tenant_id TEXT COLLATE "C" NOT NULL,
        source TEXT COLLATE "C" NOT NULL,
        event_id TEXT COLLATE "C" NOT NULL,
        type TEXT COLLATE "C",
        subject TEXT COLLATE "C",
        time BIGINT NOT NULL,
        data TEXT,
        ingested_at BIGINT NOT NULL
      ) PARTITION BY RANGE (time);
      CREATE TABLE events_default PARTITION OF events DEFAULT;
      CREATE INDEX events_time ON events (tenant_id, time, seq);
      CREATE INDEX events_type_time ON events (tenant_id, type, time);
      CREATE INDEX events_type_seq ON events (tenant_id, type, seq);
      CREATE INDEX events_subject_time ON events (tenant_id, subject, time, seq);

      CREATE TABLE rollups (
        tenant_id TEXT COLLATE "C" NOT NULL,
        meter_id TEXT COLLATE "C" NOT NULL,
        subject TEXT COLLATE "C" NOT NULL,
        bucket BIGINT NOT NULL,
        group_key TEXT COLLATE "C" NOT NULL,
        count BIGINT NOT NULL,
        sum NUMERIC NOT NULL,
        min NUMERIC,
        max NUMERIC,
        latest_time BIGINT NOT NULL,
        latest_seq BIGINT NOT NULL,
        latest_value NUMERIC,
        PRIMARY KEY (tenant_id, meter_id, subject, bucket, group_key)
      );
      CREATE INDEX rollups_bucket ON rollups (tenant_id, meter_id, bucket);
      CREATE TABLE rollup_uniques (
        tenant_id TEXT COLLATE "C" NOT NULL,
        meter_id TEXT COLLATE "C" NOT NULL,
        subject TEXT COLLATE "C" NOT NULL,
        bucket BIGINT NOT NULL,
        group_key TEXT COLLATE "C" NOT NULL,
        value TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (tenant_id, meter_id, subject, bucket, group_key, value)
      );
      CREATE INDEX rollup_uniques_bucket ON rollup_uniques (tenant_id, meter_id, bucket);
    `,
    down: `
      DROP TABLE rollup_uniques;
      DROP TABLE rollups;
      DROP TABLE events;
      DROP TABLE event_keys;
      DROP SEQUENCE event_seq;
      DROP TABLE customer_subjects;
      DROP TABLE customers;
      DROP TABLE meters;
      DROP TABLE api_keys;
      DROP TABLE tenants;
    `,
  },
  {
    version: 2,
    name: 'day and total rollup levels, distinct values per month',
    // See src/store/levels.ts. The new levels are filled from the hourly rollups they summarise.
    up: `
      CREATE TABLE rollups_subject_day (
        tenant_id TEXT COLLATE "C" NOT NULL, meter_id TEXT COLLATE "C" NOT NULL, subject TEXT COLLATE "C" NOT NULL, bucket BIGINT NOT NULL,
        ${AMOUNTS},
        PRIMARY KEY (tenant_id, meter_id, subject, bucket)
      );
      CREATE TABLE rollups_total (
        tenant_id TEXT COLLATE "C" NOT NULL, meter_id TEXT COLLATE "C" NOT NULL, bucket BIGINT NOT NULL, group_key TEXT COLLATE "C" NOT NULL,
        ${AMOUNTS},
        PRIMARY KEY (tenant_id, meter_id, bucket, group_key)
      );
      CREATE TABLE rollup_uniques_days (
        tenant_id TEXT COLLATE "C" NOT NULL, meter_id TEXT COLLATE "C" NOT NULL, month BIGINT NOT NULL, group_key TEXT COLLATE "C" NOT NULL,
        value TEXT COLLATE "C" NOT NULL, days INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, meter_id, month, value, group_key)
      );
      INSERT INTO rollups_subject_day
        SELECT tenant_id, meter_id, subject, floor(bucket / 86400000.0)::bigint * 86400000, ${MERGED} FROM rollups GROUP BY 1, 2, 3, 4;
      INSERT INTO rollups_total
        SELECT tenant_id, meter_id, bucket, group_key, ${MERGED} FROM rollups GROUP BY 1, 2, 3, 4;
      INSERT INTO rollup_uniques_days
        SELECT tenant_id, meter_id, (extract(epoch FROM date_trunc('month', to_timestamp(bucket / 1000.0) AT TIME ZONE 'UTC')) * 1000)::bigint, group_key, value,
          bit_or(1 << (extract(day FROM to_timestamp(bucket / 1000.0) AT TIME ZONE 'UTC')::int - 1))
        FROM rollup_uniques GROUP BY 1, 2, 3, 4, 5;
    `,
    down: `
      DROP TABLE rollup_uniques_days;
      DROP TABLE rollups_total;
      DROP TABLE rollups_subject_day;
    `,
  },
  {
    version: 3,
    name: 'rollup keys bucket first',
    // As on SQLite (its migration 6): a commit's upserts of the current hour and day probe neighbouring
    // leaves of the key index instead of one leaf per subject; per-subject reads use a (subject, bucket) index.
    up: rekey('bucket, subject', 'subject, bucket'),
    down: rekey('subject, bucket', 'bucket, subject'),
  },
  {
    version: 4,
    name: 'pending rollup contributions',
    // See pending.ts: each commit stores its events' contributions here, folds move them into the
    // rollup tables. PostgresStore.migrateDown folds what is pending before this table is dropped.
    up: `
      CREATE TABLE rollup_pending (
        id BIGSERIAL PRIMARY KEY,
        tenant_id TEXT COLLATE "C" NOT NULL,
        events INTEGER NOT NULL,
        body TEXT NOT NULL
      );
    `,
    down: 'DROP TABLE rollup_pending;',
  },
  {
    version: 5,
    name: 'room on rollup pages for updates in place',
    // A fold updates most of the rows it touches. With free room on the page PostgreSQL updates a row
    // in place (a HOT update: no new entries in the table's two indexes); full pages force a new
    // version elsewhere and an entry in every index. Applies to pages written from now on.
    up: ['rollups', 'rollups_subject_day', 'rollups_total', 'rollup_uniques_days'].map((t) => `ALTER TABLE ${t} SET (fillfactor = 70);`).join('\n'),
    down: ['rollups', 'rollups_subject_day', 'rollups_total', 'rollup_uniques_days'].map((t) => `ALTER TABLE ${t} RESET (fillfactor);`).join('\n'),
  },
  {
    version: 6,
    name: 'event keys as digests',
    // See keyDigest in append.ts: a 16-byte key instead of (tenant, source, id) text makes the key
    // index about a quarter of the size, and so writes a quarter of the full-page images under
    // random ids. The source and id stay in events; time locates the stored event for the check of
    // a repeat. The index is built after the copy, in key order, not row by row.
    up: `
      CREATE TABLE event_ids (key UUID NOT NULL, seq BIGINT NOT NULL, time BIGINT NOT NULL, hash TEXT NOT NULL);
      INSERT INTO event_ids (key, seq, time, hash)
        SELECT encode(substring(sha256(convert_to(tenant_id, 'UTF8') || '\\x00'::bytea || convert_to(source, 'UTF8') || '\\x00'::bytea || convert_to(event_id, 'UTF8')) FROM 1 FOR 16), 'hex')::uuid,
          seq, time, hash
        FROM event_keys;
      ALTER TABLE event_ids ADD PRIMARY KEY (key);
      DROP TABLE event_keys;
    `,
    down: `
      CREATE TABLE event_keys (${TEXT_EVENT_KEY_COLUMNS});
      INSERT INTO event_keys (tenant_id, source, event_id, hash, seq, time)
        SELECT e.tenant_id, e.source, e.event_id, k.hash, k.seq, k.time FROM event_ids k JOIN events e ON e.time = k.time AND e.seq = k.seq;
      ALTER TABLE event_keys ADD PRIMARY KEY (tenant_id, source, event_id);
      DROP TABLE event_ids;
    `,
  },
  {
    version: 7,
    name: 'per-subject week rollups',
    // See SUBJECT_WEEK_LEVEL in src/store/levels.ts. Keyed like the day level (bucket first, a
    // per-subject index), filled from it: what is still pending is folded into both later.
    up: `
      CREATE TABLE rollups_subject_week (
        tenant_id TEXT COLLATE "C" NOT NULL, meter_id TEXT COLLATE "C" NOT NULL, subject TEXT COLLATE "C" NOT NULL, bucket BIGINT NOT NULL,
        ${AMOUNTS},
        PRIMARY KEY (tenant_id, meter_id, bucket, subject)
      ) WITH (fillfactor = 70);
      INSERT INTO rollups_subject_week
        SELECT tenant_id, meter_id, subject, ${WEEK_OF_BUCKET}, ${MERGED} FROM rollups_subject_day GROUP BY 1, 2, 3, 4;
      CREATE INDEX rollups_subject_week_subject ON rollups_subject_week (tenant_id, meter_id, subject, bucket);
    `,
    down: 'DROP TABLE rollups_subject_week;',
  },
  {
    version: 8,
    name: 'when pending contributions were stored',
    // A background fold is due when the oldest pending row, whichever instance stored it, is old
    // enough (see Folds.due): each instance timing its own commits folded twice as often with two.
    // Rows already pending get the migration's time.
    up: 'ALTER TABLE rollup_pending ADD COLUMN stored_at TIMESTAMPTZ NOT NULL DEFAULT now();',
    down: 'ALTER TABLE rollup_pending DROP COLUMN stored_at;',
  },
  {
    version: 9,
    name: 'month rows of distinct values readable from their key alone',
    // A distinct count over whole days reads a month's rows in value order and needs only their day
    // bits besides the key: with days in the key's index (INCLUDE, not a key column) that is an
    // index-only scan grouped as it goes, not a scan of the table hashed by value (see uniqueDaysSql).
    // A fold changes days only the first time a value is seen on a day, so few updates lose HOT.
    up: `
      ALTER TABLE rollup_uniques_days DROP CONSTRAINT rollup_uniques_days_pkey,
        ADD PRIMARY KEY (tenant_id, meter_id, month, value, group_key) INCLUDE (days);`,
    down: `
      ALTER TABLE rollup_uniques_days DROP CONSTRAINT rollup_uniques_days_pkey,
        ADD PRIMARY KEY (tenant_id, meter_id, month, value, group_key);`,
  },
  {
    version: 10,
    name: 'rollups keyed by a meter series number',
    // Every rollup row carried its tenant and meter id as text (a 36-character UUID): ~45 bytes of
    // each key, in the table and in every index. A meter's series number (4 bytes) takes their place;
    // reads look it up by tenant and meter id, so every read stays scoped by tenant. Measured on a
    // copy of the hourly rollups of 3M seeded events (9.3M rows): table and indexes 3.6 -> 2.5 GB,
    // and upserting one hour's 12,725 rows 183-297 -> 124-190 ms (existing rows), 209-301 -> 127-218
    // ms (new rows). Rows of meters that no longer exist are not copied.
    up: `
      ALTER TABLE meters ADD COLUMN series INTEGER GENERATED ALWAYS AS IDENTITY;
      ALTER TABLE meters ADD CONSTRAINT meters_series_key UNIQUE (series);
      ${SERIES_TABLES.map((t) => rekeyTable(t, 'series')).join('')}`,
    down: `
      ${SERIES_TABLES.map((t) => rekeyTable(t, 'text')).join('')}
      ALTER TABLE meters DROP COLUMN series;`,
  },
];

/**
 * Copies a rollup table into one whose rows name their meter by series number ('series') or by
 * tenant and meter id ('text'), then builds its keys on the copy (in key order, not row by row) and
 * gives the planner its statistics (a new table has none until autovacuum comes by).
 */
function rekeyTable(t: SeriesTable, to: 'series' | 'text'): string {
  const rest = t.columns.split(',').map((c) => c.trim().split(' ')[0]);
  const meter = to === 'series' ? 'series INTEGER NOT NULL' : `tenant_id TEXT ${KEY_TEXT}, meter_id TEXT ${KEY_TEXT}`;
  const meterKey = to === 'series' ? 'series' : 'tenant_id, meter_id';
  const fromMeter = to === 'series' ? 'm.series' : 'm.tenant_id, m.id';
  const join = to === 'series' ? 'm.tenant_id = r.tenant_id AND m.id = r.meter_id' : 'm.series = r.series';
  return `
      CREATE TABLE ${t.table}_rekeyed (${meter}, ${t.columns})${t.fillfactor ? ` WITH (fillfactor = ${t.fillfactor})` : ''};
      INSERT INTO ${t.table}_rekeyed SELECT ${fromMeter}, ${rest.map((c) => `r.${c}`).join(', ')} FROM ${t.table} r JOIN meters m ON ${join};
      DROP TABLE ${t.table};
      ALTER TABLE ${t.table}_rekeyed RENAME TO ${t.table};
      ALTER TABLE ${t.table} ADD CONSTRAINT ${t.table}_pkey PRIMARY KEY (${meterKey}, ${t.key})${t.include ? ` INCLUDE (${t.include})` : ''};${
        t.subjectIndex ? `\n      CREATE INDEX ${t.table}_subject ON ${t.table} (${meterKey}, ${t.subjectIndex});` : ''}
      ANALYZE ${t.table};`;
}

/** Gives the per-subject rollup tables keys that start `first`, and an index on `second`. */
function rekey(first: string, second: string): string {
  const index = second.startsWith('subject') ? 'subject' : 'bucket';
  const old = index === 'subject' ? 'bucket' : 'subject';
  return [
    { table: 'rollups', rest: ', group_key' },
    { table: 'rollups_subject_day', rest: '' },
    { table: 'rollup_uniques', rest: ', group_key, value' },
  ].map(({ table, rest }) => `
      ALTER TABLE ${table} DROP CONSTRAINT ${table}_pkey;
      ALTER TABLE ${table} ADD PRIMARY KEY (tenant_id, meter_id, ${first}${rest});
      DROP INDEX IF EXISTS ${table}_${old};
      CREATE INDEX ${table}_${index} ON ${table} (tenant_id, meter_id, ${second});`).join('');
}

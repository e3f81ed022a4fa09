import type { Migration } from '../migrations.js';
import { UNMERGED_LEVEL } from './dedupe/event-keys.js';

const DAY_MS = 86_400_000;
/** The migration that adds rollup_pending: SqliteStore.migrateDown folds it before going below. */
export const PENDING_MIGRATION = 8;
// Amount columns without a declared type keep what they are given: small integers stay INTEGER, so
// the rollup upsert adds them natively; other amounts are exact decimal text.
const AMOUNT_COLUMNS = 'count INTEGER NOT NULL, sum NOT NULL, min, max, latest_time INTEGER NOT NULL, latest_seq INTEGER NOT NULL, latest_value';
const HOUR_COLUMNS = `tenant_id TEXT NOT NULL, meter_id TEXT NOT NULL, subject TEXT NOT NULL, bucket INTEGER NOT NULL, group_key TEXT NOT NULL, ${AMOUNT_COLUMNS}`;
/** Canonical decimal text of a small integer as an INTEGER (what sqlValue does on writes). */
const asAmount = (col: string) =>
  `CASE WHEN typeof(${col}) = 'text' AND CAST(CAST(${col} AS INTEGER) AS TEXT) = ${col} AND abs(CAST(${col} AS INTEGER)) < 1000000000000000 THEN CAST(${col} AS INTEGER) ELSE ${col} END`;
/** asAmount, and a REAL holding a small integer (as binding a JS number wrote it) as an INTEGER. */
const asInteger = (col: string) =>
  `CASE WHEN typeof(${col}) = 'real' AND ${col} = CAST(${col} AS INTEGER) AND abs(${col}) < 1000000000000000 THEN CAST(${col} AS INTEGER) ELSE ${asAmount(col)} END`;
/**
 * Fills a coarser level from the hourly rollups. The latest value is taken from the row holding the
 * greatest (time, seq): with exactly one built-in max() in the query, SQLite reads bare columns from that row.
 */
const derive = (table: string, key1: string, key2: string) => `
      INSERT INTO ${table} SELECT tenant_id, meter_id, k1, k2, count, ${asAmount('sum')}, ${asAmount('min')}, ${asAmount('max')}, latest_time, latest_seq, latest_value FROM (
        SELECT tenant_id, meter_id, ${key1} AS k1, ${key2} AS k2, SUM(count) AS count, dec_sum(sum) AS sum, dec_min_agg(min) AS min, dec_max_agg(max) AS max,
          max(printf('%016d%020d', latest_time, latest_seq)) AS latest_key, latest_time, latest_seq, latest_value
        FROM rollups GROUP BY tenant_id, meter_id, k1, k2);`;

interface SeriesTable {
  name: string;
  /** Columns after the series (or tenant and meter), as declared. */
  columns: string;
  /** Primary key after the series. */
  key: string;
  /** The secondary index's columns after the series, named <table>_subject. */
  subjectIndex?: string;
}

const SERIES_TABLES: SeriesTable[] = [
  { name: 'rollups', columns: `subject TEXT NOT NULL, bucket INTEGER NOT NULL, group_key TEXT NOT NULL, ${AMOUNT_COLUMNS}`, key: 'bucket, subject, group_key', subjectIndex: 'subject, bucket' },
  { name: 'rollups_subject_day', columns: `subject TEXT NOT NULL, bucket INTEGER NOT NULL, ${AMOUNT_COLUMNS}`, key: 'bucket, subject', subjectIndex: 'subject, bucket' },
  { name: 'rollups_total', columns: `bucket INTEGER NOT NULL, group_key TEXT NOT NULL, ${AMOUNT_COLUMNS}`, key: 'bucket, group_key' },
  { name: 'rollup_uniques', columns: 'subject TEXT NOT NULL, bucket INTEGER NOT NULL, group_key TEXT NOT NULL, value TEXT NOT NULL', key: 'bucket, subject, group_key, value', subjectIndex: 'subject, bucket' },
  { name: 'rollup_uniques_days', columns: 'month INTEGER NOT NULL, group_key TEXT NOT NULL, value TEXT NOT NULL, days INTEGER NOT NULL', key: 'month, value, group_key' },
];

export const sqliteMigrations: Migration[] = [
  {
    version: 1,
    name: 'core',
    up: `
      CREATE TABLE tenants (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        meters_version INTEGER NOT NULL DEFAULT 0
      );
      CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        scopes TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
      );
      CREATE INDEX api_keys_tenant ON api_keys(tenant_id);
      CREATE TABLE meters (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        slug TEXT NOT NULL,
        event_type TEXT NOT NULL,
        aggregation TEXT NOT NULL,
        value_property TEXT,
        group_by TEXT NOT NULL,
        description TEXT,
        created_at INTEGER NOT NULL,
        UNIQUE (tenant_id, slug)
      );
      CREATE TABLE customers (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        key TEXT NOT NULL,
        name TEXT NOT NULL,
        metadata TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (tenant_id, key)
      );
      CREATE TABLE customer_subjects (
        tenant_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        customer_id TEXT NOT NULL REFERENCES customers(id),
        PRIMARY KEY (tenant_id, subject)
      ) WITHOUT ROWID;
      CREATE INDEX customer_subjects_customer ON customer_subjects(customer_id);
      CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        source TEXT NOT NULL,
        event_id TEXT NOT NULL,
        type TEXT,
        subject TEXT,
        time INTEGER NOT NULL,
        data TEXT,
        hash TEXT NOT NULL,
        ingested_at INTEGER NOT NULL
      );
      CREATE UNIQUE INDEX events_dedupe ON events(tenant_id, source, event_id);
      CREATE INDEX events_type_time ON events(tenant_id, type, time);
      CREATE INDEX events_time ON events(tenant_id, time);
      CREATE TABLE rollups (
        tenant_id TEXT NOT NULL,
        meter_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        bucket INTEGER NOT NULL,
        group_key TEXT NOT NULL,
        count INTEGER NOT NULL,
        sum TEXT NOT NULL,
        min TEXT,
        max TEXT,
        latest_time INTEGER NOT NULL,
        latest_seq INTEGER NOT NULL,
        latest_value TEXT,
        PRIMARY KEY (tenant_id, meter_id, subject, bucket, group_key)
      ) WITHOUT ROWID;
      CREATE INDEX rollups_bucket ON rollups(tenant_id, meter_id, bucket);
      CREATE TABLE rollup_uniques (
        tenant_id TEXT NOT NULL,
        meter_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        bucket INTEGER NOT NULL,
        group_key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (tenant_id, meter_id, subject, bucket, group_key, value)
      ) WITHOUT ROWID;
      CREATE INDEX rollup_uniques_bucket ON rollup_uniques(tenant_id, meter_id, bucket);
    `,
    down: `
      DROP TABLE rollup_uniques;
      DROP TABLE rollups;
      DROP TABLE events;
      DROP TABLE customer_subjects;
      DROP TABLE customers;
      DROP TABLE meters;
      DROP TABLE api_keys;
      DROP TABLE tenants;
    `,
  },
  {
    version: 2,
    name: 'one time index',
    // Every secondary index costs each insert a random B-tree write. Raw scans (cut hours, backfill)
    // cover short time ranges, so (tenant, time) serves them and the listing alike.
    up: 'DROP INDEX events_type_time;',
    down: 'CREATE INDEX events_type_time ON events(tenant_id, type, time);',
  },
  {
    version: 3,
    name: 'exact integers in rollups, day and total levels',
    up: `
      CREATE TABLE rollups_v3 (${HOUR_COLUMNS}, PRIMARY KEY (tenant_id, meter_id, subject, bucket, group_key)) WITHOUT ROWID;
      INSERT INTO rollups_v3 SELECT tenant_id, meter_id, subject, bucket, group_key, count, ${asAmount('sum')}, ${asAmount('min')}, ${asAmount('max')},
        latest_time, latest_seq, ${asAmount('latest_value')} FROM rollups;
      DROP TABLE rollups;
      ALTER TABLE rollups_v3 RENAME TO rollups;
      CREATE INDEX rollups_bucket ON rollups(tenant_id, meter_id, bucket);
      CREATE TABLE rollups_subject_day (tenant_id TEXT NOT NULL, meter_id TEXT NOT NULL, subject TEXT NOT NULL, bucket INTEGER NOT NULL, ${AMOUNT_COLUMNS},
        PRIMARY KEY (tenant_id, meter_id, subject, bucket)) WITHOUT ROWID;
      CREATE TABLE rollups_total (tenant_id TEXT NOT NULL, meter_id TEXT NOT NULL, bucket INTEGER NOT NULL, group_key TEXT NOT NULL, ${AMOUNT_COLUMNS},
        PRIMARY KEY (tenant_id, meter_id, bucket, group_key)) WITHOUT ROWID;
      ${derive('rollups_subject_day', 'subject', `(bucket / ${DAY_MS}) * ${DAY_MS}`)}
      ${derive('rollups_total', 'bucket', 'group_key')}
    `,
    down: `
      DROP TABLE rollups_total;
      DROP TABLE rollups_subject_day;
      CREATE TABLE rollups_v2 (
        tenant_id TEXT NOT NULL, meter_id TEXT NOT NULL, subject TEXT NOT NULL, bucket INTEGER NOT NULL, group_key TEXT NOT NULL,
        count INTEGER NOT NULL, sum TEXT NOT NULL, min TEXT, max TEXT, latest_time INTEGER NOT NULL, latest_seq INTEGER NOT NULL, latest_value TEXT,
        PRIMARY KEY (tenant_id, meter_id, subject, bucket, group_key)) WITHOUT ROWID;
      INSERT INTO rollups_v2 SELECT * FROM rollups;
      DROP TABLE rollups;
      ALTER TABLE rollups_v2 RENAME TO rollups;
      CREATE INDEX rollups_bucket ON rollups(tenant_id, meter_id, bucket);
    `,
  },
  {
    version: 4,
    name: 'distinct values per month with a bit per day',
    up: `
      CREATE TABLE rollup_uniques_days (
        tenant_id TEXT NOT NULL, meter_id TEXT NOT NULL, month INTEGER NOT NULL, group_key TEXT NOT NULL, value TEXT NOT NULL, days INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, meter_id, month, value, group_key)) WITHOUT ROWID;
      -- The sum of distinct powers of two is their bitwise OR.
      INSERT INTO rollup_uniques_days SELECT tenant_id, meter_id, month, group_key, value, SUM(DISTINCT bit) FROM (
        SELECT tenant_id, meter_id, CAST(strftime('%s', bucket / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000 AS month, group_key, value,
          1 << (CAST(strftime('%d', bucket / 1000, 'unixepoch') AS INTEGER) - 1) AS bit
        FROM rollup_uniques)
      GROUP BY tenant_id, meter_id, month, group_key, value;
    `,
    down: 'DROP TABLE rollup_uniques_days;',
  },
  {
    version: 5,
    name: 'small integer amounts stored as INTEGER',
    // Writes bound small integers as REAL (exact below 10^15, but never on the native integer path)
    // and dec_add gave them back as text.
    up: ['rollups', 'rollups_subject_day', 'rollups_total'].map((t) => `
      UPDATE ${t} SET sum = ${asInteger('sum')}, min = ${asInteger('min')}, max = ${asInteger('max')}, latest_value = ${asInteger('latest_value')}
      WHERE typeof(sum) != 'integer' OR typeof(min) NOT IN ('integer', 'null') OR typeof(max) NOT IN ('integer', 'null') OR typeof(latest_value) NOT IN ('integer', 'null');`).join(''),
    down: '',
  },
  {
    version: 6,
    name: 'rollups ordered by hour first',
    // Ingestion updates the rows of the current hour and day for every subject. Ordered by subject
    // first, those rows sat one per page across the whole table, so every commit dirtied (and wrote
    // to the WAL) a page per subject; ordered by bucket first they are neighbours. Per-subject reads
    // use the (subject, bucket) index, which changes only when a row is new.
    up: reorder('bucket, subject', 'subject, bucket'),
    down: reorder('subject, bucket', 'bucket, subject'),
  },
  {
    version: 7,
    name: 'event keys in sorted runs',
    // The unique index over random event ids dirtied one random leaf per event once it outgrew the
    // cache; keys now live in runs (see dedupe/event-keys.ts). The existing keys become one run,
    // built in key order, that is never merged; its filter is made when the writer first opens.
    // The generation tells a writer that another one wrote keys since (see dedupe/event-keys.ts).
    up: `
      CREATE TABLE event_key_runs (
        run INTEGER PRIMARY KEY,
        level INTEGER NOT NULL,
        keys INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'sealed', 'target')),
        merge_into INTEGER,
        filter BLOB
      );
      CREATE TABLE event_keys (run INTEGER NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (run, key)) WITHOUT ROWID;
      CREATE TABLE event_key_state (id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL);
      INSERT INTO event_key_state (id, generation) VALUES (1, 0);
      INSERT INTO event_key_runs (run, level, keys, state) SELECT 1, ${UNMERGED_LEVEL}, count(*), 'sealed' FROM events HAVING count(*) > 0;
      INSERT INTO event_keys (run, key, seq) SELECT 1, tenant_id || char(0) || source || char(0) || event_id, seq FROM events ORDER BY 2;
      DROP INDEX events_dedupe;`,
    down: `
      CREATE UNIQUE INDEX events_dedupe ON events(tenant_id, source, event_id);
      DROP TABLE event_key_state;
      DROP TABLE event_keys;
      DROP TABLE event_key_runs;`,
  },
  {
    version: PENDING_MIGRATION,
    name: 'pending rollups',
    // A commit's rollup contributions, folded into the rollup tables in bulk (see pending-rollups.ts).
    up: `CREATE TABLE rollup_pending (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, events INTEGER NOT NULL, body TEXT NOT NULL);`,
    down: `DROP TABLE rollup_pending;`,
  },
  {
    version: 9,
    name: 'fold generation',
    // Bumped by every fold, so a fold gathered outside the write lock can tell that no other fold
    // took its pending rows meanwhile (see AppendWriter's background folds).
    up: `CREATE TABLE fold_state (id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL);
      INSERT INTO fold_state (id, generation) VALUES (1, 0);`,
    down: `DROP TABLE fold_state;`,
  },
  {
    version: 10,
    name: 'open event key run as a log',
    // The open run's keys in arrival order (see dedupe/event-keys.ts): a commit appends to one page
    // instead of dirtying a leaf of the sorted run per key.
    up: `
      CREATE TABLE event_key_log (seq INTEGER PRIMARY KEY, key TEXT NOT NULL);
      INSERT INTO event_key_log (seq, key) SELECT seq, key FROM event_keys WHERE run IN (SELECT run FROM event_key_runs WHERE state = 'open') ORDER BY seq;
      DELETE FROM event_keys WHERE run IN (SELECT run FROM event_key_runs WHERE state = 'open');`,
    down: `
      INSERT INTO event_keys (run, key, seq) SELECT (SELECT run FROM event_key_runs WHERE state = 'open'), key, seq FROM event_key_log ORDER BY key;
      DROP TABLE event_key_log;`,
  },
  {
    version: 11,
    name: 'rollups epoch',
    // Bumped by whatever deletes rollup rows, so a writer that remembers which distinct-value rows
    // are stored (known-uniques.ts) forgets them. Random at creation: a migration down and up again
    // must not give back a value a running writer saw.
    up: `ALTER TABLE fold_state ADD COLUMN rollups_epoch INTEGER NOT NULL DEFAULT 0;
      UPDATE fold_state SET rollups_epoch = abs(random() % 1000000000);`,
    down: `ALTER TABLE fold_state DROP COLUMN rollups_epoch;`,
  },
  {
    version: 12,
    name: 'rollups keyed by series',
    // Every rollup key began with two long text ids that all of a meter's rows share, so each
    // B-tree step of a fold's upserts compared them byte by byte (callgrind, B2-shaped: a fifth of
    // the writer's instructions went to key comparisons) and every row stored them. A meter's
    // series number replaces both, as on PostgreSQL (its migration 10).
    up: `
      ALTER TABLE meters ADD COLUMN series INTEGER;
      UPDATE meters SET series = rowid;
      CREATE UNIQUE INDEX meters_series ON meters(series);
      ${SERIES_TABLES.map((t) => rekey(t, 'series')).join('')}`,
    down: `
      ${SERIES_TABLES.map((t) => rekey(t, 'meter')).join('')}
      DROP INDEX meters_series;
      ALTER TABLE meters DROP COLUMN series;`,
  },
];

/**
 * Rebuilds a rollup table keyed by the meter's series number (`to` 'series') or by tenant and meter
 * ids ('meter'), copied in key order through the meters table. Rows of a meter that no longer exists
 * (none: a meter's deletion deletes its rows) are not copied.
 */
function rekey(t: SeriesTable, to: 'series' | 'meter'): string {
  const names = t.columns.split(', ').map((c) => c.split(' ')[0]).join(', r.');
  const [head, select, join] = to === 'series'
    ? ['series INTEGER NOT NULL', 'm.series', 'm.tenant_id = r.tenant_id AND m.id = r.meter_id']
    : ['tenant_id TEXT NOT NULL, meter_id TEXT NOT NULL', 'm.tenant_id, m.id', 'm.series = r.series'];
  const prefix = to === 'series' ? 'series' : 'tenant_id, meter_id';
  return `
      CREATE TABLE ${t.name}_new (${head}, ${t.columns}, PRIMARY KEY (${prefix}, ${t.key})) WITHOUT ROWID;
      INSERT INTO ${t.name}_new SELECT ${select}, r.${names} FROM ${t.name} r JOIN meters m ON ${join} ORDER BY ${select}, ${t.key.split(', ').map((c) => `r.${c}`).join(', ')};
      DROP TABLE ${t.name};
      ALTER TABLE ${t.name}_new RENAME TO ${t.name};${t.subjectIndex ? `
      CREATE INDEX ${t.name}_subject ON ${t.name}(${prefix}, ${t.subjectIndex});` : ''}`;
}

/** Rebuilds the per-subject rollup tables with their keys starting `first`, indexed by `second`. */
function reorder(first: string, second: string): string {
  const tables = [
    { name: 'rollups', columns: HOUR_COLUMNS, rest: ', group_key' },
    { name: 'rollups_subject_day', columns: `tenant_id TEXT NOT NULL, meter_id TEXT NOT NULL, subject TEXT NOT NULL, bucket INTEGER NOT NULL, ${AMOUNT_COLUMNS}`, rest: '' },
    { name: 'rollup_uniques', columns: 'tenant_id TEXT NOT NULL, meter_id TEXT NOT NULL, subject TEXT NOT NULL, bucket INTEGER NOT NULL, group_key TEXT NOT NULL, value TEXT NOT NULL', rest: ', group_key, value' },
  ];
  const index = second.startsWith('subject') ? 'subject' : 'bucket';
  return tables.map((t) => `
      CREATE TABLE ${t.name}_new (${t.columns}, PRIMARY KEY (tenant_id, meter_id, ${first}${t.rest})) WITHOUT ROWID;
      INSERT INTO ${t.name}_new SELECT * FROM ${t.name} ORDER BY tenant_id, meter_id, ${first}${t.rest};
      DROP TABLE ${t.name};
      ALTER TABLE ${t.name}_new RENAME TO ${t.name};
      CREATE INDEX ${t.name}_${index} ON ${t.name}(tenant_id, meter_id, ${second});`).join('');
}

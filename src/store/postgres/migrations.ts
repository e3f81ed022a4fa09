// PostgreSQL schema, numbered and append-only. Text compared or ordered by the API is COLLATE "C"
// so paging order is byte order, as in SQLite, whatever the database's locale.
import type { Migration } from '../migrations.js';

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
      CREATE TABLE event_keys (
        tenant_id TEXT COLLATE "C" NOT NULL,
        source TEXT COLLATE "C" NOT NULL,
        event_id TEXT COLLATE "C" NOT NULL,
        hash TEXT NOT NULL,
        seq BIGINT NOT NULL,
        time BIGINT NOT NULL,
        PRIMARY KEY (tenant_id, source, event_id)
      );
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
];

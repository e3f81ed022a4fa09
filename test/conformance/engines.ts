// The engines the conformance suite runs on: SQLite always, PostgreSQL when TEST_DATABASE_URL
// is set. Each fresh() database is its own temp file or schema, removed by cleanup().
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Engine, Store } from '../../src/store/store.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';

/** Where engines legitimately differ; tests branch on these names, never on the engine. */
export interface EngineProps {
  /** Several processes may write to one database at once. */
  multiProcess: boolean;
  /** seq may skip numbers (a sequence also consumed by refused duplicates); SQLite's rowid does not. */
  seqGaps: boolean;
}

export interface Database {
  /** Another store on the same database (another pool, another group-commit queue). */
  open(): Store;
}

export interface EngineFixture {
  name: Engine;
  props: EngineProps;
  fresh(): Promise<Database>;
  cleanup(): Promise<void>;
}

export function sqliteEngine(): EngineFixture {
  const dir = mkdtempSync(join(tmpdir(), 'meterd-conformance-'));
  const stores: Store[] = [];
  let n = 0;
  return {
    name: 'sqlite',
    props: { multiProcess: false, seqGaps: false },
    async fresh() {
      const path = join(dir, `db${n++}.sqlite`);
      return {
        open() {
          const s = new SqliteStore({ path });
          stores.push(s);
          return s;
        },
      };
    },
    async cleanup() {
      for (const s of stores) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function postgresEngine(url: string): EngineFixture {
  const schemas: string[] = [];
  const stores: Store[] = [];
  return {
    name: 'postgres',
    props: { multiProcess: true, seqGaps: true },
    async fresh() {
      const schema = randomSchema();
      schemas.push(schema);
      return {
        open() {
          const s = new PostgresStore({ url, schema, poolSize: 5 });
          stores.push(s);
          return s;
        },
      };
    },
    async cleanup() {
      try {
        for (const s of stores) await s.close();
      } finally {
        await dropSchemas(url, schemas);
      }
    },
  };
}

export const randomSchema = () => `meterd_test_${randomBytes(6).toString('hex')}`;

export async function dropSchemas(url: string, schemas: string[]): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    for (const s of schemas) await c.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  } finally {
    await c.end();
  }
}

export type PostgresAvailability = { url: string } | { skip: string } | { fail: string };

const HOW = 'set TEST_DATABASE_URL=postgres://user@host:5432/db (e.g. TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm test)';

/** Is PostgreSQL configured and reachable? REQUIRE_POSTGRES=1 turns a skip into a failure. */
export async function postgresAvailability(): Promise<PostgresAvailability> {
  const url = process.env.TEST_DATABASE_URL;
  const required = process.env.REQUIRE_POSTGRES === '1';
  if (!url) {
    const msg = `TEST_DATABASE_URL is not set: PostgreSQL tests skipped; to run them ${HOW}`;
    return required ? { fail: `REQUIRE_POSTGRES=1 but ${msg}` } : { skip: msg };
  }
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return { url };
  } catch (e) {
    // A URL that is set but unreachable is a broken setup, not an opt-out: fail either way.
    return { fail: `TEST_DATABASE_URL=${url} is unreachable: ${(e as Error).message}` };
  } finally {
    await c.end().catch(() => {});
  }
}

/** The engines to run, and tests that stand in for PostgreSQL when it is skipped or broken. */
export async function engines(): Promise<{ fixtures: EngineFixture[]; postgres: PostgresAvailability }> {
  const postgres = await postgresAvailability();
  const fixtures = [sqliteEngine()];
  if ('url' in postgres) fixtures.push(postgresEngine(postgres.url));
  return { fixtures, postgres };
}

// Test harness: a real meterd (real database, real HTTP on a loopback port) per engine.
// SQLite always; PostgreSQL when TEST_DATABASE_URL is set (required when REQUIRE_POSTGRES=1).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { loadConfig, type Config } from '../../src/config.js';
import { openServices, type Services } from '../../src/main.js';
import { buildHttp } from '../../src/http/app.js';
import type { Scope } from '../../src/core/context.js';

export type EngineName = 'sqlite' | 'postgres';

export interface EngineSpec {
  name: EngineName;
  /** A fresh, empty database URL for one test file. */
  freshUrl(): string;
  /** Removes what freshUrl created (called by TestApp.close). */
  cleanup(url: string): Promise<void>;
}

const pgBase = process.env.TEST_DATABASE_URL;
let warned = false;

/** The engines to run on. Prints once which PostgreSQL tests are skipped and how to enable them. */
export function engines(): EngineSpec[] {
  const list: EngineSpec[] = [sqliteEngine];
  if (pgBase) list.push(postgresEngine(pgBase));
  else if (process.env.REQUIRE_POSTGRES === '1') throw new Error('REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set');
  else if (!warned) {
    warned = true;
    process.stderr.write('# PostgreSQL tests SKIPPED: set TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test to run every suite on PostgreSQL too\n');
  }
  return list;
}

export const sqliteEngine: EngineSpec = {
  name: 'sqlite',
  freshUrl: () => `sqlite:${join(mkdtempSync(join(tmpdir(), 'meterd-test-')), 'meterd.db')}`,
  cleanup: async (url) => rmSync(url.slice('sqlite:'.length).replace(/\/meterd\.db$/, ''), { recursive: true, force: true }),
};

export function postgresEngine(base: string): EngineSpec {
  return {
    name: 'postgres',
    freshUrl: () => {
      const u = new URL(base);
      u.searchParams.set('schema', `t_${randomBytes(6).toString('hex')}`);
      return u.toString();
    },
    cleanup: async (url) => {
      const schema = new URL(url).searchParams.get('schema');
      const { default: pg } = await import('pg');
      const u = new URL(url);
      u.searchParams.delete('schema');
      const client = new pg.Client({ connectionString: u.toString() });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await client.end();
      }
    },
  };
}

export interface TestTenant {
  id: string;
  admin: string;
  ingest: string;
  read: string;
}

export interface TestApp {
  engine: EngineName;
  url: string;
  app: FastifyInstance;
  services: Services;
  config: Config;
  /** A new tenant with one key per scope. */
  tenant(): Promise<TestTenant>;
  close(): Promise<void>;
}

export async function startApp(engine: EngineSpec, overrides: Partial<Config> = {}, env: Record<string, string> = {}): Promise<TestApp> {
  const dbUrl = engine.freshUrl();
  // Load shedding on event-loop delay is off by default in tests: module loading on a busy CI
  // machine can stall the loop past any threshold. Tests of shedding turn it on.
  const config = loadConfig({ ...env, DATABASE_URL: dbUrl, LOG_LEVEL: 'silent' }, { PORT: 0, HOST: '127.0.0.1', SHED_EVENT_LOOP_DELAY_MS: 0, ...overrides });
  const services = await openServices(config);
  const app = await buildHttp(services, { logger: false });
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    engine: engine.name,
    url: address,
    app,
    services,
    config,
    tenant: () => makeTenant(services),
    close: async () => {
      await app.close();
      await services.store.close();
      await engine.cleanup(dbUrl);
    },
  };
}

export async function makeTenant(services: Services): Promise<TestTenant> {
  const id = `t-${randomBytes(5).toString('hex')}`;
  await services.tenants.create(id);
  const key = async (scopes: Scope[]) => (await services.apiKeys.create(id, scopes.join('+'), scopes)).key;
  return { id, admin: await key(['admin']), ingest: await key(['ingest']), read: await key(['read']) };
}

/** fetch against the test app with a bearer key and JSON body. */
export async function call(
  base: string,
  method: string,
  path: string,
  opts: { key?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Headers; body: any; text: string }> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.key) headers.authorization = `Bearer ${opts.key}`;
  let body: string | undefined = opts.rawBody;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

// Configuration: one schema, parsed once at start, failing fast with a clear message.
// Nothing else reads process.env.
import { Type, type Static } from 'typebox';
import { Value } from 'typebox/value';

const Int = (def: number, min: number, max: number, description: string) =>
  Type.Integer({ default: def, minimum: min, maximum: max, description });

export const ConfigSchema = Type.Object({
  PORT: Int(8080, 0, 65535, 'HTTP port'),
  HOST: Type.String({ default: '0.0.0.0', description: 'HTTP bind address' }),
  DATABASE_URL: Type.String({ default: 'sqlite:./data/meterd.db', description: 'sqlite:<path> or postgres://…' }),
  METERD_ADMIN_KEY: Type.Optional(Type.String({ minLength: 16, description: 'seeds an admin API key for tenant "default" at start' })),
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16, description: 'bearer token that reads GET /metrics (unset: no /metrics)' })),
  METERD_TOKEN_SECRET: Type.Optional(Type.String({ minLength: 32, description: 'signs OAuth access tokens of the seed APIs; set the same value on every instance' })),
  LOG_LEVEL: Type.Union([Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'), Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent')], { default: 'info' }),
  DB_POOL_SIZE: Int(10, 1, 1000, 'PostgreSQL pool size per instance'),
  DB_STATEMENT_TIMEOUT_MS: Int(30_000, 100, 3_600_000, 'PostgreSQL statement timeout'),
  MAX_BODY_BYTES: Int(5 * 1024 * 1024, 1024, 256 * 1024 * 1024, 'largest request body (413 above)'),
  MAX_BATCH_EVENTS: Int(10_000, 1, 1_000_000, 'most events in one ingestion request'),
  MAX_DATA_BYTES: Int(64 * 1024, 16, 16 * 1024 * 1024, 'largest serialised event data'),
  MAX_DATA_DEPTH: Int(16, 1, 256, 'deepest nesting of event data'),
  MAX_ID_LENGTH: Int(256, 8, 512, 'longest event id, source, type, subject, key or slug'),
  EVENT_MAX_PAST_DAYS: Int(3650, 0, 100_000, 'oldest event time accepted, in days before now'),
  EVENT_MAX_FUTURE_MINUTES: Int(60 * 24, 0, 10_000_000, 'latest event time accepted, in minutes after now'),
  RATE_LIMIT_PER_SECOND: Int(2000, 0, 10_000_000, 'requests per second per credential (0: off); 429 above'),
  RATE_LIMIT_REDIS_URL: Type.Optional(Type.String({ description: 'redis://… to share rate limits across instances' })),
  SHED_EVENT_LOOP_DELAY_MS: Int(1000, 0, 60_000, 'event-loop delay above which requests are shed with 503 (0: off)'),
  MAX_QUERY_ROWS: Int(100_000, 1, 10_000_000, 'most rows one usage query may answer (400 above: narrow the query)'),
  ROLLUP_FOLD_EVENTS: Int(25_000, 1, 10_000_000, 'events pending before their rollup contributions are folded into the rollup tables (on PostgreSQL counted over every instance)'),
  ROLLUP_FOLD_INTERVAL_MS: Int(2000, 10, 3_600_000, 'longest time stored contributions wait for a fold; a query folds what is pending first, so this trades ingest cost for read latency'),
  MAX_PENDING_EVENTS: Int(200_000, 1, 100_000_000, 'events waiting for a commit before new ingestion requests get 503'),
  HEAP_GROWTH_PERCENT: Int(50, 0, 1000, "how far V8 lets the heap grow past what survived its last full collection, in percent (0: V8's own factor, up to 300%)"),
  SHUTDOWN_TIMEOUT_MS: Int(15_000, 0, 600_000, 'grace period for in-flight requests on SIGTERM'),
});

export type Config = Static<typeof ConfigSchema>;

/** Parses and validates the environment; throws one message listing every bad setting. */
export function loadConfig(env: Record<string, string | undefined> = process.env, overrides: Partial<Config> = {}): Config {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(ConfigSchema.properties)) {
    const v = env[key];
    if (v !== undefined && v !== '') raw[key] = v;
  }
  const withDefaults = Value.Default(ConfigSchema, Value.Convert(ConfigSchema, raw)) as Record<string, unknown>;
  const merged = { ...withDefaults, ...overrides };
  const errors = [...Value.Errors(ConfigSchema, merged)];
  if (errors.length > 0) {
    const lines = errors.map((e) => `  ${e.instancePath.slice(1) || '(config)'}: ${e.message}`);
    throw new Error(`invalid configuration:\n${[...new Set(lines)].join('\n')}`);
  }
  return merged as Config;
}

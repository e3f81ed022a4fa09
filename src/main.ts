// Composition root: the server, the CLI and the tests all build meterd here.
import type { Config } from './config.js';
import { openStore } from './store/index.js';
import type { Store } from './store/store.js';
import { ApiKeysService } from './modules/api-keys/api-keys.service.js';
import { TenantsService } from './modules/tenants/tenants.service.js';
import { MeterCache } from './modules/meters/meter-cache.js';
import { MetersService } from './modules/meters/meters.service.js';
import { CustomersService } from './modules/customers/customers.service.js';
import { EventsService } from './modules/events/events.service.js';
import { UsageService } from './modules/usage/usage.service.js';
import { Metrics } from './modules/metrics/metrics.js';
import type { EventLimits } from './modules/events/event-validation.js';

export const DEFAULT_TENANT = 'default';

export interface Services {
  config: Config;
  /** What one event may be (sizes, depth, time bounds): the native ingestion and every seed API apply the same. */
  eventLimits: EventLimits;
  store: Store;
  tenants: TenantsService;
  apiKeys: ApiKeysService;
  meterCache: MeterCache;
  meters: MetersService;
  customers: CustomersService;
  events: EventsService;
  usage: UsageService;
  metrics: Metrics;
}

export function eventLimitsOf(config: Config): EventLimits {
  return {
    maxIdLength: config.MAX_ID_LENGTH,
    maxDataBytes: config.MAX_DATA_BYTES,
    maxDataDepth: config.MAX_DATA_DEPTH,
    maxPastMs: config.EVENT_MAX_PAST_DAYS * 86_400_000,
    maxFutureMs: config.EVENT_MAX_FUTURE_MINUTES * 60_000,
  };
}

export function buildServices(config: Config, store: Store): Services {
  const meterCache = new MeterCache(store);
  const eventLimits = eventLimitsOf(config);
  const meters = new MetersService(store, meterCache);
  const customers = new CustomersService(store);
  const metrics = new Metrics(
    { backlog: () => store.backlog?.() ?? 0, unfolded: () => store.unfoldedEvents() },
    { processMetrics: config.METRICS_TOKEN !== undefined },
  );
  return {
    config,
    eventLimits,
    store,
    tenants: new TenantsService(store),
    apiKeys: new ApiKeysService(store, config.METERD_TOKEN_SECRET),
    meterCache,
    meters,
    customers,
    metrics,
    events: new EventsService(store, meterCache, { ...eventLimits, maxBatch: config.MAX_BATCH_EVENTS, maxPendingEvents: config.MAX_PENDING_EVENTS }, metrics),
    usage: new UsageService(store, meters, customers, meterCache, { maxRows: config.MAX_QUERY_ROWS }),
  };
}

/** Opens the database, migrates it and makes sure the default tenant exists. */
export async function openServices(config: Config): Promise<Services> {
  const store = await openStore({
    url: config.DATABASE_URL,
    poolSize: config.DB_POOL_SIZE,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
    fold: { events: config.ROLLUP_FOLD_EVENTS, afterMs: config.ROLLUP_FOLD_INTERVAL_MS },
  });
  try {
    await store.migrate();
    const services = buildServices(config, store);
    await services.tenants.ensure(DEFAULT_TENANT, 'Default tenant');
    return services;
  } catch (e) {
    await store.close().catch(() => {});
    throw e;
  }
}

/**
 * Gives a new user a key to start with: METERD_ADMIN_KEY when set, otherwise a fresh admin key
 * the first time the default tenant has none. Returns the key to print once, if one was made.
 */
export async function bootstrapAdminKey(s: Services): Promise<string | undefined> {
  if (s.config.METERD_ADMIN_KEY) {
    await s.apiKeys.seed(DEFAULT_TENANT, 'admin (METERD_ADMIN_KEY)', ['admin'], s.config.METERD_ADMIN_KEY);
    return undefined;
  }
  const existing = await s.store.listApiKeys(DEFAULT_TENANT);
  if (existing.length > 0) return undefined;
  const { key } = await s.apiKeys.create(DEFAULT_TENANT, 'first admin key', ['admin']);
  return key;
}

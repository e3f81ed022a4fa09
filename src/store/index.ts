// The one place an engine is chosen, from the DATABASE_URL scheme.
import type { Store } from './store.js';
import { withUnavailableErrors } from './unavailable.js';

export interface StoreOptions {
  url: string;
  poolSize?: number;
  statementTimeoutMs?: number;
  /** When pending rollup contributions are folded (both engines). */
  fold?: { events?: number; afterMs?: number };
}

export async function openStore(opts: StoreOptions): Promise<Store> {
  const { url } = opts;
  if (url.startsWith('sqlite:')) {
    const { SqliteStore } = await import('./sqlite/sqlite-store.js');
    return withUnavailableErrors(new SqliteStore({ path: url.slice('sqlite:'.length) || ':memory:', fold: opts.fold }));
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    const { PostgresStore } = await import('./postgres/postgres-store.js');
    return withUnavailableErrors(new PostgresStore({ url, poolSize: opts.poolSize, statementTimeoutMs: opts.statementTimeoutMs, fold: opts.fold }));
  }
  throw new Error(`DATABASE_URL must start with sqlite: or postgres://, got "${url.split(':')[0]}:…"`);
}

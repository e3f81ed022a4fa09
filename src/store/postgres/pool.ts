// Connections: one pg Pool whose sessions all start with the same settings, a transaction
// helper, and the one rule for which errors are worth retrying.
import pg from 'pg';

export interface PostgresOptions {
  url: string;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /** statement_timeout of every session, ms (default 30000). */
  statementTimeoutMs?: number;
  /** Schema holding meterd's tables; created if missing. Also read from `?schema=` in the URL. */
  schema?: string;
}

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export interface Connection {
  pool: pg.Pool;
  schema: string | undefined;
  /** Another pool with the same session settings (the lock pool). */
  newPool(max: number): pg.Pool;
}

export function openPool(opts: PostgresOptions): Connection {
  const url = new URL(opts.url);
  const schema = opts.schema ?? (url.searchParams.get('schema') || undefined);
  url.searchParams.delete('schema');
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new Error(`schema must match ${SCHEMA_NAME}, got "${schema}"`);
  }
  // Session settings travel in the startup packet, so every pooled connection has them from
  // its first statement, with no extra round trip. synchronous_commit=on: COMMIT returns only
  // once the WAL is flushed, so an acknowledged event survives a crash.
  const settings = [
    `-c statement_timeout=${opts.statementTimeoutMs ?? 30_000}`,
    '-c synchronous_commit=on',
    '-c idle_in_transaction_session_timeout=60000',
    // No parallel plans: meterd's statements are short range reads of rollups, where starting workers
    // costs more than it saves, and many of them run at once. A month per customer over 5 weeks of
    // rollups (bench B4b, 3M events, in-process): 19.8-27.9 ms p50 with the parallel plan PostgreSQL
    // chose, 10.5-13.1 ms without.
    '-c max_parallel_workers_per_gather=0',
    // No JIT compilation: it pays off only for statements running seconds over millions of rows. Folds
    // cross its threshold (PostgreSQL counts 100 rows per JSON array) in the custom plans a connection
    // uses for a prepared statement's first five runs: a 25,000-event fold took 2.4-3.3 s, ~1.4 s of it
    // compiling, against 1.3-1.4 s without. Generic plans (from the sixth run) and the B4 queries stay
    // below it (their costliest plan: 5,752 at 1.3M events, against jit_above_cost 100,000).
    '-c jit=off',
  ];
  if (schema !== undefined) settings.push(`-c search_path=${schema}`);
  const newPool = (max: number) => {
    const pool = new pg.Pool({
      connectionString: url.toString(),
      max,
      options: settings.join(' '),
      connectionTimeoutMillis: 10_000,
      application_name: 'meterd',
    });
    // An idle client losing its server (restart, failover) must not crash the process.
    pool.on('error', () => {});
    // Nor a checked-out one, which the pool does not listen to: between two of its queries (a session
    // lock held while other connections work, say) the loss would be an unhandled 'error' event. Its
    // next query fails instead, and the caller releases it as broken. (A bench run died of this when
    // a test restarted PostgreSQL under it.)
    pool.on('connect', (client) => client.on('error', () => {}));
    return pool;
  };
  return { pool: newPool(opts.poolSize ?? 10), schema, newPool };
}

const TRANSIENT_SQLSTATES = new Set(['40001', '40P01', '57P01', '57P02', '57P03', '53300']);
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

/** The connection failed: the server may or may not have run what we sent. */
export function isConnectionError(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  if (typeof err?.code === 'string' && (err.code.startsWith('08') || NETWORK_CODES.has(err.code))) return true;
  const msg = err?.message ?? '';
  return /Connection terminated|connection error|not queryable|timeout exceeded when trying to connect/i.test(msg);
}

/** Serialization failures, deadlocks, shutdowns and lost connections: the work can be tried again. */
export function isTransient(e: unknown): boolean {
  const code = (e as { code?: string })?.code;
  return (typeof code === 'string' && TRANSIENT_SQLSTATES.has(code)) || isConnectionError(e);
}

export const MAX_ATTEMPTS = 5;

export const backoff = (attempt: number) =>
  new Promise<void>((r) => setTimeout(r, Math.min(1000, 10 * 2 ** attempt) * (0.5 + Math.random())));

/** Where a failed transaction stood: before COMMIT it surely rolled back; during COMMIT nobody knows. */
export class TxFailure extends Error {
  constructor(
    override readonly cause: unknown,
    readonly commitUnknown: boolean,
  ) {
    super((cause as Error)?.message ?? String(cause));
  }
}

/**
 * Runs fn in one READ COMMITTED transaction. Failures are rethrown as TxFailure telling
 * whether the outcome is unknown (connection lost while COMMIT was in flight).
 */
export async function inTransaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect().catch((e) => {
    throw new TxFailure(e, false);
  });
  let broken: unknown;
  let committing = false;
  try {
    await client.query('BEGIN');
    const out = await fn(client);
    committing = true;
    await client.query('COMMIT');
    return out;
  } catch (e) {
    if (isConnectionError(e)) broken = e;
    else if (!committing) await client.query('ROLLBACK').catch((r) => (broken = r));
    throw new TxFailure(e, committing && isConnectionError(e));
  } finally {
    // A client whose connection failed is destroyed rather than returned to the pool.
    client.release(broken instanceof Error ? broken : broken === undefined ? undefined : true);
  }
}

/** inTransaction, retried while the failure is transient and the transaction surely rolled back. */
export async function withRetry<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await inTransaction(pool, fn);
    } catch (e) {
      const f = e as TxFailure;
      if (f.commitUnknown || !isTransient(f.cause) || attempt + 1 >= MAX_ATTEMPTS) throw f.cause;
      await backoff(attempt);
    }
  }
}

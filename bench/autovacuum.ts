// Autovacuum's dead-row rule, run by the bench when the PostgreSQL server has autovacuum off (as the
// machines this bench runs on do). Folds update rollup rows and delete pending rows all the time; on a
// server with autovacuum on (PostgreSQL's default, and what meterd's README asks for) their dead row
// versions are vacuumed as they pile up, so the space is reused and the tables stay compact. Unvacuumed,
// the per-subject day rollups grew to 56 MB for 150,000 rows over 2M seeded events, against 34 MB with a
// VACUUM every 20 s, and bench B4b read them at 22 ms against 13 (p50, bench/query-times.ts). The bench measures meterd as it
// would run in production, so it does what autovacuum would: once a minute (autovacuum_naptime), each table
// of the run's schema with more dead rows than 50 + 20% of its live ones (autovacuum_vacuum_threshold and
// _scale_factor) is vacuumed and analysed, throttled as autovacuum is (autovacuum_vacuum_cost_delay 2 ms,
// cost limit 200). Its insert-driven vacuums (for the visibility map) are not emulated.
import pg from 'pg';

export interface VacuumLog {
  vacuums: number;
  seconds: number;
}

/** autovacuum_naptime's default. */
const NAPTIME_MS = 60_000;

/** Starts the emulation on `schema`; stop() cancels a vacuum in progress and says what was done. */
export function emulateAutovacuum(pgUrl: string, schema: string, naptimeMs = NAPTIME_MS): { stop: () => Promise<VacuumLog> } {
  const log: VacuumLog = { vacuums: 0, seconds: 0 };
  const client = new pg.Client({ connectionString: pgUrl });
  let pid = 0;
  // Settled either way: a server that cannot be reached only means no round runs.
  const connected = client.connect().then(
    async () => {
      await client.query("SET vacuum_cost_delay = '2ms'; SET vacuum_cost_limit = 200");
      pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      return true;
    },
    () => false,
  ).catch(() => false);
  let stopped = false;
  let vacuuming = false;
  let running: Promise<void> = Promise.resolve();

  const round = async () => {
    if (!(await connected)) return;
    const due = await client.query<{ relname: string }>(
      `SELECT relname FROM pg_stat_user_tables
       WHERE schemaname = $1 AND n_dead_tup > 50 + 0.2 * n_live_tup ORDER BY relname`,
      [schema],
    );
    for (const { relname } of due.rows) {
      if (stopped) return;
      const t0 = performance.now();
      vacuuming = true;
      try {
        await client.query(`VACUUM (ANALYZE) ${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(relname)}`);
      } finally {
        vacuuming = false;
        log.seconds += (performance.now() - t0) / 1000;
      }
      log.vacuums++;
    }
  };
  // A failed round (the schema dropped at the end, say) is skipped; the next one tries again.
  const timer = setInterval(() => {
    running = running.then(round).catch(() => {});
  }, naptimeMs);

  return {
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      // A throttled vacuum of a large table can take minutes: the run is over, so it is cancelled.
      if (vacuuming) {
        const canceller = new pg.Client({ connectionString: pgUrl });
        await canceller.connect().then(() => canceller.query('SELECT pg_cancel_backend($1)', [pid])).catch(() => {});
        await canceller.end().catch(() => {});
      }
      await running;
      await client.end().catch(() => {});
      return log;
    },
  };
}

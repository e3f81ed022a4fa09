// The meterd command's subcommands, one file per group. Every one builds meterd through the
// composition root (src/main.ts) and works on the database directly: no server needed.
import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { startServer, stopOnSignals } from '../server.js';
import { openStore } from '../store/index.js';
import { registerCompatCli } from '../compat/index.js';
import { registerTenants } from './tenants.js';
import { registerKeys } from './keys.js';
import { registerMeters } from './meters.js';
import { registerIngest } from './ingest.js';
import { registerQuery } from './query.js';
import { registerReconcile } from './reconcile.js';

export function registerCommands(program: Command) {
  program
    .command('serve')
    .description('start the HTTP server (PORT, HOST, DATABASE_URL, METERD_ADMIN_KEY from the environment)')
    .action(async () => {
      const config = loadConfig();
      const running = await startServer(config);
      stopOnSignals(running);
    });

  program
    .command('migrate')
    .description('apply database migrations (also done at every start)')
    .option('--down', 'revert every migration (destroys data)')
    .action(async (opts: { down?: boolean }) => {
      const config = loadConfig();
      const store = await openStore({ url: config.DATABASE_URL });
      try {
        if (opts.down) await store.migrateDown();
        else await store.migrate();
        process.stdout.write(opts.down ? 'migrations reverted\n' : 'migrations applied\n');
      } finally {
        await store.close();
      }
    });

  registerTenants(program);
  registerKeys(program);
  registerMeters(program);
  registerIngest(program);
  registerQuery(program);
  registerReconcile(program);
  registerCompatCli(program);
}

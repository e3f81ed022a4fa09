import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { startServer, stopOnSignals } from '../server.js';
import { openStore } from '../store/index.js';

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
}

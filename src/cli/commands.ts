// The meterd command's subcommands, one file per group. Every one builds meterd through the
// composition root (src/main.ts) and works on the database directly: no server needed.
import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { openStore } from '../store/index.js';
import { registerTenants } from './tenants.js';
import { registerKeys } from './keys.js';
import { registerMeters } from './meters.js';
import { registerIngest } from './ingest.js';
import { registerQuery } from './query.js';
import { registerReconcile } from './reconcile.js';

const NATIVE = new Set(['serve', 'migrate', 'tenants', 'keys', 'meters', 'ingest', 'query', 'reconcile']);

/** Registers every subcommand; `argv` only decides whether the seed APIs' commands must be loaded. */
export async function registerCommands(program: Command, argv: readonly string[] = process.argv): Promise<void> {
  program
    .command('serve')
    .description('start the HTTP server (PORT, HOST, DATABASE_URL, METERD_ADMIN_KEY from the environment)')
    .action(async () => {
      const config = loadConfig();
      // Loaded here so the other commands start without the HTTP stack.
      const { startServer, stopOnSignals } = await import('../server.js');
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
  // The seed APIs' commands bring in their HTTP stacks (over a second of start-up): load them
  // only when the command asked for is not a native one, or for the overall help.
  const command = argv.slice(2).find((a) => !a.startsWith('-'));
  if (command === undefined || !NATIVE.has(command)) {
    const { registerCompatCli } = await import('../compat/index.js');
    registerCompatCli(program);
  }
}

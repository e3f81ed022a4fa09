#!/usr/bin/env node
// The meterd command. Every subcommand builds meterd through the composition root (src/main.ts).
import { Command } from 'commander';
import { registerCommands } from './commands.js';

const program = new Command();
program.name('meterd').description('Exact, durable usage metering').version('0.1.0');
registerCommands(program);
program.parseAsync(process.argv).catch((e: Error) => {
  process.stderr.write(`meterd: ${e.message}\n`);
  process.exit(1);
});

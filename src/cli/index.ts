#!/usr/bin/env node
// The meterd command. Every subcommand builds meterd through the composition root (src/main.ts).
import { Command } from 'commander';
import { registerCommands } from './commands.js';
import { describeError } from './output.js';

const program = new Command();
program.name('meterd').description('Exact, durable usage metering').version('0.1.0');
registerCommands(program, process.argv)
  .then(() => program.parseAsync(process.argv))
  .catch((e: unknown) => {
    // User errors (AppError, CliError, bad config) and failures alike: one message, no stack.
    process.stderr.write(`meterd: ${describeError(e)}\n`);
    process.exitCode = 1;
  });

// meterd tenants create|list
import type { Command } from 'commander';
import { parseFormat, printRows } from './output.js';
import { withServices } from './runtime.js';

export function registerTenants(program: Command) {
  const tenants = program.command('tenants').description('manage tenants');

  tenants
    .command('create <id>')
    .description('create a tenant (lower-case letters, digits, - and _)')
    .option('--name <name>', 'display name (default: the id)')
    .action((id: string, opts: { name?: string }) =>
      withServices(async (s) => {
        const t = await s.tenants.create(id, opts.name ?? id);
        process.stdout.write(`created tenant ${t.id}\n`);
      }),
    );

  tenants
    .command('list')
    .description('list tenants')
    .option('--format <format>', 'table, csv or json', parseFormat, 'table' as const)
    .action((opts: { format: ReturnType<typeof parseFormat> }) =>
      withServices(async (s) => {
        const list = await s.tenants.list();
        const json = list.map((t) => ({ id: t.id, name: t.name, createdAt: new Date(t.createdAt).toISOString() }));
        printRows(opts.format, ['id', 'name', 'createdAt'], json.map((t) => [t.id, t.name, t.createdAt]), json);
      }),
    );
}

// meterd keys create|list|revoke. The secret is printed once, on stdout, at creation; never again.
import type { Command } from 'commander';
import { SCOPES, type Scope } from '../core/context.js';
import { parseKey } from '../modules/api-keys/api-keys.service.js';
import { CliError, note, parseFormat, printRows, type Format } from './output.js';
import { tenantCtx, withServices } from './runtime.js';

function parseScopes(v: string): Scope[] {
  const list = [...new Set(v.split(',').map((x) => x.trim()).filter(Boolean))];
  const bad = list.filter((x) => !(SCOPES as readonly string[]).includes(x));
  if (list.length === 0 || bad.length > 0) throw new CliError(`--scopes takes a comma-separated list of ${SCOPES.join(', ')}; got "${v}"`);
  return list as Scope[];
}

export function registerKeys(program: Command) {
  const keys = program.command('keys').description('manage API keys');

  keys
    .command('create')
    .description('create an API key; the key is printed once on stdout')
    .requiredOption('--tenant <id>', 'tenant')
    .requiredOption('--name <name>', 'what the key is for')
    .option('--scopes <list>', `comma-separated: ${SCOPES.join(',')}`, 'ingest,read')
    .action((opts: { tenant: string; name: string; scopes: string }) =>
      withServices(async (s) => {
        const scopes = parseScopes(opts.scopes);
        const ctx = await tenantCtx(s, opts.tenant);
        const { key, record } = await s.apiKeys.create(ctx.tenantId, opts.name, scopes);
        note(`created API key ${record.id} (${scopes.join(',')}) for tenant ${ctx.tenantId}; the key is shown only now:`);
        process.stdout.write(`${key}\n`);
      }),
    );

  keys
    .command('list')
    .description('list API keys (ids and names, never secrets)')
    .requiredOption('--tenant <id>', 'tenant')
    .option('--format <format>', 'table, csv or json', parseFormat, 'table' as const)
    .action((opts: { tenant: string; format: Format }) =>
      withServices(async (s) => {
        const ctx = await tenantCtx(s, opts.tenant);
        const json = (await s.apiKeys.list(ctx)).map((k) => ({
          id: k.id,
          name: k.name,
          scopes: k.scopes,
          createdAt: new Date(k.createdAt).toISOString(),
          revokedAt: k.revokedAt === null ? null : new Date(k.revokedAt).toISOString(),
        }));
        printRows(opts.format, ['id', 'name', 'scopes', 'createdAt', 'revokedAt'], json.map((k) => [k.id, k.name, k.scopes.join(','), k.createdAt, k.revokedAt]), json);
      }),
    );

  keys
    .command('revoke <id>')
    .description('revoke an API key by id (a whole key is accepted too)')
    .requiredOption('--tenant <id>', 'tenant')
    .action((id: string, opts: { tenant: string }) =>
      withServices(async (s) => {
        const ctx = await tenantCtx(s, opts.tenant);
        const keyId = parseKey(id)?.id ?? id;
        await s.apiKeys.revoke(ctx, keyId);
        process.stdout.write(`revoked API key ${keyId}\n`);
      }),
    );
}

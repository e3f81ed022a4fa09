// The Raystack Frontier usage API on meterd (README.md, "Seed usage APIs").
import type { FastifyInstance } from 'fastify';
import type { Command } from 'commander';
import type { Services } from '../../main.js';
import { systemCtx } from '../../core/context.js';
import { FrontierService } from './frontier.service.js';
import { frontierAdminRoutes, frontierRoutes } from './frontier.routes.js';

export async function register(app: FastifyInstance, s: Services): Promise<void> {
  const svc = new FrontierService(s);
  await frontierRoutes(app, svc);
  frontierAdminRoutes(app, s, svc);
}

/** Runs fn against a meterd opened from the environment and prints its answer as JSON. */
async function run(tenant: string, fn: (svc: FrontierService, ctx: ReturnType<typeof systemCtx>) => Promise<unknown>) {
  const { loadConfig } = await import('../../config.js');
  const { openServices } = await import('../../main.js');
  const s = await openServices(loadConfig());
  try {
    if (!(await s.store.getTenant(tenant))) throw new Error(`tenant "${tenant}" does not exist (create it with: meterd tenants create ${tenant})`);
    process.stdout.write(`${JSON.stringify(await fn(new FrontierService(s), systemCtx(tenant, 'cli')), null, 2)}\n`);
  } finally {
    await s.store.close();
  }
}

export function registerCli(program: Command): void {
  const f = program.command('frontier').description('configure the Raystack Frontier usage API (billing accounts, credits, client credentials)');
  f.command('account-create')
    .description('configure a billing account of an organisation (a meterd customer keyed by the billing id)')
    .requiredOption('--org <id>', 'Frontier organisation id')
    .option('--billing-id <uuid>', 'billing account id (default: a new UUID)')
    .option('--name <name>', 'display name')
    .option('--credit-min <decimal>', 'lowest balance a debit may leave (negative: overdraft)', '0')
    .option('--tenant <id>', 'tenant', 'default')
    .action((o: { org: string; billingId?: string; name?: string; creditMin: string; tenant: string }) =>
      run(o.tenant, (svc, ctx) => svc.createAccount(ctx, { orgId: o.org, billingId: o.billingId, name: o.name, creditMin: o.creditMin })));
  f.command('account <billingId>')
    .description('show a billing account and its credit balance')
    .option('--tenant <id>', 'tenant', 'default')
    .action((billingId: string, o: { tenant: string }) => run(o.tenant, (svc, ctx) => svc.getAccount(ctx, billingId)));
  f.command('topup <billingId> <amount>')
    .description('add credits (exact decimal) to a billing account')
    .option('--id <id>', 'idempotency key (default: a new UUID)')
    .option('--description <text>', 'description')
    .option('--tenant <id>', 'tenant', 'default')
    .action((billingId: string, amount: string, o: { id?: string; description?: string; tenant: string }) =>
      run(o.tenant, (svc, ctx) => svc.topUp(ctx, billingId, { amount, id: o.id, description: o.description })));
  f.command('credentials <name>')
    .description('create client credentials (a meterd API key with the ingest scope); the secret is shown once')
    .option('--tenant <id>', 'tenant', 'default')
    .action((name: string, o: { tenant: string }) => run(o.tenant, (svc, ctx) => svc.createCredentials(ctx, name)));
}

// The Planship usage API on meterd (README.md, "Seed usage APIs").
import type { FastifyInstance } from 'fastify';
import type { Command } from 'commander';
import type { Services } from '../../main.js';
import { systemCtx, type Ctx } from '../../core/context.js';
import { PlanshipAuth } from './planship.auth.js';
import { PlanshipConfig } from './planship.config.js';
import { PlanshipService } from './planship.service.js';
import { planshipAdminRoutes, planshipRoutes } from './planship.routes.js';

export async function register(app: FastifyInstance, s: Services): Promise<void> {
  const svc = new PlanshipService(s, new PlanshipConfig(s));
  await planshipRoutes(app, svc, new PlanshipAuth(s));
  planshipAdminRoutes(app, s, svc);
}

/** Runs fn against a meterd opened from the environment and prints its answer as JSON. */
async function run(tenant: string, fn: (cfg: PlanshipConfig, ctx: Ctx) => Promise<unknown>) {
  const { loadConfig } = await import('../../config.js');
  const { openServices } = await import('../../main.js');
  const s = await openServices(loadConfig());
  try {
    if (!(await s.store.getTenant(tenant))) throw new Error(`tenant "${tenant}" does not exist (create it with: meterd tenants create ${tenant})`);
    process.stdout.write(`${JSON.stringify(await fn(new PlanshipConfig(s), systemCtx(tenant, 'cli')), null, 2)}\n`);
  } finally {
    await s.store.close();
  }
}

const list = (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean);

export function registerCli(program: Command): void {
  const p = program.command('planship').description('configure the Planship usage API (products, levers, customers, subscriptions, client credentials)');
  p.command('product-create <slug>')
    .description('configure a product (a SUM meter ps-<slug>)')
    .option('--name <name>', 'display name')
    .option('--tenant <id>', 'tenant', 'default')
    .action((slug: string, o: { name?: string; tenant: string }) => run(o.tenant, (cfg, ctx) => cfg.createProduct(ctx, { slug, name: o.name })));
  p.command('product <slug>')
    .description('show a product and its levers')
    .option('--tenant <id>', 'tenant', 'default')
    .action((slug: string, o: { tenant: string }) => run(o.tenant, (cfg, ctx) => cfg.view(ctx, slug)));
  p.command('lever-create <product> <lever>')
    .description('configure a metered lever')
    .option('--metering-ids <ids>', 'comma-separated metering ids (default: the lever slug)')
    .option('--formula <f>', 'total, per_bucket or unique_buckets', 'total')
    .option('--period <p>', 'subscription, all_time or rolling', 'subscription')
    .option('--window-seconds <n>', 'rolling window length', (v) => Number(v))
    .option('--tenant <id>', 'tenant', 'default')
    .action((product: string, lever: string, o: { meteringIds?: string; formula: string; period: string; windowSeconds?: number; tenant: string }) =>
      run(o.tenant, (cfg, ctx) => cfg.createLever(ctx, product, {
        slug: lever, meteringIds: o.meteringIds ? list(o.meteringIds) : undefined,
        formula: o.formula as 'total', period: o.period as 'subscription', windowSeconds: o.windowSeconds,
      })));
  p.command('customer-create <customerId>')
    .description('configure a customer (a meterd customer keyed by the id)')
    .option('--name <name>', 'display name')
    .option('--tenant <id>', 'tenant', 'default')
    .action((customerId: string, o: { name?: string; tenant: string }) => run(o.tenant, (cfg, ctx) => cfg.createCustomer(ctx, { customerId, name: o.name })));
  p.command('subscribe <customerId> <product>')
    .description('subscribe a customer to a product')
    .option('--subscription-id <uuid>', 'subscription id (default: a new UUID)')
    .option('--started-at <time>', 'RFC 3339 start, the period anchor (default: now)')
    .option('--renew <unit>', 'day, week, month or year', 'month')
    .option('--time-zone <zone>', 'IANA zone periods follow', 'UTC')
    .option('--tenant <id>', 'tenant', 'default')
    .action((customerId: string, product: string, o: { subscriptionId?: string; startedAt?: string; renew: string; timeZone: string; tenant: string }) =>
      run(o.tenant, (cfg, ctx) => cfg.addSubscription(ctx, customerId, { product, subscriptionId: o.subscriptionId, startedAt: o.startedAt, renew: o.renew as 'month', timeZone: o.timeZone })));
  p.command('credentials <name>')
    .description('create client credentials (a meterd API key with ingest and read); the secret is shown once')
    .option('--tenant <id>', 'tenant', 'default')
    .action((name: string, o: { tenant: string }) => run(o.tenant, (cfg, ctx) => cfg.createCredentials(ctx, name)));
}

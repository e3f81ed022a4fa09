// The Kill Bill usage API on meterd (README.md, "Seed usage APIs").
import type { FastifyInstance } from 'fastify';
import type { Command } from 'commander';
import type { Services } from '../../main.js';
import { systemCtx } from '../../core/context.js';
import { KillBillService } from './killbill.service.js';
import { killBillAdminRoutes, killBillRoutes } from './killbill.routes.js';

export async function register(app: FastifyInstance, s: Services): Promise<void> {
  const svc = new KillBillService(s);
  await killBillRoutes(app, svc);
  killBillAdminRoutes(app, s, svc);
}

/** Runs fn against a meterd opened from the environment, as the other commands do. */
async function withServices(fn: (svc: KillBillService, s: Services) => Promise<unknown>) {
  const { loadConfig } = await import('../../config.js');
  const { openServices } = await import('../../main.js');
  const s = await openServices(loadConfig());
  try {
    process.stdout.write(`${JSON.stringify(await fn(new KillBillService(s), s), null, 2)}\n`);
  } finally {
    await s.store.close();
  }
}

export function registerCli(program: Command): void {
  const kb = program.command('killbill').description('configure the Kill Bill usage API (subscriptions, unit types)');
  kb.command('unit-type <unitType>')
    .description('configure a unit type: creates its SUM meter')
    .option('--tenant <id>', 'tenant', 'default')
    .option('--meter <slug>', 'meter slug (default kb-<unitType>)')
    .action((unitType: string, o: { tenant: string; meter?: string }) =>
      withServices((svc) => svc.addUnitType(systemCtx(o.tenant, 'cli'), { unitType, meter: o.meter })));
  kb.command('subscription <subscriptionId>')
    .description('configure a subscription: creates its meterd customer')
    .option('--tenant <id>', 'tenant', 'default')
    .option('--account-id <id>', 'Kill Bill account id')
    .option('--external-key <key>', 'subscription external key')
    .option('--end-date <date>', 'effective end date; later usage is refused')
    .action((subscriptionId: string, o: { tenant: string; accountId?: string; externalKey?: string; endDate?: string }) =>
      withServices((svc) => svc.addSubscription(systemCtx(o.tenant, 'cli'), { subscriptionId, accountId: o.accountId, externalKey: o.externalKey, endDate: o.endDate })));
}

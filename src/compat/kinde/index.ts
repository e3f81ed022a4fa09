// The Kinde metered usage API on meterd (README.md, "Seed usage APIs").
import type { FastifyInstance } from 'fastify';
import type { Command } from 'commander';
import type { Services } from '../../main.js';
import { systemCtx } from '../../core/context.js';
import { CYCLE_INTERVALS, KindeService, type CycleInterval } from './kinde.service.js';
import { KindeTokens } from './kinde.tokens.js';
import { Throttle } from './kinde.throttle.js';
import { kindeAdminRoutes, kindeRoutes } from './kinde.routes.js';

export async function register(app: FastifyInstance, s: Services): Promise<void> {
  const svc = new KindeService(s);
  await kindeRoutes(app, svc, new KindeTokens(s), new Throttle());
  kindeAdminRoutes(app, s, svc);
}

async function withServices(fn: (svc: KindeService) => Promise<unknown>) {
  const { loadConfig } = await import('../../config.js');
  const { openServices } = await import('../../main.js');
  const s = await openServices(loadConfig());
  try {
    process.stdout.write(`${JSON.stringify(await fn(new KindeService(s)), null, 2)}\n`);
  } finally {
    await s.store.close();
  }
}

export function registerCli(program: Command): void {
  const k = program.command('kinde').description('configure the Kinde metered usage API (features, agreements, OAuth clients)');
  k.command('feature <code>')
    .description('configure a billing feature code: creates its SUM meter')
    .option('--tenant <id>', 'tenant', 'default')
    .option('--meter <slug>', 'meter slug (default kinde-<code>)')
    .action((code: string, o: { tenant: string; meter?: string }) => withServices((svc) => svc.addFeature(systemCtx(o.tenant, 'cli'), { code, meter: o.meter })));
  k.command('agreement <agreementId>')
    .description('configure a billing agreement: creates its meterd customer')
    .option('--tenant <id>', 'tenant', 'default')
    .option('--cycle-anchor <instant>', 'an instant on a cycle boundary (default 1970-01-01T00:00:00Z)')
    .option('--cycle-interval <interval>', `one of ${CYCLE_INTERVALS.join(', ')}`, 'month')
    .option('--feature <code...>', 'feature codes it may record (default all)')
    .action((agreementId: string, o: { tenant: string; cycleAnchor?: string; cycleInterval: string; feature?: string[] }) => {
      if (!(CYCLE_INTERVALS as readonly string[]).includes(o.cycleInterval)) throw new Error(`--cycle-interval must be one of ${CYCLE_INTERVALS.join(', ')}`);
      return withServices((svc) => svc.addAgreement(systemCtx(o.tenant, 'cli'), { agreementId, cycleAnchor: o.cycleAnchor, cycleInterval: o.cycleInterval as CycleInterval, features: o.feature }));
    });
  k.command('client <name>')
    .description('create an OAuth client (client_id/client_secret, shown once)')
    .option('--tenant <id>', 'tenant', 'default')
    .action((name: string, o: { tenant: string }) => withServices((svc) => svc.createClient(systemCtx(o.tenant, 'cli'), name)));
}

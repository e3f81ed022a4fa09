// The ChartHop usage API on meterd (README.md, "Seed usage APIs").
import type { FastifyInstance } from 'fastify';
import type { Command } from 'commander';
import type { Services } from '../../main.js';
import { systemCtx } from '../../core/context.js';
import { ChartHopService } from './charthop.service.js';
import { chartHopAdminRoutes, chartHopRoutes } from './charthop.routes.js';

export async function register(app: FastifyInstance, s: Services): Promise<void> {
  const svc = new ChartHopService(s);
  await chartHopRoutes(app, svc);
  chartHopAdminRoutes(app, s, svc);
}

export function registerCli(program: Command): void {
  const ch = program.command('charthop').description('configure the ChartHop usage API (orgs)');
  ch.command('org <orgId>')
    .description('configure an org: creates its meterd customer (and the charthop-usage meter)')
    .option('--tenant <id>', 'tenant', 'default')
    .option('--slug <slug>', 'org slug, accepted in place of the id')
    .option('--name <name>', 'display name')
    .action(async (orgId: string, o: { tenant: string; slug?: string; name?: string }) => {
      const { loadConfig } = await import('../../config.js');
      const { openServices } = await import('../../main.js');
      const s = await openServices(loadConfig());
      try {
        const org = await new ChartHopService(s).addOrg(systemCtx(o.tenant, 'cli'), { orgId, slug: o.slug, name: o.name });
        process.stdout.write(`${JSON.stringify(org, null, 2)}\n`);
      } finally {
        await s.store.close();
      }
    });
}

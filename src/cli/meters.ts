// meterd meters create|list. The definition is checked against the same schema as POST /api/v1/meters.
import type { Command } from 'commander';
import { Value } from 'typebox/value';
import { validationError } from '../core/errors.js';
import { CreateMeterBody } from '../modules/meters/meters.schemas.js';
import { AGGREGATIONS } from '../modules/meters/meters.types.js';
import { CliError, parseFormat, printRows, type Format } from './output.js';
import { collect, tenantCtx, withServices } from './runtime.js';

interface CreateOpts {
  tenant: string;
  slug: string;
  eventType: string;
  aggregation: string;
  valueProperty?: string;
  groupBy: string[];
  description?: string;
}

function parseGroupBy(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new CliError(`--group-by takes name=JSONPath, e.g. model='$.model'; got "${item}"`);
    const name = item.slice(0, eq);
    if (name in out) throw new CliError(`--group-by ${name} is given twice`);
    out[name] = item.slice(eq + 1);
  }
  return out;
}

export function registerMeters(program: Command) {
  const meters = program.command('meters').description('manage meters');

  meters
    .command('create')
    .description('create a meter; its rollups are backfilled from events already stored')
    .requiredOption('--tenant <id>', 'tenant')
    .requiredOption('--slug <slug>', 'meter slug')
    .requiredOption('--event-type <type>', 'CloudEvents type the meter counts')
    .requiredOption('--aggregation <agg>', 'SUM, COUNT, UNIQUE_COUNT, MIN, MAX, AVG or LATEST')
    .option('--value-property <path>', "JSONPath of the value in data, e.g. '$.tokens' (not for COUNT)")
    .option('--group-by <name=path>', "a dimension, e.g. model='$.model' (repeatable)", collect, [])
    .option('--description <text>', 'description')
    .action((opts: CreateOpts) =>
      withServices(async (s) => {
        const ctx = await tenantCtx(s, opts.tenant);
        const body = {
          slug: opts.slug,
          eventType: opts.eventType,
          aggregation: opts.aggregation.toUpperCase(),
          ...(opts.valueProperty !== undefined && { valueProperty: opts.valueProperty }),
          groupBy: parseGroupBy(opts.groupBy),
          ...(opts.description !== undefined && { description: opts.description }),
        };
        if (!(AGGREGATIONS as readonly string[]).includes(body.aggregation)) {
          throw validationError('invalid meter definition', [{ field: 'aggregation', message: `must be one of ${AGGREGATIONS.join(', ')}` }]);
        }
        if (!Value.Check(CreateMeterBody, body)) {
          // One line per field: union schemas report every branch that failed.
          const fields = new Map<string, string>();
          for (const e of Value.Errors(CreateMeterBody, body)) {
            const field = e.instancePath.slice(1).replaceAll('/', '.') || '(meter)';
            if (!fields.has(field)) fields.set(field, e.message);
          }
          throw validationError('invalid meter definition', [...fields].map(([field, message]) => ({ field, message })));
        }
        const m = await s.meters.create(ctx, body as CreateMeterBody);
        process.stdout.write(`created meter ${m.slug} (${m.aggregation} of ${m.valueProperty ?? 'events'} for type ${m.eventType})\n`);
      }),
    );

  meters
    .command('list')
    .description('list meters')
    .requiredOption('--tenant <id>', 'tenant')
    .option('--format <format>', 'table, csv or json', parseFormat, 'table' as const)
    .action((opts: { tenant: string; format: Format }) =>
      withServices(async (s) => {
        const ctx = await tenantCtx(s, opts.tenant);
        const list = await s.meters.list(ctx);
        const json = list.map((m) => ({ slug: m.slug, eventType: m.eventType, aggregation: m.aggregation, valueProperty: m.valueProperty, groupBy: m.groupBy, description: m.description }));
        const groups = (g: Record<string, string>) => Object.entries(g).map(([k, v]) => `${k}=${v}`).join(' ');
        printRows(
          opts.format,
          ['slug', 'eventType', 'aggregation', 'valueProperty', 'groupBy', 'description'],
          json.map((m) => [m.slug, m.eventType, m.aggregation, m.valueProperty, groups(m.groupBy), m.description]),
          json,
        );
      }),
    );
}

// meterd query: a meter's usage, through the same parser and service as GET /api/v1/meters/:slug/query.
import type { Command } from 'commander';
import { parseUsageQuery } from '../modules/usage/usage.query.js';
import { CliError, parseFormat, printRows, type Cell, type Format } from './output.js';
import { collect, tenantCtx, withServices } from './runtime.js';

interface QueryOpts {
  tenant: string;
  meter: string;
  from?: string;
  to?: string;
  windowSize?: string;
  tz?: string;
  subject: string[];
  customer: string[];
  groupBy: string[];
  filter: string[];
  format: Format;
}

/** The query's URL-parameter form, so the CLI and the HTTP API read a query identically. */
export function queryParams(opts: QueryOpts): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  if (opts.from !== undefined) params.from = opts.from;
  if (opts.to !== undefined) params.to = opts.to;
  if (opts.windowSize !== undefined) params.windowSize = opts.windowSize.toUpperCase();
  if (opts.tz !== undefined) params.windowTimeZone = opts.tz;
  if (opts.subject.length > 0) params.subject = opts.subject;
  if (opts.customer.length > 0) params.customer = opts.customer;
  if (opts.groupBy.length > 0) params.groupBy = opts.groupBy;
  for (const f of opts.filter) {
    const eq = f.indexOf('=');
    if (eq <= 0) throw new CliError(`--filter takes dimension=value, e.g. model=gpt-4; got "${f}"`);
    const key = `filterGroupBy[${f.slice(0, eq)}]`;
    params[key] = [...((params[key] as string[] | undefined) ?? []), f.slice(eq + 1)];
  }
  return params;
}

export function registerQuery(program: Command) {
  program
    .command('query')
    .description("query a meter's usage")
    .requiredOption('--tenant <id>', 'tenant')
    .requiredOption('--meter <slug>', 'meter slug')
    .option('--from <iso>', 'start (inclusive), RFC 3339 with an offset, e.g. 2026-01-01T00:00:00Z')
    .option('--to <iso>', 'end (exclusive), RFC 3339 with an offset (default: now)')
    .option('--window-size <size>', 'MINUTE, HOUR, DAY or MONTH (default: one window over the range)')
    .option('--tz <zone>', 'IANA time zone of the windows, e.g. Europe/Berlin (default: UTC)')
    .option('--subject <subject>', 'only this subject (repeatable)', collect, [])
    .option('--customer <key>', "only this customer's subjects (repeatable)", collect, [])
    .option('--group-by <name>', 'group by subject, customer or a dimension (repeatable)', collect, [])
    .option('--filter <dim=value>', 'only these dimension values (repeatable)', collect, [])
    .option('--format <format>', 'table, csv or json', parseFormat, 'table' as const)
    .action((opts: QueryOpts) =>
      withServices(async (s) => {
        const q = parseUsageQuery(queryParams(opts));
        const ctx = await tenantCtx(s, opts.tenant);
        const result = await s.usage.query(ctx, opts.meter, q);
        const dims = q.groupBy.filter((g) => g !== 'subject' && g !== 'customer');
        const headers = ['windowStart', 'windowEnd'];
        if (q.groupBy.includes('customer')) headers.push('customer');
        if (q.groupBy.includes('subject')) headers.push('subject');
        headers.push(...dims, 'value');
        const rows = result.data.map((r): Cell[] => {
          const row: Cell[] = [r.windowStart, r.windowEnd];
          if (q.groupBy.includes('customer')) row.push(r.customer);
          if (q.groupBy.includes('subject')) row.push(r.subject);
          for (const d of dims) row.push(r.groupBy[d]);
          row.push(r.value);
          return row;
        });
        printRows(opts.format, headers, rows, result);
      }),
    );
}

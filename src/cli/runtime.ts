// What every database command shares: config parsed once, services from the composition root,
// a tenant that must exist, and the store closed at the end whatever happens.
import { InvalidArgumentError } from 'commander';
import { loadConfig } from '../config.js';
import { systemCtx, type Ctx } from '../core/context.js';
import { openServices, type Services } from '../main.js';
import { CliError } from './output.js';

export async function withServices<T>(fn: (s: Services) => Promise<T>): Promise<T> {
  const services = await openServices(loadConfig());
  try {
    return await fn(services);
  } finally {
    await services.store.close();
  }
}

/** An admin context for an existing tenant; a clear error when it does not exist. */
export async function tenantCtx(s: Services, tenantId: string): Promise<Ctx> {
  if (!(await s.store.getTenant(tenantId))) {
    throw new CliError(`tenant "${tenantId}" does not exist (create it with: meterd tenants create ${tenantId})`);
  }
  return systemCtx(tenantId, 'cli');
}

/** Commander collector for repeatable options. */
export const collect = (value: string, previous: string[] = []) => [...previous, value];

export function positiveInt(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

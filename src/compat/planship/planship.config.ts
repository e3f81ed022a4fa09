// Planship configuration mapped onto meterd: a product is a SUM meter `ps-<product>` over events of
// type planship.usage.<product> (dimensions metering_id, bucket, subscription_id); a lever is one
// more such meter `ps-<product>--<lever>` whose description holds its metering ids, formula and
// period (meters backfill, so a lever added later counts earlier usage). A customer is a meterd
// customer; its subscriptions live in its metadata under planship.sub.<id>.
import { randomUUID } from 'node:crypto';
import type { Ctx } from '../../core/context.js';
import { conflict, notFound, validationError } from '../../core/errors.js';
import { formatInstant, isValidZone, parseInstant } from '../../core/time.js';
import type { Customer } from '../../modules/customers/customers.types.js';
import type { Meter } from '../../modules/meters/meters.types.js';
import { parseKey } from '../../modules/api-keys/api-keys.service.js';
import type { Services } from '../../main.js';
import type { LeverConfig, Subscription } from './planship.levers.js';
import type { CreateCustomerBody, CreateLeverBody, CreateProductBody, SubscriptionBody } from './planship.schemas.js';
import { canNameKey } from '../keys.js';

export const eventType = (product: string) => `planship.usage.${product}`;
export const productMeterSlug = (product: string) => `ps-${product}`;
export const leverMeterSlug = (product: string, lever: string) => `ps-${product}--${lever}`;
const GROUP_BY = { metering_id: '$.metering_id', bucket: '$.bucket', subscription_id: '$.subscription_id' };
const SUB_PREFIX = 'planship.sub.';

export interface Product {
  product: string;
  productId: string;
  name: string;
  meter: Meter;
}

export interface Lever extends LeverConfig {
  meter: Meter;
}

type Described = { planship?: { kind: 'product'; product: string; productId: string; name: string } | ({ kind: 'lever' } & LeverConfig) };

function described(m: Meter): Described['planship'] {
  if (!m.description?.startsWith('{')) return undefined;
  try {
    return (JSON.parse(m.description) as Described).planship;
  } catch {
    return undefined;
  }
}

export class PlanshipConfig {
  constructor(private readonly s: Services) {}

  async product(ctx: Ctx, slug: string): Promise<Product | undefined> {
    const m = /^[a-z0-9][a-z0-9_-]{0,23}$/.test(slug) ? await this.s.store.getMeter(ctx.tenantId, productMeterSlug(slug)) : undefined;
    const d = m && described(m);
    return d?.kind === 'product' && d.product === slug ? { product: slug, productId: d.productId, name: d.name, meter: m! } : undefined;
  }

  async levers(ctx: Ctx, product: string): Promise<Lever[]> {
    const out: Lever[] = [];
    for (const m of await this.s.meters.list(ctx)) {
      const d = described(m);
      if (d?.kind === 'lever' && d.product === product) out.push({ product, lever: d.lever, meteringIds: d.meteringIds, formula: d.formula, period: d.period, windowSeconds: d.windowSeconds, meter: m });
    }
    return out.sort((a, b) => a.lever.localeCompare(b.lever));
  }

  async createProduct(ctx: Ctx, input: CreateProductBody) {
    const productId = randomUUID();
    const name = input.name ?? input.slug;
    const description = JSON.stringify({ planship: { kind: 'product', product: input.slug, productId, name } });
    await this.s.meters.create(ctx, { slug: productMeterSlug(input.slug), eventType: eventType(input.slug), aggregation: 'SUM', valueProperty: '$.usage', groupBy: GROUP_BY, description });
    return this.view(ctx, input.slug);
  }

  async createLever(ctx: Ctx, product: string, input: CreateLeverBody) {
    if (!(await this.product(ctx, product))) throw notFound(`Planship product "${product}"`);
    const period = input.period ?? 'subscription';
    if (period === 'rolling' && input.windowSeconds === undefined) throw validationError('a rolling lever needs windowSeconds', [{ field: 'windowSeconds', message: 'required for period "rolling"' }]);
    const config: LeverConfig = { product, lever: input.slug, meteringIds: input.meteringIds ?? [input.slug], formula: input.formula ?? 'total', period, windowSeconds: period === 'rolling' ? input.windowSeconds! : null };
    const description = JSON.stringify({ planship: { kind: 'lever', ...config } });
    await this.s.meters.create(ctx, { slug: leverMeterSlug(product, input.slug), eventType: eventType(product), aggregation: 'SUM', valueProperty: '$.usage', groupBy: GROUP_BY, description });
    return this.view(ctx, product);
  }

  async view(ctx: Ctx, slug: string) {
    const p = await this.product(ctx, slug);
    if (!p) throw notFound(`Planship product "${slug}"`);
    const levers = (await this.levers(ctx, slug)).map((l) => ({ slug: l.lever, meteringIds: l.meteringIds, formula: l.formula, period: l.period, windowSeconds: l.windowSeconds, meter: l.meter.slug }));
    return { slug, productId: p.productId, name: p.name, meter: p.meter.slug, levers };
  }

  // ---- customers and subscriptions ----

  async createCustomer(ctx: Ctx, input: CreateCustomerBody) {
    const metadata: Record<string, string> = {};
    for (const sub of input.subscriptions ?? []) {
      const s = await this.subscriptionOf(ctx, sub);
      metadata[SUB_PREFIX + s.id] = encodeSubscription(s);
    }
    await this.s.customers.create(ctx, { key: input.customerId, name: input.name, metadata });
    return this.customerView(ctx, input.customerId);
  }

  async addSubscription(ctx: Ctx, customerId: string, input: SubscriptionBody) {
    const c = await this.customer(ctx, customerId);
    const s = await this.subscriptionOf(ctx, input);
    if (c.metadata[SUB_PREFIX + s.id] !== undefined) throw conflict(`subscription ${s.id} already exists`, [{ field: 'subscriptionId', message: 'already in use' }]);
    await this.s.customers.update(ctx, customerId, { metadata: { ...c.metadata, [SUB_PREFIX + s.id]: encodeSubscription(s) } });
    return this.customerView(ctx, customerId);
  }

  async customerView(ctx: Ctx, customerId: string) {
    const c = await this.customer(ctx, customerId);
    const subscriptions = subscriptionsOf(c).map((s) => ({ subscriptionId: s.id, product: s.product, startedAt: formatInstant(s.startedAt), renew: s.renew, timeZone: s.timeZone }));
    return { customerId: c.key, name: c.name, subscriptions };
  }

  /** Any meterd customer by key (an id no key can have is not found). */
  private async customer(ctx: Ctx, customerId: string): Promise<Customer> {
    if (!canNameKey(customerId)) throw notFound(`customer "${customerId}"`);
    return this.s.customers.get(ctx, customerId);
  }

  private async subscriptionOf(ctx: Ctx, input: SubscriptionBody): Promise<Subscription> {
    if (!(await this.product(ctx, input.product))) throw notFound(`Planship product "${input.product}"`);
    const timeZone = input.timeZone ?? 'UTC';
    if (!isValidZone(timeZone)) throw validationError('timeZone must be an IANA zone', [{ field: 'timeZone', message: 'unknown time zone' }]);
    const startedAt = input.startedAt === undefined ? Date.now() : parseInstant(input.startedAt);
    if (startedAt === undefined) throw validationError('startedAt must be an RFC 3339 date-time', [{ field: 'startedAt', message: 'invalid date-time' }]);
    return { id: (input.subscriptionId ?? randomUUID()).toLowerCase(), product: input.product, startedAt, renew: input.renew ?? 'month', timeZone };
  }

  /** Client credentials: a new meterd API key (ingest + read); client id = key id, secret = its secret. */
  async createCredentials(ctx: Ctx, name: string) {
    const { key } = await this.s.apiKeys.create(ctx.tenantId, `planship: ${name}`, ['ingest', 'read']);
    const parts = parseKey(key)!;
    return { clientId: parts.id, clientSecret: parts.secret };
  }
}

const encodeSubscription = (s: Subscription) => JSON.stringify({ product: s.product, startedAt: s.startedAt, renew: s.renew, timeZone: s.timeZone });

export function subscriptionsOf(c: Customer): Subscription[] {
  const out: Subscription[] = [];
  for (const [k, v] of Object.entries(c.metadata)) {
    if (!k.startsWith(SUB_PREFIX)) continue;
    try {
      out.push({ id: k.slice(SUB_PREFIX.length), ...(JSON.parse(v) as Omit<Subscription, 'id'>) });
    } catch {
      // Metadata edited by hand into something else is not a subscription.
    }
  }
  return out.sort((a, b) => a.startedAt - b.startedAt);
}

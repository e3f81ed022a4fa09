// Planship's MeteredUsageApi on meterd: a report is one event (one metering record) on the product's
// meters; lever usage is read back through the native usage query over the lever's period.
import { createHash, randomUUID } from 'node:crypto';
import type { Ctx } from '../../core/context.js';
import { Decimal } from '../../core/decimal.js';
import { HOUR_MS, floorHour } from '../../core/time.js';
import { validateEvent, type EventLimits } from '../../modules/events/event-validation.js';
import type { Customer } from '../../modules/customers/customers.types.js';
import type { Services } from '../../main.js';
import { eventType, subscriptionsOf, type Lever, type PlanshipConfig, type Product } from './planship.config.js';
import { applyFormula, calendarMonth, currentPeriod, leverUsageJson, type Cell, type Range } from './planship.levers.js';
import { invalid, notFound, PlanshipError } from './planship.errors.js';
import type { MeteredUsageIn } from './planship.schemas.js';
import { canNameKey } from '../keys.js';

export interface MeteringRecord {
  id: string;
  is_allocated: boolean;
  usage: number;
  metering_id: string;
  customer_id: string;
  product_id: string;
  subscription_id: string | null;
  bucket: string | null;
}

export class PlanshipService {
  private readonly limits: EventLimits;

  constructor(
    private readonly s: Services,
    readonly config: PlanshipConfig,
  ) {
    this.limits = s.eventLimits;
  }

  private async productOrFail(ctx: Ctx, slug: string): Promise<Product> {
    const p = await this.config.product(ctx, slug);
    if (!p) throw notFound(`Product '${slug}' not found`);
    return p;
  }

  private async customerOrFail(ctx: Ctx, id: string): Promise<Customer> {
    const c = canNameKey(id) ? await this.s.store.getCustomer(ctx.tenantId, id) : undefined;
    if (!c) throw notFound(`Customer '${id}' not found`);
    return c;
  }

  /**
   * One report = one metering record; a retry counts again, as in Planship. Beyond Planship: with an
   * Idempotency-Key header the record id derives from the key, and a retry returns the same record.
   */
  async report(ctx: Ctx, customerId: string, productSlug: string, meteringId: string, body: MeteredUsageIn, idempotencyKey?: string): Promise<MeteringRecord> {
    if (!Number.isSafeInteger(body.usage)) throw invalid({ loc: ['body', 'usage'], msg: 'Input should be a valid integer of at most 2^53 - 1 in magnitude', type: 'int_type' });
    if (!/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/.test(meteringId)) throw invalid({ loc: ['path', 'metering_id'], msg: 'String should match pattern \'^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$\'', type: 'string_pattern_mismatch' });
    const product = await this.productOrFail(ctx, productSlug);
    const customer = await this.customerOrFail(ctx, customerId);
    const subs = subscriptionsOf(customer).filter((s) => s.product === productSlug);
    let subscriptionId = body.subscription_id?.toLowerCase() ?? null;
    if (subscriptionId !== null && !subs.some((s) => s.id === subscriptionId)) throw notFound(`Subscription '${subscriptionId}' not found for customer '${customerId}' and product '${productSlug}'`);
    // Without subscription_id the record goes to the customer's subscription of the product, when it has exactly one.
    if (subscriptionId === null && subs.length === 1) subscriptionId = subs[0].id;

    const id = idempotencyKey ? uuidFrom(`${productSlug}\u0000${customer.key}\u0000${idempotencyKey}`) : randomUUID();
    const bucket = body.bucket ?? null;
    const data = { customer_id: customer.key, metering_id: meteringId, usage: body.usage, bucket, subscription_id: subscriptionId };
    const subject = customer.subjects.includes(customer.key) ? customer.key : (customer.subjects[0] ?? customer.key);
    const v = validateEvent({ specversion: '1.0', source: `planship:${productSlug}`, id, type: eventType(productSlug), subject, data }, this.limits, Date.now());
    if (!v.ok) throw invalid({ loc: ['body'], msg: v.error, type: 'value_error' });
    const [status] = await this.s.events.append(ctx.tenantId, [v.event]);
    if (status === 'conflict') throw new PlanshipError(409, 'Idempotency-Key was already used for a different usage report');
    return { id, is_allocated: true, usage: body.usage, metering_id: meteringId, customer_id: customerId, product_id: product.productId, subscription_id: subscriptionId, bucket };
  }

  /** GET …/levers/{lever}/usage as JSON text. */
  async leverUsage(ctx: Ctx, customerId: string, productSlug: string, leverSlug: string): Promise<string> {
    await this.productOrFail(ctx, productSlug);
    const customer = await this.customerOrFail(ctx, customerId);
    const lever = (await this.config.levers(ctx, productSlug)).find((l) => l.lever === leverSlug);
    if (!lever) throw notFound(`Lever '${leverSlug}' not found in product '${productSlug}'`);
    return leverUsageJson(await this.compute(ctx, customer, lever, customerId));
  }

  /** GET …/usage/{metering_id}: every lever that tracks the metering id, by lever slug. */
  async meteringIdUsage(ctx: Ctx, customerId: string, productSlug: string, meteringId: string): Promise<string> {
    await this.productOrFail(ctx, productSlug);
    const customer = await this.customerOrFail(ctx, customerId);
    const parts: string[] = [];
    for (const lever of await this.config.levers(ctx, productSlug)) {
      if (lever.meteringIds.includes(meteringId)) parts.push(`${JSON.stringify(lever.lever)}:${leverUsageJson(await this.compute(ctx, customer, lever, customerId))}`);
    }
    return `{${parts.join(',')}}`;
  }

  private async compute(ctx: Ctx, customer: Customer, lever: Lever, customerId: string) {
    const now = Date.now();
    const horizon = floorHour(now + this.limits.maxFutureMs) + 2 * HOUR_MS;
    // The ranges to read, each with the subscriptions it is the period of (undefined: all records).
    const reads: Array<{ range: Range; keep?: (sub: string | null) => boolean }> = [];
    if (lever.period === 'all_time') reads.push({ range: { from: 0, to: horizon } });
    else if (lever.period === 'rolling') reads.push({ range: { from: Math.max(0, now - lever.windowSeconds! * 1000), to: horizon } });
    else {
      const subs = subscriptionsOf(customer).filter((s) => s.product === lever.product);
      const known = new Set(subs.map((s) => s.id));
      for (const sub of subs) reads.push({ range: currentPeriod(sub, now), keep: (id) => id === sub.id });
      reads.push({ range: calendarMonth(now), keep: (id) => id === null || !known.has(id) });
    }
    const cells: Cell[] = [];
    for (const { range, keep } of reads) {
      const r = await this.s.usage.queryMeter(ctx, lever.meter, {
        from: range.from, to: range.to, windowTimeZone: 'UTC', customers: [customer.key],
        groupBy: ['subscription_id', 'bucket'], filterGroupBy: { metering_id: lever.meteringIds },
      });
      for (const row of r.data) {
        const sub = row.groupBy.subscription_id ?? null;
        if (row.value === null || (keep && !keep(sub))) continue;
        cells.push({ subscription: sub, bucket: row.groupBy.bucket ?? null, usage: new Decimal(row.value) });
      }
    }
    return applyFormula(lever.formula, cells, customerId);
  }
}

/** A UUID (version 8, RFC 9562 custom) derived from a name, for idempotent record ids. */
function uuidFrom(name: string): string {
  const h = createHash('sha256').update(name).digest();
  h[6] = (h[6] & 0x0f) | 0x80;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

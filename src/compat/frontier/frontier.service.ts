// Frontier on meterd. A billing account is a meterd customer (key = billing id, subject = billing id,
// metadata frontier.org_id / frontier.credit_min). Top-ups, credit debits and feature usages are
// events with SUM meters; the balance is top-ups - debits read through the native usage query.
import { randomUUID } from 'node:crypto';
import type { Ctx, Scope } from '../../core/context.js';
import { conflict, notFound, validationError } from '../../core/errors.js';
import { Decimal, formatDecimal, parseAmount, ZERO } from '../../core/decimal.js';
import { HOUR_MS, floorHour } from '../../core/time.js';
import { validateEvent, type EventLimits } from '../../modules/events/event-validation.js';
import type { Customer } from '../../modules/customers/customers.types.js';
import type { Meter } from '../../modules/meters/meters.types.js';
import type { NewEvent } from '../../modules/events/events.types.js';
import { parseKey } from '../../modules/api-keys/api-keys.service.js';
import type { Services } from '../../main.js';
import { alreadyApplied, customerNotFound, FrontierError, GRPC, INSUFFICIENT_CREDITS, insufficientCredits, invalidArgument, permissionDenied, unauthenticated } from './frontier.errors.js';
import type { AccountView, CreateAccountBody, TopUpBody } from './frontier.schemas.js';
import { canNameKey } from '../keys.js';

export const TYPE_TOPUP = 'frontier.credit.topup';
export const TYPE_DEBIT = 'frontier.credit.debit';
export const TYPE_FEATURE = 'frontier.feature.usage';
/** One dedupe source per tenant for usages: Frontier's usage id is a global idempotency key. */
export const USAGE_SOURCE = 'frontier';
export const METERS = { topups: 'frontier-credit-topups', debits: 'frontier-credit-debits', features: 'frontier-feature-usage' } as const;
const ORG = 'frontier.org_id';
const CREDIT_MIN = 'frontier.credit_min';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface UsageIn {
  id?: unknown;
  source?: unknown;
  description?: unknown;
  type?: unknown;
  amount?: unknown;
  user_id?: unknown;
  userId?: unknown;
  metadata?: unknown;
}

export interface UsageTarget {
  orgId?: string;
  billingId?: string;
  projectId?: string;
}

interface CheckedUsage {
  id: string;
  type: 'credit' | 'feature';
  amount: Decimal;
  data: Record<string, unknown>;
}

const text = (v: unknown) => (typeof v === 'string' ? v : undefined);

/** The meterd API key a Frontier Authorization header carries (Bearer key, or Basic id:secret / any:key). */
export function keyFromAuthorization(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const bearer = /^Bearer\s+(\S{1,512})\s*$/i.exec(header);
  if (bearer) return bearer[1];
  const basic = /^Basic\s+([A-Za-z0-9+/=]{1,1024})\s*$/i.exec(header);
  if (!basic) return undefined;
  const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const user = decoded.slice(0, colon), password = decoded.slice(colon + 1);
  if (parseKey(password)) return password;
  return `mk_${user.replace(/^mk_/, '')}_${password}`;
}

export class FrontierService {
  private readonly limits: EventLimits;

  constructor(private readonly s: Services) {
    this.limits = s.eventLimits;
  }

  async authenticate(authorization: string | undefined, scope: Scope): Promise<Ctx> {
    const key = keyFromAuthorization(authorization);
    if (!key) throw unauthenticated();
    const record = await this.s.apiKeys.authenticate(key).catch(() => {
      throw unauthenticated();
    });
    if (!record.scopes.includes(scope) && !record.scopes.includes('admin')) throw permissionDenied(`this credential lacks the "${scope}" scope`);
    return { tenantId: record.tenantId, actor: `key:${record.id}`, scopes: record.scopes };
  }

  /** CreateBillingUsage: every usage is checked first; then each is applied alone, as Frontier does. */
  async createUsages(ctx: Ctx, target: UsageTarget, usages: UsageIn[]): Promise<void> {
    if (target.projectId && target.orgId) throw invalidArgument('both project_id and org_id cannot be provided');
    if (target.projectId) throw invalidArgument('project_id is not supported by this server: give org_id and billing_id');
    if (target.billingId && !UUID.test(target.billingId)) {
      throw invalidArgument('invalid CreateBillingUsageRequest.BillingId: value must be a valid UUID | caused by: invalid uuid format');
    }
    const checked = usages.map((u, i) => this.check(u, i));
    const account = await this.resolveAccount(ctx, target);
    // Each usage's event is built and validated (NUL characters, data size and depth) before any is
    // applied, so a batch refused as invalid stores nothing.
    const events = checked.map((u, i) => ({ usage: u, event: this.usageEvent(account, u, i) }));
    await this.ensureMeters(ctx);

    let insufficient = false, applied = false, failed: unknown;
    for (const { usage, event } of events) {
      try {
        await this.apply(ctx, account, usage, event);
      } catch (e) {
        if (e instanceof FrontierError && e.message === INSUFFICIENT_CREDITS) insufficient = true;
        else if (e instanceof FrontierError && e.code === GRPC.ALREADY_EXISTS) applied = true;
        else failed ??= e;
      }
    }
    // Frontier's precedence when several usages fail: insufficient credits, then already applied.
    if (insufficient) throw insufficientCredits();
    if (applied) throw alreadyApplied();
    if (failed) throw failed;
  }

  private check(u: UsageIn, i: number): CheckedUsage {
    const bad = (field: string, why: string) =>
      invalidArgument(`invalid CreateBillingUsageRequest.Usages[${i}]: embedded message failed validation | caused by: invalid Usage.${field}: ${why}`);
    if (u === null || typeof u !== 'object' || Array.isArray(u)) throw invalidArgument(`invalid CreateBillingUsageRequest.Usages[${i}]: must be an object`);
    const id = text(u.id) ?? '';
    if (!UUID.test(id)) throw bad('Id', 'value must be a valid UUID | caused by: invalid uuid format');
    const type = text(u.type) ?? '';
    if (!['', 'credit', 'feature'].includes(type)) throw bad('Type', 'value must be in list [credit feature]');
    const amount = u.amount === undefined || u.amount === null || u.amount === '' ? { ok: true as const, value: ZERO } : parseAmount(u.amount);
    if (!amount.ok) throw bad('Amount', amount.error);
    if (!amount.value.gt(0)) throw bad('Amount', 'value must be greater than 0');
    const metadata = u.metadata ?? null;
    if (metadata !== null && (typeof metadata !== 'object' || Array.isArray(metadata))) throw bad('Metadata', 'value must be an object');
    const data: Record<string, unknown> = {
      amount: formatDecimal(amount.value),
      source: (text(u.source) ?? '').toLowerCase() || 'system',
      description: text(u.description) ?? '',
      user_id: text(u.user_id) ?? text(u.userId) ?? '',
      metadata,
    };
    return { id: id.toLowerCase(), type: type === 'feature' ? 'feature' : 'credit', amount: amount.value, data };
  }

  /** The event a checked usage becomes on this account; refuses it (400) when the event would be invalid. */
  private usageEvent(account: Customer, u: CheckedUsage, i: number): NewEvent {
    const billingId = account.key;
    const data = { ...u.data, billing_id: billingId, org_id: account.metadata[ORG] };
    const type = u.type === 'feature' ? TYPE_FEATURE : TYPE_DEBIT;
    const v = validateEvent({ specversion: '1.0', source: USAGE_SOURCE, id: u.id, type, subject: billingId, data }, this.limits, Date.now());
    if (!v.ok) throw invalidArgument(`invalid CreateBillingUsageRequest.Usages[${i}]: invalid usage: ${v.field} ${v.error}`);
    return v.event;
  }

  private async apply(ctx: Ctx, account: Customer, u: CheckedUsage, event: NewEvent): Promise<void> {
    const billingId = account.key;
    if (u.type === 'feature') {
      await this.append(ctx, event);
      return;
    }
    // Read the balance and append the debit under one lock, so concurrent debits never overdraw.
    await this.s.store.withLock(ctx.tenantId, `frontier:${billingId}`, async () => {
      const { balance } = await this.totals(ctx, billingId);
      if (balance.minus(u.amount).lt(creditMin(account))) throw insufficientCredits();
      await this.append(ctx, event);
    });
  }

  private async append(ctx: Ctx, event: NewEvent): Promise<'accepted' | 'duplicate'> {
    const [status] = await this.s.events.append(ctx.tenantId, [event]);
    // Frontier: a reused id is refused whatever its content; the original stays unchanged.
    if (status !== 'accepted') throw alreadyApplied();
    return status;
  }

  private async resolveAccount(ctx: Ctx, target: UsageTarget): Promise<Customer> {
    let account: Customer | undefined;
    if (target.billingId) {
      account = await this.s.store.getCustomer(ctx.tenantId, target.billingId.toLowerCase());
    } else if (target.orgId) {
      const all = await this.accountsOfOrg(ctx, target.orgId);
      if (all.length > 1) throw invalidArgument(`organization ${target.orgId} has ${all.length} billing accounts: give billing_id`);
      account = all[0];
    } else {
      throw invalidArgument('invalid CreateBillingUsageRequest: org_id or billing_id is required');
    }
    if (!account || account.metadata[ORG] === undefined) throw customerNotFound();
    if (target.orgId !== undefined && account.metadata[ORG] !== target.orgId) throw permissionDenied();
    return account;
  }

  /** Billing accounts of one organisation (a scan of customers: only the body-only variant needs it). */
  private async accountsOfOrg(ctx: Ctx, orgId: string): Promise<Customer[]> {
    const out: Customer[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.s.store.listCustomers(ctx.tenantId, after, 1000);
      out.push(...page.filter((c) => c.metadata[ORG] === orgId));
      if (page.length < 1000) return out;
      after = page[page.length - 1].key;
    }
  }

  /** The three SUM meters; created on first use, and again if someone deleted one (they backfill). */
  async ensureMeters(ctx: Ctx): Promise<Record<keyof typeof METERS, Meter>> {
    const specs = [
      ['topups', TYPE_TOPUP, {}, 'Frontier credit top-ups per billing account (subject = billing id)'],
      ['debits', TYPE_DEBIT, { source: '$.source' }, 'Frontier credit debits per billing account (subject = billing id)'],
      ['features', TYPE_FEATURE, { source: '$.source' }, 'Frontier feature usages per billing account (subject = billing id)'],
    ] as const;
    const out = {} as Record<keyof typeof METERS, Meter>;
    for (const [name, eventType, groupBy, description] of specs) {
      const slug = METERS[name];
      let m = await this.s.store.getMeter(ctx.tenantId, slug);
      if (!m) {
        try {
          m = await this.s.meters.create(ctx, { slug, eventType, aggregation: 'SUM', valueProperty: '$.amount', groupBy, description });
        } catch (e) {
          m = await this.s.store.getMeter(ctx.tenantId, slug);
          if (!m) throw e;
        }
      }
      if (m.eventType !== eventType || m.aggregation !== 'SUM') throw conflict(`meter ${slug} exists but is not Frontier's SUM meter of ${eventType}`);
      out[name] = m;
    }
    return out;
  }

  /** All-time totals of one account from the native usage query. */
  async totals(ctx: Ctx, billingId: string): Promise<{ toppedUp: Decimal; debited: Decimal; balance: Decimal }> {
    const meters = await this.ensureMeters(ctx);
    // Whole UTC hours only, so the answer comes from rollups; events may be stamped up to the future limit.
    const to = floorHour(Date.now() + this.limits.maxFutureMs) + 2 * HOUR_MS;
    const sum = async (m: Meter) => {
      const r = await this.s.usage.queryMeter(ctx, m, { from: 0, to, windowTimeZone: 'UTC', subjects: [billingId], groupBy: [], filterGroupBy: {} });
      return r.data.reduce((acc, row) => (row.value === null ? acc : acc.plus(row.value)), new Decimal(0));
    };
    const toppedUp = await sum(meters.topups);
    const debited = await sum(meters.debits);
    return { toppedUp, debited, balance: toppedUp.minus(debited) };
  }

  // ---- configuration ----

  async createAccount(ctx: Ctx, input: CreateAccountBody): Promise<AccountView> {
    const billingId = (input.billingId ?? randomUUID()).toLowerCase();
    await this.ensureMeters(ctx);
    const metadata: Record<string, string> = { [ORG]: input.orgId, [CREDIT_MIN]: formatDecimal(new Decimal(input.creditMin ?? '0')) };
    await this.s.customers.create(ctx, { key: billingId, name: input.name ?? `Frontier billing account ${billingId}`, subjects: [billingId], metadata });
    return this.getAccount(ctx, billingId);
  }

  async account(ctx: Ctx, billingId: string): Promise<Customer> {
    const c = canNameKey(billingId) ? await this.s.store.getCustomer(ctx.tenantId, billingId.toLowerCase()) : undefined;
    if (!c || c.metadata[ORG] === undefined) throw notFound(`Frontier billing account "${billingId}"`);
    return c;
  }

  async getAccount(ctx: Ctx, billingId: string): Promise<AccountView> {
    const c = await this.account(ctx, billingId);
    const t = await this.totals(ctx, c.key);
    return {
      billingId: c.key,
      orgId: c.metadata[ORG],
      name: c.name,
      creditMin: formatDecimal(creditMin(c)),
      toppedUp: formatDecimal(t.toppedUp),
      debited: formatDecimal(t.debited),
      balance: formatDecimal(t.balance),
      meters: { ...METERS },
    };
  }

  async topUp(ctx: Ctx, billingId: string, input: TopUpBody): Promise<{ id: string; status: 'accepted' | 'duplicate'; balance: string }> {
    const c = await this.account(ctx, billingId);
    const amount = parseAmount(input.amount);
    if (!amount.ok) throw validationError(`invalid amount: ${amount.error}`, [{ field: 'amount', message: amount.error }]);
    if (!amount.value.gt(0)) throw validationError('a top-up amount must be greater than 0', [{ field: 'amount', message: 'must be greater than 0' }]);
    await this.ensureMeters(ctx);
    const id = input.id ?? randomUUID();
    const data = { amount: formatDecimal(amount.value), description: input.description ?? '', billing_id: c.key, org_id: c.metadata[ORG] };
    const v = validateEvent({ specversion: '1.0', source: `frontier:${c.key}`, id, type: TYPE_TOPUP, subject: c.key, data }, this.limits, Date.now());
    if (!v.ok) throw validationError(`invalid top-up: ${v.error}`, [{ field: v.field, message: v.error }]);
    const [status] = await this.s.events.append(ctx.tenantId, [v.event]);
    if (status === 'conflict') throw conflict(`top-up id "${id}" was already used with a different amount or description`, [{ field: 'id', message: 'already used' }]);
    return { id, status, balance: formatDecimal((await this.totals(ctx, c.key)).balance) };
  }

  /** A meterd API key with the ingest scope, handed out as a Frontier client id and secret. */
  async createCredentials(ctx: Ctx, name: string): Promise<{ clientId: string; clientSecret: string; key: string }> {
    const { key } = await this.s.apiKeys.create(ctx.tenantId, `frontier: ${name}`, ['ingest']);
    const parts = parseKey(key)!;
    return { clientId: parts.id, clientSecret: parts.secret, key };
  }
}

const creditMin = (c: Customer) => new Decimal(c.metadata[CREDIT_MIN] ?? '0');

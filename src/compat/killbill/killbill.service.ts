// Kill Bill usage on meterd. A subscription is a meterd customer (subject "kb:<id>"), a unit type
// is a SUM meter over events of type "killbill.usage.<unitType>", a usage record is one event.
// A reused trackingId is refused by a marker event whose (source, id) the store keeps unique.
import { createHash, randomUUID } from 'node:crypto';
import canonicalizeModule from 'canonicalize';
import type { Ctx, Scope } from '../../core/context.js';
import { notFound, validationError } from '../../core/errors.js';
import { parseAmount, formatDecimal } from '../../core/decimal.js';
import { formatInstant, parseInstant } from '../../core/time.js';
import type { Services } from '../../main.js';
import type { Customer } from '../../modules/customers/customers.types.js';
import type { Meter } from '../../modules/meters/meters.types.js';
import { validateEvent, type EventLimits } from '../../modules/events/event-validation.js';
import type { NewEvent } from '../../modules/events/events.types.js';
import * as kbErr from './killbill.errors.js';
import { canNameKey } from '../keys.js';

const canonicalize = canonicalizeModule as unknown as (v: unknown) => string | undefined;

export const USAGE_TYPE_PREFIX = 'killbill.usage.';
export const TRACKING_TYPE = 'killbill.tracking';
const COMPAT = 'killbill';
export const subjectOf = (subscriptionId: string) => `kb:${subscriptionId}`;
export const sourceOf = (subscriptionId: string) => `killbill:${subscriptionId}`;
const UUID = /^\w+-\w+-\w+-\w+-\w+$/;
const MAX_TRACKING_ID = 128;

export interface Audit {
  createdBy: string | undefined;
  reason?: string;
  comment?: string;
}

export interface UnitTypeView {
  unitType: string;
  meter: string;
  description: string | null;
}

export interface SubscriptionInput {
  subscriptionId: string;
  accountId?: string;
  externalKey?: string;
  /** Effective end date: usage recorded after it is refused (400, as Kill Bill does). */
  endDate?: string;
}

export interface SubscriptionView {
  subscriptionId: string;
  accountId: string | null;
  externalKey: string | null;
  endDate: string | null;
  customer: string;
  subject: string;
}

/** Kill Bill parses dates with Joda's ISO parser: a date, or a date-time with or without an offset (UTC). */
export function parseKillBillDate(text: unknown): number | undefined {
  if (typeof text !== 'string') return undefined;
  if (/^\d{4}-\d{2}-\d{2}$/.test(text)) return parseInstant(`${text}T00:00:00Z`);
  const local = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})(:\d{2}(\.\d{1,9})?)?$/.exec(text);
  if (local) return parseInstant(`${local[1]}${local[2] ?? ':00'}Z`);
  return parseInstant(text);
}

/** A meter slug for a unit type: its name made slug-safe, with a digest when that changed it. */
export function meterSlugFor(unitType: string): string {
  const base = unitType.toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '');
  const exact = base === unitType && base.length > 0 && base.length <= 59;
  return exact ? `kb-${base}` : `kb-${base.slice(0, 50)}-${createHash('sha256').update(unitType).digest('hex').slice(0, 8)}`.replace(/--+/g, '-');
}

export const isKillBillSubscription = (c: Customer) => c.metadata.compat === COMPAT;

export function subscriptionView(c: Customer): SubscriptionView {
  return {
    subscriptionId: c.key,
    accountId: c.metadata.accountId ?? null,
    externalKey: c.metadata.externalKey ?? null,
    endDate: c.metadata.endDate ?? null,
    customer: c.key,
    subject: subjectOf(c.key),
  };
}

export class KillBillService {
  private readonly limits: EventLimits;

  constructor(private readonly s: Services) {
    // The same limits the native ingestion applies.
    this.limits = s.eventLimits;
  }

  // ---- credentials ----------------------------------------------------------------------------

  /**
   * Kill Bill's three credentials mapped onto meterd API keys: X-Killbill-ApiKey names the tenant,
   * X-Killbill-ApiSecret and the Basic password are API keys of that tenant (may be the same key);
   * the Basic password's key must carry the scope. Every failure is a bare 401, as in Kill Bill.
   */
  async authenticate(h: { authorization?: string; apiKey?: string; apiSecret?: string }, scope: Scope): Promise<Ctx> {
    const m = /^Basic\s+([A-Za-z0-9+/=]{1,1024})\s*$/i.exec(h.authorization ?? '');
    if (!m || !h.apiKey || !h.apiSecret) throw kbErr.unauthorized();
    const decoded = Buffer.from(m[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw kbErr.unauthorized();
    const user = decoded.slice(0, colon), password = decoded.slice(colon + 1);
    const check = async (key: string) => {
      try {
        return await this.s.apiKeys.authenticate(key);
      } catch {
        throw kbErr.unauthorized();
      }
    };
    const userKey = await check(password);
    const tenantKey = h.apiSecret === password ? userKey : await check(h.apiSecret);
    if (userKey.tenantId !== h.apiKey || tenantKey.tenantId !== h.apiKey) throw kbErr.unauthorized();
    if (!userKey.scopes.includes(scope) && !userKey.scopes.includes('admin')) throw kbErr.forbidden();
    const who = user.replace(/[^\w.@-]/g, '').slice(0, 64);
    return { tenantId: userKey.tenantId, actor: `key:${userKey.id}${who ? `/${who}` : ''}`, scopes: userKey.scopes };
  }

  // ---- configuration (native API and CLI) -------------------------------------------------------

  async addUnitType(ctx: Ctx, input: { unitType: string; meter?: string; description?: string }): Promise<UnitTypeView> {
    const meter = await this.s.meters.create(ctx, {
      slug: input.meter ?? meterSlugFor(input.unitType),
      eventType: USAGE_TYPE_PREFIX + input.unitType,
      aggregation: 'SUM',
      valueProperty: '$.amount',
      description: input.description ?? `Kill Bill unit type ${input.unitType}`,
    });
    return unitTypeView(meter);
  }

  async listUnitTypes(ctx: Ctx): Promise<UnitTypeView[]> {
    return (await this.unitTypeMeters(ctx)).map(unitTypeView);
  }

  async addSubscription(ctx: Ctx, input: SubscriptionInput): Promise<SubscriptionView> {
    if (!UUID.test(input.subscriptionId)) throw validationError('subscriptionId must be a UUID', [{ field: 'subscriptionId', message: 'not a UUID' }]);
    if (input.endDate !== undefined && parseKillBillDate(input.endDate) === undefined) {
      throw validationError('endDate must be a date or an RFC 3339 date-time', [{ field: 'endDate', message: 'unparsable' }]);
    }
    const metadata: Record<string, string> = { compat: COMPAT };
    if (input.accountId) metadata.accountId = input.accountId;
    if (input.externalKey) metadata.externalKey = input.externalKey;
    if (input.endDate) metadata.endDate = input.endDate;
    const c = await this.s.customers.create(ctx, {
      key: input.subscriptionId,
      name: input.externalKey ?? `Kill Bill subscription ${input.subscriptionId}`,
      subjects: [subjectOf(input.subscriptionId)],
      metadata,
    });
    return subscriptionView(c);
  }

  async getSubscription(ctx: Ctx, subscriptionId: string): Promise<SubscriptionView> {
    const c = canNameKey(subscriptionId) ? await this.s.store.getCustomer(ctx.tenantId, subscriptionId) : undefined;
    if (!c || !isKillBillSubscription(c)) throw notFound(`Kill Bill subscription "${subscriptionId}"`);
    return subscriptionView(c);
  }

  // ---- the wire API ---------------------------------------------------------------------------

  /** POST /1.0/kb/usages: all records or none. Throws KillBillError. */
  async recordUsage(ctx: Ctx, body: unknown, audit: Audit): Promise<void> {
    const req = checkBody(body);
    if (!audit.createdBy) throw kbErr.badRequest('Header X-Killbill-CreatedBy needs to be set');
    const sub = await this.subscription(ctx, req.subscriptionId);

    const trackingId = req.trackingId || randomUUID();
    if (trackingId.length > MAX_TRACKING_ID) throw kbErr.badRequest(`trackingId is longer than ${MAX_TRACKING_ID} characters`);
    const meters = await this.unitTypeMeters(ctx);
    const known = new Set(meters.map((m) => m.eventType.slice(USAGE_TYPE_PREFIX.length)));

    const now = Date.now();
    const auditData = { createdBy: audit.createdBy, ...(audit.reason ? { reason: audit.reason } : {}), ...(audit.comment ? { comment: audit.comment } : {}) };
    const records: NewEvent[] = [];
    let latest = -Infinity;
    req.unitUsageRecords.forEach((unit, u) => {
      if (!known.has(unit.unitType)) throw kbErr.badRequest(`unitType ${unit.unitType} is not configured on this tenant (POST /v1/compat/killbill/unit-types)`);
      unit.usageRecords.forEach((rec, r) => {
        const time = parseKillBillDate(rec.recordDate);
        if (time === undefined) throw kbErr.badRequest(`UsageRecordJson recordDate ${JSON.stringify(rec.recordDate)} is not a date or a date-time`);
        const amount = parseAmount(rec.amount);
        if (!amount.ok) throw kbErr.badRequest(`UsageRecordJson amount: ${amount.error}`);
        latest = Math.max(latest, time);
        records.push(this.event({
          id: `${trackingId}/${u}.${r}`,
          source: sourceOf(req.subscriptionId),
          type: USAGE_TYPE_PREFIX + unit.unitType,
          subject: subjectOf(req.subscriptionId),
          time: formatInstant(time),
          data: { amount: formatDecimal(amount.value), unitType: unit.unitType, recordDate: rec.recordDate, trackingId, ...auditData },
        }, now));
      });
    });
    const end = sub.metadata.endDate === undefined ? undefined : parseKillBillDate(sub.metadata.endDate);
    if (end !== undefined && end < latest) throw kbErr.emptyBadRequest();

    // The marker's insert is the arbiter: the store accepts one (source, id) once, so of many
    // concurrent requests with one trackingId exactly one writes its records.
    // The request's identity is what it records, not properties Kill Bill does not define (which
    // may be anything, nested deeper than a recursive walk survives).
    const usage = req.unitUsageRecords.map((unit) => ({ unitType: unit.unitType, usageRecords: unit.usageRecords.map((r) => ({ recordDate: r.recordDate, amount: r.amount })) }));
    const requestHash = createHash('sha256').update(canonicalize({ s: req.subscriptionId, t: trackingId, u: usage }) ?? '').digest('base64url');
    const marker = this.event({
      id: `tracking:${trackingId}`,
      source: sourceOf(req.subscriptionId),
      type: TRACKING_TYPE,
      subject: subjectOf(req.subscriptionId),
      data: { trackingId, requestHash, records: records.length, ...auditData },
    }, now);
    const [status] = await this.s.events.append(ctx.tenantId, [marker]);
    if (status === 'conflict') throw kbErr.trackingIdExists(trackingId);
    // Accepted, or a resend of the very same request: (re)append the records. Their ids are
    // deterministic, so this completes a write cut short by a crash and is otherwise a no-op.
    await this.s.events.append(ctx.tenantId, records);
    if (status === 'duplicate') throw kbErr.trackingIdExists(trackingId);
  }

  /** GET /1.0/kb/usages/{subscriptionId}[/{unitType}]: sums per unit type over [start, end). */
  async rolledUpUsage(ctx: Ctx, subscriptionId: string, unitType: string | undefined, startDate: unknown, endDate: unknown): Promise<string> {
    const from = parseKillBillDate(startDate), to = parseKillBillDate(endDate);
    if (from === undefined || to === undefined) throw kbErr.emptyBadRequest();
    await this.subscription(ctx, subscriptionId);
    const meters = (await this.unitTypeMeters(ctx)).filter((m) => unitType === undefined || m.eventType === USAGE_TYPE_PREFIX + unitType);
    const units: string[] = [];
    if (from < to) {
      for (const meter of meters.sort((a, b) => a.eventType.localeCompare(b.eventType))) {
        const r = await this.s.usage.queryMeter(ctx, meter, { from, to, windowTimeZone: 'UTC', subjects: [subjectOf(subscriptionId)], groupBy: ['subject'], filterGroupBy: {} });
        const value = r.data[0]?.value;
        // Amounts are written as JSON number text straight from the exact decimal.
        if (value) units.push(`{"unitType":${JSON.stringify(meter.eventType.slice(USAGE_TYPE_PREFIX.length))},"amount":${value}}`);
      }
    }
    return `{"subscriptionId":${JSON.stringify(subscriptionId)},"startDate":"${formatInstant(from)}","endDate":"${formatInstant(to)}","rolledUpUnits":[${units.join(',')}]}`;
  }

  private async subscription(ctx: Ctx, subscriptionId: string): Promise<Customer> {
    const c = UUID.test(subscriptionId) ? await this.s.store.getCustomer(ctx.tenantId, subscriptionId) : undefined;
    if (!c || !isKillBillSubscription(c)) throw kbErr.subscriptionNotFound(subscriptionId);
    return c;
  }

  private async unitTypeMeters(ctx: Ctx): Promise<Meter[]> {
    return (await this.s.meters.list(ctx)).filter((m) => m.eventType.startsWith(USAGE_TYPE_PREFIX) && m.aggregation === 'SUM');
  }

  private event(raw: Record<string, unknown>, now: number): NewEvent {
    const v = validateEvent({ specversion: '1.0', ...raw }, this.limits, now);
    if (!v.ok) throw kbErr.badRequest(`${v.field}: ${v.error}`);
    return v.event;
  }
}

const unitTypeView = (m: Meter): UnitTypeView => ({ unitType: m.eventType.slice(USAGE_TYPE_PREFIX.length), meter: m.slug, description: m.description });

interface CheckedBody {
  subscriptionId: string;
  trackingId?: string;
  unitUsageRecords: Array<{ unitType: string; usageRecords: Array<{ recordDate: unknown; amount: unknown }> }>;
}

/** Kill Bill's own checks on SubscriptionUsageRecordJson, in its order and with its messages. */
function checkBody(body: unknown): CheckedBody {
  if (body === null || body === undefined || typeof body !== 'object' || Array.isArray(body)) throw kbErr.badRequest('SubscriptionUsageRecordJson body should be specified');
  const b = body as Record<string, unknown>;
  if (typeof b.subscriptionId !== 'string' || b.subscriptionId === '') throw kbErr.badRequest('SubscriptionUsageRecordJson subscriptionId needs to be set');
  if (b.trackingId !== undefined && b.trackingId !== null && typeof b.trackingId !== 'string') throw kbErr.badRequest('SubscriptionUsageRecordJson trackingId must be a string');
  if (!Array.isArray(b.unitUsageRecords) || b.unitUsageRecords.length === 0) throw kbErr.badRequest('SubscriptionUsageRecordJson unitUsageRecords needs to be set');
  for (const unit of b.unitUsageRecords as unknown[]) {
    const u = (unit ?? {}) as Record<string, unknown>;
    if (typeof u.unitType !== 'string' || u.unitType === '') throw kbErr.badRequest('UnitUsageRecordJson unitType need to be set');
    if (!Array.isArray(u.usageRecords) || u.usageRecords.length === 0) throw kbErr.badRequest('UnitUsageRecordJson usageRecords must have at least one element.');
    for (const rec of u.usageRecords as unknown[]) {
      const r = (rec ?? {}) as Record<string, unknown>;
      if (r.amount === undefined || r.amount === null) throw kbErr.badRequest('UsageRecordJson amount needs to be set');
      if (r.recordDate === undefined || r.recordDate === null) throw kbErr.badRequest('UsageRecordJson recordDate needs to be set');
    }
  }
  return b as unknown as CheckedBody;
}


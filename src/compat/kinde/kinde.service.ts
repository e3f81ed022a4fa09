// Kinde metered usage on meterd. An agreement is a meterd customer (subject "kinde:<agreement>",
// billing cycle in its metadata), a feature code is a SUM meter over "kinde.meter_usage.<code>",
// a usage record is one event. `delta` adds; `absolute` appends the difference to the cycle's
// current usage, read and appended under the store's lock so concurrent absolutes stay exact.
import { randomUUID } from 'node:crypto';
import { DateTime } from 'luxon';
import type { Ctx } from '../../core/context.js';
import { notFound, validationError } from '../../core/errors.js';
import { Decimal, formatDecimal, parseAmount } from '../../core/decimal.js';
import { formatInstant, parseInstant } from '../../core/time.js';
import type { Services } from '../../main.js';
import type { Customer } from '../../modules/customers/customers.types.js';
import type { Meter } from '../../modules/meters/meters.types.js';
import { KindeError, invalidRequest } from './kinde.errors.js';
import { canNameKey } from '../keys.js';

export const USAGE_TYPE_PREFIX = 'kinde.meter_usage.';
const COMPAT = 'kinde';
export const subjectOf = (agreementId: string) => `kinde:${agreementId}`;
export const CYCLE_INTERVALS = ['day', 'week', 'month', 'year'] as const;
export type CycleInterval = (typeof CYCLE_INTERVALS)[number];

export interface MeterUsageRequest {
  customer_agreement_id?: unknown;
  billing_feature_code?: unknown;
  meter_value?: unknown;
  meter_usage_timestamp?: unknown;
  meter_type_code?: unknown;
}

export interface AgreementInput {
  agreementId: string;
  name?: string;
  /** Any instant on a cycle boundary; default 1970-01-01T00:00:00Z (calendar periods in UTC). */
  cycleAnchor?: string;
  cycleInterval?: CycleInterval;
  /** Feature codes this agreement may record; empty or absent: every configured feature. */
  features?: string[];
}

export interface AgreementView {
  agreementId: string;
  name: string;
  cycleAnchor: string;
  cycleInterval: CycleInterval;
  features: string[];
  customer: string;
  subject: string;
}

export interface FeatureView {
  code: string;
  meter: string;
  description: string | null;
}

const FEATURE_CODE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
const DEFAULT_ANCHOR = '1970-01-01T00:00:00.000Z';

/** RFC 3339, also with an hour-only offset ("+11") as Kinde's own example writes it. */
export function parseKindeTimestamp(text: unknown): number | undefined {
  if (typeof text !== 'string') return undefined;
  return parseInstant(text.replace(/([+-]\d{2})$/, '$1:00'));
}

/** The billing cycle [start, end) holding t. */
export function cycleOf(t: number, anchorMs: number, interval: CycleInterval): { start: number; end: number } {
  const anchor = DateTime.fromMillis(anchorMs, { zone: 'utc' });
  const at = DateTime.fromMillis(t, { zone: 'utc' });
  let n = Math.floor(at.diff(anchor, interval).as(interval));
  const startOf = (k: number) => anchor.plus({ [interval]: k }).toMillis();
  while (startOf(n) > t) n--;
  while (startOf(n + 1) <= t) n++;
  return { start: startOf(n), end: startOf(n + 1) };
}

export const isKindeAgreement = (c: Customer) => c.metadata.compat === COMPAT;

function agreementView(c: Customer): AgreementView {
  return {
    agreementId: c.key,
    name: c.name,
    cycleAnchor: c.metadata.cycleAnchor ?? DEFAULT_ANCHOR,
    cycleInterval: (c.metadata.cycleInterval as CycleInterval | undefined) ?? 'month',
    features: c.metadata.features ? c.metadata.features.split(',') : [],
    customer: c.key,
    subject: subjectOf(c.key),
  };
}

const featureView = (m: Meter): FeatureView => ({ code: m.eventType.slice(USAGE_TYPE_PREFIX.length), meter: m.slug, description: m.description });

export class KindeService {
  constructor(private readonly s: Services) {}

  // ---- configuration (native API and CLI) -------------------------------------------------------

  async addFeature(ctx: Ctx, input: { code: string; meter?: string; description?: string }): Promise<FeatureView> {
    if (!FEATURE_CODE.test(input.code)) throw validationError('invalid feature code', [{ field: 'code', message: 'letters, digits, _ . : - (at most 128), starting with a letter or digit' }]);
    const slug = input.meter ?? `kinde-${input.code.toLowerCase().replace(/[^a-z0-9_-]+/g, '-')}`.slice(0, 63);
    const meter = await this.s.meters.create(ctx, {
      slug,
      eventType: USAGE_TYPE_PREFIX + input.code,
      aggregation: 'SUM',
      valueProperty: '$.value',
      description: input.description ?? `Kinde billing feature ${input.code}`,
    });
    return featureView(meter);
  }

  async listFeatures(ctx: Ctx): Promise<FeatureView[]> {
    return (await this.featureMeters(ctx)).map(featureView);
  }

  async addAgreement(ctx: Ctx, input: AgreementInput): Promise<AgreementView> {
    const anchor = input.cycleAnchor === undefined ? Date.parse(DEFAULT_ANCHOR) : parseKindeTimestamp(input.cycleAnchor);
    if (anchor === undefined) throw validationError('cycleAnchor must be an RFC 3339 date-time', [{ field: 'cycleAnchor', message: 'unparsable' }]);
    for (const f of input.features ?? []) if (!FEATURE_CODE.test(f)) throw validationError(`invalid feature code "${f}"`, [{ field: 'features', message: 'invalid feature code' }]);
    const metadata: Record<string, string> = { compat: COMPAT, cycleAnchor: formatInstant(anchor), cycleInterval: input.cycleInterval ?? 'month' };
    if (input.features?.length) metadata.features = [...new Set(input.features)].join(',');
    const c = await this.s.customers.create(ctx, { key: input.agreementId, name: input.name ?? `Kinde agreement ${input.agreementId}`, subjects: [subjectOf(input.agreementId)], metadata });
    return agreementView(c);
  }

  async getAgreement(ctx: Ctx, agreementId: string): Promise<AgreementView> {
    const c = canNameKey(agreementId) ? await this.s.store.getCustomer(ctx.tenantId, agreementId) : undefined;
    if (!c || !isKindeAgreement(c)) throw notFound(`Kinde agreement "${agreementId}"`);
    return agreementView(c);
  }

  /** A client for the token endpoint: a new ingest-scoped API key. The secret is shown only here. */
  async createClient(ctx: Ctx, name: string): Promise<{ clientId: string; clientSecret: string; name: string; scopes: string[] }> {
    const { key, record } = await this.s.apiKeys.create(ctx.tenantId, `kinde: ${name}`, ['ingest']);
    return { clientId: record.id, clientSecret: key.slice(`mk_${record.id}_`.length), name: record.name, scopes: ['create:meter_usage'] };
  }

  // ---- the wire API ---------------------------------------------------------------------------

  /** POST /api/v1/billing/meter_usage. Throws KindeError. */
  async recordMeterUsage(ctx: Ctx & { clientId: string }, body: MeterUsageRequest, idempotencyKey: string | undefined): Promise<void> {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalidRequest('INVALID_REQUEST', 'a JSON object body is required');
    const agreementId = body.customer_agreement_id, code = body.billing_feature_code;
    if (typeof agreementId !== 'string' || agreementId === '') throw invalidRequest('CUSTOMER_AGREEMENT_ID_REQUIRED', 'customer_agreement_id is required');
    if (typeof code !== 'string' || code === '') throw invalidRequest('BILLING_FEATURE_CODE_REQUIRED', 'billing_feature_code is required');
    if (body.meter_value === undefined || body.meter_value === null || body.meter_value === '') throw invalidRequest('METER_VALUE_REQUIRED', 'meter_value is required');
    const amount = parseAmount(body.meter_value);
    if (!amount.ok) throw invalidRequest('METER_VALUE_INVALID', `meter_value: ${amount.error}`);
    if (amount.value.isNegative()) throw invalidRequest('METER_VALUE_INVALID', 'meter_value must not be negative');
    const type = body.meter_type_code ?? 'delta';
    if (type !== 'delta' && type !== 'absolute') throw invalidRequest('METER_TYPE_CODE_INVALID', 'meter_type_code must be "absolute" or "delta"');
    const now = Date.now();
    let time = now;
    if (body.meter_usage_timestamp !== undefined && body.meter_usage_timestamp !== null) {
      const t = parseKindeTimestamp(body.meter_usage_timestamp);
      if (t === undefined) throw invalidRequest('METER_USAGE_TIMESTAMP_INVALID', 'meter_usage_timestamp must be an ISO 8601 date-time with an offset');
      time = t;
    }
    if (idempotencyKey !== undefined && (idempotencyKey.length > 200 || !/^[\x21-\x7e]+$/.test(idempotencyKey))) {
      throw invalidRequest('IDEMPOTENCY_KEY_INVALID', 'Idempotency-Key must be 1-200 visible ASCII characters');
    }

    const agreement = canNameKey(agreementId) ? await this.s.store.getCustomer(ctx.tenantId, agreementId) : undefined;
    if (!agreement || !isKindeAgreement(agreement)) throw invalidRequest('CUSTOMER_AGREEMENT_NOT_FOUND', `no billing agreement ${agreementId}`);
    const view = agreementView(agreement);
    const meter = (await this.featureMeters(ctx)).find((m) => m.eventType === USAGE_TYPE_PREFIX + code);
    if (!meter || (view.features.length > 0 && !view.features.includes(code))) throw invalidRequest('BILLING_FEATURE_NOT_FOUND', `feature ${code} is not part of agreement ${agreementId}`);

    // Usage goes to the cycle of its timestamp; usage for a cycle that has ended goes to the current one.
    const anchor = Date.parse(view.cycleAnchor);
    let cycle = cycleOf(time, anchor, view.cycleInterval);
    if (cycle.end <= now) {
      cycle = cycleOf(now, anchor, view.cycleInterval);
      time = cycle.start;
    }
    const subject = subjectOf(agreementId);
    const event = (value: Decimal, id: string) => ({
      specversion: '1.0',
      id,
      source: `kinde:${agreementId}`,
      type: meter.eventType,
      subject,
      // Without a client timestamp the time is left to ingestion, so a retry is still a duplicate.
      ...(time === now ? {} : { time: formatInstant(time) }),
      data: {
        value: formatDecimal(value),
        meterType: type,
        meterValue: formatDecimal(amount.value),
        featureCode: code,
        clientId: ctx.clientId,
        ...(body.meter_usage_timestamp !== undefined && body.meter_usage_timestamp !== null ? { requestedTimestamp: String(body.meter_usage_timestamp) } : {}),
      },
    });

    if (type === 'delta') {
      await this.ingestOne(ctx, event(amount.value, idempotencyKey ? `idem:${idempotencyKey}` : randomUUID()));
      return;
    }
    // absolute: the difference to the cycle's usage so far, exact while another absolute waits.
    await this.s.store.withLock(ctx.tenantId, `kinde:${agreementId}:${code}`, async () => {
      const r = await this.s.usage.queryMeter(ctx, meter, { from: cycle.start, to: cycle.end, windowTimeZone: 'UTC', subjects: [subject], groupBy: [], filterGroupBy: {} });
      const current = new Decimal(r.data[0]?.value ?? '0');
      await this.ingestOne(ctx, event(amount.value.minus(current), randomUUID()));
    });
  }

  private async ingestOne(ctx: Ctx, raw: Record<string, unknown>) {
    const r = await this.s.events.ingest(ctx, raw);
    const receipt = r.events[0];
    if (receipt.status === 'rejected') throw invalidRequest('INVALID_REQUEST', `${receipt.field ? `${receipt.field}: ` : ''}${receipt.error}`);
    if (receipt.status === 'conflict') throw new KindeError(409, 'IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used for a different meter usage record');
  }

  private async featureMeters(ctx: Ctx): Promise<Meter[]> {
    return (await this.s.meters.list(ctx)).filter((m) => m.eventType.startsWith(USAGE_TYPE_PREFIX) && m.aggregation === 'SUM');
  }
}

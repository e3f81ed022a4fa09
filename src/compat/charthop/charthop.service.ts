// ChartHop product-feature usage on meterd. An org is a meterd customer (subject "charthop:<orgId>",
// its slug as a second subject so either finds it); each call is one event counted by the COUNT
// meter "charthop-usage", grouped by usage type and entity.
import { randomUUID } from 'node:crypto';
import type { Ctx } from '../../core/context.js';
import { AppError, notFound } from '../../core/errors.js';
import type { Services } from '../../main.js';
import type { Customer } from '../../modules/customers/customers.types.js';
import { ChartHopError } from './charthop.errors.js';
import { canNameKey } from '../keys.js';

export const USAGE_EVENT_TYPE = 'charthop.usage';
export const UPGRADE_EVENT_TYPE = 'charthop.upgrade_interest';
export const USAGE_METER = 'charthop-usage';
const COMPAT = 'charthop';
export const subjectOf = (orgId: string) => `charthop:${orgId}`;
const slugSubject = (slug: string) => `charthop-slug:${slug}`;
const MAX_VALUE = 256;

export interface OrgInput {
  orgId: string;
  slug?: string;
  name?: string;
}

export interface OrgView {
  orgId: string;
  slug: string | null;
  name: string;
  customer: string;
  subject: string;
  meter: string;
}

const isOrg = (c: Customer) => c.metadata.compat === COMPAT;
const orgView = (c: Customer): OrgView => ({ orgId: c.key, slug: c.metadata.slug ?? null, name: c.name, customer: c.key, subject: subjectOf(c.key), meter: USAGE_METER });

export class ChartHopService {
  constructor(private readonly s: Services) {}

  /** Checks the bearer API key: 401 without or with a bad one, 403 without the ingest scope. */
  async authenticate(token: string | undefined): Promise<Ctx> {
    if (!token) throw new ChartHopError(401, 'unauthorized: send an API key as "Authorization: Bearer <key>"');
    let key;
    try {
      key = await this.s.apiKeys.authenticate(token);
    } catch {
      throw new ChartHopError(401, 'unauthorized');
    }
    if (!key.scopes.includes('ingest') && !key.scopes.includes('admin')) throw new ChartHopError(403, 'this API key lacks the "ingest" scope');
    return { tenantId: key.tenantId, actor: `key:${key.id}`, scopes: key.scopes };
  }

  // ---- configuration (native API and CLI) -------------------------------------------------------

  async addOrg(ctx: Ctx, input: OrgInput): Promise<OrgView> {
    await this.ensureMeter(ctx);
    const subjects = [subjectOf(input.orgId)];
    if (input.slug && input.slug !== input.orgId) subjects.push(slugSubject(input.slug));
    const c = await this.s.customers.create(ctx, {
      key: input.orgId,
      name: input.name ?? input.slug ?? `ChartHop org ${input.orgId}`,
      subjects,
      metadata: { compat: COMPAT, ...(input.slug ? { slug: input.slug } : {}) },
    });
    return orgView(c);
  }

  async getOrg(ctx: Ctx, orgId: string): Promise<OrgView> {
    const c = await this.findOrg(ctx, orgId);
    if (!c) throw notFound(`ChartHop org "${orgId}"`);
    return orgView(c);
  }

  // ---- the wire API ---------------------------------------------------------------------------

  /** POST /v1/org/{orgId}/usage/{type}: one use of a feature, once per Idempotency-Key when given. */
  async recordUsage(ctx: Ctx, orgIdOrSlug: string, type: string, entityId: string | undefined, idempotencyKey: string | undefined): Promise<void> {
    checkValue('type', type);
    if (entityId !== undefined) checkValue('entityId', entityId);
    await this.record(ctx, orgIdOrSlug, USAGE_EVENT_TYPE, { type, ...(entityId ? { entityId } : {}) }, idempotencyKey);
  }

  /** POST /v1/org/{orgId}/usage/upgrade: interest in a paid plan, kept apart from feature usage. */
  async recordUpgradeInterest(ctx: Ctx, orgIdOrSlug: string, module: string | undefined, idempotencyKey: string | undefined): Promise<void> {
    if (module !== undefined) checkValue('module', module);
    await this.record(ctx, orgIdOrSlug, UPGRADE_EVENT_TYPE, module ? { module } : {}, idempotencyKey);
  }

  private async record(ctx: Ctx, orgIdOrSlug: string, eventType: string, data: Record<string, string>, idempotencyKey: string | undefined) {
    if (idempotencyKey !== undefined && (idempotencyKey.length > 200 || !/^[\x21-\x7e]+$/.test(idempotencyKey))) {
      throw new ChartHopError(400, 'Idempotency-Key must be 1-200 visible ASCII characters');
    }
    const org = await this.findOrg(ctx, orgIdOrSlug);
    if (!org) throw new ChartHopError(404, `org ${orgIdOrSlug} not found`);
    const r = await this.s.events.ingest(ctx, {
      specversion: '1.0',
      id: idempotencyKey ? `idem:${idempotencyKey}` : randomUUID(),
      source: `charthop:${org.key}`,
      type: eventType,
      subject: subjectOf(org.key),
      data,
    });
    const receipt = r.events[0];
    if (receipt.status === 'rejected') throw new ChartHopError(400, receipt.error ?? 'invalid usage');
    if (receipt.status === 'conflict') throw new ChartHopError(409, 'this Idempotency-Key was used for a different usage');
  }

  /** An org by id, else by slug. */
  private async findOrg(ctx: Ctx, orgIdOrSlug: string): Promise<Customer | undefined> {
    if (!canNameKey(orgIdOrSlug)) return undefined;
    const byId = await this.s.store.getCustomer(ctx.tenantId, orgIdOrSlug);
    if (byId && isOrg(byId)) return byId;
    const owner = (await this.s.store.customersOfSubjects(ctx.tenantId, [slugSubject(orgIdOrSlug)])).get(slugSubject(orgIdOrSlug));
    const bySlug = owner === undefined ? undefined : await this.s.store.getCustomer(ctx.tenantId, owner);
    return bySlug && isOrg(bySlug) ? bySlug : undefined;
  }

  private async ensureMeter(ctx: Ctx) {
    if (await this.s.store.getMeter(ctx.tenantId, USAGE_METER)) return;
    try {
      await this.s.meters.create(ctx, {
        slug: USAGE_METER,
        eventType: USAGE_EVENT_TYPE,
        aggregation: 'COUNT',
        groupBy: { type: '$.type', entityId: '$.entityId' },
        description: 'ChartHop product feature uses, by usage type and entity',
      });
    } catch (e) {
      // Another request created it meanwhile.
      if (!(e instanceof AppError && e.kind === 'conflict')) throw e;
    }
  }
}

function checkValue(name: string, v: string) {
  if (v.length === 0 || v.length > MAX_VALUE || /[\u0000-\u001f]/.test(v)) {
    throw new ChartHopError(400, `${name} must be 1-${MAX_VALUE} characters without control characters`);
  }
}


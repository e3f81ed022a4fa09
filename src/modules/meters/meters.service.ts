import { randomUUID } from 'node:crypto';
import type { Ctx } from '../../core/context.js';
import { conflict, notFound, validationError, type FieldIssue } from '../../core/errors.js';
import { parseJsonPath } from '../../core/jsonpath.js';
import type { Store } from '../../store/store.js';
import { compileMeter } from './meter-eval.js';
import type { MeterCache } from './meter-cache.js';
import type { Aggregation, Meter } from './meters.types.js';

export interface CreateMeterInput {
  slug: string;
  eventType: string;
  aggregation: Aggregation;
  valueProperty?: string | null;
  groupBy?: Record<string, string>;
  description?: string | null;
}

/**
 * Dimension names that mean something else in a usage query, and __proto__, which a plain object
 * (an answer's groupBy) cannot hold as its own key.
 */
export const RESERVED_DIMENSIONS = new Set(['subject', 'customer', '__proto__']);
const DIMENSION_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

export class MetersService {
  constructor(
    private readonly store: Store,
    private readonly cache: MeterCache,
  ) {}

  async create(ctx: Ctx, input: CreateMeterInput): Promise<Meter> {
    const issues: FieldIssue[] = [];
    const valueProperty = input.valueProperty ?? null;
    if (input.aggregation !== 'COUNT' && !valueProperty) {
      issues.push({ field: 'valueProperty', message: `valueProperty is required for ${input.aggregation}` });
    }
    if (valueProperty) {
      try {
        parseJsonPath(valueProperty);
      } catch (e) {
        issues.push({ field: 'valueProperty', message: (e as Error).message });
      }
    }
    const groupBy = input.groupBy ?? {};
    if (Object.keys(groupBy).length > 16) issues.push({ field: 'groupBy', message: 'a meter may have at most 16 dimensions' });
    for (const [name, path] of Object.entries(groupBy)) {
      if (!DIMENSION_NAME.test(name)) issues.push({ field: `groupBy.${name}`, message: 'dimension names are letters, digits and _ (at most 64), not starting with a digit' });
      else if (RESERVED_DIMENSIONS.has(name)) issues.push({ field: `groupBy.${name}`, message: `"${name}" is reserved` });
      try {
        parseJsonPath(path);
      } catch (e) {
        issues.push({ field: `groupBy.${name}`, message: (e as Error).message });
      }
    }
    if (issues.length > 0) throw validationError('invalid meter definition', issues);

    const meter: Meter = {
      id: randomUUID(),
      tenantId: ctx.tenantId,
      slug: input.slug,
      eventType: input.eventType,
      aggregation: input.aggregation,
      valueProperty: input.aggregation === 'COUNT' ? null : valueProperty,
      groupBy,
      description: input.description ?? null,
      createdAt: Date.now(),
    };
    const compiled = compileMeter(meter);
    const result = await this.store.createMeter(meter, (event) => {
      const r = compiled.evaluate(event, event.seq);
      return r.ok ? [r.delta] : [];
    });
    this.cache.invalidate(ctx.tenantId);
    if (result === 'exists') throw conflict(`a meter with slug "${input.slug}" already exists`, [{ field: 'slug', message: 'already in use' }]);
    return meter;
  }

  async get(ctx: Ctx, slug: string): Promise<Meter> {
    const m = await this.store.getMeter(ctx.tenantId, slug);
    if (!m) throw notFound(`meter "${slug}"`);
    return m;
  }

  async list(ctx: Ctx): Promise<Meter[]> {
    return (await this.store.listMeters(ctx.tenantId)).meters;
  }

  async delete(ctx: Ctx, slug: string): Promise<void> {
    const deleted = await this.store.deleteMeter(ctx.tenantId, slug);
    this.cache.invalidate(ctx.tenantId);
    if (!deleted) throw notFound(`meter "${slug}"`);
  }

  /** Recomputes a meter's rollups from raw events and reports any bucket that differed. */
  async rebuild(ctx: Ctx, slug: string): Promise<void> {
    const meter = await this.get(ctx, slug);
    const compiled = compileMeter(meter);
    await this.store.rebuildRollups(ctx.tenantId, meter.id, (event) => {
      const r = compiled.evaluate(event, event.seq);
      return r.ok ? [r.delta] : [];
    });
  }
}

// Turns a meter definition into a function from an event to its rollup contribution.
// Compiled once per meter; run for every ingested event of the meter's type.
import { parseAmount } from '../../core/decimal.js';
import { compileJsonPath, type Accessor } from '../../core/jsonpath.js';
import { floorHour } from '../../core/time.js';
import { partialOf } from '../usage/partial.js';
import type { RollupDelta } from '../usage/usage.types.js';
import type { Meter } from './meters.types.js';

export interface EventLike {
  type: string | null;
  subject: string | null;
  time: number;
  data: unknown;
}

export type Evaluation = { ok: true; delta: RollupDelta } | { ok: false; reason: string };

export interface CompiledMeter {
  meter: Meter;
  dimensions: string[];
  evaluate(event: EventLike, seq: number): Evaluation;
}

const MAX_DIMENSION_VALUE = 256;

/** Canonical text of a dimension or unique value: strings as they are, scalars by JSON, objects refused. */
export function dimensionText(v: unknown): string | null | undefined {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v.length <= MAX_DIMENSION_VALUE ? v : undefined;
  if (typeof v === 'number' || typeof v === 'boolean') return JSON.stringify(v);
  return undefined;
}

export function compileMeter(meter: Meter): CompiledMeter {
  const value: Accessor | null = meter.valueProperty ? compileJsonPath(meter.valueProperty) : null;
  const dimensions = Object.keys(meter.groupBy).sort();
  const dimAccessors = dimensions.map((d) => compileJsonPath(meter.groupBy[d]));

  return {
    meter,
    dimensions,
    evaluate(event, seq) {
      const dims: Record<string, string | null> = {};
      for (let i = 0; i < dimensions.length; i++) {
        const t = dimensionText(dimAccessors[i](event.data));
        if (t === undefined) return { ok: false, reason: `dimension ${dimensions[i]} must be a string, number or boolean of at most ${MAX_DIMENSION_VALUE} characters` };
        dims[dimensions[i]] = t;
      }
      const base = {
        meterId: meter.id,
        subject: event.subject ?? '',
        groupKey: JSON.stringify(dims),
        bucket: floorHour(event.time),
      };
      if (meter.aggregation === 'COUNT') {
        return { ok: true, delta: { ...base, partial: partialOf(null, event.time, seq) } };
      }
      const raw = value!(event.data);
      if (raw === undefined || raw === null) return { ok: false, reason: `value property ${meter.valueProperty} is missing` };
      if (meter.aggregation === 'UNIQUE_COUNT') {
        const u = dimensionText(raw);
        if (u === undefined || u === null) return { ok: false, reason: `value property ${meter.valueProperty} must be a string, number or boolean` };
        return { ok: true, delta: { ...base, partial: partialOf(null, event.time, seq), unique: u } };
      }
      const amount = parseAmount(raw);
      if (!amount.ok) return { ok: false, reason: `value property ${meter.valueProperty}: ${amount.error}` };
      return { ok: true, delta: { ...base, partial: partialOf(amount.value, event.time, seq) } };
    },
  };
}

/** Compiled meters of one tenant, by event type, at one meters version. */
export class MeterSet {
  private readonly byType = new Map<string, CompiledMeter[]>();
  constructor(
    readonly version: number,
    meters: Meter[],
  ) {
    for (const m of meters) {
      const list = this.byType.get(m.eventType) ?? [];
      list.push(compileMeter(m));
      this.byType.set(m.eventType, list);
    }
  }

  deltasFor(event: EventLike): RollupDelta[] {
    if (event.type === null) return [];
    const meters = this.byType.get(event.type);
    if (!meters) return [];
    const out: RollupDelta[] = [];
    for (const m of meters) {
      const r = m.evaluate(event, 0);
      if (r.ok) out.push(r.delta);
    }
    return out;
  }
}

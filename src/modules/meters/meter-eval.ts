// Turns a meter definition into a function from an event to its rollup contribution.
// Compiled once per meter; run for every ingested event of the meter's type.
import { parseAmount } from '../../core/decimal.js';
import { compileJsonPath, type Accessor } from '../../core/jsonpath.js';
import { floorHour } from '../../core/time.js';
import { partialOf } from '../usage/partial.js';
import type { RollupDelta } from '../usage/usage.types.js';
import { Grouping, MAX_DIMENSION_VALUE, dimensionText } from './group-key.js';
import type { Meter } from './meters.types.js';

export interface EventLike {
  type: string | null;
  subject: string | null;
  time: number;
  data: unknown;
}

export type Evaluation = { ok: true; delta: RollupDelta } | { ok: false; reason: string };

/** A contribution, or why the event contributes nothing (a text, so success allocates no wrapper). */
type Contribution = RollupDelta | string;

export interface CompiledMeter {
  meter: Meter;
  dimensions: string[];
  grouping: Grouping;
  evaluate(event: EventLike, seq: number): Evaluation;
  /** What evaluate() computes, given the event's key under `grouping` (undefined: a dimension value is not allowed). */
  contribution(event: EventLike, seq: number, groupKey: string | undefined): Contribution;
}

/** `groupings` lets meters with the same groupBy share one (and its remembered keys). */
export function compileMeter(meter: Meter, groupings?: Map<string, Grouping>): CompiledMeter {
  const value: Accessor | null = meter.valueProperty ? compileJsonPath(meter.valueProperty) : null;
  const signature = Grouping.signature(meter.groupBy);
  let grouping = groupings?.get(signature);
  if (!grouping) {
    grouping = new Grouping(meter.groupBy);
    groupings?.set(signature, grouping);
  }
  const g = grouping;
  const meterId = meter.id;

  function contribution(event: EventLike, seq: number, groupKey: string | undefined): Contribution {
    if (groupKey === undefined) {
      return `dimension ${g.badDimension(event.data)} must be a string, number or boolean of at most ${MAX_DIMENSION_VALUE} characters`;
    }
    const subject = event.subject ?? '';
    const bucket = floorHour(event.time);
    if (meter.aggregation === 'COUNT') {
      return { meterId, subject, groupKey, bucket, partial: partialOf(null, event.time, seq) };
    }
    const raw = value!(event.data);
    if (raw === undefined || raw === null) return `value property ${meter.valueProperty} is missing`;
    if (meter.aggregation === 'UNIQUE_COUNT') {
      const u = dimensionText(raw);
      if (u === undefined || u === null) return `value property ${meter.valueProperty} must be a string, number or boolean`;
      return { meterId, subject, groupKey, bucket, partial: partialOf(null, event.time, seq), unique: u };
    }
    const amount = parseAmount(raw);
    if (!amount.ok) return `value property ${meter.valueProperty}: ${amount.error}`;
    return { meterId, subject, groupKey, bucket, partial: partialOf(amount.value, event.time, seq) };
  }

  return {
    meter,
    dimensions: g.dimensions,
    grouping: g,
    contribution,
    evaluate(event, seq) {
      const c = contribution(event, seq, g.keyOf(event.data));
      return typeof c === 'string' ? { ok: false, reason: c } : { ok: true, delta: c };
    },
  };
}

/** The meters of one event type, and the distinct groupings they use (each meter points at its own). */
interface TypeMeters {
  meters: CompiledMeter[];
  groupingOf: number[];
  groupings: Grouping[];
  /** Scratch for one event's keys, one per grouping (deltasFor is synchronous). */
  keys: Array<string | undefined>;
}

/** Compiled meters of one tenant, by event type, at one meters version. */
export class MeterSet {
  private readonly byType = new Map<string, TypeMeters>();
  private readonly bySlug = new Map<string, Meter>();
  constructor(
    readonly version: number,
    meters: Meter[],
  ) {
    const groupings = new Map<string, Grouping>();
    for (const m of meters) {
      this.bySlug.set(m.slug, m);
      let t = this.byType.get(m.eventType);
      if (!t) this.byType.set(m.eventType, (t = { meters: [], groupingOf: [], groupings: [], keys: [] }));
      const c = compileMeter(m, groupings);
      let gi = t.groupings.indexOf(c.grouping);
      if (gi < 0) gi = t.groupings.push(c.grouping) - 1;
      t.meters.push(c);
      t.groupingOf.push(gi);
    }
  }

  /** The meter with this slug, as of `version`. */
  meter(slug: string): Meter | undefined {
    return this.bySlug.get(slug);
  }

  deltasFor(event: EventLike): RollupDelta[] {
    if (event.type === null) return [];
    const t = this.byType.get(event.type);
    if (!t) return [];
    for (let i = 0; i < t.groupings.length; i++) t.keys[i] = t.groupings[i].keyOf(event.data);
    const out: RollupDelta[] = [];
    for (let i = 0; i < t.meters.length; i++) {
      const c = t.meters[i].contribution(event, 0, t.keys[t.groupingOf[i]]);
      if (typeof c !== 'string') out.push(c);
    }
    return out;
  }
}

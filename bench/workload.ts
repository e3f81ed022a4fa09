// The benchmark's data shape, shared by the load generator, the seeder and the queries: one LLM-style
// event type feeding five meters (each split by `model`), 1,000 customers with one subject each.
import { randomUUID } from 'node:crypto';

export const EVENT_TYPE = 'llm.completion';
export const EVENT_SOURCE = 'bench';
export const CUSTOMERS = 1000;
export const USERS_PER_CUSTOMER = 10;
export const MODELS = ['small', 'medium', 'large', 'xl'] as const;
export const TENANT = 'default';

export interface MeterDef {
  slug: string;
  aggregation: 'SUM' | 'COUNT' | 'UNIQUE_COUNT' | 'MAX';
  valueProperty?: string;
}

/** Five meters over the one event type, each with the `model` dimension. */
export const METERS: MeterDef[] = [
  { slug: 'tokens_in', aggregation: 'SUM', valueProperty: '$.tokens_in' },
  { slug: 'tokens_out', aggregation: 'SUM', valueProperty: '$.tokens_out' },
  { slug: 'requests', aggregation: 'COUNT' },
  { slug: 'users', aggregation: 'UNIQUE_COUNT', valueProperty: '$.user' },
  { slug: 'latency', aggregation: 'MAX', valueProperty: '$.latency_ms' },
];
export const GROUP_BY = { model: '$.model' };
/** The COUNT meter the harness uses to check that acknowledged events were stored. */
export const COUNT_METER = 'requests';

export const subjectOf = (i: number) => `customer-${String(i).padStart(4, '0')}`;
const SUBJECTS = Array.from({ length: CUSTOMERS }, (_, i) => subjectOf(i));

const rnd = (n: number) => Math.floor(Math.random() * n);

/** One event as JSON text with a random UUIDv4 id (what real clients send). */
export function eventJson(timeIso: string): string {
  const c = rnd(CUSTOMERS);
  return `{"specversion":"1.0","id":"${randomUUID()}","source":"${EVENT_SOURCE}","type":"${EVENT_TYPE}",` +
    `"subject":"${SUBJECTS[c]}","time":"${timeIso}","data":{"model":"${MODELS[rnd(MODELS.length)]}",` +
    `"tokens_in":"${1 + rnd(4000)}","tokens_out":"${1 + rnd(2000)}","user":"u-${c}-${rnd(USERS_PER_CUSTOMER)}","latency_ms":${5 + rnd(3000)}}}`;
}

/** A request body: one event object (batch 1, as a single-event client sends) or an array. */
export function ingestBody(batch: number, timeIso = new Date().toISOString()): string {
  if (batch === 1) return eventJson(timeIso);
  const parts = new Array<string>(batch);
  for (let i = 0; i < batch; i++) parts[i] = eventJson(timeIso);
  return `[${parts.join(',')}]`;
}

/** Same event shape as an object, with a time spread over [from, to): the seeder's input. */
export function seedEvent(from: number, to: number): Record<string, unknown> {
  const c = rnd(CUSTOMERS);
  return {
    specversion: '1.0',
    id: randomUUID(),
    source: EVENT_SOURCE,
    type: EVENT_TYPE,
    subject: SUBJECTS[c],
    time: new Date(from + rnd(to - from)).toISOString(),
    data: {
      model: MODELS[rnd(MODELS.length)],
      tokens_in: String(1 + rnd(4000)),
      tokens_out: String(1 + rnd(2000)),
      user: `u-${c}-${rnd(USERS_PER_CUSTOMER)}`,
      latency_ms: 5 + rnd(3000),
    },
  };
}

const DAY = 86_400_000;

/** The seeded month: the 30 whole UTC days before yesterday, so it never moves during a run. */
export function seedMonth(now = Date.now()): { from: number; to: number } {
  const to = Math.floor(now / DAY) * DAY - DAY;
  return { from: to - 30 * DAY, to };
}

// Row <-> domain mapping shared by the engines (both keep decimals as exact text or NUMERIC).
import { Decimal, formatDecimal } from '../core/decimal.js';
import type { Meter, Aggregation } from '../modules/meters/meters.types.js';
import type { Customer } from '../modules/customers/customers.types.js';
import type { Partial } from '../modules/usage/usage.types.js';
import type { ApiKeyRecord } from '../modules/api-keys/api-keys.types.js';
import type { Scope } from '../core/context.js';

const decOrNull = (v: string | number | null | undefined): Decimal | null => (v === null || v === undefined ? null : new Decimal(v));
export const textOrNull = (d: Decimal | null): string | null => (d === null ? null : formatDecimal(d));

/** Amounts arrive as exact text, NUMERIC text, or (SQLite, small integers) as integers. */
export interface PartialColumns {
  count: number | string;
  sum: string | number;
  min: string | number | null;
  max: string | number | null;
  latest_time: number | string;
  latest_seq: number | string;
  latest_value: string | number | null;
}

export function partialFromRow(r: PartialColumns): Partial {
  return {
    count: Number(r.count),
    sum: new Decimal(r.sum),
    min: decOrNull(r.min),
    max: decOrNull(r.max),
    latestTime: Number(r.latest_time),
    latestSeq: Number(r.latest_seq),
    latestValue: decOrNull(r.latest_value),
  };
}

export function partialToColumns(p: Partial) {
  // One event's partial holds its value as sum, min, max and latest (one Decimal): format it once.
  const sum = formatDecimal(p.sum);
  const text = (d: Decimal | null) => (d === p.sum ? sum : textOrNull(d));
  return {
    count: p.count,
    sum,
    min: text(p.min),
    max: text(p.max),
    latest_time: p.latestTime,
    latest_seq: p.latestSeq,
    latest_value: text(p.latestValue),
  };
}

export interface MeterRow {
  id: string;
  tenant_id: string;
  slug: string;
  event_type: string;
  aggregation: string;
  value_property: string | null;
  group_by: string | Record<string, string>;
  description: string | null;
  created_at: number | string;
}

export const meterFromRow = (r: MeterRow): Meter => ({
  id: r.id,
  tenantId: r.tenant_id,
  slug: r.slug,
  eventType: r.event_type,
  aggregation: r.aggregation as Aggregation,
  valueProperty: r.value_property,
  groupBy: typeof r.group_by === 'string' ? JSON.parse(r.group_by) : r.group_by,
  description: r.description,
  createdAt: Number(r.created_at),
});

export interface CustomerRow {
  id: string;
  tenant_id: string;
  key: string;
  name: string;
  metadata: string | Record<string, string>;
  created_at: number | string;
  updated_at: number | string;
}

export const customerFromRow = (r: CustomerRow, subjects: string[]): Customer => ({
  id: r.id,
  tenantId: r.tenant_id,
  key: r.key,
  name: r.name,
  subjects,
  metadata: typeof r.metadata === 'string' ? JSON.parse(r.metadata) : r.metadata,
  createdAt: Number(r.created_at),
  updatedAt: Number(r.updated_at),
});

export interface ApiKeyRow {
  id: string;
  tenant_id: string;
  name: string;
  secret_hash: string;
  scopes: string;
  created_at: number | string;
  revoked_at: number | string | null;
}

export const apiKeyFromRow = (r: ApiKeyRow): ApiKeyRecord => ({
  id: r.id,
  tenantId: r.tenant_id,
  name: r.name,
  secretHash: r.secret_hash,
  scopes: r.scopes.split(',').filter(Boolean) as Scope[],
  createdAt: Number(r.created_at),
  revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
});

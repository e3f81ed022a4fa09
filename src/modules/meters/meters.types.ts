export const AGGREGATIONS = ['SUM', 'COUNT', 'UNIQUE_COUNT', 'MIN', 'MAX', 'AVG', 'LATEST'] as const;
export type Aggregation = (typeof AGGREGATIONS)[number];

export interface Meter {
  id: string;
  tenantId: string;
  slug: string;
  eventType: string;
  aggregation: Aggregation;
  valueProperty: string | null;
  /** Dimension name -> JSONPath into the event's data. */
  groupBy: Record<string, string>;
  description: string | null;
  createdAt: number;
}

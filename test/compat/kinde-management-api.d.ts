// The part of @kinde/management-api-js@0.18.0 the tests use. Its own .d.ts files import without
// extensions, which "moduleResolution": "NodeNext" cannot follow (seed-apis.md §7), so they are
// declared here; an ambient module declaration takes precedence over the package's types.
declare module '@kinde/management-api-js' {
  type Resolver<T> = () => Promise<T>;
  export const OpenAPI: {
    BASE: string;
    TOKEN?: string | Resolver<string>;
    HEADERS?: Record<string, string> | Resolver<Record<string, string>>;
  };
  export class ApiError extends Error {
    readonly url: string;
    readonly status: number;
    readonly statusText: string;
    readonly body: unknown;
  }
  export interface CreateMeterUsageRecordRequest {
    customer_agreement_id: string;
    billing_feature_code: string;
    meter_value: string;
    meter_usage_timestamp?: string;
    meter_type_code?: 'absolute' | 'delta';
  }
  export const BillingMeterUsage: {
    createMeterUsageRecord(data: { requestBody: CreateMeterUsageRecordRequest }): Promise<{ message?: string; code?: string }>;
  };
  export function init(config?: { kindeDomain: string; clientId?: string; clientSecret?: string }): void;
  export function setToken(token: string): void;
}

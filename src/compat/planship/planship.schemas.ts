// Wire schemas of the Planship MeteredUsageApi and of its native configuration routes.
import { Type, type Static } from 'typebox';
import { Key, Text } from '../../http/schemas.js';

export const MeteredUsageIn = Type.Object({
  usage: Type.Integer({ description: 'the amount of usage reported' }),
  subscription_id: Type.Optional(Type.Union([Type.String({ format: 'uuid' }), Type.Null()])),
  bucket: Type.Optional(Type.Union([Type.String({ maxLength: 256 }), Type.Null()])),
});
export type MeteredUsageIn = Static<typeof MeteredUsageIn>;

export const MeteringRecord = Type.Object({
  id: Type.String(),
  is_allocated: Type.Boolean({ description: 'true: meterd aggregates a record as it is stored' }),
  usage: Type.Integer(),
  metering_id: Type.String(),
  customer_id: Type.String(),
  product_id: Type.String(),
  subscription_id: Type.Union([Type.String(), Type.Null()]),
  bucket: Type.Union([Type.String(), Type.Null()]),
});

export const LeverUsage = Type.Object({
  total: Type.Integer(),
  by_bucket: Type.Record(Type.String(), Type.Integer(), { description: 'the null bucket is keyed "null"' }),
  by_subscription: Type.Record(Type.String(), Type.Array(Type.Object({ usage: Type.Integer(), bucket: Type.Union([Type.String(), Type.Null()]) }))),
});

export const TokenResponse = Type.Object({ access_token: Type.String(), token_type: Type.String(), expires_in: Type.Integer() });

const Segment = Type.String({ minLength: 1, maxLength: 256 });
export const UsagePath = Type.Object({ customer_id: Segment, product_slug: Segment, metering_id: Segment });
export const LeverPath = Type.Object({ customer_id: Segment, product_slug: Segment, lever_slug: Segment });

export const ValidationErrorBody = Type.Object({
  detail: Type.Union([Type.String(), Type.Array(Type.Object({ loc: Type.Array(Type.Union([Type.String(), Type.Integer()])), msg: Type.String(), type: Type.String() }))]),
}, { description: 'FastAPI error body' });

// ---- native configuration (problem+json, admin scope) ----

export const ProductSlug = Type.String({ pattern: '^[a-z0-9](?:[a-z0-9_]|-(?!-)){0,23}$', description: 'lower-case letters, digits, _ and single -; at most 24' });
export const LeverSlug = Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,31}$', description: 'lower-case letters, digits, _ and -; at most 32' });
export const MeteringId = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$' });

export const CreateProductBody = Type.Object({ slug: ProductSlug, name: Type.Optional(Text({ minLength: 1, maxLength: 256 })) }, { additionalProperties: false });
export type CreateProductBody = Static<typeof CreateProductBody>;

export const CreateLeverBody = Type.Object(
  {
    slug: LeverSlug,
    meteringIds: Type.Optional(Type.Array(MeteringId, { minItems: 1, maxItems: 10, uniqueItems: true, description: 'default: [slug]' })),
    formula: Type.Optional(Type.Union([Type.Literal('total'), Type.Literal('per_bucket'), Type.Literal('unique_buckets')])),
    period: Type.Optional(Type.Union([Type.Literal('subscription'), Type.Literal('all_time'), Type.Literal('rolling')])),
    windowSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 10 * 366 * 86400, description: 'required for period "rolling"' })),
  },
  { additionalProperties: false },
);
export type CreateLeverBody = Static<typeof CreateLeverBody>;

export const LeverView = Type.Object({
  slug: Type.String(),
  meteringIds: Type.Array(Type.String()),
  formula: Type.String(),
  period: Type.String(),
  windowSeconds: Type.Union([Type.Integer(), Type.Null()]),
  meter: Type.String({ description: 'the meterd meter holding this lever\'s usage' }),
});

export const ProductView = Type.Object({
  slug: Type.String(),
  productId: Type.String(),
  name: Type.String(),
  meter: Type.String({ description: 'the meterd meter holding all usage of the product (dimensions metering_id, bucket, subscription_id)' }),
  levers: Type.Array(LeverView),
});

export const SubscriptionBody = Type.Object(
  {
    subscriptionId: Type.Optional(Type.String({ format: 'uuid' })),
    product: ProductSlug,
    startedAt: Type.Optional(Type.String({ format: 'date-time', description: 'period anchor; default now' })),
    renew: Type.Optional(Type.Union([Type.Literal('day'), Type.Literal('week'), Type.Literal('month'), Type.Literal('year')])),
    timeZone: Type.Optional(Type.String({ maxLength: 64, description: 'IANA zone the periods follow; default UTC' })),
  },
  { additionalProperties: false },
);
export type SubscriptionBody = Static<typeof SubscriptionBody>;

export const CreateCustomerBody = Type.Object(
  { customerId: Key, name: Type.Optional(Text({ minLength: 1, maxLength: 256 })), subscriptions: Type.Optional(Type.Array(SubscriptionBody, { maxItems: 20 })) },
  { additionalProperties: false },
);
export type CreateCustomerBody = Static<typeof CreateCustomerBody>;

export const SubscriptionView = Type.Object({ subscriptionId: Type.String(), product: Type.String(), startedAt: Type.String(), renew: Type.String(), timeZone: Type.String() });
export const CustomerView = Type.Object({ customerId: Type.String(), name: Type.String(), subscriptions: Type.Array(SubscriptionView) });

export const CredentialsBody = Type.Object({ name: Text({ minLength: 1, maxLength: 128 }) }, { additionalProperties: false });
export const CredentialsView = Type.Object({ clientId: Type.String(), clientSecret: Type.String({ description: 'shown only in this answer' }) });

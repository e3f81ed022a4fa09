// Wire schemas: Kill Bill's own models (documentation of the compat routes; the service applies
// Kill Bill's checks itself so errors keep its messages) and the native configuration routes.
import { Type, type Static } from 'typebox';
import { NO_CONTROL, Text } from '../../http/schemas.js';

// A number or a decimal string: a type list, so the validator's coercion never rewrites it.
const Amount = Type.Unsafe<number | string>({ type: ['number', 'string'], description: 'decimal amount; a string keeps any precision exact' });

export const UsageRecord = Type.Object({
  recordDate: Type.Optional(Type.String({ description: 'yyyy-mm-dd or an ISO date-time' })),
  amount: Type.Optional(Amount),
});

export const SubscriptionUsageRecord = Type.Object(
  {
    subscriptionId: Type.Optional(Type.String({ description: 'UUID of a configured subscription' })),
    trackingId: Type.Optional(Type.Union([Type.String({ maxLength: 128 }), Type.Null()])),
    unitUsageRecords: Type.Optional(Type.Array(Type.Object({ unitType: Type.Optional(Type.String()), usageRecords: Type.Optional(Type.Array(UsageRecord)) }))),
  },
  { description: 'Kill Bill SubscriptionUsageRecord' },
);

export const RolledUpUsage = Type.Object({
  subscriptionId: Type.String(),
  startDate: Type.String(),
  endDate: Type.String(),
  rolledUpUnits: Type.Array(Type.Object({ unitType: Type.String(), amount: Type.Number({ description: 'exact decimal written as a JSON number' }) })),
});

export const BillingException = Type.Object({
  className: Type.String(),
  code: Type.Union([Type.Integer(), Type.Null()]),
  message: Type.String(),
  causeClassName: Type.Union([Type.String(), Type.Null()]),
  causeMessage: Type.Union([Type.String(), Type.Null()]),
  stackTrace: Type.Array(Type.Unknown()),
});

export const UsageQuery = Type.Object({
  startDate: Type.Optional(Type.String({ description: 'inclusive; required' })),
  endDate: Type.Optional(Type.String({ description: 'exclusive; required' })),
  pluginProperty: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())], { description: 'accepted and ignored' })),
});

// ---- native configuration ----

export const UnitTypeBody = Type.Object(
  {
    unitType: Type.String({ minLength: 1, maxLength: 240, pattern: NO_CONTROL, description: 'catalog unit name as clients send it' }),
    meter: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$', description: 'slug of the meter to create; default kb-<unitType>' })),
    description: Type.Optional(Text({ maxLength: 1024 })),
  },
  { additionalProperties: false },
);
export type UnitTypeBody = Static<typeof UnitTypeBody>;

export const UnitTypeView = Type.Object({ unitType: Type.String(), meter: Type.String(), description: Type.Union([Type.String(), Type.Null()]) });

export const SubscriptionBody = Type.Object(
  {
    subscriptionId: Type.String({ pattern: '^\\w+-\\w+-\\w+-\\w+-\\w+$', maxLength: 64, description: 'Kill Bill subscription UUID; becomes the customer key' }),
    accountId: Type.Optional(Type.String({ maxLength: 64 })),
    externalKey: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    endDate: Type.Optional(Type.String({ maxLength: 40, description: 'effective end; later usage is refused' })),
  },
  { additionalProperties: false },
);
export type SubscriptionBody = Static<typeof SubscriptionBody>;

export const SubscriptionView = Type.Object({
  subscriptionId: Type.String(),
  accountId: Type.Union([Type.String(), Type.Null()]),
  externalKey: Type.Union([Type.String(), Type.Null()]),
  endDate: Type.Union([Type.String(), Type.Null()]),
  customer: Type.String({ description: 'key of the meterd customer' }),
  subject: Type.String({ description: 'event subject of its usage' }),
});

// Wire schemas: Kinde's meter usage and token models (documentation; the service applies Kinde's
// checks itself so errors keep its shape) and the native configuration routes.
import { Type, type Static } from 'typebox';
import { NO_CONTROL, Text } from '../../http/schemas.js';
import { CYCLE_INTERVALS } from './kinde.service.js';

const Code = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$' });

export const CreateMeterUsageRecordRequest = Type.Object(
  {
    customer_agreement_id: Type.Optional(Type.String({ description: 'the billing agreement (a configured agreement id)' })),
    billing_feature_code: Type.Optional(Type.String({ description: 'the feature code within the agreement' })),
    meter_value: Type.Optional(Type.Unsafe<string | number>({ type: ['string', 'number'], description: 'decimal string, exact' })),
    meter_usage_timestamp: Type.Optional(Type.String({ description: 'ISO 8601 with offset; default now' })),
    meter_type_code: Type.Optional(Type.String({ description: 'delta (default) adds to the cycle; absolute sets it' })),
  },
  { description: 'Kinde CreateMeterUsageRecordRequest' },
);

export const CreateMeterUsageRecordResponse = Type.Object({ message: Type.String(), code: Type.String() });
export const KindeErrorResponse = Type.Object({ errors: Type.Array(Type.Object({ code: Type.String(), message: Type.String() })) });

export const TokenRequestBody = Type.Object(
  {
    grant_type: Type.Optional(Type.String()),
    client_id: Type.Optional(Type.String()),
    client_secret: Type.Optional(Type.String()),
    scope: Type.Optional(Type.String()),
    audience: Type.Optional(Type.String()),
  },
  { description: 'form-encoded (or JSON) client credentials request' },
);
export const TokenResponseBody = Type.Object({ access_token: Type.String(), token_type: Type.String(), expires_in: Type.Integer(), scope: Type.String() });
export const OAuthErrorBody = Type.Object({ error: Type.String(), error_description: Type.String() });

// ---- native configuration ----

export const FeatureBody = Type.Object(
  {
    code: Code,
    meter: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$', description: 'slug of the meter to create; default kinde-<code>' })),
    description: Type.Optional(Text({ maxLength: 1024 })),
  },
  { additionalProperties: false },
);
export type FeatureBody = Static<typeof FeatureBody>;
export const FeatureView = Type.Object({ code: Type.String(), meter: Type.String(), description: Type.Union([Type.String(), Type.Null()]) });

export const AgreementBody = Type.Object(
  {
    agreementId: Type.String({ minLength: 1, maxLength: 200, pattern: NO_CONTROL, description: 'e.g. agreement_0195ac80…; becomes the customer key' }),
    name: Type.Optional(Text({ minLength: 1, maxLength: 256 })),
    cycleAnchor: Type.Optional(Type.String({ maxLength: 40, description: 'an instant on a cycle boundary; default 1970-01-01T00:00:00Z' })),
    cycleInterval: Type.Optional(Type.Union(CYCLE_INTERVALS.map((c) => Type.Literal(c)), { description: 'default month' })),
    features: Type.Optional(Type.Array(Code, { maxItems: 64, description: 'feature codes it may record; default all' })),
  },
  { additionalProperties: false },
);
export type AgreementBody = Static<typeof AgreementBody>;
export const AgreementView = Type.Object({
  agreementId: Type.String(),
  name: Type.String(),
  cycleAnchor: Type.String(),
  cycleInterval: Type.String(),
  features: Type.Array(Type.String()),
  customer: Type.String(),
  subject: Type.String(),
});

export const ClientBody = Type.Object({ name: Text({ minLength: 1, maxLength: 100 }) }, { additionalProperties: false });
export const ClientView = Type.Object({
  clientId: Type.String(),
  clientSecret: Type.String({ description: 'shown only in this answer' }),
  name: Type.String(),
  scopes: Type.Array(Type.String()),
});

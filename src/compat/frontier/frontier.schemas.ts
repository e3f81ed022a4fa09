// Wire schemas of the Frontier usage API and of its native configuration routes. The usage body is
// declared loosely (Frontier accepts snake_case or lowerCamelCase and ignores unknown keys); the
// service checks each usage and answers in Frontier's words.
import { Type, type Static } from 'typebox';
import { Key, Text } from '../../http/schemas.js';

const Amount = Type.Union([Type.String({ maxLength: 128 }), Type.Number()], { description: 'int64 as a string or a number; meterd also takes exact decimals such as "0.25"' });

export const Usage = Type.Object(
  {
    id: Type.Optional(Type.String({ description: 'UUID idempotency key; reusing it answers 409' })),
    customer_id: Type.Optional(Type.String({ description: 'ignored: the billing account is the customer' })),
    source: Type.Optional(Type.String({ description: 'what triggered the usage; lower-cased, "system" when empty' })),
    description: Type.Optional(Type.String()),
    type: Type.Optional(Type.String({ description: '"credit" (default) debits credits; "feature" is recorded as usage' })),
    amount: Type.Optional(Amount),
    user_id: Type.Optional(Type.String()),
    metadata: Type.Optional(Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()])),
  },
  { additionalProperties: true },
);

export const CreateUsagesBody = Type.Object(
  {
    project_id: Type.Optional(Type.String()),
    usages: Type.Optional(Type.Array(Usage, { maxItems: 1000 })),
  },
  { additionalProperties: true },
);

export const CreateUsages2Body = Type.Object(
  {
    org_id: Type.Optional(Type.String()),
    billing_id: Type.Optional(Type.String()),
    project_id: Type.Optional(Type.String()),
    usages: Type.Optional(Type.Array(Usage, { maxItems: 1000 })),
  },
  { additionalProperties: true },
);

export const UsagePath = Type.Object({ org_id: Type.String({ maxLength: 256 }), billing_id: Type.String({ maxLength: 256 }) });

export const RpcStatus = Type.Object(
  { code: Type.Integer({ description: 'gRPC status code' }), message: Type.String(), details: Type.Array(Type.Unknown()) },
  { description: 'Frontier error (googlerpcStatus)' },
);

// ---- native configuration (problem+json, admin scope) ----

const Uuid = Type.String({ format: 'uuid', description: 'a UUID' });
const DecimalText = Type.String({ pattern: '^-?\\d{1,20}(\\.\\d{1,18})?$', description: 'exact decimal, e.g. "100" or "-50.5"' });

export const CreateAccountBody = Type.Object(
  {
    billingId: Type.Optional(Uuid),
    orgId: Key,
    name: Type.Optional(Text({ minLength: 1, maxLength: 256 })),
    creditMin: Type.Optional(DecimalText),
  },
  { additionalProperties: false },
);
export type CreateAccountBody = Static<typeof CreateAccountBody>;

export const AccountView = Type.Object({
  billingId: Type.String(),
  orgId: Type.String(),
  name: Type.String(),
  creditMin: Type.String({ description: 'lowest balance a debit may leave; negative allows an overdraft' }),
  toppedUp: Type.String({ description: 'all credit top-ups, exact decimal' }),
  debited: Type.String({ description: 'all credit debits, exact decimal' }),
  balance: Type.String({ description: 'toppedUp - debited' }),
  meters: Type.Object({ topups: Type.String(), debits: Type.String(), features: Type.String() }, { description: 'meterd meters holding these amounts' }),
});
export type AccountView = Static<typeof AccountView>;

export const BillingParams = Type.Object({ billingId: Type.String({ maxLength: 256 }) });

export const TopUpBody = Type.Object(
  {
    id: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'idempotency key; a retry with the same body is answered as a duplicate' })),
    amount: Type.Union([DecimalText, Type.Number()]),
    description: Type.Optional(Type.String({ maxLength: 1024 })),
  },
  { additionalProperties: false },
);
export type TopUpBody = Static<typeof TopUpBody>;

export const TopUpView = Type.Object({ id: Type.String(), status: Type.Union([Type.Literal('accepted'), Type.Literal('duplicate')]), balance: Type.String() });

export const CredentialsBody = Type.Object({ name: Text({ minLength: 1, maxLength: 128 }) }, { additionalProperties: false });
export const CredentialsView = Type.Object({
  clientId: Type.String({ description: 'Basic username (the meterd API key id)' }),
  clientSecret: Type.String({ description: 'Basic password; shown only in this answer' }),
  key: Type.String({ description: 'the same credential as one meterd API key, usable as a Bearer token' }),
});

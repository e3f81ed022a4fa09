import { Type, type Static } from 'typebox';
import { Key, PathKey, Text } from '../../http/schemas.js';

const Subjects = Type.Array(Key, { maxItems: 1000, description: 'event subjects attributed to this customer' });
const Metadata = Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 1024 }), { maxProperties: 64 });

export const CreateCustomerBody = Type.Object(
  { key: Key, name: Type.Optional(Text({ minLength: 1, maxLength: 256 })), subjects: Type.Optional(Subjects), metadata: Type.Optional(Metadata) },
  { additionalProperties: false },
);
export type CreateCustomerBody = Static<typeof CreateCustomerBody>;

export const UpdateCustomerBody = Type.Object(
  { name: Type.Optional(Text({ minLength: 1, maxLength: 256 })), subjects: Type.Optional(Subjects), metadata: Type.Optional(Metadata) },
  { additionalProperties: false },
);

export const CustomerSchema = Type.Object(
  {
    id: Type.String(),
    key: Type.String(),
    name: Type.String(),
    subjects: Type.Array(Type.String()),
    metadata: Type.Record(Type.String(), Type.String()),
    createdAt: Type.String(),
    updatedAt: Type.String(),
  },
  { $id: 'Customer' },
);

export const CustomerParams = Type.Object({ key: PathKey });
export const ListCustomersQuery = Type.Object(
  { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })), cursor: Type.Optional(PathKey) },
  { additionalProperties: false },
);

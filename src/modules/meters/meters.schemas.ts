import { Type, type Static } from 'typebox';
import { PathKey, Slug, Text } from '../../http/schemas.js';
import { AGGREGATIONS } from './meters.types.js';

const JsonPath = Type.String({ minLength: 2, maxLength: 512, pattern: '^\\$', description: 'JSONPath into the event data: $.a.b, $["a b"], $.list[0]' });

export const CreateMeterBody = Type.Object(
  {
    slug: Slug,
    eventType: Text({ minLength: 1, maxLength: 256 }),
    aggregation: Type.Union(AGGREGATIONS.map((a) => Type.Literal(a))),
    valueProperty: Type.Optional(Type.Union([JsonPath, Type.Null()])),
    groupBy: Type.Optional(Type.Record(Type.String({ maxLength: 64 }), JsonPath)),
    description: Type.Optional(Type.Union([Text({ maxLength: 2048 }), Type.Null()])),
  },
  { additionalProperties: false },
);
export type CreateMeterBody = Static<typeof CreateMeterBody>;

export const MeterSchema = Type.Object(
  {
    id: Type.String(),
    slug: Type.String(),
    eventType: Type.String(),
    aggregation: Type.String(),
    valueProperty: Type.Union([Type.String(), Type.Null()]),
    groupBy: Type.Record(Type.String(), Type.String()),
    description: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String(),
  },
  { $id: 'Meter' },
);

export const SlugParams = Type.Object({ slug: PathKey });

import { Type } from 'typebox';
import { PathKey } from '../../http/schemas.js';

export const CloudEventSchema = Type.Object(
  {
    specversion: Type.Optional(Type.Literal('1.0')),
    id: Type.String({ minLength: 1, description: 'with source, the event\'s identity: sent again it is a duplicate, forever' }),
    source: Type.String({ minLength: 1 }),
    type: Type.Optional(Type.String({ description: 'meters select events by type' })),
    subject: Type.Optional(Type.String({ description: 'who used it; customers own subjects' })),
    time: Type.Optional(Type.String({ format: 'date-time', description: 'RFC 3339 with offset; default: now' })),
    datacontenttype: Type.Optional(Type.String()),
    data: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'amounts: JSON numbers of up to 15 significant digits, or decimal strings of any length' })),
  },
  { $id: 'CloudEvent', additionalProperties: true },
);

export const IngestBody = Type.Union([Type.Ref('CloudEvent'), Type.Array(Type.Ref('CloudEvent'))], {
  description: 'one CloudEvents 1.0 JSON event, or an array (application/cloudevents-batch+json). Each event is validated alone.',
});

export const ReceiptSchema = Type.Object(
  {
    accepted: Type.Integer(),
    duplicate: Type.Integer(),
    conflict: Type.Integer(),
    rejected: Type.Integer(),
    events: Type.Array(
      Type.Object({
        id: Type.Union([Type.String(), Type.Null()]),
        source: Type.Union([Type.String(), Type.Null()]),
        status: Type.Union([Type.Literal('accepted'), Type.Literal('duplicate'), Type.Literal('conflict'), Type.Literal('rejected')]),
        error: Type.Optional(Type.String()),
        field: Type.Optional(Type.String()),
      }),
    ),
  },
  { $id: 'IngestReceipt' },
);

export const ListEventsQuery = Type.Object(
  {
    subject: Type.Optional(PathKey),
    type: Type.Optional(PathKey),
    from: Type.Optional(Type.String({ maxLength: 64, description: 'RFC 3339, inclusive' })),
    to: Type.Optional(Type.String({ maxLength: 64, description: 'RFC 3339, exclusive' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
    cursor: Type.Optional(Type.String({ maxLength: 128 })),
  },
  { additionalProperties: false },
);

export const StoredEventSchema = Type.Object({
  id: Type.String(),
  source: Type.String(),
  type: Type.Union([Type.String(), Type.Null()]),
  subject: Type.Union([Type.String(), Type.Null()]),
  time: Type.String(),
  data: Type.Unknown(),
  ingestedAt: Type.String(),
});

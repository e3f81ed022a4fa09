import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { errors, PathKey } from '../../http/schemas.js';
import { requireScope } from '../../http/auth.js';
import type { Services } from '../../main.js';
import { parseUsageQuery } from './usage.query.js';

const Many = (description: string) => Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())], { description }));

export const UsageQuerySchema = Type.Object(
  {
    from: Type.Optional(Type.String({ description: 'RFC 3339, inclusive; required with windowSize' })),
    to: Type.Optional(Type.String({ description: 'RFC 3339, exclusive; default now' })),
    windowSize: Type.Optional(Type.Union([Type.Literal('MINUTE'), Type.Literal('HOUR'), Type.Literal('DAY'), Type.Literal('MONTH')])),
    windowTimeZone: Type.Optional(Type.String({ description: 'IANA zone; DAY and MONTH follow local midnight', default: 'UTC' })),
    subject: Many('only these subjects (repeat)'),
    customer: Many('only the subjects of these customers (repeat)'),
    groupBy: Many('split rows by subject, customer or a meter dimension (repeat)'),
  },
  { additionalProperties: true, description: 'filterGroupBy[dimension]=value filters on a dimension (repeat for several values)' },
);

export const UsageResultSchema = Type.Object(
  {
    from: Type.String(),
    to: Type.String(),
    windowSize: Type.Union([Type.String(), Type.Null()]),
    windowTimeZone: Type.String(),
    data: Type.Array(
      Type.Object({
        windowStart: Type.String(),
        windowEnd: Type.String(),
        subject: Type.Union([Type.String(), Type.Null()]),
        customer: Type.Optional(Type.Union([Type.String(), Type.Null()])),
        groupBy: Type.Record(Type.String(), Type.Union([Type.String(), Type.Null()])),
        value: Type.Union([Type.String({ description: 'exact decimal as a string, e.g. "1234.5"' }), Type.Null()]),
      }),
    ),
  },
  { $id: 'UsageResult' },
);

export function usageRoutes(app: FastifyInstance, s: Services) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  r.get('/v1/meters/:slug/query', {
    schema: {
      tags: ['usage'],
      summary: 'Query a meter\'s usage in time windows',
      description: 'Half-open [from, to). Windows are clipped to the range. Values are exact decimal strings.',
      params: Type.Object({ slug: PathKey }),
      querystring: UsageQuerySchema,
      response: { 200: Type.Ref('UsageResult'), ...errors(400, 401, 403, 404) },
    },
    onRequest: requireScope(s.apiKeys, 'read'),
  }, async (req) => s.usage.query(req.ctx, req.params.slug, parseUsageQuery(req.query as Record<string, unknown>)));
}

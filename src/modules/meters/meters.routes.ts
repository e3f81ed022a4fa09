import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { errors } from '../../http/schemas.js';
import type { Services } from '../../main.js';
import { requireScope } from '../../http/auth.js';
import { formatInstant } from '../../core/time.js';
import { CreateMeterBody, SlugParams } from './meters.schemas.js';
import type { Meter } from './meters.types.js';

export const meterView = (m: Meter) => ({
  id: m.id,
  slug: m.slug,
  eventType: m.eventType,
  aggregation: m.aggregation,
  valueProperty: m.valueProperty,
  groupBy: m.groupBy,
  description: m.description,
  createdAt: formatInstant(m.createdAt),
});

export function meterRoutes(app: FastifyInstance, s: Services) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['meters'];
  r.post('/v1/meters', {
    schema: { tags, summary: 'Create a meter (counts events already stored too)', body: CreateMeterBody, response: { 201: Type.Ref('Meter'), ...errors(400, 401, 403, 409) } },
    onRequest: requireScope(s.apiKeys, 'admin'),
  }, async (req, reply) => reply.code(201).send(meterView(await s.meters.create(req.ctx, req.body))));

  r.get('/v1/meters', {
    schema: { tags, summary: 'List meters', response: { 200: Type.Object({ data: Type.Array(Type.Ref('Meter')) }), ...errors(401, 403) } },
    onRequest: requireScope(s.apiKeys, 'read'),
  }, async (req) => ({ data: (await s.meters.list(req.ctx)).map(meterView) }));

  r.get('/v1/meters/:slug', {
    schema: { tags, summary: 'Get a meter', params: SlugParams, response: { 200: Type.Ref('Meter'), ...errors(401, 403, 404) } },
    onRequest: requireScope(s.apiKeys, 'read'),
  }, async (req) => meterView(await s.meters.get(req.ctx, req.params.slug)));

  r.delete('/v1/meters/:slug', {
    schema: { tags, summary: 'Delete a meter and its rollups (events are kept)', params: SlugParams, response: { 204: Type.Null(), ...errors(401, 403, 404) } },
    onRequest: requireScope(s.apiKeys, 'admin'),
  }, async (req, reply) => {
    await s.meters.delete(req.ctx, req.params.slug);
    return reply.code(204).send(null);
  });
}

// ChartHop's UsageApi (its own error shape, set on this scope) and the native configuration
// routes (problem+json, admin scope) for orgs.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Text, errors } from '../../http/schemas.js';
import { bearerToken, requireScope } from '../../http/auth.js';
import type { Services } from '../../main.js';
import { chartHopErrorHandler } from './charthop.errors.js';
import type { ChartHopService } from './charthop.service.js';

const ErrorBody = Type.Object({ status: Type.Integer(), message: Type.String() });
const idempotencyKey = (req: FastifyRequest) => {
  const v = req.headers['idempotency-key'];
  return typeof v === 'string' ? v : undefined;
};

export async function chartHopRoutes(app: FastifyInstance, svc: ChartHopService) {
  await app.register(async (scope) => {
    scope.setErrorHandler(chartHopErrorHandler);
    // The operation has no body; clients may still send a JSON content type with nothing after it.
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, _body, done) => done(null, undefined));
    const r = scope.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['compat: ChartHop'];
    const response = { 204: Type.Null({ description: 'recorded; empty body' }), 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody };

    // A literal path wins over {type}, as in ChartHop's JAX-RS router.
    r.post('/v1/org/:orgId/usage/upgrade', {
      schema: { tags, summary: 'Signal interest in upgrading to a paid plan (ChartHop)', params: Type.Object({ orgId: Type.String() }), querystring: Type.Object({ module: Type.Optional(Type.String()) }), response },
    }, async (req, reply) => {
      const ctx = await svc.authenticate(bearerToken(req));
      await svc.recordUpgradeInterest(ctx, req.params.orgId, req.query.module, idempotencyKey(req));
      return (reply as FastifyReply).code(204).send();
    });

    r.post('/v1/org/:orgId/usage/:type', {
      schema: {
        tags, summary: 'Record usage of a product feature (ChartHop)',
        description: 'Bearer meterd API key with the ingest scope. One call is one use; an optional Idempotency-Key header makes a retry count once.',
        params: Type.Object({ orgId: Type.String({ description: 'org id or slug' }), type: Type.String({ description: 'type of usage' }) }),
        querystring: Type.Object({ entityId: Type.Optional(Type.String({ description: 'entity id, if applicable' })) }),
        response,
      },
    }, async (req, reply) => {
      const ctx = await svc.authenticate(bearerToken(req));
      await svc.recordUsage(ctx, req.params.orgId, req.params.type, req.query.entityId, idempotencyKey(req));
      return (reply as FastifyReply).code(204).send();
    });
  });
}

const OrgBody = Type.Object(
  {
    orgId: Type.String({ minLength: 1, maxLength: 200, pattern: '^[^\\u0000-\\u001f/]+$', description: 'ChartHop org id; becomes the customer key' }),
    slug: Type.Optional(Type.String({ minLength: 1, maxLength: 200, pattern: '^[^\\u0000-\\u001f/]+$', description: 'org slug, accepted in place of the id' })),
    name: Type.Optional(Text({ minLength: 1, maxLength: 256 })),
  },
  { additionalProperties: false },
);
const OrgView = Type.Object({
  orgId: Type.String(),
  slug: Type.Union([Type.String(), Type.Null()]),
  name: Type.String(),
  customer: Type.String(),
  subject: Type.String(),
  meter: Type.String({ description: 'the COUNT meter to query, grouped by type and entityId' }),
});

export function chartHopAdminRoutes(app: FastifyInstance, s: Services, svc: ChartHopService) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['compat: ChartHop'];
  r.post('/v1/compat/charthop/orgs', {
    schema: { tags, summary: 'Configure a ChartHop org: creates its meterd customer (and the charthop-usage meter)', body: OrgBody, response: { 201: OrgView, ...errors(400, 401, 403, 409) } },
    onRequest: requireScope(s.apiKeys, 'admin'),
  }, async (req, reply) => reply.code(201).send(await svc.addOrg(req.ctx, req.body)));

  r.get('/v1/compat/charthop/orgs/:orgId', {
    schema: { tags, summary: 'Get a configured ChartHop org by id or slug', params: Type.Object({ orgId: Type.String({ maxLength: 200 }) }), response: { 200: OrgView, ...errors(401, 403, 404) } },
    onRequest: requireScope(s.apiKeys, 'read'),
  }, async (req) => svc.getOrg(req.ctx, req.params.orgId));
}

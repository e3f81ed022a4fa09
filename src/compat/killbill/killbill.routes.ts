// Kill Bill's UsageApi (its own error shape, set on this scope) and the native configuration
// routes (problem+json, admin scope) for subscriptions and unit types.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { errors } from '../../http/schemas.js';
import { requireScope } from '../../http/auth.js';
import type { Services } from '../../main.js';
import type { KillBillService } from './killbill.service.js';
import { killBillErrorHandler } from './killbill.errors.js';
import * as S from './killbill.schemas.js';

const header = (req: FastifyRequest, name: string) => {
  const v = req.headers[name];
  return typeof v === 'string' && v.length > 0 ? v : undefined;
};
const credentials = (req: FastifyRequest) => ({ authorization: header(req, 'authorization'), apiKey: header(req, 'x-killbill-apikey'), apiSecret: header(req, 'x-killbill-apisecret') });


const kbErrors = { 400: S.BillingException, 401: Type.Null(), 404: S.BillingException };

export async function killBillRoutes(app: FastifyInstance, svc: KillBillService) {
  await app.register(async (scope) => {
    scope.setErrorHandler(killBillErrorHandler);
    const r = scope.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['compat: Kill Bill'];

    r.post('/1.0/kb/usages', {
      schema: {
        tags, summary: 'Record usage for a subscription (Kill Bill)',
        description: 'Basic auth password and X-Killbill-ApiSecret are meterd API keys of the tenant named by X-Killbill-ApiKey. A reused trackingId rejects the whole request (400, code 50000).',
        body: S.SubscriptionUsageRecord,
        headers: Type.Object({ 'x-killbill-createdby': Type.Optional(Type.String()), 'x-killbill-reason': Type.Optional(Type.String()), 'x-killbill-comment': Type.Optional(Type.String()) }),
        response: { 201: Type.Null(), ...kbErrors },
      },
    }, async (req, reply) => {
      const ctx = await svc.authenticate(credentials(req), 'ingest');
      await svc.recordUsage(ctx, req.body, { createdBy: header(req, 'x-killbill-createdby'), reason: header(req, 'x-killbill-reason'), comment: header(req, 'x-killbill-comment') });
      // 201 with no body at all, as Kill Bill answers.
      return (reply as FastifyReply).code(201).send();
    });

    // The answer is JSON text written by the service, so amounts keep every digit.
    const get = async (req: FastifyRequest<{ Params: { subscriptionId: string; unitType?: string }; Querystring: { startDate?: string; endDate?: string } }>) => {
      const ctx = await svc.authenticate(credentials(req), 'read');
      return svc.rolledUpUsage(ctx, req.params.subscriptionId, req.params.unitType, req.query.startDate, req.query.endDate);
    };
    r.get('/1.0/kb/usages/:subscriptionId', {
      schema: { tags, summary: 'Retrieve usage for a subscription (Kill Bill)', params: Type.Object({ subscriptionId: Type.String() }), querystring: S.UsageQuery, response: { 200: S.RolledUpUsage, ...kbErrors } },
    }, async (req, reply) => (reply as FastifyReply).type('application/json').send(await get(req)));
    r.get('/1.0/kb/usages/:subscriptionId/:unitType', {
      schema: { tags, summary: 'Retrieve usage for a subscription and unit type (Kill Bill)', params: Type.Object({ subscriptionId: Type.String(), unitType: Type.String() }), querystring: S.UsageQuery, response: { 200: S.RolledUpUsage, ...kbErrors } },
    }, async (req, reply) => (reply as FastifyReply).type('application/json').send(await get(req)));
  });
}

export function killBillAdminRoutes(app: FastifyInstance, s: Services, svc: KillBillService) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['compat: Kill Bill'];
  r.post('/v1/compat/killbill/unit-types', {
    schema: { tags, summary: 'Configure a Kill Bill unit type: creates its SUM meter', body: S.UnitTypeBody, response: { 201: S.UnitTypeView, ...errors(400, 401, 403, 409) } },
    onRequest: requireScope(s.apiKeys, 'admin'),
  }, async (req, reply) => reply.code(201).send(await svc.addUnitType(req.ctx, req.body)));

  r.get('/v1/compat/killbill/unit-types', {
    schema: { tags, summary: 'List the configured Kill Bill unit types and their meters', response: { 200: Type.Object({ data: Type.Array(S.UnitTypeView) }), ...errors(401, 403) } },
    onRequest: requireScope(s.apiKeys, 'read'),
  }, async (req) => ({ data: await svc.listUnitTypes(req.ctx) }));

  r.post('/v1/compat/killbill/subscriptions', {
    schema: { tags, summary: 'Configure a Kill Bill subscription: creates its meterd customer', body: S.SubscriptionBody, response: { 201: S.SubscriptionView, ...errors(400, 401, 403, 409) } },
    onRequest: requireScope(s.apiKeys, 'admin'),
  }, async (req, reply) => reply.code(201).send(await svc.addSubscription(req.ctx, req.body)));

  r.get('/v1/compat/killbill/subscriptions/:subscriptionId', {
    schema: { tags, summary: 'Get a configured Kill Bill subscription', params: Type.Object({ subscriptionId: Type.String({ maxLength: 64 }) }), response: { 200: S.SubscriptionView, ...errors(401, 403, 404) } },
    onRequest: requireScope(s.apiKeys, 'read'),
  }, async (req) => svc.getSubscription(req.ctx, req.params.subscriptionId));
}

// Planship's token endpoint and MeteredUsageApi (FastAPI error shapes, set on this scope only), and
// the native configuration routes (problem+json, admin scope) for products, levers, customers, credentials.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { errors } from '../../http/schemas.js';
import { requireScope } from '../../http/auth.js';
import type { Services } from '../../main.js';
import type { PlanshipAuth } from './planship.auth.js';
import type { PlanshipService } from './planship.service.js';
import { planshipErrorHandler } from './planship.errors.js';
import * as S from './planship.schemas.js';

const authorization = (req: FastifyRequest) => (typeof req.headers.authorization === 'string' ? req.headers.authorization : undefined);
const idempotencyKey = (req: FastifyRequest) => {
  const v = req.headers['idempotency-key'];
  return typeof v === 'string' && v.length > 0 && v.length <= 256 ? v : undefined;
};

export async function planshipRoutes(app: FastifyInstance, svc: PlanshipService, auth: PlanshipAuth) {
  await app.register(async (scope) => {
    scope.setErrorHandler(planshipErrorHandler);
    const r = scope.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['compat: Planship'];
    const errs = { 401: S.ValidationErrorBody, 404: S.ValidationErrorBody, 422: S.ValidationErrorBody };
    const json = (reply: FastifyReply, text: string) => reply.type('application/json').send(text);

    r.post('/api/v1/auth/token', {
      schema: { tags, summary: 'OAuth2 client credentials token (Planship)', description: 'Basic base64(client_id:client_secret), no body. client_id/secret are a meterd API key\'s id and secret. Answers a signed JWT valid for one hour.', response: { 200: S.TokenResponse, 401: S.ValidationErrorBody } },
    }, async (req) => auth.issue(authorization(req)));

    r.post('/api/v1/customers/:customer_id/products/:product_slug/usage/:metering_id', {
      schema: { tags, summary: 'Report metered usage for customer (Planship)', description: 'Every call is a new metering record (no idempotency, as in Planship) unless an Idempotency-Key header is sent.', params: S.UsagePath, body: S.MeteredUsageIn, response: { 200: S.MeteringRecord, ...errs } },
    }, async (req) => {
      const ctx = await auth.verify(authorization(req), 'ingest');
      return svc.report(ctx, req.params.customer_id, req.params.product_slug, req.params.metering_id, req.body, idempotencyKey(req));
    });

    r.get('/api/v1/customers/:customer_id/products/:product_slug/usage/:metering_id', {
      schema: { tags, summary: 'Get metering id levers usage for customer (Planship)', params: S.UsagePath, response: { 200: Type.Record(Type.String(), S.LeverUsage), ...errs } },
    }, async (req, reply) => {
      const ctx = await auth.verify(authorization(req), 'read');
      return json(reply, await svc.meteringIdUsage(ctx, req.params.customer_id, req.params.product_slug, req.params.metering_id));
    });

    r.get('/api/v1/customers/:customer_id/products/:product_slug/levers/:lever_slug/usage', {
      schema: { tags, summary: 'Get lever usage for customer (Planship)', params: S.LeverPath, response: { 200: S.LeverUsage, ...errs } },
    }, async (req, reply) => {
      const ctx = await auth.verify(authorization(req), 'read');
      return json(reply, await svc.leverUsage(ctx, req.params.customer_id, req.params.product_slug, req.params.lever_slug));
    });
  });
}

export function planshipAdminRoutes(app: FastifyInstance, s: Services, svc: PlanshipService) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['compat: Planship'];
  const cfg = svc.config;
  const admin = requireScope(s.apiKeys, 'admin');
  const ProductParams = Type.Object({ product: Type.String({ maxLength: 64 }) });
  const CustomerParams = Type.Object({ customerId: Type.String({ maxLength: 256 }) });

  r.post('/v1/compat/planship/products', {
    schema: { tags, summary: 'Configure a Planship product: a SUM meter ps-<product> of its usage', body: S.CreateProductBody, response: { 201: S.ProductView, ...errors(400, 401, 403, 409) } },
    onRequest: admin,
  }, async (req, reply) => reply.code(201).send(await cfg.createProduct(req.ctx, req.body)));

  r.get('/v1/compat/planship/products/:product', {
    schema: { tags, summary: 'A Planship product with its levers', params: ProductParams, response: { 200: S.ProductView, ...errors(401, 403, 404) } },
    onRequest: requireScope(s.apiKeys, 'read'),
  }, async (req) => cfg.view(req.ctx, req.params.product));

  r.post('/v1/compat/planship/products/:product/levers', {
    schema: { tags, summary: 'Configure a metered lever (metering ids, formula, period): a meter ps-<product>--<lever>, backfilled', params: ProductParams, body: S.CreateLeverBody, response: { 201: S.ProductView, ...errors(400, 401, 403, 404, 409) } },
    onRequest: admin,
  }, async (req, reply) => reply.code(201).send(await cfg.createLever(req.ctx, req.params.product, req.body)));

  r.post('/v1/compat/planship/customers', {
    schema: { tags, summary: 'Configure a Planship customer (a meterd customer keyed by the customer id) and its subscriptions', body: S.CreateCustomerBody, response: { 201: S.CustomerView, ...errors(400, 401, 403, 404, 409) } },
    onRequest: admin,
  }, async (req, reply) => reply.code(201).send(await cfg.createCustomer(req.ctx, req.body)));

  r.get('/v1/compat/planship/customers/:customerId', {
    schema: { tags, summary: 'A Planship customer and its subscriptions', params: CustomerParams, response: { 200: S.CustomerView, ...errors(401, 403, 404) } },
    onRequest: requireScope(s.apiKeys, 'read'),
  }, async (req) => cfg.customerView(req.ctx, req.params.customerId));

  r.post('/v1/compat/planship/customers/:customerId/subscriptions', {
    schema: { tags, summary: 'Subscribe a customer (any meterd customer) to a product; periods renew from startedAt', params: CustomerParams, body: S.SubscriptionBody, response: { 201: S.CustomerView, ...errors(400, 401, 403, 404, 409) } },
    onRequest: admin,
  }, async (req, reply) => reply.code(201).send(await cfg.addSubscription(req.ctx, req.params.customerId, req.body)));

  r.post('/v1/compat/planship/credentials', {
    schema: { tags, summary: 'Create Planship client credentials: a new meterd API key (ingest, read), shown once', body: S.CredentialsBody, response: { 201: S.CredentialsView, ...errors(400, 401, 403) } },
    onRequest: admin,
  }, async (req, reply) => reply.code(201).send(await cfg.createCredentials(req.ctx, req.body.name)));
}

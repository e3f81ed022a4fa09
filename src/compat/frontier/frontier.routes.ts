// Frontier's CreateBillingUsage (its own error shape, set on this scope only) and the native
// configuration routes (problem+json, admin scope) for billing accounts, top-ups and credentials.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { errors } from '../../http/schemas.js';
import { requireScope } from '../../http/auth.js';
import type { Services } from '../../main.js';
import type { FrontierService, UsageIn } from './frontier.service.js';
import { frontierErrorHandler } from './frontier.errors.js';
import * as S from './frontier.schemas.js';

type Body = Record<string, unknown> | undefined;
const str = (v: unknown) => (typeof v === 'string' && v.length > 0 ? v : undefined);
const usagesOf = (b: Body) => (Array.isArray(b?.usages) ? (b.usages as UsageIn[]) : []);
const authorization = (req: FastifyRequest) => (typeof req.headers.authorization === 'string' ? req.headers.authorization : undefined);

export async function frontierRoutes(app: FastifyInstance, svc: FrontierService) {
  await app.register(async (scope) => {
    scope.setErrorHandler(frontierErrorHandler);
    const r = scope.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['compat: Frontier'];
    const response = { 200: Type.Object({}, { description: 'empty on success' }), 400: S.RpcStatus, 401: S.RpcStatus, 403: S.RpcStatus, 404: S.RpcStatus, 409: S.RpcStatus };
    const description =
      'Basic (client id = meterd key id, client secret = its secret, or any user with a whole meterd key as password) or Bearer <meterd key>; the ingest scope. ' +
      'credit usages debit the billing account; a reused id answers 409 and leaves the original unchanged; feature usages are recorded as usage.';

    r.post('/v1beta1/organizations/:org_id/billing/:billing_id/usages', {
      schema: { tags, summary: 'Create billing usage (Frontier)', description, params: S.UsagePath, body: S.CreateUsagesBody, response },
    }, async (req) => {
      const ctx = await svc.authenticate(authorization(req), 'ingest');
      const b = req.body as Body;
      await svc.createUsages(ctx, { orgId: req.params.org_id, billingId: req.params.billing_id, projectId: str(b?.project_id ?? b?.projectId) }, usagesOf(b));
      return {};
    });

    r.post('/v1beta1/organizations/billing/usages', {
      schema: { tags, summary: 'Create billing usage, everything in the body (Frontier)', description, body: S.CreateUsages2Body, response },
    }, async (req) => {
      const ctx = await svc.authenticate(authorization(req), 'ingest');
      const b = req.body as Body;
      await svc.createUsages(ctx, { orgId: str(b?.org_id ?? b?.orgId), billingId: str(b?.billing_id ?? b?.billingId), projectId: str(b?.project_id ?? b?.projectId) }, usagesOf(b));
      return {};
    });
  });
}

export function frontierAdminRoutes(app: FastifyInstance, s: Services, svc: FrontierService) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['compat: Frontier'];
  r.post('/v1/compat/frontier/billing-accounts', {
    schema: { tags, summary: 'Configure a Frontier billing account of an organisation: a meterd customer keyed by the billing id', body: S.CreateAccountBody, response: { 201: S.AccountView, ...errors(400, 401, 403, 409) } },
    onRequest: requireScope(s.apiKeys, 'admin'),
  }, async (req, reply) => reply.code(201).send(await svc.createAccount(req.ctx, req.body)));

  r.get('/v1/compat/frontier/billing-accounts/:billingId', {
    schema: { tags, summary: 'A Frontier billing account with its credit balance (top-ups - debits, exact)', params: S.BillingParams, response: { 200: S.AccountView, ...errors(401, 403, 404) } },
    onRequest: requireScope(s.apiKeys, 'read'),
  }, async (req) => svc.getAccount(req.ctx, req.params.billingId));

  r.post('/v1/compat/frontier/billing-accounts/:billingId/topups', {
    schema: { tags, summary: 'Add credits to a Frontier billing account (an event of type frontier.credit.topup)', params: S.BillingParams, body: S.TopUpBody, response: { 201: S.TopUpView, 200: S.TopUpView, ...errors(400, 401, 403, 404, 409) } },
    onRequest: requireScope(s.apiKeys, 'admin'),
  }, async (req, reply) => {
    const result = await svc.topUp(req.ctx, req.params.billingId, req.body);
    return reply.code(result.status === 'accepted' ? 201 : 200).send(result);
  });

  r.post('/v1/compat/frontier/credentials', {
    schema: { tags, summary: 'Create Frontier client credentials: a new meterd API key with the ingest scope, shown once', body: S.CredentialsBody, response: { 201: S.CredentialsView, ...errors(400, 401, 403) } },
    onRequest: requireScope(s.apiKeys, 'admin'),
  }, async (req, reply) => reply.code(201).send(await svc.createCredentials(req.ctx, req.body.name)));
}

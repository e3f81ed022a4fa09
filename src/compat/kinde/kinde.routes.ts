// Kinde's token endpoint and meter usage API (its own error shapes, set on this scope) and the
// native configuration routes (problem+json, admin scope) for features, agreements and clients.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { errors } from '../../http/schemas.js';
import { requireScope } from '../../http/auth.js';
import type { Services } from '../../main.js';
import { kindeErrorHandler, throttled, TOKEN_PATH } from './kinde.errors.js';
import type { KindeService, MeterUsageRequest } from './kinde.service.js';
import { METER_USAGE_SCOPE, type KindeTokens, type TokenRequest } from './kinde.tokens.js';
import type { Throttle } from './kinde.throttle.js';
import * as S from './kinde.schemas.js';

/** The bearer token; JWTs run longer than meterd API keys, so not http/auth's bearerToken. */
function bearerJwt(req: FastifyRequest): string | undefined {
  const m = /^Bearer\s+([A-Za-z0-9._~+/=-]{1,4096})\s*$/i.exec(req.headers.authorization ?? '');
  return m?.[1];
}

export async function kindeRoutes(app: FastifyInstance, svc: KindeService, tokens: KindeTokens, throttle: Throttle) {
  await app.register(async (scope) => {
    scope.setErrorHandler(kindeErrorHandler);
    // OAuth token requests are form-encoded (RFC 6749 §4.4.2).
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    const r = scope.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['compat: Kinde'];

    r.post(TOKEN_PATH, {
      schema: {
        tags, summary: 'Client credentials token for the Kinde API',
        description: 'client_id/client_secret are a meterd API key\'s id and secret parts (or a client from POST /v1/compat/kinde/clients). Answers an HS256 JWT with scope create:meter_usage.',
        body: S.TokenRequestBody,
        response: { 200: S.TokenResponseBody, 400: S.OAuthErrorBody, 401: S.OAuthErrorBody },
      },
    }, async (req) => tokens.issue({ ...(req.body as TokenRequest), authorization: req.headers.authorization }));

    r.post('/api/v1/billing/meter_usage', {
      schema: {
        tags, summary: 'Create meter usage record (Kinde)',
        description: 'Bearer token from /oauth2/token with scope create:meter_usage. delta adds to the current cycle, absolute sets it. An optional Idempotency-Key header makes a delta count once.',
        body: S.CreateMeterUsageRecordRequest,
        headers: Type.Object({ 'idempotency-key': Type.Optional(Type.String()) }),
        response: { 200: S.CreateMeterUsageRecordResponse, 400: S.KindeErrorResponse, 403: S.KindeErrorResponse, 409: S.KindeErrorResponse, 429: S.KindeErrorResponse },
      },
    }, async (req, reply) => {
      const ctx = await tokens.verify(bearerJwt(req), METER_USAGE_SCOPE);
      const wait = throttle.take(`${ctx.tenantId}/${ctx.clientId}`);
      if (wait > 0) throw throttled(wait);
      const key = req.headers['idempotency-key'];
      await svc.recordMeterUsage(ctx, req.body as MeterUsageRequest, typeof key === 'string' ? key : undefined);
      return (reply as FastifyReply).send({ message: 'Success', code: 'OK' });
    });
  });
}

export function kindeAdminRoutes(app: FastifyInstance, s: Services, svc: KindeService) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['compat: Kinde'];
  r.post('/v1/compat/kinde/features', {
    schema: { tags, summary: 'Configure a Kinde billing feature code: creates its SUM meter', body: S.FeatureBody, response: { 201: S.FeatureView, ...errors(400, 401, 403, 409) } },
    onRequest: requireScope(s.apiKeys, 'admin'),
  }, async (req, reply) => reply.code(201).send(await svc.addFeature(req.ctx, req.body)));

  r.get('/v1/compat/kinde/features', {
    schema: { tags, summary: 'List the configured Kinde feature codes and their meters', response: { 200: Type.Object({ data: Type.Array(S.FeatureView) }), ...errors(401, 403) } },
    onRequest: requireScope(s.apiKeys, 'read'),
  }, async (req) => ({ data: await svc.listFeatures(req.ctx) }));

  r.post('/v1/compat/kinde/agreements', {
    schema: { tags, summary: 'Configure a Kinde billing agreement: creates its meterd customer', body: S.AgreementBody, response: { 201: S.AgreementView, ...errors(400, 401, 403, 409) } },
    onRequest: requireScope(s.apiKeys, 'admin'),
  }, async (req, reply) => reply.code(201).send(await svc.addAgreement(req.ctx, req.body)));

  r.get('/v1/compat/kinde/agreements/:agreementId', {
    schema: { tags, summary: 'Get a configured Kinde agreement', params: Type.Object({ agreementId: Type.String({ maxLength: 200 }) }), response: { 200: S.AgreementView, ...errors(401, 403, 404) } },
    onRequest: requireScope(s.apiKeys, 'read'),
  }, async (req) => svc.getAgreement(req.ctx, req.params.agreementId));

  r.post('/v1/compat/kinde/clients', {
    schema: { tags, summary: 'Create an OAuth client for the Kinde API (an ingest API key); the secret is shown only here', body: S.ClientBody, response: { 201: S.ClientView, ...errors(400, 401, 403) } },
    onRequest: requireScope(s.apiKeys, 'admin'),
  }, async (req, reply) => reply.code(201).send(await svc.createClient(req.ctx, req.body.name)));
}

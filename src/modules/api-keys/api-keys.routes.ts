import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Text, errors } from '../../http/schemas.js';
import { requireScope } from '../../http/auth.js';
import { formatInstant } from '../../core/time.js';
import type { Services } from '../../main.js';
import type { ApiKeyRecord } from './api-keys.types.js';

const ScopeSchema = Type.Union([Type.Literal('ingest'), Type.Literal('read'), Type.Literal('admin')]);

export const keyView = (k: ApiKeyRecord) => ({
  id: k.id,
  name: k.name,
  scopes: k.scopes,
  createdAt: formatInstant(k.createdAt),
  revokedAt: k.revokedAt === null ? null : formatInstant(k.revokedAt),
});

const KeySchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  scopes: Type.Array(Type.String()),
  createdAt: Type.String(),
  revokedAt: Type.Union([Type.String(), Type.Null()]),
});

export function apiKeyRoutes(app: FastifyInstance, s: Services) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['api-keys'];
  r.post('/v1/api-keys', {
    schema: {
      tags,
      summary: 'Create an API key for the caller\'s tenant; the key is shown only in this answer',
      body: Type.Object({ name: Text({ minLength: 1, maxLength: 128 }), scopes: Type.Array(ScopeSchema, { minItems: 1, maxItems: 3, uniqueItems: true }) }, { additionalProperties: false }),
      response: { 201: Type.Intersect([KeySchema, Type.Object({ key: Type.String() })]), ...errors(400, 401, 403) },
    },
    onRequest: requireScope(s.apiKeys, 'admin'),
  }, async (req, reply) => {
    const { key, record } = await s.apiKeys.create(req.ctx.tenantId, req.body.name, req.body.scopes);
    return reply.code(201).send({ ...keyView(record), key });
  });

  r.get('/v1/api-keys', {
    schema: { tags, summary: 'List API keys (never their secrets)', response: { 200: Type.Object({ data: Type.Array(KeySchema) }), ...errors(401, 403) } },
    onRequest: requireScope(s.apiKeys, 'admin'),
  }, async (req) => ({ data: (await s.apiKeys.list(req.ctx)).map(keyView) }));

  r.delete('/v1/api-keys/:id', {
    schema: { tags, summary: 'Revoke an API key; it fails from the next request on', params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9]+$' }) }), response: { 204: Type.Null(), ...errors(401, 403, 404) } },
    onRequest: requireScope(s.apiKeys, 'admin'),
  }, async (req, reply) => {
    await s.apiKeys.revoke(req.ctx, req.params.id);
    return reply.code(204).send(null);
  });
}

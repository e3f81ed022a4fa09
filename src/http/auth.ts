// The one auth check every native route runs (onRequest: before the body is read or validated,
// so an unauthenticated caller learns nothing and costs nothing): bearer API key -> tenant, scope.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Ctx, Scope } from '../core/context.js';
import { forbidden, unauthenticated } from '../core/errors.js';
import type { ApiKeysService } from '../modules/api-keys/api-keys.service.js';

declare module 'fastify' {
  interface FastifyRequest {
    ctx: Ctx;
  }
}

export function bearerToken(request: FastifyRequest): string | undefined {
  const h = request.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer\s+(\S{1,512})\s*$/i.exec(h);
  return m?.[1];
}

export function requireScope(keys: ApiKeysService, scope: Scope) {
  return async (request: FastifyRequest, _reply: FastifyReply) => {
    const token = bearerToken(request);
    if (!token) throw unauthenticated('send an API key as "Authorization: Bearer <key>"');
    const key = await keys.authenticate(token);
    if (!key.scopes.includes(scope) && !key.scopes.includes('admin')) {
      throw forbidden(`this API key lacks the "${scope}" scope`);
    }
    request.ctx = { tenantId: key.tenantId, actor: `key:${key.id}`, scopes: key.scopes };
    request.log = request.log.child({ tenant: key.tenantId, key: key.id });
  };
}

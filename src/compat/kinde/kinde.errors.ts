// Kinde's error shape {errors:[{code,message}]} for the management API, RFC 6749 errors for the
// token endpoint, and the one handler that writes both for the Kinde routes.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../core/errors.js';

export class KindeError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** An OAuth 2.0 token endpoint error (RFC 6749 §5.2). */
export class OAuthError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
  ) {
    super(description);
  }
}

export const invalidRequest = (code: string, message: string) => new KindeError(400, code, message);
export const invalidCredentials = (message = 'Invalid credentials') => new KindeError(403, 'INVALID_CREDENTIALS', message);
export const throttled = (retryAfterSeconds: number) =>
  new KindeError(429, 'TOO_MANY_REQUESTS', 'Request was throttled', { 'retry-after': String(retryAfterSeconds) });

const STATUS_OF_KIND: Record<string, number> = { validation: 400, unauthenticated: 403, forbidden: 403, not_found: 400, conflict: 409, rate_limited: 429, unavailable: 503 };

/** The token endpoint: every error it answers is an RFC 6749 error (its 400/401 response schema is that shape). */
export const TOKEN_PATH = '/oauth2/token';

/** Any error on the token endpoint as an RFC 6749 §5.2 error: bad bodies and media types are invalid_request (400). */
function toOAuthError(err: unknown): { error: OAuthError; headers: Record<string, string>; unexpected: boolean } {
  if (err instanceof OAuthError) return { error: err, headers: {}, unexpected: false };
  if (err instanceof AppError) {
    const headers: Record<string, string> = err.retryAfterSeconds ? { 'retry-after': String(err.retryAfterSeconds) } : {};
    if (err.kind === 'rate_limited') return { error: new OAuthError(429, 'slow_down', err.message), headers, unexpected: false };
    if (err.kind === 'unavailable') return { error: new OAuthError(503, 'temporarily_unavailable', err.message), headers, unexpected: false };
    if (err.kind === 'unauthenticated') return { error: new OAuthError(401, 'invalid_client', err.message), headers, unexpected: false };
    return { error: new OAuthError(400, 'invalid_request', err.message), headers, unexpected: false };
  }
  const fe = err as FastifyError;
  const status = typeof fe?.statusCode === 'number' ? fe.statusCode : 500;
  if (status >= 400 && status < 500) return { error: new OAuthError(400, 'invalid_request', fe.message), headers: {}, unexpected: false };
  return { error: new OAuthError(500, 'server_error', 'internal error; the request id identifies it in the server log'), headers: {}, unexpected: true };
}

export function kindeErrorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply) {
  if (err instanceof OAuthError || request.routeOptions.url === TOKEN_PATH) {
    const { error, headers, unexpected } = toOAuthError(err);
    if (unexpected) request.log.error({ err }, 'unexpected error');
    return reply.code(error.status).headers(headers).type('application/json').send({ error: error.error, error_description: error.description });
  }
  let e: KindeError;
  if (err instanceof KindeError) e = err;
  else if (err instanceof AppError) {
    const detail = err.fields.length ? `${err.message}: ${err.fields.map((f) => `${f.field} ${f.message}`).join('; ')}` : err.message;
    e = new KindeError(STATUS_OF_KIND[err.kind] ?? 400, err.kind === 'validation' ? 'INVALID_REQUEST' : err.kind.toUpperCase(), detail);
  } else {
    const fe = err as FastifyError;
    const status = typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500 ? fe.statusCode : 500;
    if (status === 500) {
      request.log.error({ err }, 'unexpected error');
      e = new KindeError(500, 'INTERNAL_ERROR', 'internal error; the request id identifies it in the server log');
    } else e = new KindeError(status, 'INVALID_REQUEST', fe.message);
  }
  return reply.code(e.status).headers(e.headers).type('application/json').send({ errors: [{ code: e.code, message: e.message }] });
}

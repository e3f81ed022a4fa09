// ChartHop documents no error body; meterd answers {status, message} JSON, with 401 for missing
// or invalid credentials (the one status ChartHop documents).
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../core/errors.js';

export class ChartHopError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const STATUS_OF_KIND: Record<string, number> = { validation: 400, unauthenticated: 401, forbidden: 403, not_found: 404, conflict: 409, rate_limited: 429, unavailable: 503 };

export function chartHopErrorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply) {
  let status: number, message: string;
  if (err instanceof ChartHopError) [status, message] = [err.status, err.message];
  else if (err instanceof AppError) [status, message] = [STATUS_OF_KIND[err.kind] ?? 400, err.message];
  else {
    const fe = err as FastifyError;
    status = typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500 ? fe.statusCode : 500;
    message = status === 500 ? 'internal error; the request id identifies it in the server log' : fe.message;
    if (status === 500) request.log.error({ err }, 'unexpected error');
  }
  if (status === 401) reply.header('www-authenticate', 'Bearer realm="charthop"');
  return reply.code(status).type('application/json').send({ status, message });
}

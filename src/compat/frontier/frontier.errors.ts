// Frontier's own error shape (grpc-gateway's googlerpcStatus: {code, message, details}) and the one
// handler that writes it for the Frontier routes. `code` is the gRPC status code.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, type ErrorKind } from '../../core/errors.js';

export const GRPC = { INVALID_ARGUMENT: 3, NOT_FOUND: 5, ALREADY_EXISTS: 6, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;

const HTTP_OF_CODE: Record<number, number> = { 3: 400, 5: 404, 6: 409, 7: 403, 8: 429, 13: 500, 14: 503, 16: 401 };

export class FrontierError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'FrontierError';
  }
  get status(): number {
    return HTTP_OF_CODE[this.code] ?? 500;
  }
}

export const invalidArgument = (message: string) => new FrontierError(GRPC.INVALID_ARGUMENT, message);
export const unauthenticated = () => new FrontierError(GRPC.UNAUTHENTICATED, 'unauthenticated');
export const permissionDenied = (message = 'invalid arguments') => new FrontierError(GRPC.PERMISSION_DENIED, message);
export const customerNotFound = () => new FrontierError(GRPC.NOT_FOUND, "customer doesn't exist");
export const INSUFFICIENT_CREDITS = 'failed to deduct usage: insufficient credits';
export const insufficientCredits = () => new FrontierError(GRPC.INVALID_ARGUMENT, INSUFFICIENT_CREDITS);
export const alreadyApplied = () => new FrontierError(GRPC.ALREADY_EXISTS, 'failed to deduct usage: credits already applied');

const CODE_OF_KIND: Record<ErrorKind, number> = {
  validation: GRPC.INVALID_ARGUMENT,
  unauthenticated: GRPC.UNAUTHENTICATED,
  forbidden: GRPC.PERMISSION_DENIED,
  not_found: GRPC.NOT_FOUND,
  conflict: GRPC.ALREADY_EXISTS,
  payload_too_large: GRPC.INVALID_ARGUMENT,
  unsupported_media_type: GRPC.INVALID_ARGUMENT,
  rate_limited: GRPC.RESOURCE_EXHAUSTED,
  unavailable: GRPC.UNAVAILABLE,
};

export function toFrontierError(err: unknown): { error: FrontierError; unexpected: boolean } {
  if (err instanceof FrontierError) return { error: err, unexpected: false };
  if (err instanceof AppError) {
    const detail = err.fields.length ? `${err.message}: ${err.fields.map((f) => `${f.field} ${f.message}`).join('; ')}` : err.message;
    // Authentication failures say no more than Frontier does.
    return { error: err.kind === 'unauthenticated' ? unauthenticated() : new FrontierError(CODE_OF_KIND[err.kind], detail), unexpected: false };
  }
  const fe = err as FastifyError & { validation?: Array<{ instancePath: string; message?: string }>; validationContext?: string };
  if (fe?.validation) {
    const where = fe.validationContext ?? 'body';
    const what = fe.validation.map((v) => `${where}${v.instancePath.replace(/\//g, '.')} ${v.message ?? 'is invalid'}`).join('; ');
    return { error: invalidArgument(`invalid CreateBillingUsageRequest: ${what}`), unexpected: false };
  }
  const status = typeof fe?.statusCode === 'number' ? fe.statusCode : 500;
  if (status >= 400 && status < 500) return { error: new FrontierError(status === 404 ? GRPC.NOT_FOUND : GRPC.INVALID_ARGUMENT, fe.message), unexpected: false };
  return { error: new FrontierError(GRPC.INTERNAL, 'internal error; the request id identifies it in the server log'), unexpected: true };
}

export function frontierErrorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply) {
  const { error, unexpected } = toFrontierError(err);
  if (unexpected) request.log.error({ err }, 'unexpected error');
  if (error.code === GRPC.UNAUTHENTICATED) reply.header('www-authenticate', 'Basic realm="frontier", Bearer');
  return reply.code(error.status).type('application/json').send({ code: error.code, message: error.message, details: [] });
}

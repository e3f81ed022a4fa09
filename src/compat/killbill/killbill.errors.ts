// Kill Bill's own error shape (BillingExceptionJson) and the one handler that writes it for the
// Kill Bill routes. Auth failures and a few server checks answer with an empty body, as Kill Bill does.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../core/errors.js';

export interface BillingExceptionJson {
  className: string;
  code: number | null;
  message: string;
  causeClassName: string | null;
  causeMessage: string | null;
  stackTrace: unknown[];
}

export const ILLEGAL_ARGUMENT = 'java.lang.IllegalArgumentException';
export const USAGE_API_EXCEPTION = 'org.killbill.billing.usage.api.UsageApiException';
export const OBJECT_DOES_NOT_EXIST = 'org.killbill.billing.util.callcontext.InternalCallContextFactory$ObjectDoesNotExist';
/** ErrorCode.USAGE_RECORD_TRACKING_ID_ALREADY_EXISTS */
export const TRACKING_ID_ALREADY_EXISTS = 50000;

export class KillBillError extends Error {
  constructor(
    readonly status: number,
    /** null: an empty body, as Kill Bill answers auth failures and some server checks. */
    readonly body: BillingExceptionJson | null,
    readonly headers: Record<string, string> = {},
  ) {
    super(body?.message ?? `HTTP ${status}`);
  }
}

const exception = (className: string, code: number | null, message: string): BillingExceptionJson =>
  ({ className, code, message, causeClassName: null, causeMessage: null, stackTrace: [] });

export const badRequest = (message: string) => new KillBillError(400, exception(ILLEGAL_ARGUMENT, null, message));
export const emptyBadRequest = () => new KillBillError(400, null);
export const unauthorized = () => new KillBillError(401, null, { 'www-authenticate': 'Basic realm="killbill"' });
export const forbidden = () => new KillBillError(403, null);
export const subscriptionNotFound = (id: string) =>
  new KillBillError(404, exception(OBJECT_DOES_NOT_EXIST, null, `Object id=${id} type=SUBSCRIPTION doesn't exist!`));
export const trackingIdExists = (trackingId: string) =>
  new KillBillError(400, exception(USAGE_API_EXCEPTION, TRACKING_ID_ALREADY_EXISTS, `A usage record with tracking ID ${trackingId} already exists`));

const STATUS_OF_KIND: Record<string, number> = { validation: 400, unauthenticated: 401, forbidden: 403, not_found: 404, conflict: 409, rate_limited: 429, unavailable: 503 };

export function killBillErrorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply) {
  let e: KillBillError;
  if (err instanceof KillBillError) e = err;
  else if (err instanceof AppError) {
    const status = STATUS_OF_KIND[err.kind] ?? 400;
    const detail = err.fields.length ? `${err.message}: ${err.fields.map((f) => `${f.field} ${f.message}`).join('; ')}` : err.message;
    e = new KillBillError(status, exception(ILLEGAL_ARGUMENT, null, detail), err.retryAfterSeconds ? { 'retry-after': String(err.retryAfterSeconds) } : {});
  } else {
    const fe = err as FastifyError & { validation?: unknown };
    const status = typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500 ? fe.statusCode : 500;
    if (status === 500) {
      request.log.error({ err }, 'unexpected error');
      e = new KillBillError(500, exception('java.lang.RuntimeException', null, 'internal error; the request id identifies it in the server log'));
    } else {
      // Malformed JSON or a wrongly typed field: Kill Bill answers through JsonMappingExceptionMapper.
      const className = fe.validation ? 'com.fasterxml.jackson.databind.JsonMappingException' : 'com.fasterxml.jackson.core.JsonParseException';
      e = new KillBillError(status, exception(status === 400 ? className : ILLEGAL_ARGUMENT, null, fe.message));
    }
  }
  reply.code(e.status).headers(e.headers);
  if (e.body === null) return reply.send();
  return reply.type('application/json').send(JSON.stringify(e.body));
}

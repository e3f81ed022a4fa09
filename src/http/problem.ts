// The one place errors become HTTP answers on the native API: application/problem+json (RFC 9457).
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, type ErrorKind, type FieldIssue } from '../core/errors.js';
import { NO_CONTROL, NO_NUL } from './schemas.js';

const STATUS: Record<ErrorKind, number> = {
  validation: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  unavailable: 503,
};

const TITLE: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  errors?: FieldIssue[];
  [extra: string]: unknown;
}

export const problemType = (status: number) => `https://meterd.dev/problems/${status}`;

export function problem(status: number, detail: string, errors?: FieldIssue[], extra: Record<string, unknown> = {}): Problem {
  return { type: problemType(status), title: TITLE[status] ?? 'Error', status, detail, ...(errors && errors.length ? { errors } : {}), ...extra };
}

export function sendProblem(reply: FastifyReply, p: Problem, headers: Record<string, string> = {}) {
  return reply.code(p.status).headers(headers).type('application/problem+json').send({ ...p, instance: reply.request.id });
}

/** Maps anything thrown by a handler, a parser or the validator to a problem answer. */
export function toProblem(err: unknown): { problem: Problem; headers: Record<string, string>; unexpected: boolean } {
  if (err instanceof AppError) {
    const status = STATUS[err.kind];
    const headers: Record<string, string> = {};
    if (err.retryAfterSeconds !== undefined) headers['retry-after'] = String(err.retryAfterSeconds);
    return { problem: problem(status, err.message, err.fields), headers, unexpected: false };
  }
  const fe = err as FastifyError & { validation?: Array<{ instancePath: string; message?: string; params?: Record<string, unknown> }>; validationContext?: string };
  if (fe && fe.validation) {
    const where = fe.validationContext ?? 'body';
    const errors = fe.validation.map((v) => {
      // The text patterns shared by many fields, said in words.
      if (v.params?.pattern === NO_NUL) v = { ...v, message: 'must not contain a NUL character' };
      else if (v.params?.pattern === NO_CONTROL) v = { ...v, message: 'must not contain control characters' };
      const extra = v.params?.additionalProperty ? ` (${String(v.params.additionalProperty)})` : v.params?.missingProperty ? ` (${String(v.params.missingProperty)})` : '';
      const path = v.instancePath ? `${where}${v.instancePath.replace(/\//g, '.')}` : where;
      return { field: path, message: `${v.message ?? 'is invalid'}${extra}` };
    });
    return { problem: problem(400, `invalid ${where}: ${errors.map((e) => `${e.field} ${e.message}`).join('; ')}`, errors), headers: {}, unexpected: false };
  }
  const status = typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500 ? fe.statusCode : 500;
  if (status === 500) return { problem: problem(500, 'internal error; the request id identifies it in the server log'), headers: {}, unexpected: true };
  const detail = fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'request body is larger than the configured limit (MAX_BODY_BYTES)'
    : fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? `unsupported content type; send application/json${fe.message.includes('cloudevents') ? '' : ' (or application/cloudevents+json, application/cloudevents-batch+json for events)'}`
    : fe.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ? 'the request body is empty; a JSON body is required'
    : fe.message;
  return { problem: problem(status, detail), headers: {}, unexpected: false };
}

export function errorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply) {
  const { problem: p, headers, unexpected } = toProblem(err);
  if (unexpected) request.log.error({ err }, 'unexpected error');
  return sendProblem(reply, p, headers);
}

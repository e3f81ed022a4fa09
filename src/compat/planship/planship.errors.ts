// Planship's own error shapes (FastAPI): 422 {"detail":[{loc,msg,type}]} for bad input, and
// {"detail":"…"} for everything else. The one handler that writes them for the Planship routes.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../core/errors.js';

export interface ValidationIssue {
  loc: Array<string | number>;
  msg: string;
  type: string;
}

export class PlanshipError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string | ValidationIssue[],
    readonly headers: Record<string, string> = {},
  ) {
    super(typeof detail === 'string' ? detail : detail.map((d) => d.msg).join('; '));
    this.name = 'PlanshipError';
  }
}

export const invalid = (...issues: ValidationIssue[]) => new PlanshipError(422, issues);
export const notFound = (detail: string) => new PlanshipError(404, detail);
export const unauthorized = (detail = 'Could not validate credentials') => new PlanshipError(401, detail, { 'www-authenticate': 'Bearer' });
export const forbidden = (detail: string) => new PlanshipError(403, detail);

const STATUS_OF_KIND: Record<string, number> = { validation: 422, unauthenticated: 401, forbidden: 403, not_found: 404, conflict: 409, payload_too_large: 413, unsupported_media_type: 415, rate_limited: 429, unavailable: 503 };

interface AjvIssue {
  instancePath: string;
  keyword: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** An Ajv error in pydantic v2's words. */
function issueOf(where: string, v: AjvIssue, body: unknown): ValidationIssue {
  const path = v.instancePath.split('/').slice(1).map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  if (v.keyword === 'required') return { loc: [where, ...path, String(v.params?.missingProperty)], msg: 'Field required', type: 'missing' };
  if (v.keyword === 'type' && path.length === 0 && where === 'body') {
    return body === undefined || body === null ? { loc: ['body'], msg: 'Field required', type: 'missing' } : { loc: ['body'], msg: 'Input should be a valid dictionary or object to extract fields from', type: 'model_attributes_type' };
  }
  const t = v.params?.type;
  if (v.keyword === 'type' && t === 'integer') return { loc: [where, ...path], msg: 'Input should be a valid integer', type: 'int_type' };
  if (v.keyword === 'type' && t === 'string') return { loc: [where, ...path], msg: 'Input should be a valid string', type: 'string_type' };
  if (v.keyword === 'format' && v.params?.format === 'uuid') return { loc: [where, ...path], msg: 'Input should be a valid UUID', type: 'uuid_parsing' };
  if (v.keyword === 'maxLength') return { loc: [where, ...path], msg: `String should have at most ${String(v.params?.limit)} characters`, type: 'string_too_long' };
  return { loc: [where, ...path], msg: v.message ?? 'Invalid value', type: 'value_error' };
}

export function toPlanshipError(err: unknown, body: unknown): { error: PlanshipError; unexpected: boolean } {
  if (err instanceof PlanshipError) return { error: err, unexpected: false };
  if (err instanceof AppError) {
    if (err.kind === 'unauthenticated') return { error: unauthorized(), unexpected: false };
    const status = STATUS_OF_KIND[err.kind] ?? 400;
    if (status === 422) return { error: invalid(...(err.fields.length ? err.fields.map((f) => ({ loc: ['body', f.field], msg: f.message, type: 'value_error' })) : [{ loc: ['body'], msg: err.message, type: 'value_error' }])), unexpected: false };
    return { error: new PlanshipError(status, err.message), unexpected: false };
  }
  const fe = err as FastifyError & { validation?: AjvIssue[]; validationContext?: string };
  if (fe?.validation) {
    const where = fe.validationContext === 'params' ? 'path' : (fe.validationContext ?? 'body');
    // A union (e.g. string or null) reports one error per branch: keep the first per field.
    const seen = new Set<string>();
    const issues = fe.validation.filter((v) => v.keyword !== 'anyOf').map((v) => issueOf(where, v, body)).filter((i) => {
      const k = JSON.stringify(i.loc);
      return seen.has(k) ? false : (seen.add(k), true);
    });
    return { error: invalid(...issues), unexpected: false };
  }
  const status = typeof fe?.statusCode === 'number' ? fe.statusCode : 500;
  if (status === 400 && /JSON/.test(fe.message)) return { error: invalid({ loc: ['body', 0], msg: 'JSON decode error', type: 'json_invalid' }), unexpected: false };
  if (status >= 400 && status < 500) return { error: new PlanshipError(status, fe.message), unexpected: false };
  return { error: new PlanshipError(500, 'Internal Server Error'), unexpected: true };
}

export function planshipErrorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply) {
  const { error, unexpected } = toPlanshipError(err, request.body);
  if (unexpected) request.log.error({ err }, 'unexpected error');
  return reply.code(error.status).headers(error.headers).type('application/json').send({ detail: error.detail });
}

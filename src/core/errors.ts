// The closed set of errors the domain raises. HTTP mapping lives in one place
// (src/http/problem.ts for the native API, each compat folder for its own shape).

export interface FieldIssue {
  /** JSON pointer or dotted path of the offending field, e.g. "/data/tokens" or "query.from". */
  field: string;
  message: string;
}

export type ErrorKind =
  | 'validation'
  | 'unauthenticated'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'unavailable';

export class AppError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly fields: FieldIssue[] = [],
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export const validationError = (message: string, fields: FieldIssue[] = []) =>
  new AppError('validation', message, fields);
export const notFound = (what: string) => new AppError('not_found', `${what} not found`);
export const conflict = (message: string, fields: FieldIssue[] = []) => new AppError('conflict', message, fields);
export const unauthenticated = (message = 'missing or invalid API key') => new AppError('unauthenticated', message);
export const forbidden = (message: string) => new AppError('forbidden', message);
export const unavailable = (message: string, retryAfterSeconds = 1) =>
  new AppError('unavailable', message, [], retryAfterSeconds);

export const isAppError = (e: unknown): e is AppError => e instanceof AppError;

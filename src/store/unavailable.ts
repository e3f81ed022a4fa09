// A decorator over any Store: failures that mean "the database cannot be reached or cannot write
// right now" become AppError('unavailable'), which every API answers as 503 with Retry-After
// (clients retry; nothing acknowledged is lost, since nothing was acknowledged). Anything else
// passes through unchanged.
import { AppError } from '../core/errors.js';
import type { Store } from './store.js';

const SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300', '53100', '53200']);
const NETWORK = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
const SQLITE = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|READONLY)/;

export function isUnavailable(e: unknown): boolean {
  if (e instanceof AppError) return false;
  const err = e as { code?: unknown; message?: unknown } | null;
  const code = typeof err?.code === 'string' ? err.code : '';
  if (code.startsWith('08') || SQLSTATES.has(code) || NETWORK.has(code) || SQLITE.test(code)) return true;
  const msg = typeof err?.message === 'string' ? err.message : '';
  return /Connection terminated|connection error|not queryable|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(msg);
}

const unavailable = (cause: unknown) => {
  const e = new AppError('unavailable', 'the database is unavailable right now; retry shortly', [], 1);
  (e as Error & { cause?: unknown }).cause = cause;
  return e;
};

export function withUnavailableErrors<S extends Store>(store: S): S {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        let result: unknown;
        try {
          result = value.apply(target, args);
        } catch (e) {
          throw isUnavailable(e) ? unavailable(e) : e;
        }
        return result instanceof Promise ? result.catch((e: unknown) => Promise.reject(isUnavailable(e) ? unavailable(e) : e)) : result;
      };
    },
  });
}

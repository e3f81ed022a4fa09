// Reads a usage query from URL parameters into the domain's UsageQuery, with a field error per problem.
import { validationError, type FieldIssue } from '../../core/errors.js';
import { isValidZone, parseInstant, WINDOW_SIZES, type WindowSize } from '../../core/time.js';
import type { UsageQuery } from './usage.service.js';

const KNOWN = new Set(['from', 'to', 'windowSize', 'windowTimeZone', 'subject', 'customer', 'groupBy']);
const FILTER = /^filterGroupBy\[([A-Za-z_][A-Za-z0-9_]{0,63})\]$/;

export function parseInstantParam(name: string, v: unknown): number {
  const t = parseInstant(v);
  if (t === undefined) {
    throw validationError(`${name} must be an RFC 3339 date-time with an offset, e.g. 2026-01-01T00:00:00Z`, [{ field: name, message: 'invalid date-time' }]);
  }
  return t;
}

const list = (v: unknown): string[] | undefined => (v === undefined ? undefined : Array.isArray(v) ? v.map(String) : [String(v)]);

export function parseUsageQuery(params: Record<string, unknown>, now = Date.now()): UsageQuery {
  const issues: FieldIssue[] = [];
  const filterGroupBy: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(params)) {
    const m = FILTER.exec(k);
    if (m) {
      filterGroupBy[m[1]] = list(v)!;
      if (filterGroupBy[m[1]].some((x) => /[\u0000-\u001f]/.test(x) || x.length > 256)) issues.push({ field: k, message: 'values must be at most 256 characters, without control characters' });
    }
    else if (!KNOWN.has(k)) issues.push({ field: k.slice(0, 64), message: 'unknown query parameter' });
  }
  const single = (name: string): string | undefined => {
    const v = params[name];
    if (Array.isArray(v)) {
      issues.push({ field: name, message: 'give this parameter once' });
      return undefined;
    }
    return v === undefined ? undefined : String(v);
  };
  const fromText = single('from');
  const toText = single('to');
  const size = single('windowSize');
  const zone = single('windowTimeZone') ?? 'UTC';
  let from = 0;
  let to = now;
  if (fromText !== undefined) {
    const t = parseInstant(fromText);
    if (t === undefined) issues.push({ field: 'from', message: 'must be an RFC 3339 date-time with an offset' });
    else from = t;
  } else if (size !== undefined) {
    issues.push({ field: 'from', message: 'required when windowSize is set' });
  }
  if (toText !== undefined) {
    const t = parseInstant(toText);
    if (t === undefined) issues.push({ field: 'to', message: 'must be an RFC 3339 date-time with an offset' });
    else to = t;
  }
  if (size !== undefined && !(WINDOW_SIZES as readonly string[]).includes(size)) {
    issues.push({ field: 'windowSize', message: `must be one of ${WINDOW_SIZES.join(', ')}` });
  }
  if (!isValidZone(zone)) issues.push({ field: 'windowTimeZone', message: 'must be an IANA time zone such as Europe/Berlin' });
  for (const [name, values] of [['subject', list(params.subject)], ['customer', list(params.customer)], ['groupBy', list(params.groupBy)]] as const) {
    if (values && values.length > 1000) issues.push({ field: name, message: 'at most 1000 values' });
    if (values?.some((v) => v.length === 0 || v.length > 256)) issues.push({ field: name, message: 'values must be 1 to 256 characters' });
    if (values?.some((v) => /[\u0000-\u001f]/.test(v))) issues.push({ field: name, message: 'values must not contain control characters' });
  }
  if (issues.length === 0 && from >= to) issues.push({ field: 'from', message: 'must be before to' });
  if (issues.length > 0) throw validationError(`invalid usage query: ${issues.map((i) => `${i.field} ${i.message}`).join('; ')}`, issues);
  return {
    from,
    to,
    windowSize: size as WindowSize | undefined,
    windowTimeZone: zone,
    subjects: list(params.subject),
    customers: list(params.customer),
    groupBy: [...new Set(list(params.groupBy) ?? [])],
    filterGroupBy,
  };
}

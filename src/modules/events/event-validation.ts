// Validation of one CloudEvents 1.0 JSON event into a NewEvent, with a reason when it is refused.
import { createHash } from 'node:crypto';
import canonicalizeModule from 'canonicalize';
import { describe } from '../../core/decimal.js';
import { formatInstant, parseInstant } from '../../core/time.js';
import type { NewEvent } from './events.types.js';

const canonicalize = canonicalizeModule as unknown as (v: unknown) => string | undefined;

export interface EventLimits {
  maxIdLength: number;
  maxDataBytes: number;
  maxDataDepth: number;
  maxPastMs: number;
  maxFutureMs: number;
}

export type Validated = { ok: true; event: NewEvent } | { ok: false; id?: string; source?: string; error: string; field: string };

const KNOWN = new Set(['id', 'source', 'specversion', 'type', 'subject', 'time', 'data', 'datacontenttype', 'dataschema']);
// Extension attribute names per CloudEvents: lower-case letters and digits.
const EXTENSION_NAME = /^[a-z0-9]{1,20}$/;

function badString(v: string): string | undefined {
  if (!v.isWellFormed()) return 'contains an unpaired UTF-16 surrogate';
  if (v.includes('\u0000')) return 'contains a NUL character';
  return undefined;
}

/** Walks data checking depth and strings; returns a problem or undefined. */
function checkData(v: unknown, depth: number, maxDepth: number, path: string): string | undefined {
  if (depth > maxDepth) return `${path} nests deeper than ${maxDepth} levels`;
  if (typeof v === 'string') {
    const bad = badString(v);
    return bad && `${path} ${bad}`;
  }
  if (typeof v === 'number') return Number.isFinite(v) ? undefined : `${path} is not a finite number`;
  if (v === null || typeof v !== 'object') return undefined;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const p = checkData(v[i], depth + 1, maxDepth, `${path}/${i}`);
      if (p) return p;
    }
    return undefined;
  }
  for (const [k, child] of Object.entries(v)) {
    const bk = badString(k);
    if (bk) return `${path} has a key that ${bk}`;
    const p = checkData(child, depth + 1, maxDepth, `${path}/${k}`);
    if (p) return p;
  }
  return undefined;
}

export function validateEvent(raw: unknown, limits: EventLimits, now: number): Validated {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return { ok: false, error: `an event must be a JSON object, got ${describe(raw)}`, field: '' };
  }
  const e = raw as Record<string, unknown>;
  const id = typeof e.id === 'string' ? e.id : undefined;
  const source = typeof e.source === 'string' ? e.source : undefined;
  const fail = (field: string, error: string): Validated => ({ ok: false, id, source, field, error });

  for (const [name, max] of [['id', limits.maxIdLength], ['source', limits.maxIdLength]] as const) {
    const v = e[name];
    if (v === undefined || v === null) return fail(name, `${name} is required`);
    if (typeof v !== 'string') return fail(name, `${name} must be a string, got ${describe(v)}`);
    if (v.length === 0) return fail(name, `${name} must not be empty`);
    if (v.length > max) return fail(name, `${name} is longer than ${max} characters`);
    const bad = badString(v);
    if (bad) return fail(name, `${name} ${bad}`);
  }
  for (const name of ['type', 'subject'] as const) {
    const v = e[name];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') return fail(name, `${name} must be a string, got ${describe(v)}`);
    if (v.length === 0) return fail(name, `${name} must not be empty when present`);
    if (v.length > limits.maxIdLength) return fail(name, `${name} is longer than ${limits.maxIdLength} characters`);
    const bad = badString(v);
    if (bad) return fail(name, `${name} ${bad}`);
  }
  if (e.specversion !== undefined && e.specversion !== '1.0') return fail('specversion', 'specversion must be "1.0"');
  if (e.datacontenttype !== undefined && (typeof e.datacontenttype !== 'string' || !/^application\/([\w.+-]*\+)?json\b/i.test(e.datacontenttype))) {
    return fail('datacontenttype', 'datacontenttype must be a JSON media type: data is read as JSON');
  }
  for (const k of Object.keys(e)) {
    if (!KNOWN.has(k) && !EXTENSION_NAME.test(k)) return fail(k, `"${k.slice(0, 40)}" is not a CloudEvents attribute (extension names are 1-20 lower-case letters or digits)`);
  }

  let time = now;
  const timeExplicit = e.time !== undefined && e.time !== null;
  if (timeExplicit) {
    const t = parseInstant(e.time);
    if (t === undefined) return fail('time', 'time must be an RFC 3339 date-time with an offset, e.g. 2026-01-31T12:00:00Z');
    if (t < now - limits.maxPastMs) return fail('time', `time is more than ${Math.round(limits.maxPastMs / 86_400_000)} days in the past`);
    if (t > now + limits.maxFutureMs) return fail('time', `time is more than ${Math.round(limits.maxFutureMs / 60_000)} minutes in the future`);
    time = t;
  }

  let dataJson: string | null = null;
  const data = e.data ?? null;
  if (data !== null) {
    if (typeof data !== 'object' || Array.isArray(data)) return fail('data', `data must be a JSON object, got ${describe(data)}`);
    const problem = checkData(data, 1, limits.maxDataDepth, '/data');
    if (problem) return fail('data', problem);
    dataJson = canonicalize(data) ?? null;
    if (dataJson !== null && Buffer.byteLength(dataJson) > limits.maxDataBytes) {
      return fail('data', `data is larger than ${limits.maxDataBytes} bytes`);
    }
  }

  const type = (e.type as string | undefined) ?? null;
  const subject = (e.subject as string | undefined) ?? null;
  // The identity of an event's content: a retry that resends it is a duplicate, anything else a conflict.
  // A defaulted time is left out, so resending an event without a time is still a duplicate.
  const hash = createHash('sha256')
    .update(JSON.stringify([type, subject, timeExplicit ? formatInstant(time) : null, dataJson]))
    .digest('base64url');

  return { ok: true, event: { source: source!, id: id!, type, subject, time, timeExplicit, data, dataJson, hash } };
}

// Validation of one CloudEvents 1.0 JSON event into a NewEvent, with a reason when it is refused.
import { hash } from 'node:crypto';
import { describe } from '../../core/decimal.js';
import { formatInstant, isFormattedInstant, parseInstant } from '../../core/time.js';
import { canonicalJson } from './canonical-json.js';
import type { NewEvent } from './events.types.js';

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

/**
 * Walks data checking depth and strings; returns a problem or undefined. `path` holds the steps
 * from /data down to `v`, turned into text only for a problem (most data has none).
 */
function checkData(v: unknown, depth: number, maxDepth: number, path: Array<string | number>): string | undefined {
  if (depth > maxDepth) return `${at(path)} nests deeper than ${maxDepth} levels`;
  if (typeof v === 'string') {
    const bad = badString(v);
    return bad && `${at(path)} ${bad}`;
  }
  if (typeof v === 'number') return Number.isFinite(v) ? undefined : `${at(path)} is not a finite number`;
  if (v === null || typeof v !== 'object') return undefined;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      path.push(i);
      const p = checkData(v[i], depth + 1, maxDepth, path);
      path.pop();
      if (p) return p;
    }
    return undefined;
  }
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    const bk = badString(k);
    if (bk) return `${at(path)} has a key that ${bk}`;
    path.push(k);
    const p = checkData(o[k], depth + 1, maxDepth, path);
    path.pop();
    if (p) return p;
  }
  return undefined;
}

const at = (path: Array<string | number>) => ['/data', ...path].join('/');

const REQUIRED = ['id', 'source'] as const;
const OPTIONAL = ['type', 'subject'] as const;

/** What is wrong with a string attribute, if anything; an optional one may be absent or null. */
function attributeProblem(name: string, v: unknown, max: number, required: boolean): string | undefined {
  if (v === undefined || v === null) return required ? `${name} is required` : undefined;
  if (typeof v !== 'string') return `${name} must be a string, got ${describe(v)}`;
  if (v.length === 0) return required ? `${name} must not be empty` : `${name} must not be empty when present`;
  if (v.length > max) return `${name} is longer than ${max} characters`;
  const bad = badString(v);
  return bad && `${name} ${bad}`;
}

export function validateEvent(raw: unknown, limits: EventLimits, now: number): Validated {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return { ok: false, error: `an event must be a JSON object, got ${describe(raw)}`, field: '' };
  }
  const e = raw as Record<string, unknown>;
  const id = typeof e.id === 'string' ? e.id : undefined;
  const source = typeof e.source === 'string' ? e.source : undefined;
  const fail = (field: string, error: string): Validated => ({ ok: false, id, source, field, error });

  for (const name of REQUIRED) {
    const p = attributeProblem(name, e[name], limits.maxIdLength, true);
    if (p) return fail(name, p);
  }
  for (const name of OPTIONAL) {
    const p = attributeProblem(name, e[name], limits.maxIdLength, false);
    if (p) return fail(name, p);
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
    const problem = checkData(data, 1, limits.maxDataDepth, []);
    if (problem) return fail('data', problem);
    dataJson = canonicalJson(data) ?? null;
    if (dataJson !== null && Buffer.byteLength(dataJson) > limits.maxDataBytes) {
      return fail('data', `data is larger than ${limits.maxDataBytes} bytes`);
    }
  }

  const type = (e.type as string | undefined) ?? null;
  const subject = (e.subject as string | undefined) ?? null;
  // The identity of an event's content: a retry that resends it is a duplicate, anything else a conflict.
  // A defaulted time is left out, so resending an event without a time is still a duplicate.
  const timeText = timeExplicit ? (isFormattedInstant(e.time as string) ? (e.time as string) : formatInstant(time)) : null;
  const contentHash = hash('sha256', JSON.stringify([type, subject, timeText, dataJson]), 'base64url');

  return { ok: true, event: { source: source!, id: id!, type, subject, time, timeExplicit, data, dataJson, hash: contentHash } };
}

// parseInstant reads RFC 3339 by hand (it runs for every event); it must accept and read exactly
// what the regular expression it replaced did, so here the old version is the oracle. isValidZone
// remembers valid zones; Luxon is its oracle.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { IANAZone } from 'luxon';
import { MINUTE_MS, MAX_TIME_MS, MIN_TIME_MS, isValidZone, parseInstant } from '../../src/core/time.js';

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

function oracle(text: unknown): number | undefined {
  if (typeof text !== 'string' || text.length > 40) return undefined;
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, off] = m;
  const month = Number(mo), day = Number(d), hour = Number(h), minute = Number(mi), second = Number(s);
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return undefined;
  // Years 0-99 would be read as 1900-1999 by Date.UTC; every year before 1900 is out of range anyway.
  if (Number(y) < 1900) return undefined;
  const ms = frac ? Number(frac.slice(1, 4).padEnd(3, '0')) : 0;
  const base = Date.UTC(Number(y), month - 1, day, hour, minute, second, ms);
  const check = new Date(base);
  if (check.getUTCDate() !== day || check.getUTCMonth() !== month - 1) return undefined;
  let offsetMin = 0;
  if (off !== 'Z' && off !== 'z') {
    const sign = off[0] === '-' ? -1 : 1;
    const oh = Number(off.slice(1, 3)), om = Number(off.slice(4, 6));
    if (oh > 23 || om > 59) return undefined;
    offsetMin = sign * (oh * 60 + om);
  }
  const t = base - offsetMin * MINUTE_MS;
  if (t < MIN_TIME_MS || t > MAX_TIME_MS) return undefined;
  return t;
}

const RUNS = Number(process.env.FUZZ_RUNS ?? 150) * 100;
const digitsOf = (min: number, max: number) => fc.string({ unit: fc.constantFrom('0', '1', '2', '3', '5', '9', '\u0663', 'a'), minLength: min, maxLength: max });
/** Usually a valid part, now and then an invalid one: most cases are near the edges of the grammar. */
const part = (valid: fc.Arbitrary<string>, invalid: fc.Arbitrary<string>) => fc.oneof({ arbitrary: valid, weight: 15 }, { arbitrary: invalid, weight: 1 });
const num = (n: number, min: number, max: number) =>
  part(fc.integer({ min, max }).map((v) => String(v).padStart(n, '0')), fc.oneof(fc.integer({ min: 0, max: 10 ** n - 1 }).map((v) => String(v).padStart(n, '0')), digitsOf(n - 1, n + 1)));
const sep = (valid: string[], invalid: string[]) => part(fc.constantFrom(...valid), fc.constantFrom(...invalid));
const instant = fc
  .tuple(
    fc.oneof(num(4, 1970, 9999), fc.constantFrom('1970', '1969', '0080', '0000', '9999', '2024', '2100')),
    sep(['-'], ['/', '']), num(2, 1, 12), sep(['-'], ['.']), num(2, 1, 31),
    sep(['T', 't', ' '], ['_', 'TT']), num(2, 0, 23), sep([':'], ['-']), num(2, 0, 59), sep([':'], ['']), num(2, 0, 59),
    part(fc.oneof(fc.constant(''), digitsOf(1, 9).filter((d) => /^\d+$/.test(d)).map((d) => `.${d}`)), fc.oneof(digitsOf(0, 11).map((d) => `.${d}`), fc.constant(',5'))),
    part(
      fc.oneof(fc.constantFrom('Z', 'z'), fc.tuple(fc.constantFrom('+', '-'), num(2, 0, 23), fc.constant(':'), num(2, 0, 59)).map((p) => p.join(''))),
      fc.oneof(fc.constantFrom('', 'UTC', 'Z ', '+0100', '\u00b101:00'), fc.tuple(fc.constantFrom('+', '-'), digitsOf(1, 3), fc.constantFrom(':', ''), digitsOf(1, 3)).map((p) => p.join(''))),
    ),
  )
  .map((parts) => parts.join(''));

describe('parseInstant', () => {
  it('accepts and reads exactly what the RFC 3339 regular expression did', () => {
    fc.assert(fc.property(fc.oneof(instant, instant, fc.string({ maxLength: 45 })), (text) => {
      assert.equal(parseInstant(text), oracle(text), text);
    }), { numRuns: RUNS });
  });

  it('on hand-picked edges', () => {
    for (const text of ['2024-02-29T23:59:59.999999999+23:59', '2023-02-29T00:00:00Z', '1970-01-01T00:00:00Z', '1970-01-01T00:00:00+00:01', '9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59.999-00:01', '0080-01-01T00:00:00Z', '2026-01-01t00:00:00z', '2026-01-01 00:00:00.5Z', '2026-01-01T00:00:00.Z', '2026-01-01T00:00:00.1234567890Z', '2026-01-01T00:00:00', '2026-01-01T24:00:00Z', '2026-01-01T00:00:00+24:00', '2026-01-01T00:00:00+0100', ' 2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z\n']) {
      assert.equal(parseInstant(text), oracle(text), text);
    }
    assert.equal(parseInstant('0080-01-01T00:00:00Z'), undefined, 'year 80 is not 1980');
    assert.equal(parseInstant('1969-12-31T23:30:00-01:00'), Date.UTC(1970, 0, 1, 0, 30));
  });
});

describe('isValidZone', () => {
  const zones = ['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'US/Eastern', 'Etc/GMT+5', 'Not/AZone', 'europe/berlin', '', 'x'.repeat(65), 'America/New_York ', 'UTC\u0000'];

  it('answers what Luxon answers, every time it is asked', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constantFrom(...zones), fc.string({ maxLength: 70 })), { maxLength: 30 }), (asked) => {
        for (const z of asked) assert.equal(isValidZone(z), z.length <= 64 && IANAZone.isValidZone(z), JSON.stringify(z));
      }),
    );
    for (const z of [undefined, null, 5, {}]) assert.equal(isValidZone(z), false);
  });

  it('builds an ICU formatter once per valid zone, not once per query (each holds native memory until a GC)', () => {
    const luxonCheck = IANAZone.isValidZone;
    let calls = 0;
    IANAZone.isValidZone = (z) => {
      calls++;
      return luxonCheck.call(IANAZone, z);
    };
    try {
      for (let i = 0; i < 100; i++) assert.ok(isValidZone('Pacific/Chatham'));
      assert.equal(calls, 1);
      for (let i = 0; i < 3; i++) assert.equal(isValidZone('Nowhere/Atlantis'), false);
      assert.equal(calls, 4, 'an invalid name is not remembered, so it cannot fill memory');
    } finally {
      IANAZone.isValidZone = luxonCheck;
    }
  });
});

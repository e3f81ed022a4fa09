// The canonical JSON of event data is stored and hashed (a retry vs a conflict), so meterd's own
// writer must match the `canonicalize` package it replaced, byte for byte, on any JSON data.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import canonicalizeModule from 'canonicalize';
import { canonicalJson } from '../../src/modules/events/canonical-json.js';

const canonicalize = canonicalizeModule as unknown as (v: unknown) => string | undefined;
const RUNS = Number(process.env.FUZZ_RUNS ?? 150) * 20;

// Keys that sort or parse unusually: integer-like (enumerated first by JS), __proto__, non-ASCII, astral.
const key = fc.oneof(fc.string(), fc.constantFrom('1', '10', '2', '-1', '01', '__proto__', 'constructor', 'toJSON', 'é', 'e\u0301', '𝔘', '\uffff', ''));
const { json } = fc.letrec((tie) => ({
  json: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom(null, true, false, 0, -0, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, 0.1, -1.5, 123456789012345),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    fc.string({ unit: 'grapheme' }),
    fc.array(tie('json'), { maxLength: 5 }),
    fc.dictionary(key, tie('json'), { maxKeys: 6 }),
  ),
}));

describe('canonical JSON of event data', () => {
  it('is what the canonicalize package writes', () => {
    fc.assert(fc.property(fc.dictionary(key, json, { maxKeys: 8 }), (data) => {
      // Through JSON, as data reaches meterd (own "__proto__" keys and all).
      const parsed = JSON.parse(JSON.stringify(data));
      assert.equal(canonicalJson(parsed), canonicalize(parsed));
    }), { numRuns: RUNS });
  });

  it('matches on hand-picked cases', () => {
    for (const text of ['{}', '{"b":1,"a":[3,{"d":null,"c":"x"}]}', '{"10":1,"2":2,"1":3,"a":4}', '{"__proto__":{"x":1},"a":"\\u2028\\u0007"}', '{"n":[1e21,1e-7,-0,0.1]}']) {
      const v = JSON.parse(text);
      assert.equal(canonicalJson(v), canonicalize(v), text);
    }
  });
});

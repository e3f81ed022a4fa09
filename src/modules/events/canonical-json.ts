// Canonical JSON (RFC 8785) of event data: keys sorted by UTF-16 code units, no spaces. It is
// stored, and hashed to tell a retry from a conflict, so it must stay byte for byte what the
// `canonicalize` package writes; a test holds the two equal. This one skips what validation
// already guarantees (finite numbers, well-formed strings, bounded depth, hence no cycles) and the
// Set and arrays canonicalize uses per value.

/** Canonical JSON of a value that passed the event data checks. */
export function canonicalJson(v: unknown): string | undefined {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return canonicalJson((v as { toJSON(): unknown }).toJSON());
  if (Array.isArray(v)) {
    let s = '[';
    for (let i = 0; i < v.length; i++) {
      const item = v[i];
      if (i > 0) s += ',';
      // (?? '': canonicalize joins what JSON cannot write, a function, as nothing.)
      s += item === undefined || typeof item === 'symbol' ? 'null' : (canonicalJson(item) ?? '');
    }
    return s + ']';
  }
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).sort();
  let s = '{';
  let first = true;
  for (const k of keys) {
    const item = o[k];
    if (item === undefined || typeof item === 'symbol') continue;
    s += `${first ? '' : ','}${JSON.stringify(k)}:${canonicalJson(item)}`;
    first = false;
  }
  return s + '}';
}

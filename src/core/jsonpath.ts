// A compiled subset of JSONPath for meter properties: $.a.b, $['a b'], $.list[0].
// Compiling once at meter load keeps per-event extraction to a few property reads;
// filters and wildcards are refused at meter creation with a clear message.

export type Accessor = (root: unknown) => unknown;

type Step = string | number;

export function parseJsonPath(path: string): Step[] {
  if (typeof path !== 'string' || !path.startsWith('$')) throw new Error('a JSONPath must start with "$"');
  const steps: Step[] = [];
  let i = 1;
  while (i < path.length) {
    const c = path[i];
    if (c === '.') {
      const m = /^[A-Za-z_$][\w$-]*/.exec(path.slice(i + 1));
      if (!m) throw new Error(`expected a property name after "." at position ${i + 1}`);
      steps.push(m[0]);
      i += 1 + m[0].length;
    } else if (c === '[') {
      const rest = path.slice(i);
      const idx = /^\[(\d{1,9})\]/.exec(rest);
      const quoted = /^\[\s*(['"])((?:\\.|(?!\1).)*)\1\s*\]/.exec(rest);
      if (idx) {
        steps.push(Number(idx[1]));
        i += idx[0].length;
      } else if (quoted) {
        steps.push(quoted[2].replace(/\\(.)/g, '$1'));
        i += quoted[0].length;
      } else {
        throw new Error(`unsupported JSONPath segment at position ${i}: only names, quoted names and array indexes are supported`);
      }
    } else {
      throw new Error(`unexpected "${c}" at position ${i}`);
    }
  }
  if (steps.length === 0) throw new Error('a JSONPath must name at least one property, e.g. "$.tokens"');
  if (steps.length > 32) throw new Error('a JSONPath may have at most 32 segments');
  return steps;
}

export function compileJsonPath(path: string): Accessor {
  const steps = parseJsonPath(path);
  return (root: unknown) => {
    let cur: unknown = root;
    for (const s of steps) {
      if (cur === null || typeof cur !== 'object') return undefined;
      if (typeof s === 'number') {
        if (!Array.isArray(cur)) return undefined;
        cur = cur[s];
      } else {
        if (Array.isArray(cur) || !Object.prototype.hasOwnProperty.call(cur, s)) return undefined;
        cur = (cur as Record<string, unknown>)[s];
      }
    }
    return cur;
  };
}

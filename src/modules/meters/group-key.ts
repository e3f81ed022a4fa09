// The group key of an event under a meter's groupBy: JSON of its dimension values, keyed by the
// sorted dimension names. Few value combinations recur across many events, so each key text is
// remembered per combination instead of re-serialised per event and meter; meters with the same
// groupBy share one Grouping, so an event's key is found once for all of them.
import { compileJsonPath, type Accessor } from '../../core/jsonpath.js';

export const MAX_DIMENSION_VALUE = 256;
/** Remembered combinations per grouping; past this the memory starts over (high-cardinality dimensions). */
const MAX_REMEMBERED = 10_000;

/** Canonical text of a dimension or unique value: strings as they are, scalars by JSON, objects refused. */
export function dimensionText(v: unknown): string | null | undefined {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v.length <= MAX_DIMENSION_VALUE ? v : undefined;
  if (typeof v === 'number' || typeof v === 'boolean') return JSON.stringify(v);
  return undefined;
}

type Trie = Map<string | null, Trie | string>;

export class Grouping {
  readonly dimensions: string[];
  private readonly accessors: Accessor[];
  private readonly texts: Array<string | null>;
  private remembered: Trie = new Map();
  private size = 0;

  constructor(groupBy: Record<string, string>) {
    this.dimensions = Object.keys(groupBy).sort();
    this.accessors = this.dimensions.map((d) => compileJsonPath(groupBy[d]));
    this.texts = new Array(this.dimensions.length);
  }

  /** Meters whose groupBy gives the same key for every event share a Grouping under this name. */
  static signature(groupBy: Record<string, string>): string {
    return JSON.stringify(Object.keys(groupBy).sort().map((d) => [d, groupBy[d]]));
  }

  /** The group key of an event's data; undefined when a dimension's value is not allowed (see badDimension). */
  keyOf(data: unknown): string | undefined {
    const n = this.dimensions.length;
    for (let i = 0; i < n; i++) {
      const t = dimensionText(this.accessors[i](data));
      if (t === undefined) return undefined;
      this.texts[i] = t;
    }
    let node = this.remembered;
    for (let i = 0; i < n - 1; i++) {
      let next = node.get(this.texts[i]) as Trie | undefined;
      if (next === undefined) node.set(this.texts[i], (next = new Map()));
      node = next;
    }
    const last = n === 0 ? null : this.texts[n - 1];
    const known = node.get(last) as string | undefined;
    if (known !== undefined) return known;
    const key = this.serialise();
    if (this.size >= MAX_REMEMBERED) {
      this.forget();
    } else {
      node.set(last, key);
      this.size++;
    }
    return key;
  }

  /** The first dimension whose value in this data is not allowed. */
  badDimension(data: unknown): string | undefined {
    return this.dimensions.find((_, i) => dimensionText(this.accessors[i](data)) === undefined);
  }

  /** The key text exactly as JSON.stringify writes an object filled in sorted dimension order. */
  private serialise(): string {
    const dims: Record<string, string | null> = {};
    for (let i = 0; i < this.dimensions.length; i++) dims[this.dimensions[i]] = this.texts[i];
    return JSON.stringify(dims);
  }

  private forget(): void {
    this.remembered = new Map();
    this.size = 0;
  }
}

// The distinct-value rows a writer knows are stored, so its folds skip writing them again.
//
// Why: every fold writes each (subject, hour, group, value) it saw into rollup_uniques and each
// (group, month, value) with its day bits into rollup_uniques_days, and most of them are already
// there (the same users in the same hour, fold after fold). INSERT OR IGNORE and the no-op upsert
// still seek every row: ~19,000 of each per 25,000 B2-shaped events, about a third of writing a fold.
//
// Exactness: a row is known only once the transaction that wrote (or met) it has committed
// (confirm()), and everything known is forgotten when another connection may have deleted rollup
// rows: deleting them bumps fold_state.rollups_epoch (meter deletes and rebuilds, any process), and
// a fold reads it inside its own write transaction before it decides what to skip.

/** Distinct values known per table; past it, everything is forgotten (it is only a shortcut). */
const MAX_KNOWN = 60_000;

type Nested<V> = Map<string, Map<number, Map<string, Map<string, V>>>>;

/** What one fold transaction would make known once it commits. */
interface Unconfirmed {
  uniques: Array<[series: string, bucket: number, subject: string, group: string, value: string]>;
  days: Array<[series: string, month: number, group: string, value: string, days: number]>;
}

export class KnownUniques {
  /** Series (tenant NUL meter), hour, subject, group: the values stored in rollup_uniques. */
  private uniques: Nested<Set<string>> = new Map();
  /** Series, UTC month, group, value: day bits known set in rollup_uniques_days. */
  private days: Nested<number> = new Map();
  private uniqueCount = 0;
  private dayCount = 0;
  private epoch: number | undefined;
  private unconfirmed: Unconfirmed = { uniques: [], days: [] };

  /** At the start of a fold's writes, inside its transaction: forgets everything if rollup rows may have been deleted. */
  atEpoch(epoch: number): void {
    if (epoch !== this.epoch) this.forget();
    this.epoch = epoch;
  }

  /** Whether rollup_uniques holds this row; if not, it is remembered as written by this transaction. */
  hasUnique(series: string, bucket: number, subject: string, group: string, value: string): boolean {
    if (this.uniques.get(series)?.get(bucket)?.get(subject)?.get(group)?.has(value)) return true;
    this.unconfirmed.uniques.push([series, bucket, subject, group, value]);
    return false;
  }

  /** Whether rollup_uniques_days has every one of these day bits set; if not, they are remembered as written. */
  hasDays(series: string, month: number, group: string, value: string, days: number): boolean {
    const known = this.days.get(series)?.get(month)?.get(group)?.get(value) ?? 0;
    if ((known & days) === days) return true;
    this.unconfirmed.days.push([series, month, group, value, days]);
    return false;
  }

  /** The transaction that wrote what was asked since the last confirm() or drop() committed. */
  confirm(): void {
    const { uniques, days } = this.unconfirmed;
    this.unconfirmed = { uniques: [], days: [] };
    if (this.uniqueCount + uniques.length > MAX_KNOWN || this.dayCount + days.length > MAX_KNOWN) {
      this.forget();
      return;
    }
    for (const [series, bucket, subject, group, value] of uniques) {
      const values = inner(inner(inner(this.uniques, series, () => new Map()), bucket, () => new Map()), subject, () => new Map());
      let set = values.get(group);
      if (!set) values.set(group, (set = new Set()));
      if (!set.has(value)) {
        set.add(value);
        this.uniqueCount++;
      }
    }
    for (const [series, month, group, value, bits] of days) {
      const byValue = inner(inner(inner(this.days, series, () => new Map()), month, () => new Map()), group, () => new Map());
      const known = byValue.get(value);
      if (known === undefined) this.dayCount++;
      byValue.set(value, (known ?? 0) | bits);
    }
  }

  /** The transaction rolled back: nothing it wrote is known. */
  drop(): void {
    this.unconfirmed = { uniques: [], days: [] };
  }

  /** Everything forgotten (tests, and the epoch or the bound). */
  forget(): void {
    this.uniques = new Map();
    this.days = new Map();
    this.uniqueCount = 0;
    this.dayCount = 0;
  }

  /** How many rows are known (tests). */
  get size(): { uniques: number; days: number } {
    return { uniques: this.uniqueCount, days: this.dayCount };
  }
}

function inner<K, V>(m: Map<K, V>, k: K, make: () => V): V {
  let v = m.get(k);
  if (v === undefined) m.set(k, (v = make()));
  return v;
}

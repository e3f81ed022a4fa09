// Exactly-once on SQLite: every stored event's key (tenant, source, id), kept forever, in sorted runs.
//
// Why runs: a single unique index over random UUIDs puts each new key on a random leaf, so past a
// few million events every event dirties its own 4 KiB page (written to the WAL, then again at
// checkpoint). Here new keys go to one small open run whose pages stay hot and shared; a full run
// is sealed, and runs of a level are merged, in key order, into one run of the next level (FAN_IN to
// one), a chunk at a time between commits. A key is in exactly one run at every commit, and a
// lookup asks only the runs whose Bloom filter says "maybe".
import type Database from 'better-sqlite3';
import { KeyFilter, hashKey, type KeyHash } from './key-filter.js';

export interface DedupeOptions {
  /** Keys in the open run before it is sealed. Small, so a commit's random keys share its pages. */
  runKeys?: number;
  /** Sealed runs of one level merged into one run of the next. */
  fanIn?: number;
  /** Keys moved per merge step (one transaction between commits). */
  chunkKeys?: number;
}

const DEFAULTS: Required<DedupeOptions> = { runKeys: 32_768, fanIn: 16, chunkKeys: 8_192 };

/** Level of a run that is never merged (the run the migration built from an existing index). */
export const UNMERGED_LEVEL = 99;

type RunState = 'open' | 'sealed' | 'target';

interface Run {
  id: number;
  level: number;
  keys: number;
  state: RunState;
  /** The target run this sealed run is being merged into. */
  mergeInto: number | null;
  filter: KeyFilter;
}

interface RunRow {
  run: number;
  level: number;
  keys: number;
  state: RunState;
  merge_into: number | null;
  filter: Buffer | null;
}

/** The key of an event: NUL cannot occur in a source or an id (validation refuses it). */
export const eventKey = (tenantId: string, source: string, id: string) => `${tenantId}\u0000${source}\u0000${id}`;

export class EventKeys {
  private readonly opts: Required<DedupeOptions>;
  private readonly s;
  /** Probed in this order: the open run first (retries are recent), then newest to oldest. */
  private runs: Run[] = [];
  private open!: Run;

  constructor(private readonly db: Database.Database, options: DedupeOptions = {}) {
    this.opts = { ...DEFAULTS, ...options };
    this.s = {
      find: db.prepare<[number, string], number>('SELECT seq FROM event_keys WHERE run = ? AND key = ?').pluck(),
      insert: db.prepare<[number, string, number]>('INSERT INTO event_keys (run, key, seq) VALUES (?, ?, ?)'),
      keysOf: db.prepare<[number], string>('SELECT key FROM event_keys WHERE run = ?').pluck(),
      countOf: db.prepare<[number], number>('SELECT count(*) FROM event_keys WHERE run = ?').pluck(),
      runs: db.prepare<[], RunRow>('SELECT run, level, keys, state, merge_into, filter FROM event_key_runs ORDER BY run DESC'),
      newRun: db.prepare<[number, RunState]>("INSERT INTO event_key_runs (run, level, keys, state) VALUES ((SELECT coalesce(max(run), 0) + 1 FROM event_key_runs), ?, 0, ?)"),
      seal: db.prepare<[number, Buffer, number]>("UPDATE event_key_runs SET state = 'sealed', keys = ?, filter = ? WHERE run = ?"),
      mergeInto: db.prepare<[number, number]>('UPDATE event_key_runs SET merge_into = ? WHERE run = ?'),
      // Where this merge step stops: the smallest of the sources' chunk-th keys, so every source
      // gives up its keys up to there and the target stays in key order. NULL: every source has
      // fewer keys left than a chunk, and this step finishes the merge.
      mergeUpTo: db.prepare<[number, number], string | null>(
        `SELECT min(k) FROM (SELECT (SELECT key FROM event_keys WHERE run = r.run ORDER BY key LIMIT 1 OFFSET ?) AS k
         FROM event_key_runs r WHERE r.merge_into = ?)`,
      ).pluck(),
      // Two forms each, bounded and not: with "(@upTo IS NULL OR key <= @upTo)" SQLite would scan
      // every source from start to end instead of a key range.
      mergeRowsUpTo: db.prepare<[number, string], { key: string; seq: number }>(
        'SELECT key, seq FROM event_keys WHERE run IN (SELECT run FROM event_key_runs WHERE merge_into = ?) AND key <= ? ORDER BY key',
      ),
      mergeRowsAll: db.prepare<[number], { key: string; seq: number }>(
        'SELECT key, seq FROM event_keys WHERE run IN (SELECT run FROM event_key_runs WHERE merge_into = ?) ORDER BY key',
      ),
      mergeDeleteUpTo: db.prepare<[number, string]>('DELETE FROM event_keys WHERE run IN (SELECT run FROM event_key_runs WHERE merge_into = ?) AND key <= ?'),
      mergeDeleteAll: db.prepare<[number]>('DELETE FROM event_keys WHERE run IN (SELECT run FROM event_key_runs WHERE merge_into = ?)'),
      dropSources: db.prepare<[number]>('DELETE FROM event_key_runs WHERE merge_into = ?'),
    };
    this.load();
  }

  /** The seq of the stored event with this key, if there is one. */
  find(key: string, h: KeyHash = hashKey(key)): number | undefined {
    for (const run of this.runs) {
      if (!run.filter.mayContain(h)) continue;
      const seq = this.s.find.get(run.id, key);
      if (seq !== undefined) return seq;
    }
    return undefined;
  }

  /** Records a new event's key, inside the transaction that stores the event. */
  add(key: string, h: KeyHash, seq: number): void {
    this.s.insert.run(this.open.id, key, seq);
    // A rolled-back transaction leaves these bits set: a false "maybe", never a missed key.
    this.open.filter.add(h);
    this.open.keys++;
  }

  /**
   * One step of upkeep in its own transaction: seal the open run, or move one chunk of a merge, or
   * start a merge. Run between commits; true while there is more to do.
   */
  maintain(): boolean {
    if (this.open.keys >= this.opts.runKeys) {
      this.sealOpen();
      return true;
    }
    const target = this.runs.find((r) => r.state === 'target');
    if (target) {
      this.mergeStep(target);
      return true;
    }
    return this.startMerge();
  }

  /** Runs and keys per level (tests, and the store's statistics). */
  shape(): Array<{ id: number; level: number; keys: number; state: RunState; mergeInto: number | null }> {
    return this.runs.map(({ id, level, keys, state, mergeInto }) => ({ id, level, keys, state, mergeInto }));
  }

  private load(): void {
    this.db.transaction(() => {
      const rows = this.s.runs.all();
      if (!rows.some((r) => r.state === 'open')) {
        this.s.newRun.run(0, 'open');
        rows.unshift(this.s.runs.get()!);
      }
      this.runs = rows.map((r) => {
        let filter: KeyFilter;
        let keys = r.keys;
        if (r.filter) filter = KeyFilter.fromBytes(r.filter);
        else {
          // The open run and a merge's target are rebuilt from their keys; a sealed run without a
          // filter (made by the migration) gets one saved.
          // A target's keys: all its sources' keys, which it holds once the merge is done.
          if (r.state === 'open') keys = this.s.countOf.get(r.run)!;
          else if (r.state === 'target') keys = rows.filter((x) => x.merge_into === r.run).reduce((n, x) => n + x.keys, 0);
          filter = this.filterOf(r.run, r.state === 'open' ? Math.max(this.opts.runKeys * 2, keys) : keys);
          if (r.state === 'sealed') this.s.seal.run(keys, filter.toBytes(), r.run);
        }
        return { id: r.run, level: r.level, keys, state: r.state, mergeInto: r.merge_into, filter };
      });
    }).immediate();
    this.open = this.runs.find((r) => r.state === 'open')!;
    this.runs = [this.open, ...this.runs.filter((r) => r !== this.open)];
  }

  private filterOf(run: number, capacity: number): KeyFilter {
    const filter = KeyFilter.sized(capacity);
    for (const key of this.s.keysOf.iterate(run)) filter.add(hashKey(key));
    return filter;
  }

  /** The open run becomes sealed, with a filter sized to its keys; a new open run takes its place. */
  private sealOpen(): void {
    const old = this.open;
    let sealed!: Run, fresh!: Run;
    this.db.transaction(() => {
      const keys = this.s.countOf.get(old.id)!;
      // Rebuilt from what was committed: exact size, and none of a rolled-back commit's bits.
      const filter = this.filterOf(old.id, keys);
      this.s.seal.run(keys, filter.toBytes(), old.id);
      const id = Number(this.s.newRun.run(0, 'open').lastInsertRowid);
      sealed = { ...old, keys, state: 'sealed', filter };
      fresh = { id, level: 0, keys: 0, state: 'open', mergeInto: null, filter: KeyFilter.sized(this.opts.runKeys * 2) };
    }).immediate();
    this.open = fresh;
    this.runs = [fresh, sealed, ...this.runs.filter((r) => r !== old)];
  }

  /** The oldest FAN_IN sealed runs of the lowest full level start merging into a new run. */
  private startMerge(): boolean {
    const byLevel = new Map<number, Run[]>();
    for (const r of this.runs) {
      if (r.state !== 'sealed' || r.level >= UNMERGED_LEVEL) continue;
      byLevel.set(r.level, [...(byLevel.get(r.level) ?? []), r]);
    }
    const level = [...byLevel.keys()].sort((a, b) => a - b).find((l) => byLevel.get(l)!.length >= this.opts.fanIn);
    if (level === undefined) return false;
    const sources = byLevel.get(level)!.sort((a, b) => a.id - b.id).slice(0, this.opts.fanIn);
    let target!: Run;
    this.db.transaction(() => {
      const id = Number(this.s.newRun.run(level + 1, 'target').lastInsertRowid);
      for (const s of sources) this.s.mergeInto.run(id, s.id);
      const keys = sources.reduce((n, s) => n + s.keys, 0);
      target = { id, level: level + 1, keys, state: 'target', mergeInto: null, filter: KeyFilter.sized(keys) };
    }).immediate();
    for (const s of sources) s.mergeInto = target.id;
    // Newest first after the open run: the target holds older keys than any sealed level-0 run.
    this.runs.push(target);
    return true;
  }

  /** Moves the sources' keys up to the next chunk boundary into the target, in key order. */
  private mergeStep(target: Run): void {
    const sources = this.runs.filter((r) => r.mergeInto === target.id);
    const perSource = Math.max(1, Math.floor(this.opts.chunkKeys / sources.length));
    let done = false;
    this.db.transaction(() => {
      const upTo = this.s.mergeUpTo.get(perSource - 1, target.id) ?? null;
      const rows = upTo === null ? this.s.mergeRowsAll.all(target.id) : this.s.mergeRowsUpTo.all(target.id, upTo);
      for (const { key, seq } of rows) {
        this.s.insert.run(target.id, key, seq);
        target.filter.add(hashKey(key));
      }
      if (upTo === null) this.s.mergeDeleteAll.run(target.id);
      else this.s.mergeDeleteUpTo.run(target.id, upTo);
      if (upTo === null) {
        this.s.seal.run(target.keys, target.filter.toBytes(), target.id);
        this.s.dropSources.run(target.id);
        done = true;
      }
    }).immediate();
    if (done) {
      target.state = 'sealed';
      this.runs = this.runs.filter((r) => r.mergeInto !== target.id);
    }
  }
}

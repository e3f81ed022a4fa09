// Exactly-once on SQLite: every stored event's key (tenant, source, id), kept forever, in sorted runs.
//
// Why runs: a single unique index over random UUIDs puts each new key on a random leaf, so past a
// few million events every event dirties its own 4 KiB page (written to the WAL, then again at
// checkpoint). Here new keys go to one small open run; a full run is sealed (sorted into
// event_keys), and runs of a level are merged, in key order, into one run of the next level (FAN_IN
// to one), a chunk at a time between commits. A key is in exactly one run at every commit, and a
// lookup asks only the runs whose Bloom filter says "maybe".
//
// The open run is a log in arrival order (event_key_log, keyed by seq), so a commit appends to its
// last page, and the writer looks its keys up in a map it keeps. Kept sorted on disk, a commit's
// random keys dirtied a leaf each: 45 of the 80 pages a 32-event commit wrote to the WAL.
//
// Filters live in memory, so a second process writing the same file (the CLI beside a server) must
// not leave them stale: every transaction that writes keys bumps a generation number, and a writer
// that finds a generation it did not write reloads the runs before it looks anything up.
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
  /** Sealed: its keys. Target: its sources' keys, which it holds once the merge is done. Open: about how many it holds. */
  keys: number;
  state: RunState;
  /** The target run this sealed run is being merged into. */
  mergeInto: number | null;
  filter: KeyFilter;
  /** Targets only: keys this process put in the filter; NaN when it cannot know (another writer moved some). */
  filterKeys?: number;
}

interface RunRow {
  run: number;
  level: number;
  keys: number;
  state: RunState;
  merge_into: number | null;
  has_filter: number;
}

export class EventKeys {
  private readonly opts: Required<DedupeOptions>;
  private readonly s;
  /** The open run first, then newest to oldest: lookups probe the sealed ones in this order (the open run's keys are in openKeys). */
  private runs: Run[] = [];
  private open!: Run;
  /** The open run's keys (its log) and their seqs: lookups in the open run never touch the disk. */
  private openKeys = new Map<string, number>();
  /** The largest seq in openKeys: a log row above it was written by another writer since. */
  private openLastSeq = 0;
  /** openKeys may hold keys of a rolled-back transaction: read the log again, whole. */
  private openStale = true;
  /** The generation this writer last wrote; any other value in the table means another writer wrote since. */
  private generation = -1;

  constructor(private readonly db: Database.Database, options: DedupeOptions = {}) {
    this.opts = { ...DEFAULTS, ...options };
    this.s = {
      generation: db.prepare<[], number>('SELECT generation FROM event_key_state WHERE id = 1').pluck(),
      bump: db.prepare<[], number>('UPDATE event_key_state SET generation = generation + 1 WHERE id = 1 RETURNING generation').pluck(),
      find: db.prepare<[number, string], number>('SELECT seq FROM event_keys WHERE run = ? AND key = ?').pluck(),
      log: db.prepare<[number, string]>('INSERT INTO event_key_log (seq, key) VALUES (?, ?)'),
      logAfter: db.prepare<[number], { seq: number; key: string }>('SELECT seq, key FROM event_key_log WHERE seq > ? ORDER BY seq'),
      // SQLite sorts the log itself, so the sealed run's B-tree grows at its end.
      sealLog: db.prepare<[number]>('INSERT INTO event_keys (run, key, seq) SELECT ?, key, seq FROM event_key_log ORDER BY key'),
      clearLog: db.prepare('DELETE FROM event_key_log'),
      keysOf: db.prepare<[number], string>('SELECT key FROM event_keys WHERE run = ?').pluck(),
      countOf: db.prepare<[number], number>('SELECT count(*) FROM event_keys WHERE run = ?').pluck(),
      runs: db.prepare<[], RunRow>('SELECT run, level, keys, state, merge_into, filter IS NOT NULL AS has_filter FROM event_key_runs ORDER BY run DESC'),
      filter: db.prepare<[number], Buffer>('SELECT filter FROM event_key_runs WHERE run = ?').pluck(),
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
      mergeKeysUpTo: db.prepare<[number, string], string>('SELECT key FROM event_keys WHERE run IN (SELECT run FROM event_key_runs WHERE merge_into = ?) AND key <= ?').pluck(),
      mergeKeysAll: db.prepare<[number], string>('SELECT key FROM event_keys WHERE run IN (SELECT run FROM event_key_runs WHERE merge_into = ?)').pluck(),
      // The rows are copied by SQLite itself, in key order, so the target's B-tree grows at its end.
      mergeCopyUpTo: db.prepare<[number, number, string]>(
        'INSERT INTO event_keys (run, key, seq) SELECT ?, key, seq FROM event_keys WHERE run IN (SELECT run FROM event_key_runs WHERE merge_into = ?) AND key <= ? ORDER BY key',
      ),
      mergeCopyAll: db.prepare<[number, number]>(
        'INSERT INTO event_keys (run, key, seq) SELECT ?, key, seq FROM event_keys WHERE run IN (SELECT run FROM event_key_runs WHERE merge_into = ?) ORDER BY key',
      ),
      mergeDeleteUpTo: db.prepare<[number, string]>('DELETE FROM event_keys WHERE run IN (SELECT run FROM event_key_runs WHERE merge_into = ?) AND key <= ?'),
      mergeDeleteAll: db.prepare<[number]>('DELETE FROM event_keys WHERE run IN (SELECT run FROM event_key_runs WHERE merge_into = ?)'),
      dropSources: db.prepare<[number]>('DELETE FROM event_key_runs WHERE merge_into = ?'),
    };
    // Loads the runs (and opens the first one, or makes the filter migration 7 left out).
    this.db.transaction(() => {
      this.begin();
      this.end();
    }).immediate();
  }

  /**
   * First thing in every transaction that reads or writes keys (the caller's, which must be a
   * write transaction, so no other writer can come in between): catches up with other writers.
   */
  begin(): void {
    if (this.s.generation.get() !== this.generation) this.reload();
  }

  /** Last thing in such a transaction. */
  end(): void {
    this.generation = this.s.bump.get()!;
  }

  /**
   * After a transaction that failed: what this process holds in memory may describe changes that
   * were rolled back, so it is read again from the database before the next use.
   */
  abandon(): void {
    this.generation = -1;
    this.openStale = true;
  }

  /** The seq of the stored event with this key, if there is one. */
  find(key: string, h: KeyHash): number | undefined {
    const recent = this.openKeys.get(key);
    if (recent !== undefined) return recent;
    let targetProbed = false;
    for (const run of this.runs) {
      // A target holds keys taken from its sources, whose filters know them; its own filter may
      // lack what another writer moved.
      if (run.state !== 'sealed' || !run.filter.mayContain(h)) continue;
      const seq = this.s.find.get(run.id, key);
      if (seq !== undefined) return seq;
      if (run.mergeInto !== null && !targetProbed) {
        targetProbed = true;
        const moved = this.s.find.get(run.mergeInto, key);
        if (moved !== undefined) return moved;
      }
    }
    return undefined;
  }

  /** Records a new event's key, inside the transaction that stores the event. */
  add(key: string, h: KeyHash, seq: number): void {
    this.s.log.run(seq, key);
    // A rolled-back transaction leaves these behind until abandon() has the log read again.
    this.openKeys.set(key, seq);
    this.openLastSeq = seq;
    this.open.filter.add(h);
    this.open.keys++;
  }

  /**
   * One step of upkeep in its own transaction: seal the open run, or move one chunk of a merge, or
   * start a merge. Run between commits; true while there is more to do. With nothing due it opens
   * no transaction (what another writer made due, that writer does, or this one after its next commit).
   */
  maintain(): boolean {
    if (this.due() === undefined) return false;
    try {
      return this.db.transaction(() => {
        this.begin();
        const step = this.due();
        if (step === 'seal') this.sealOpen();
        else if (step === 'merge') this.mergeStep(this.runs.find((r) => r.state === 'target')!);
        else if (step !== undefined) this.startMerge(step);
        this.end();
        return step !== undefined;
      }).immediate();
    } catch (e) {
      this.abandon();
      throw e;
    }
  }

  /** Runs and keys per level (tests, bench/event-keys.ts). */
  shape(): Array<{ id: number; level: number; keys: number; state: RunState; mergeInto: number | null }> {
    return this.runs.map(({ id, level, keys, state, mergeInto }) => ({ id, level, keys, state, mergeInto }));
  }

  /** What upkeep is due: seal, a merge step, or a merge of these runs to start. */
  private due(): 'seal' | 'merge' | Run[] | undefined {
    if (this.open.keys >= this.opts.runKeys) return 'seal';
    if (this.runs.some((r) => r.state === 'target')) return 'merge';
    const byLevel = new Map<number, Run[]>();
    for (const r of this.runs) {
      if (r.state !== 'sealed' || r.level >= UNMERGED_LEVEL) continue;
      const level = byLevel.get(r.level);
      if (level) level.push(r);
      else byLevel.set(r.level, [r]);
    }
    const level = [...byLevel.keys()].sort((a, b) => a - b).find((l) => byLevel.get(l)!.length >= this.opts.fanIn);
    // The oldest runs of the lowest full level.
    return level === undefined ? undefined : byLevel.get(level)!.sort((a, b) => a.id - b.id).slice(0, this.opts.fanIn);
  }

  /**
   * Reads the runs as stored. What cannot have changed is kept (a sealed run's filter), so catching
   * up with another writer costs one small query, not a rescan: an open run this process knew is
   * probed directly from then on, and a target's filter is made again from its keys when it is done.
   */
  private reload(): void {
    const atStart = this.runs.length === 0;
    let rows = this.s.runs.all();
    if (!rows.some((r) => r.state === 'open')) {
      this.s.newRun.run(0, 'open');
      rows = this.s.runs.all();
    }
    const known = new Map(this.runs.map((r) => [r.id, r]));
    this.runs = rows.map((r): Run => {
      const was = known.get(r.run);
      const run = { id: r.run, level: r.level, keys: r.keys, state: r.state, mergeInto: r.merge_into };
      if (r.state === 'sealed') {
        if (was?.state === 'sealed') return { ...run, filter: was.filter };
        let filter: KeyFilter;
        if (r.has_filter) filter = KeyFilter.fromBytes(this.s.filter.get(r.run)!);
        else {
          // Only the run migration 7 made from the old index has none: made once, and saved.
          filter = this.filterOf(r.run, r.keys);
          this.s.seal.run(r.keys, filter.toBytes(), r.run);
        }
        return { ...run, filter };
      }
      if (r.state === 'open') return this.catchUpOpen(run, was);
      const keys = rows.filter((x) => x.merge_into === r.run).reduce((n, x) => n + x.keys, 0);
      if (was?.state === 'target') return { ...run, keys, filter: was.filter, filterKeys: NaN };
      if (!atStart) return { ...run, keys, filter: KeyFilter.sized(keys), filterKeys: NaN };
      // A merge met at start (this process restarted in the middle of it): a filter of what it holds.
      return { ...run, keys, filter: this.filterOf(r.run, keys), filterKeys: this.s.countOf.get(r.run)! };
    });
    this.open = this.runs.find((r) => r.state === 'open')!;
    this.runs = [this.open, ...this.runs.filter((r) => r !== this.open)];
  }

  /**
   * The open run as stored: what another writer appended to the log since this one last wrote is
   * added to the map and filter; a run new to this process, or a map that may hold rolled-back keys,
   * is read from the log whole.
   */
  private catchUpOpen(run: Omit<Run, 'filter'>, was: Run | undefined): Run {
    const whole = this.openStale || was?.state !== 'open' || was.id !== run.id;
    const filter = whole ? this.openRunFilter() : was.filter;
    if (whole) {
      this.openKeys = new Map();
      this.openLastSeq = 0;
      this.openStale = false;
    }
    for (const { seq, key } of this.s.logAfter.iterate(this.openLastSeq)) {
      this.openKeys.set(key, seq);
      this.openLastSeq = seq;
      filter.add(hashKey(key));
    }
    return { ...run, keys: this.openKeys.size, filter };
  }

  /** An open run's filter: sized for twice the keys a run holds before it is sealed (fewer false positives). */
  private openRunFilter(): KeyFilter {
    return KeyFilter.sized(this.opts.runKeys * 2);
  }

  private filterOf(run: number, capacity: number): KeyFilter {
    const filter = KeyFilter.sized(capacity);
    for (const key of this.s.keysOf.iterate(run)) filter.add(hashKey(key));
    return filter;
  }

  /** The open run's log is sorted into a sealed run, with its filter; a new open run takes its place. */
  private sealOpen(): void {
    const old = this.open;
    const keys = Number(this.s.sealLog.run(old.id).changes);
    this.s.clearLog.run();
    // The open run's filter holds every key of the log (begin() caught up with other writers), sized
    // for twice the run's keys (fewer false positives); it may hold bits of a rolled-back commit (a
    // false "maybe" costs a probe, never a missed key). Made again, it re-read and re-hashed every
    // key of the run: bench/event-keys.ts spent 7% of its time there.
    const filter = old.filter;
    this.s.seal.run(keys, filter.toBytes(), old.id);
    const id = Number(this.s.newRun.run(0, 'open').lastInsertRowid);
    const sealed: Run = { id: old.id, level: old.level, keys, state: 'sealed', mergeInto: null, filter };
    this.open = { id, level: 0, keys: 0, state: 'open', mergeInto: null, filter: this.openRunFilter() };
    this.openKeys = new Map();
    this.openLastSeq = 0;
    this.runs = [this.open, sealed, ...this.runs.filter((r) => r !== old)];
  }

  /** These sealed runs start merging into a new run of the next level. */
  private startMerge(sources: Run[]): void {
    const id = Number(this.s.newRun.run(sources[0].level + 1, 'target').lastInsertRowid);
    for (const s of sources) {
      this.s.mergeInto.run(id, s.id);
      s.mergeInto = id;
    }
    const keys = sources.reduce((n, s) => n + s.keys, 0);
    this.runs.push({ id, level: sources[0].level + 1, keys, state: 'target', mergeInto: null, filter: KeyFilter.sized(keys), filterKeys: 0 });
  }

  /** Moves the sources' keys up to the next chunk boundary into the target, in key order. */
  private mergeStep(target: Run): void {
    const sources = this.runs.filter((r) => r.mergeInto === target.id);
    const perSource = Math.max(1, Math.floor(this.opts.chunkKeys / sources.length));
    const upTo = this.s.mergeUpTo.get(perSource - 1, target.id) ?? null;
    let moved = 0;
    for (const key of upTo === null ? this.s.mergeKeysAll.iterate(target.id) : this.s.mergeKeysUpTo.iterate(target.id, upTo)) {
      target.filter.add(hashKey(key));
      moved++;
    }
    if (upTo === null) {
      this.s.mergeCopyAll.run(target.id, target.id);
      this.s.mergeDeleteAll.run(target.id);
    } else {
      this.s.mergeCopyUpTo.run(target.id, target.id, upTo);
      this.s.mergeDeleteUpTo.run(target.id, upTo);
    }
    target.filterKeys = (target.filterKeys ?? NaN) + moved;
    if (upTo !== null) return;
    // Done: the target is sealed with a filter of every key it holds.
    const filter = target.filterKeys === target.keys ? target.filter : this.filterOf(target.id, target.keys);
    this.s.seal.run(target.keys, filter.toBytes(), target.id);
    this.s.dropSources.run(target.id);
    Object.assign(target, { state: 'sealed', filter, filterKeys: undefined });
    this.runs = this.runs.filter((r) => r.mergeInto !== target.id);
  }
}

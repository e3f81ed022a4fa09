// Opening the SQLite file the same way on the main thread and on the writer thread.
import Database from 'better-sqlite3';
import { registerDecimalAggregates, registerDecimalFunctions } from './decimal-functions.js';

/** Page cache of the readers' connection; the writer thread gets half. Pages missing from it come from the OS file cache. */
export const DEFAULT_CACHE_MIB = 32;

export function openDatabase(path: string, cacheMiB = DEFAULT_CACHE_MIB): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  // FULL: the WAL is fsynced at every commit, so an acknowledged event survives a power cut.
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  // Checkpoint every ~40 MB of WAL rather than every 4 MB: the pages a commit rewrites (the current
  // hour's rollups, recent index leaves) are copied back once per checkpoint, not once per commit.
  // B2 measured +10% against the default 1000 pages; no checkpoints at all was slower (a long WAL).
  db.pragma('wal_autocheckpoint = 10000');
  db.pragma('foreign_keys = ON');
  db.pragma(`cache_size = -${cacheMiB * 1024}`);
  registerDecimalFunctions(db);
  registerDecimalAggregates(db);
  return db;
}

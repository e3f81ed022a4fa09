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
  db.pragma('foreign_keys = ON');
  db.pragma(`cache_size = -${cacheMiB * 1024}`);
  registerDecimalFunctions(db);
  registerDecimalAggregates(db);
  return db;
}

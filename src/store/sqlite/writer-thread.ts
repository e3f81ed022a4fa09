// SQLite's writer thread: it owns the connection that appends events, so a commit and its fsync
// never block the thread that parses requests. Messages: { id, jobs } -> { id, results };
// { id, fold } folds pending rollups (a reader is about to read the tables); { id, close }.
import { parentPort, workerData } from 'node:worker_threads';
import { writeFileSync } from 'node:fs';
import { openDatabase } from './open.js';
import { AppendWriter, type WireJob, type WireResult, type WriterOptions } from './append-writer.js';

// Named for top -H, ps and the bench's per-thread accounting (Linux only; elsewhere it stays unnamed).
try {
  writeFileSync('/proc/thread-self/comm', 'meterd-writer');
} catch {}
const { path, cacheMiB, options } = workerData as { path: string; cacheMiB: number; options?: WriterOptions };
const db = openDatabase(path, cacheMiB);
const writer = new AppendWriter(db, options);

const failed = (e: unknown) => {
  const err = e as { message?: string; code?: string };
  return { error: err.message ?? String(e), code: err.code };
};

parentPort!.on('message', (msg: { id: number; jobs?: WireJob[]; fold?: true; close?: true }) => {
  if (msg.close) {
    writer.stop();
    // Best effort: what stays pending is folded by the next process to open the file.
    try {
      writer.foldAll();
    } catch {}
    db.close();
    parentPort!.postMessage({ id: msg.id, results: [] });
    parentPort!.close();
    return;
  }
  if (msg.fold) {
    let results: WireResult[] = [];
    try {
      writer.foldAll();
    } catch (e) {
      results = [failed(e)];
    }
    parentPort!.postMessage({ id: msg.id, results });
    return;
  }
  let results: WireResult[];
  try {
    results = writer.commit(msg.jobs!);
  } catch (e) {
    results = msg.jobs!.map(() => failed(e));
  }
  parentPort!.postMessage({ id: msg.id, results });
});

// SQLite's writer thread: it owns the connection that appends events, so a commit and its fsync
// never block the thread that parses requests. Messages: { id, jobs } -> { id, results }.
import { parentPort, workerData } from 'node:worker_threads';
import { openDatabase } from './open.js';
import { AppendWriter, type WireJob, type WireResult } from './append-writer.js';
import type { DedupeOptions } from './dedupe/event-keys.js';

const { path, cacheMiB, dedupe } = workerData as { path: string; cacheMiB: number; dedupe?: DedupeOptions };
const db = openDatabase(path, cacheMiB);
const writer = new AppendWriter(db, dedupe);

parentPort!.on('message', (msg: { id: number; jobs?: WireJob[]; close?: true }) => {
  if (msg.close) {
    db.close();
    parentPort!.postMessage({ id: msg.id, results: [] });
    parentPort!.close();
    return;
  }
  let results: WireResult[];
  try {
    results = writer.commit(msg.jobs!);
  } catch (e) {
    const err = e as { message?: string; code?: string };
    results = msg.jobs!.map(() => ({ error: err.message ?? String(e), code: err.code }));
  }
  parentPort!.postMessage({ id: msg.id, results });
});

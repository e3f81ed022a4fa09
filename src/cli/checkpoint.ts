// The ingest checkpoint: how far into a file a previous run got, so a re-run skips that work.
// It is only an optimisation. Correctness comes from the database: events are deduplicated by
// (source, id) forever, so re-reading lines a lost or stale checkpoint forgot counts nothing twice.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync, renameSync, writeFileSync } from 'node:fs';
import type { Position } from './ingest-read.js';

const VERSION = 1;
const PROBE = 4096;

interface Saved extends Position {
  version: number;
  /** Which database, tenant, source and format the offset belongs to (a digest: no secrets on disk). */
  target: string;
  /** Digests of the file's first bytes and of the bytes just before the offset. */
  head: string;
  tail: string;
  updatedAt: string;
}

export const checkpointPath = (file: string) => `${file}.meterd-checkpoint`;

export const targetOf = (...parts: string[]) => createHash('sha256').update(parts.join('\u0000')).digest('base64url');

function digest(file: string, start: number, end: number): string {
  const buf = Buffer.alloc(Math.max(0, end - start));
  const fd = openSync(file, 'r');
  try {
    let n = 0;
    while (n < buf.length) {
      const r = readSync(fd, buf, n, buf.length - n, start + n);
      if (r === 0) break;
      n += r;
    }
    return createHash('sha256').update(buf.subarray(0, n)).digest('base64url');
  } finally {
    closeSync(fd);
  }
}

/**
 * The position to resume from, or undefined (start over) when there is no checkpoint or it does not
 * fit this file and target: rewritten or truncated file, other tenant, source or database.
 */
export function loadCheckpoint(file: string, size: number, target: string): { position?: Position; ignored?: string } {
  let saved: Saved;
  try {
    saved = JSON.parse(readFileSync(checkpointPath(file), 'utf8')) as Saved;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    return { ignored: 'checkpoint is unreadable' };
  }
  if (saved.version !== VERSION || !Number.isSafeInteger(saved.offset) || !Number.isSafeInteger(saved.line)) return { ignored: 'checkpoint is of another version' };
  if (saved.target !== target) return { ignored: 'checkpoint was made for another database, tenant, source or format' };
  if (saved.offset > size) return { ignored: 'the file is shorter than the checkpoint' };
  if (saved.head !== digest(file, 0, Math.min(PROBE, saved.offset)) || saved.tail !== digest(file, Math.max(0, saved.offset - PROBE), saved.offset)) {
    return { ignored: 'the file changed before the checkpoint' };
  }
  return { position: { offset: saved.offset, line: saved.line } };
}

/** Writes the checkpoint atomically (write, then rename). */
export function saveCheckpoint(file: string, target: string, at: Position): void {
  const saved: Saved = {
    version: VERSION,
    target,
    offset: at.offset,
    line: at.line,
    head: digest(file, 0, Math.min(PROBE, at.offset)),
    tail: digest(file, Math.max(0, at.offset - PROBE), at.offset),
    updatedAt: new Date().toISOString(),
  };
  const path = checkpointPath(file);
  writeFileSync(`${path}.tmp`, `${JSON.stringify(saved)}\n`);
  renameSync(`${path}.tmp`, path);
}

// The main thread's side of the writer thread: posts a group of jobs, waits for its results.
import { Worker } from 'node:worker_threads';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WireJob, WireResult, WriterOptions } from './append-writer.js';

/**
 * A young generation of 12 MB (V8's default grows to ~48 MB per thread): the writer's garbage is
 * short-lived, so a smaller nursery costs it little. bench --only baseline1,baseline100,B1,B2, same session:
 * peak RSS 251-257 -> 239 MB, B1 8,404-8,430 -> 8,997 req/s, B2 23,626-24,710 -> 25,040 events/s. The same
 * limit on the main thread (node --max-semi-space-size=4) saved ~20 MB more but cost B1 a quarter
 * (5,794-6,582 req/s), and 8 MB semi-spaces still 6% (7,935), so the main thread keeps V8's default.
 */
const WRITER_LIMITS = { maxYoungGenerationSizeMb: 12 };

export class WriterClient {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: WireResult[]) => void; reject: (e: Error) => void }>();
  private failure: Error | undefined;

  constructor(path: string, cacheMiB: number, options?: WriterOptions) {
    // The sibling module with this module's own extension: .ts under tsx, .js once built.
    const here = fileURLToPath(import.meta.url);
    const url = new URL(`./writer-thread${extname(here)}`, import.meta.url);
    // Running from TypeScript sources (tests, dev): the thread registers tsx before loading the module.
    const init = { workerData: { path, cacheMiB, options }, resourceLimits: WRITER_LIMITS };
    this.worker = extname(here) === '.ts'
      ? new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url.href)}); });`, { eval: true, ...init })
      : new Worker(url, init);
    this.worker.on('message', (m: { id: number; results: WireResult[] }) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      p?.resolve(m.results);
    });
    const fail = (e: Error) => {
      this.failure = Object.assign(new Error(`SQLite writer thread stopped: ${e.message}`), { code: 'SQLITE_IOERR_WRITER' });
      for (const p of this.pending.values()) p.reject(this.failure);
      this.pending.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => {
      if (!this.failure) fail(new Error(`exit code ${code}`));
    });
  }

  commit(jobs: WireJob[]): Promise<WireResult[]> {
    return this.send({ jobs });
  }

  /** Folds pending rollups after every commit already posted. */
  async foldAll(): Promise<void> {
    const [failed] = await this.send({ fold: true });
    if (failed && 'error' in failed) throw Object.assign(new Error(failed.error), { code: failed.code });
  }

  private send(message: { jobs: WireJob[] } | { fold: true }): Promise<WireResult[]> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, ...message });
    });
  }

  /** Fails when the writer thread is gone (readiness). */
  check(): void {
    if (this.failure) throw this.failure;
  }

  async close(): Promise<void> {
    if (this.failure) return;
    await new Promise<void>((resolve) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve: () => resolve(), reject: () => resolve() });
      this.failure = new Error('closed');
      this.worker.postMessage({ id, close: true });
    });
    await this.worker.terminate().catch(() => {});
  }
}

// meterd ingest FILE: streams NDJSON or CSV events into a tenant in batches, resumably.
// Rows without an id get `<basename>:<line>` and rows without a source `file:<basename>`, so a
// re-run of the same file names every event the same way and the database's (source, id)
// dedupe counts nothing twice. The checkpoint only saves re-reading; see checkpoint.ts.
import { closeSync, openSync, statSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { Option, type Command } from 'commander';
import { SingleBar } from 'cli-progress';
import type { Ctx } from '../core/context.js';
import type { Services } from '../main.js';
import { checkpointPath, loadCheckpoint, saveCheckpoint, targetOf } from './checkpoint.js';
import { detectFormat, readRecords, type Position } from './ingest-read.js';
import { CliError, note } from './output.js';
import { positiveInt, tenantCtx, withServices } from './runtime.js';

interface IngestOpts {
  tenant: string;
  batch: number;
  source?: string;
  type?: string;
  format?: string;
  quiet?: boolean;
  errors?: string;
  checkpoint: boolean;
  limit?: number;
}

export interface Problem {
  line: number;
  status: 'rejected' | 'conflict';
  field?: string;
  error: string;
}

const SHOWN_PROBLEMS = 20;

export function registerIngest(program: Command) {
  program
    .command('ingest <file>')
    .description('ingest CloudEvents from an NDJSON file (one event per line) or a CSV file (header row); safe to re-run')
    .requiredOption('--tenant <id>', 'tenant')
    .option('--batch <n>', 'events per write', positiveInt, 1000)
    .option('--source <source>', 'source of rows that have none (default: file:<basename>)')
    .option('--type <type>', 'type of rows that have none (a CSV file often has no type column)')
    .option('--format <format>', 'ndjson or csv (default: from the extension)')
    .option('--errors <file>', 'write every rejected or conflicting line to this file, as NDJSON')
    .option('--no-checkpoint', `neither read nor write <file>.meterd-checkpoint (dedupe still applies)`)
    .option('--quiet', 'no progress bar')
    .addOption(new Option('--limit <n>', 'stop after n records, as if interrupted (for tests)').argParser(positiveInt).hideHelp())
    .addHelpText(
      'after',
      `
Formats: NDJSON (.ndjson, .jsonl) holds one CloudEvents JSON object per line. CSV (.csv) has a header
row; columns id, source, specversion, type, subject, time are event attributes, data.<name> (or any
other column) goes into data as a string, so amounts stay exact; empty cells are left out.

Re-running is safe: events are deduplicated by (source, id) forever. A row without an id gets
<basename>:<line> and one without a source file:<basename>, so the same file names its rows the same
way every time (give files with the same name different --source values). <file>.meterd-checkpoint
records how far a run got so the next one skips that part; it is only a shortcut: deleting it, or
--no-checkpoint, re-reads everything and counts nothing twice.

Exit status: 0 when every line was stored (or was a duplicate), 1 when some were rejected or
conflicted (the others are kept), 130 when interrupted (run again to continue).`,
    )
    .action((file: string, opts: IngestOpts) => withServices((s) => ingestFile(s, file, opts)));
}

async function ingestFile(s: Services, file: string, opts: IngestOpts): Promise<void> {
  const format = detectFormat(file, opts.format);
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    throw new CliError(`cannot read ${file}: no such file`);
  }
  const ctx = await tenantCtx(s, opts.tenant);
  if (opts.batch > s.config.MAX_BATCH_EVENTS) throw new CliError(`--batch may be at most ${s.config.MAX_BATCH_EVENTS} (MAX_BATCH_EVENTS)`);

  const base = basename(file);
  const defaultSource = opts.source ?? `file:${base}`;
  const target = targetOf(s.config.DATABASE_URL, ctx.tenantId, defaultSource, format);
  let from: Position = { offset: 0, line: 0 };
  if (opts.checkpoint) {
    const c = loadCheckpoint(file, size, target);
    if (c.position) {
      from = c.position;
      note(`resuming after line ${from.line} (byte ${from.offset} of ${size}) from ${checkpointPath(file)}`);
    } else if (c.ignored) note(`starting from the beginning: ${c.ignored}`);
  }

  const run = new IngestRun(s, ctx, opts, file, target, from);
  const bar = !opts.quiet && process.stderr.isTTY ? new SingleBar({ stream: process.stderr, format: 'ingest [{bar}] {percentage}% | line {line} | accepted {accepted} | rejected {rejected}', hideCursor: true }) : undefined;
  bar?.start(Math.max(1, size - from.offset), 0, { line: from.line, accepted: 0, rejected: 0 });
  let interrupted = false;
  const onSignal = () => (interrupted = true);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let stoppedByLimit = false;
  try {
    let records = 0;
    let batch: Pending[] = [];
    for await (const item of readRecords(file, format, from)) {
      records++;
      batch.push(item.error !== undefined ? { line: item.line, error: item.error } : { line: item.line, event: withDefaults(item.event!, item.line, base, defaultSource, opts.type) });
      if (item.complete) run.position = { offset: item.end, line: item.line };
      if (batch.length >= opts.batch) {
        await run.flush(batch);
        batch = [];
        bar?.update(item.end - from.offset, { line: item.line, accepted: run.counts.accepted, rejected: run.counts.rejected });
      }
      if (opts.limit !== undefined && records >= opts.limit) {
        stoppedByLimit = true;
        break;
      }
      if (interrupted) break;
    }
    await run.flush(batch);
    bar?.update(run.position.offset - from.offset, { line: run.position.line, accepted: run.counts.accepted, rejected: run.counts.rejected });
  } finally {
    bar?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    run.close();
  }
  run.printSummary(stoppedByLimit ? `stopped after ${opts.limit} records (--limit); run again to continue` : interrupted ? 'interrupted; run again to continue' : undefined);
  if (interrupted) process.exitCode = 130;
  else if (run.counts.rejected + run.counts.conflict > 0) process.exitCode = 1;
}

/** A record read but not yet written: an event, or the reason the line is not one. */
type Pending = { line: number; event: Record<string, unknown>; error?: undefined } | { line: number; event?: undefined; error: string };

function withDefaults(raw: Record<string, unknown>, line: number, base: string, source: string, type: string | undefined): Record<string, unknown> {
  const e = { ...raw };
  if (e.id === undefined || e.id === null) e.id = `${base}:${line}`;
  if (e.source === undefined || e.source === null) e.source = source;
  if (type !== undefined && (e.type === undefined || e.type === null)) e.type = type;
  return e;
}

/** The running totals, problems and checkpoint of one ingest. */
class IngestRun {
  readonly counts = { accepted: 0, duplicate: 0, conflict: 0, rejected: 0 };
  readonly shown: Problem[] = [];
  position: Position;
  private saved: number;
  private errorsFd: number | undefined;
  private checkpointFailed = false;

  constructor(
    private readonly s: Services,
    private readonly ctx: Ctx,
    private readonly opts: IngestOpts,
    private readonly file: string,
    private readonly target: string,
    from: Position,
  ) {
    this.position = from;
    this.saved = from.offset;
    if (opts.errors) this.errorsFd = openSync(opts.errors, 'w');
  }

  problem(p: Problem) {
    this.counts[p.status]++;
    if (this.shown.length < SHOWN_PROBLEMS) this.shown.push(p);
    if (this.errorsFd !== undefined) writeSync(this.errorsFd, `${JSON.stringify(p)}\n`);
  }

  /** Writes one batch (durably: ingest resolves after the commit), then moves the checkpoint. */
  async flush(batch: Pending[]) {
    const events = batch.filter((b) => b.event !== undefined);
    const receipts = events.length > 0 ? (await this.s.events.ingest(this.ctx, events.map((b) => b.event))).events : [];
    let k = 0;
    for (const b of batch) {
      if (b.error !== undefined) {
        this.problem({ line: b.line, status: 'rejected', error: b.error });
        continue;
      }
      const r = receipts[k++];
      if (r.status === 'accepted' || r.status === 'duplicate') this.counts[r.status]++;
      else if (r.status === 'conflict') this.problem({ line: b.line, status: 'conflict', error: 'an event with this source and id is already stored with different content' });
      else this.problem({ line: b.line, status: 'rejected', field: r.field || undefined, error: r.error ?? 'rejected' });
    }
    this.checkpoint();
  }

  private checkpoint() {
    if (!this.opts.checkpoint || this.checkpointFailed || this.position.offset === this.saved) return;
    try {
      saveCheckpoint(this.file, this.target, this.position);
      this.saved = this.position.offset;
    } catch (e) {
      this.checkpointFailed = true;
      note(`warning: cannot write ${checkpointPath(this.file)} (${(e as Error).message}); a re-run will re-read the file (nothing is counted twice)`);
    }
  }

  close() {
    if (this.errorsFd !== undefined) closeSync(this.errorsFd);
    this.errorsFd = undefined;
  }

  printSummary(stopped?: string) {
    const c = this.counts;
    const out = [`${this.file}: accepted ${c.accepted}, duplicate ${c.duplicate}, conflict ${c.conflict}, rejected ${c.rejected}`];
    if (stopped) out.push(stopped);
    if (this.shown.length > 0) {
      out.push(c.rejected > 0 && c.conflict > 0 ? 'rejected and conflicting lines:' : c.rejected > 0 ? 'rejected lines:' : 'conflicting lines:');
      for (const p of this.shown) out.push(`  line ${p.line}: ${p.status === 'conflict' ? 'conflict: ' : ''}${p.field ? `${p.field}: ` : ''}${p.error}`);
      const more = c.rejected + c.conflict - this.shown.length;
      if (more > 0) out.push(`  … and ${more} more${this.opts.errors ? ` (all in ${this.opts.errors})` : ' (use --errors FILE to list them all)'}`);
    }
    process.stdout.write(`${out.join('\n')}\n`);
  }
}

// Streams an NDJSON or CSV file as records with their line numbers and the byte offset where each
// ends, so ingestion can resume from an offset. Memory stays flat whatever the file's size.
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream';
import { parse, type CsvError, type Info } from 'csv-parse';
import { CliError } from './output.js';

export const INPUT_FORMATS = ['ndjson', 'csv'] as const;
export type InputFormat = (typeof INPUT_FORMATS)[number];

/** Where to start reading: a byte offset at a record boundary and the number of lines before it. */
export interface Position {
  offset: number;
  line: number;
}

export interface SourceItem {
  /** Line where the record ends (1-based); CSV records with quoted newlines span several lines. */
  line: number;
  /** Byte offset just past the record. */
  end: number;
  /** False for a last line with no newline yet (a file still being written): never checkpointed. */
  complete: boolean;
  event?: Record<string, unknown>;
  /** Why the record could not be read as an event. */
  error?: string;
}

export function detectFormat(path: string, given?: string): InputFormat {
  if (given !== undefined) {
    const f = given.toLowerCase() === 'jsonl' ? 'ndjson' : given.toLowerCase();
    if (!(INPUT_FORMATS as readonly string[]).includes(f)) throw new CliError(`--format must be ndjson or csv, got "${given}"`);
    return f as InputFormat;
  }
  if (/\.(ndjson|jsonl)$/i.test(path)) return 'ndjson';
  if (/\.csv$/i.test(path)) return 'csv';
  throw new CliError(`cannot tell the format of ${path} from its extension (.ndjson, .jsonl or .csv); give --format ndjson or --format csv`);
}

export function readRecords(path: string, format: InputFormat, from: Position): AsyncGenerator<SourceItem> {
  return format === 'csv' ? readCsv(path, from) : readNdjson(path, from);
}

/** Longest NDJSON line kept in memory; longer ones are reported and skipped. */
const MAX_LINE_BYTES = 16 * 1024 * 1024;

async function* readNdjson(path: string, from: Position): AsyncGenerator<SourceItem> {
  let parts: Buffer[] = [];
  let partsLength = 0;
  let tooLong = false;
  let line = from.line;
  let chunkStart = from.offset;
  const take = (tail: Buffer, end: number, complete: boolean): SourceItem | undefined => {
    line++;
    if (tooLong) {
      tooLong = false;
      return { line, end, complete, error: `line is longer than ${MAX_LINE_BYTES} bytes` };
    }
    const buf = parts.length === 0 ? tail : Buffer.concat([...parts, tail]);
    parts = [];
    partsLength = 0;
    let text = buf.toString('utf8');
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.trim() === '') return undefined;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      return { line, end, complete, error: `invalid JSON: ${(e as Error).message}` };
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      return { line, end, complete, error: `expected one CloudEvents JSON object per line, got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}` };
    }
    return { line, end, complete, event: value as Record<string, unknown> };
  };

  for await (const chunk of createReadStream(path, { start: from.offset, highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    let i = 0;
    for (;;) {
      const nl = chunk.indexOf(10, i);
      if (nl === -1) {
        if (!tooLong) {
          parts.push(chunk.subarray(i));
          partsLength += chunk.length - i;
          if (partsLength > MAX_LINE_BYTES) ((tooLong = true), (parts = []), (partsLength = 0));
        }
        break;
      }
      const item = take(tooLong ? Buffer.alloc(0) : chunk.subarray(i, nl), chunkStart + nl + 1, true);
      if (item) yield item;
      i = nl + 1;
    }
    chunkStart += chunk.length;
  }
  if (partsLength > 0 || tooLong) {
    const item = take(Buffer.alloc(0), chunkStart, false);
    if (item) yield item;
  }
}

/** CloudEvents attributes a CSV column may hold; any other column goes into data. */
const ATTRIBUTES = new Set(['id', 'source', 'specversion', 'type', 'subject', 'time', 'datacontenttype', 'dataschema']);

type Column = { attribute: string } | { data: string[] };

function columnsOf(header: string[]): Column[] {
  const seen = new Set<string>();
  const cols = header.map((raw): Column => {
    const name = raw.trim();
    if (name === '') throw new CliError('the CSV header has an empty column name');
    if (seen.has(name)) throw new CliError(`the CSV header names column "${name}" twice`);
    seen.add(name);
    if (ATTRIBUTES.has(name)) return { attribute: name };
    const path = (name.startsWith('data.') ? name.slice(5) : name).split('.');
    if (path.some((p) => p === '' || p === '__proto__')) throw new CliError(`CSV column "${name}" is not a usable data path`);
    return { data: path };
  });
  const paths = cols.flatMap((c) => ('data' in c ? [c.data.join('.')] : []));
  for (const p of paths) {
    const clash = paths.find((q) => q.startsWith(`${p}.`));
    if (clash) throw new CliError(`CSV columns "${p}" and "${clash}" cannot both be in data`);
  }
  return cols;
}

/** One CSV row as a CloudEvent. Values stay strings so amounts are exact; empty cells are left out. */
function csvEvent(cols: Column[], values: string[]): Record<string, unknown> {
  const event: Record<string, unknown> = {};
  let data: Record<string, unknown> | undefined;
  cols.forEach((c, i) => {
    const v = values[i];
    if (v === undefined || v === '') return;
    if ('attribute' in c) {
      event[c.attribute] = v;
      return;
    }
    data ??= {};
    let node = data;
    for (const key of c.data.slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
    node[c.data[c.data.length - 1]] = v;
  });
  if (data) event.data = data;
  return event;
}

type Parsed = { record: string[]; info: Info };

function csvParser(path: string, start: number, extra: { to?: number } = {}) {
  // Field counts are checked against the header here, not by the parser: a parser started
  // mid-file would take its first row, maybe a bad one, as the reference.
  const parser = parse({ info: true, bom: start === 0, skip_empty_lines: true, skip_records_with_error: true, relax_column_count: true, ...extra });
  return pipeline(createReadStream(path, { start, highWaterMark: 1 << 20 }), parser, () => {});
}

async function readHeader(path: string): Promise<{ header: string[]; end: number; lines: number }> {
  for await (const { record, info } of csvParser(path, 0, { to: 1 }) as AsyncIterable<Parsed>) {
    return { header: record, end: info.bytes, lines: info.lines };
  }
  throw new CliError(`${path} has no CSV header row`);
}

async function* readCsv(path: string, from: Position): AsyncGenerator<SourceItem> {
  const head = await readHeader(path);
  const cols = columnsOf(head.header);
  const start = from.offset === 0 ? { offset: head.end, line: head.lines } : from;
  const parser = csvParser(path, start.offset);
  // Bad rows arrive as 'skip' events while good ones queue up; hand both out in file order.
  const skipped: SourceItem[] = [];
  let lastEnd = start.offset;
  parser.on('skip', (err: CsvError & { lines?: number }) => {
    // complete: false, as its end offset is not known: the checkpoint waits for the next good row.
    skipped.push({ line: start.line + (err.lines ?? 0), end: lastEnd, complete: false, error: `invalid CSV row: ${err.message.replace(/ on line \d+$/, '')}` });
  });
  for await (const { record, info } of parser as AsyncIterable<Parsed>) {
    const line = start.line + info.lines;
    while (skipped.length > 0 && skipped[0].line < line) yield { ...skipped.shift()!, end: lastEnd };
    lastEnd = start.offset + info.bytes;
    if (record.length !== cols.length) yield { line, end: lastEnd, complete: true, error: `invalid CSV row: expected ${cols.length} fields as in the header, got ${record.length}` };
    else yield { line, end: lastEnd, complete: true, event: csvEvent(cols, record) };
  }
  for (const s of skipped) yield { ...s, end: lastEnd };
}

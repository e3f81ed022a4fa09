// How the meterd command prints: aligned tables, CSV, JSON, and one-line errors on stderr.
import { isAppError } from '../core/errors.js';

/** A mistake of the person at the keyboard: printed as one line, exit status 1, no stack. */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}

export type Cell = string | number | null | undefined;
export const FORMATS = ['table', 'csv', 'json'] as const;
export type Format = (typeof FORMATS)[number];

export function parseFormat(v: string): Format {
  if (!(FORMATS as readonly string[]).includes(v)) throw new CliError(`--format must be one of ${FORMATS.join(', ')}, got "${v}"`);
  return v as Format;
}

const text = (c: Cell) => (c === null || c === undefined ? '' : String(c));

/** Columns padded to their widest cell, two spaces apart. */
export function formatTable(headers: string[], rows: Cell[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(text))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd()).join('\n') + '\n';
}

function csvField(c: Cell): string {
  const s = text(c);
  return /[",\r\n]/.test(s) || /^\s|\s$/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function formatCsv(headers: string[], rows: Cell[][]): string {
  return [headers, ...rows].map((r) => r.map(csvField).join(',')).join('\n') + '\n';
}

/** Prints rows as a table or CSV, or `json` (the structured value) as JSON. */
export function printRows(format: Format, headers: string[], rows: Cell[][], json: unknown): void {
  if (format === 'json') process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  else if (format === 'csv') process.stdout.write(formatCsv(headers, rows));
  else process.stdout.write(rows.length === 0 ? '(none)\n' : formatTable(headers, rows));
}

export const note = (line: string) => process.stderr.write(`${line}\n`);

/** Turns any failure into the lines printed on stderr; the caller exits with status 1. */
export function describeError(e: unknown): string {
  if (isAppError(e)) {
    const fields = e.fields.map((f) => `\n  ${f.field}: ${f.message}`).join('');
    return `${e.message}${fields}`;
  }
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && 'path' in e) return `no such file: ${String((e as NodeJS.ErrnoException).path)}`;
    return e.message;
  }
  return String(e);
}

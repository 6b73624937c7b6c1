/**
 * CSV / TSV: streamed RFC 4180 reader (plus the 'auto' quote mode real TSV files need) and writer.
 *
 * Reading: the first record is the header (required). Every value is a string, except that an *unquoted*
 * empty field is null while a quoted empty field `""` is the empty string; that is how the writer keeps
 * null and '' apart. Use `types` to get numbers/bools/lists. Blank lines are skipped (except in a
 * one-column file, where a blank line is a null). A record with the wrong field count is an Error naming
 * its line.
 */
import { coerce, checkBatchRows, DEFAULT_BATCH_ROWS, floatListToJson, holdRows, newStats, readAllFrom, releaseRows, selectColumns } from './common.js';
import { invalidUtf8Error, readLines } from './lines.js';
import { openLineWriter } from './line-writer.js';
import type { ColumnInfo, ColumnType, OpenTableOptions, QuoteMode, ReadBatch, TableReader, TableWriter, WriteColumn } from './types.js';

type Field = string | null;

type ParseResult =
  | { kind: 'ok'; fields: Field[]; end: number; multiline: number[] }
  | { kind: 'incomplete'; quoteStart: number }
  | { kind: 'malformed'; quoteStart: number; pos: number };

/**
 * Parse one record from the start of `text` (one or more physical lines joined by '\n', without the final
 * newline). `literal` holds positions of quote characters that must be read as plain text ('auto' fallback).
 * `end` is where the record stopped: text.length, or a '\n' when a forced-literal field ended the record
 * early (the rest of the text belongs to the following records).
 */
export function parseRecord(text: string, delim: string, mode: QuoteMode, literal: ReadonlySet<number>): ParseResult {
  const fields: Field[] = [];
  const multiline: number[] = [];
  let i = 0;
  for (;;) {
    if (mode !== 'none' && text.charCodeAt(i) === 34 /* " */ && !literal.has(i)) {
      const quoteStart = i;
      let j = i + 1;
      let val = '';
      for (;;) {
        const k = text.indexOf('"', j);
        if (k < 0) return { kind: 'incomplete', quoteStart };
        if (text.charCodeAt(k + 1) === 34) {
          val += text.slice(j, k + 1);
          j = k + 2;
          continue;
        }
        val += text.slice(j, k);
        const after = k + 1;
        if (val.includes('\n')) multiline.push(quoteStart);
        if (after === text.length || (text[after] === '\r' && after + 1 === text.length)) {
          fields.push(val);
          return { kind: 'ok', fields, end: text.length, multiline };
        }
        if (text[after] === delim) {
          fields.push(val);
          i = after + 1;
          break;
        }
        return { kind: 'malformed', quoteStart, pos: after };
      }
      continue;
    }
    // Unquoted field: ends at the delimiter or at the end of its physical line.
    const d = text.indexOf(delim, i);
    const nl = text.indexOf('\n', i);
    let end = d < 0 ? text.length : d;
    let recordEnds = d < 0;
    if (nl >= 0 && nl < end) {
      end = nl;
      recordEnds = true;
    }
    let v = text.slice(i, end);
    if (recordEnds && v.endsWith('\r')) v = v.slice(0, -1);
    fields.push(v === '' ? null : v);
    if (recordEnds) return { kind: 'ok', fields, end, multiline };
    i = end + 1;
  }
}

/** Limits on how far a quoted field may run before 'auto' gives up on it / 'rfc4180' calls it an error. */
const AUTO_MAX_QUOTED_LINES = 10_000;
const MAX_RECORD_CHARS = 64 << 20;

interface RawRecord {
  lineNo: number;
  fields: Field[];
  invalidUtf8: boolean;
}

/**
 * Assemble physical lines into records. Push lines with push(); completed records land in `out`.
 * Keeps only the lines of the record in progress.
 */
class RecordAssembler {
  private pending: string[] = [];
  private pendingInvalid: boolean[] = [];
  private pendingLineNo = 0;
  expected = -1;
  out: RawRecord[] = [];

  constructor(
    private readonly path: string,
    private readonly delim: string,
    private readonly mode: QuoteMode,
  ) {}

  push(line: string, lineNo: number, invalid: boolean): void {
    if (this.pending.length === 0) this.pendingLineNo = lineNo;
    this.pending.push(line);
    this.pendingInvalid.push(invalid);
    this.drain(false);
  }

  finish(): void {
    while (this.pending.length) this.drain(true);
  }

  private lineOf(text: string, pos: number): number {
    let n = this.pendingLineNo;
    for (let p = text.indexOf('\n'); p >= 0 && p < pos; p = text.indexOf('\n', p + 1)) n++;
    return n;
  }

  private drain(atEof: boolean): void {
    while (this.pending.length) {
      // Blank line between records: skipped, unless a one-column file (then it is a null value).
      if (this.pending.length === 1 && (this.pending[0] === '' || this.pending[0] === '\r') && this.expected !== 1) {
        if (this.expected === -1) throw new Error(`${this.path}:${this.pendingLineNo}: header row is empty`);
        this.shift(1);
        continue;
      }
      const text = this.pending.length === 1 ? this.pending[0] : this.pending.join('\n');
      const literal = new Set<number>();
      let r: ParseResult;
      for (;;) {
        r = parseRecord(text, this.delim, this.mode, literal);
        if (r.kind === 'ok') {
          if (this.mode === 'auto' && this.expected >= 0 && r.fields.length !== this.expected && r.multiline.length) {
            literal.add(r.multiline[0]); // a multi-line "quoted" field that breaks the row: it was literal text
            continue;
          }
          break;
        }
        if (r.kind === 'malformed') {
          if (this.mode === 'auto') {
            literal.add(r.quoteStart);
            continue;
          }
          throw new Error(
            `${this.path}:${this.lineOf(text, r.pos)}: malformed quoted field (text after the closing quote); ` +
              `use quote: 'auto' or 'none' for files with unescaped quotes`,
          );
        }
        // incomplete: the quoted field continues on the next line, unless we are at EOF or past the limits
        const tooLong = text.length > MAX_RECORD_CHARS || (this.mode === 'auto' && this.pending.length > AUTO_MAX_QUOTED_LINES);
        if (!atEof && !tooLong) return;
        if (this.mode === 'auto') {
          literal.add(r.quoteStart);
          continue;
        }
        throw new Error(`${this.path}:${this.lineOf(text, r.quoteStart)}: unterminated quoted field`);
      }
      const lines = r.end >= text.length ? this.pending.length : countNewlines(text, r.end) + 1;
      const lineNo = this.pendingLineNo;
      let invalid = false;
      for (let k = 0; k < lines; k++) invalid ||= this.pendingInvalid[k];
      this.shift(lines);
      if (this.expected === -1) this.expected = r.fields.length;
      else if (r.fields.length !== this.expected) {
        throw new Error(`${this.path}:${lineNo}: expected ${this.expected} fields, found ${r.fields.length}`);
      }
      this.out.push({ lineNo, fields: r.fields, invalidUtf8: invalid });
    }
  }

  private shift(n: number): void {
    this.pending.splice(0, n);
    this.pendingInvalid.splice(0, n);
    this.pendingLineNo += n;
  }
}

function countNewlines(text: string, before: number): number {
  let n = 0;
  for (let p = text.indexOf('\n'); p >= 0 && p < before; p = text.indexOf('\n', p + 1)) n++;
  return n;
}

/** Records of the file, in chunks; the first record is the header. */
async function* records(path: string, delim: string, opts: OpenTableOptions, mode: QuoteMode): AsyncGenerator<RawRecord[]> {
  const asm = new RecordAssembler(path, delim, mode);
  let headerDone = false;
  for await (const chunk of readLines(path)) {
    let inv = 0;
    for (let i = 0; i < chunk.lines.length; i++) {
      const bad = chunk.invalid[inv] === i;
      if (bad) {
        inv++;
        if (opts.invalidUtf8 === 'error') throw invalidUtf8Error(path, chunk.firstLineNo + i);
      }
      asm.push(chunk.lines[i], chunk.firstLineNo + i, bad);
      if (!headerDone && asm.out.length) {
        // Hand out the header at once, so opening a file does not parse (or fail on) the rest of its first MiB.
        headerDone = true;
        yield asm.out;
        asm.out = [];
      }
    }
    if (asm.out.length) {
      yield asm.out;
      asm.out = [];
    }
  }
  asm.finish();
  if (asm.out.length) yield asm.out;
}

async function readHeader(path: string, delim: string, opts: OpenTableOptions, mode: QuoteMode): Promise<string[]> {
  const it = records(path, delim, opts, mode);
  try {
    const first = await it.next();
    if (first.done) throw new Error(`${path}: empty file: a header row is required`);
    const header = first.value[0].fields.map((f) => f ?? '');
    const seen = new Set<string>();
    for (const h of header) {
      if (seen.has(h)) throw new Error(`${path}: duplicate column name ${JSON.stringify(h)} in header`);
      seen.add(h);
    }
    return header;
  } finally {
    await it.return(undefined);
  }
}

export async function openDelimited(path: string, format: 'csv' | 'tsv', opts: OpenTableOptions): Promise<TableReader> {
  const delim = format === 'tsv' ? '\t' : ',';
  const mode: QuoteMode = opts.quote ?? (format === 'tsv' ? 'auto' : 'rfc4180');
  const header = await readHeader(path, delim, opts, mode);
  const types = opts.types ?? {};
  for (const name of Object.keys(types)) {
    if (!header.includes(name)) selectColumns(path, header.map((h) => ({ name: h, type: 'string' as const })), [name]);
  }
  const all: ColumnInfo[] = header.map((name) => ({ name, type: types[name] ?? 'string' }));
  const schema = selectColumns(path, all, opts.columns);
  const indices = schema.map((c) => header.indexOf(c.name));
  const stats = newStats();

  async function* batches(batchRows = DEFAULT_BATCH_ROWS): AsyncGenerator<ReadBatch> {
    checkBatchRows(batchRows);
    let cols: unknown[][] = schema.map(() => []);
    let n = 0;
    let isHeader = true;
    const emit = (): ReadBatch => {
      const columns: Record<string, unknown[]> = {};
      schema.forEach((c, k) => (columns[c.name] = cols[k]));
      const b = { numRows: n, columns };
      releaseRows(stats, n);
      stats.rowsRead += n;
      cols = schema.map(() => []);
      n = 0;
      return b;
    };
    try {
      for await (const recs of records(path, delim, opts, mode)) {
        for (const rec of recs) {
          if (isHeader) {
            isHeader = false;
            continue;
          }
          if (rec.invalidUtf8) stats.invalidUtf8++;
          for (let k = 0; k < indices.length; k++) {
            const raw = rec.fields[indices[k]];
            const t: ColumnType = schema[k].type;
            let v: unknown = raw;
            if (t !== 'string' && raw !== null) {
              try {
                v = coerce(raw, t);
              } catch (e) {
                throw new Error(`${path}:${rec.lineNo}: column "${schema[k].name}": ${(e as Error).message}`);
              }
            }
            cols[k].push(v);
          }
          n++;
          holdRows(stats, 1);
          if (n === batchRows) yield emit();
        }
      }
      if (n > 0) yield emit();
    } finally {
      releaseRows(stats, n);
    }
  }

  return {
    path,
    format,
    schema,
    numRows: undefined,
    stats,
    batches,
    readAll: () => readAllFrom(schema, batches(65536)),
    close: async () => {},
  };
}

// ---------------------------------------------------------------------------------------------- writer

/** Quote when needed; '' is always quoted so that it reads back as '' and not as null. */
function quoteField(s: string, delim: string): string {
  if (s === '' || s.includes('"') || s.includes(delim) || s.includes('\n') || s.includes('\r')) {
    return '"' + s.replace(/"/g, '""') + '"';
  }
  return s;
}

export function formatCell(v: unknown, col: WriteColumn, delim: string): string {
  if (v === null || v === undefined) return '';
  switch (col.type) {
    case 'string':
      return quoteField(v as string, delim);
    case 'list<float32>':
    case 'list<float64>':
      return quoteField(floatListToJson(v as ArrayLike<number>), delim);
    default:
      // numbers (NaN/Infinity spelled as JS does; coerce() reads them back), bigint, boolean
      return String(v);
  }
}

export function openDelimitedWriter(path: string, format: 'csv' | 'tsv', schema: WriteColumn[]): Promise<TableWriter> {
  const delim = format === 'tsv' ? '\t' : ',';
  const header = schema.map((c) => quoteField(c.name, delim)).join(delim);
  // A null in a one-column table is a blank line; the reader maps that back to null.
  return openLineWriter(path, schema, header, (cols, i) => schema.map((col, k) => formatCell(cols[k][i], col, delim)).join(delim));
}

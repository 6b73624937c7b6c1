/**
 * JSON Lines (.jsonl / .ndjson): one JSON object per line, streamed line by line.
 *
 * Column names and types are inferred from the first `inferRows` records (default 1000): names in first-seen
 * order; a column of integers is 'int', of numbers 'float', of numeric arrays 'list<float>', etc. A later
 * value that contradicts the inferred type is an Error naming the line (pass `types` to force a type, which
 * also converts strings such as "3.5"). Keys first seen after the inference window are ignored. A key
 * missing from a record is null. Blank lines, CRLF, a BOM and a last line without newline are fine.
 * Note JSON.parse reads integers beyond 2^53 imprecisely; such ids should be strings.
 */
import { checkBatchRows, coerce, DEFAULT_BATCH_ROWS, floatListToJson, holdRows, newStats, readAllFrom, releaseRows, selectColumns } from './common.js';
import { invalidUtf8Error, readLines } from './lines.js';
import { openLineWriter } from './line-writer.js';
import type { ColumnInfo, ColumnType, OpenTableOptions, ReadBatch, TableReader, TableWriter, WriteColumn } from './types.js';

interface JsonRecord {
  lineNo: number;
  obj: Record<string, unknown>;
  invalidUtf8: boolean;
}

async function* jsonRecords(path: string, opts: OpenTableOptions): AsyncGenerator<JsonRecord[]> {
  for await (const chunk of readLines(path)) {
    const out: JsonRecord[] = [];
    let inv = 0;
    for (let i = 0; i < chunk.lines.length; i++) {
      const bad = chunk.invalid[inv] === i;
      if (bad) {
        inv++;
        if (opts.invalidUtf8 === 'error') throw invalidUtf8Error(path, chunk.firstLineNo + i);
      }
      let line = chunk.lines[i];
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line.trim() === '') continue;
      const lineNo = chunk.firstLineNo + i;
      let obj: unknown;
      try {
        obj = JSON.parse(line);
      } catch (e) {
        throw new Error(`${path}:${lineNo}: invalid JSON: ${(e as Error).message}`);
      }
      if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
        throw new Error(`${path}:${lineNo}: expected a JSON object, got ${Array.isArray(obj) ? 'an array' : JSON.stringify(obj)}`);
      }
      out.push({ lineNo, obj: obj as Record<string, unknown>, invalidUtf8: bad });
    }
    if (out.length) yield out;
  }
}

type Kind = 'string' | 'int' | 'float' | 'bool' | 'list' | 'other';

function kindOf(v: unknown): Kind | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return 'list';
  return 'other';
}

function merge(a: ColumnType | undefined, k: Kind): ColumnType {
  const t: ColumnType = k === 'list' ? 'list<float>' : k;
  if (a === undefined || a === t) return t;
  if ((a === 'int' && t === 'float') || (a === 'float' && t === 'int')) return 'float';
  return 'other';
}

/** Does a JSON value fit an inferred type? (Explicit `types` go through coerce() instead.) */
function fits(v: unknown, t: ColumnType): boolean {
  switch (t) {
    case 'string':
      return typeof v === 'string';
    case 'int':
      return typeof v === 'number' && Number.isInteger(v);
    case 'float':
      return typeof v === 'number';
    case 'bool':
      return typeof v === 'boolean';
    case 'list<float>':
    case 'list<double>':
      return Array.isArray(v);
    case 'other':
      return true;
  }
}

export async function openJsonl(path: string, opts: OpenTableOptions): Promise<TableReader> {
  const inferRows = opts.inferRows ?? 1000;
  const inferred = new Map<string, ColumnType | undefined>();
  let seen = 0;
  const it = jsonRecords(path, opts);
  try {
    outer: for await (const recs of it) {
      for (const r of recs) {
        for (const [key, v] of Object.entries(r.obj)) {
          const k = kindOf(v);
          const prev = inferred.get(key);
          inferred.set(key, k === undefined ? prev : merge(prev, k));
        }
        if (++seen >= inferRows) break outer;
      }
    }
  } finally {
    await it.return(undefined);
  }
  const explicit = opts.types ?? {};
  const all: ColumnInfo[] = [...inferred].map(([name, t]) => ({ name, type: explicit[name] ?? t ?? 'other' }));
  for (const name of Object.keys(explicit)) if (!inferred.has(name)) selectColumns(path, all, [name]);
  const schema = selectColumns(path, all, opts.columns);
  const stats = newStats();

  async function* batches(batchRows = DEFAULT_BATCH_ROWS): AsyncGenerator<ReadBatch> {
    checkBatchRows(batchRows);
    let cols: unknown[][] = schema.map(() => []);
    let n = 0;
    const emit = (): ReadBatch => {
      const columns: Record<string, unknown[]> = {};
      schema.forEach((c, k) => (columns[c.name] = cols[k]));
      releaseRows(stats, n);
      stats.rowsRead += n;
      const b = { numRows: n, columns };
      cols = schema.map(() => []);
      n = 0;
      return b;
    };
    try {
      for await (const recs of jsonRecords(path, opts)) {
        for (const r of recs) {
          if (r.invalidUtf8) stats.invalidUtf8++;
          for (let k = 0; k < schema.length; k++) {
            const { name, type } = schema[k];
            let v = r.obj[name];
            if (v === undefined) v = null;
            if (v !== null && type !== 'other') {
              if (!(name in explicit) && !fits(v, type)) {
                throw new Error(
                  `${path}:${r.lineNo}: column "${name}" was inferred as ${type} from the first ${inferRows} records ` +
                    `but has ${JSON.stringify(v).slice(0, 60)}; pass types: { ${JSON.stringify(name)}: ... } or a larger inferRows`,
                );
              }
              if (type === 'list<float>' || type === 'list<double>' || name in explicit) {
                try {
                  v = coerce(v, type);
                } catch (e) {
                  throw new Error(`${path}:${r.lineNo}: column "${name}": ${(e as Error).message}`);
                }
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
    format: 'jsonl',
    schema,
    numRows: undefined,
    stats,
    batches,
    readAll: () => readAllFrom(schema, batches(65536)),
    close: async () => {},
  };
}

// ---------------------------------------------------------------------------------------------- writer

/** JSON text of one cell. NaN/±Infinity floats have no JSON spelling: scalars become null, list items see floatListToJson. */
function jsonCell(v: unknown, col: WriteColumn): string {
  if (v === null || v === undefined) return 'null';
  switch (col.type) {
    case 'string':
      return JSON.stringify(v);
    case 'list<float32>':
    case 'list<float64>':
      return floatListToJson(v as ArrayLike<number>);
    case 'int64':
      return String(v); // bigint or safe integer; JSON numbers have no size limit
    case 'float32':
    case 'float64':
      return Number.isFinite(v) ? String(v) : 'null';
    default:
      return String(v);
  }
}

export function openJsonlWriter(path: string, schema: WriteColumn[]): Promise<TableWriter> {
  const keys = schema.map((c) => JSON.stringify(c.name) + ':');
  return openLineWriter(path, schema, null, (cols, i) => '{' + schema.map((col, k) => keys[k] + jsonCell(cols[k][i], col)).join(',') + '}');
}

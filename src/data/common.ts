/** Small helpers shared by the format modules: column selection, stats, value checks. */
import type { ColumnInfo, ColumnType, ReadBatch, ReadStats, RecordBatchLike, WriteColumn } from './types.js';

export function newStats(): ReadStats {
  return { rowsRead: 0, invalidUtf8: 0, bufferedRows: 0, peakBufferedRows: 0 };
}

/** Track rows decoded inside a reader but not yet yielded (for the bounded-memory guarantee and its test). */
export function holdRows(stats: ReadStats, n: number): void {
  stats.bufferedRows += n;
  if (stats.bufferedRows > stats.peakBufferedRows) stats.peakBufferedRows = stats.bufferedRows;
}

export function releaseRows(stats: ReadStats, n: number): void {
  stats.bufferedRows -= n;
}

/** Resolve a column selection against what the file has; a missing column names itself and the choices. */
export function selectColumns(path: string, available: ColumnInfo[], wanted: string[] | undefined): ColumnInfo[] {
  if (!wanted) return available;
  const byName = new Map(available.map((c) => [c.name, c]));
  return wanted.map((name) => {
    const c = byName.get(name);
    if (!c) {
      throw new Error(
        `${path}: column "${name}" not found; columns are: ${available.map((a) => JSON.stringify(a.name)).join(', ') || '(none)'}`,
      );
    }
    return c;
  });
}

export function checkBatchRows(batchRows: number): void {
  if (!Number.isInteger(batchRows) || batchRows < 1) throw new Error(`batchRows must be a positive integer, got ${batchRows}`);
}

export const DEFAULT_BATCH_ROWS = 1024;

/** int64 -> number, refusing silent precision loss. */
export function bigintToNumber(v: bigint, where: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new Error(`${where}: int64 value ${v} is outside the safe integer range of a JS number`);
  }
  return Number(v);
}

/** Concatenate reader batches (readAll). */
export function concatBatches(schema: ColumnInfo[], batches: ReadBatch[]): ReadBatch {
  const columns: Record<string, unknown[]> = {};
  let numRows = 0;
  for (const c of schema) columns[c.name] = [];
  for (const b of batches) {
    numRows += b.numRows;
    for (const c of schema) {
      const dst = columns[c.name];
      const src = b.columns[c.name];
      for (let i = 0; i < src.length; i++) dst.push(src[i]);
    }
  }
  return { numRows, columns };
}

export async function readAllFrom(schema: ColumnInfo[], it: AsyncIterable<ReadBatch>): Promise<ReadBatch> {
  const parts: ReadBatch[] = [];
  for await (const b of it) parts.push(b);
  return concatBatches(schema, parts);
}

/**
 * Check a batch handed to a writer: every schema column present with numRows values, and each value of the
 * right JS type. Errors name the column and row so a bad batch is easy to find. Returns nothing: writers
 * read the values straight from the batch afterwards.
 */
export function validateBatch(schema: WriteColumn[], batch: RecordBatchLike): void {
  const n = batch.numRows;
  if (!Number.isInteger(n) || n < 0) throw new Error(`batch.numRows must be a non-negative integer, got ${n}`);
  for (const col of schema) {
    const values = batch.columns[col.name];
    if (values === undefined) {
      throw new Error(`batch is missing column "${col.name}"; batch has: ${Object.keys(batch.columns).join(', ')}`);
    }
    if (values.length !== n) {
      throw new Error(`column "${col.name}" has ${values.length} values but batch.numRows is ${n}`);
    }
    const nullable = col.nullable !== false;
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (v === null || v === undefined) {
        if (!nullable) throw new Error(`column "${col.name}" row ${i}: null in a non-nullable column`);
        continue;
      }
      const bad = typeMismatch(col, v);
      if (bad) throw new Error(`column "${col.name}" (${col.type}) row ${i}: ${bad}`);
    }
  }
}

function typeMismatch(col: WriteColumn, v: unknown): string | undefined {
  switch (col.type) {
    case 'string':
      return typeof v === 'string' ? undefined : `expected a string, got ${describe(v)}`;
    case 'int32':
      return typeof v === 'number' && Number.isInteger(v) && v >= -2147483648 && v <= 2147483647
        ? undefined
        : `expected an int32, got ${describe(v)}`;
    case 'int64':
      if (typeof v === 'bigint') return v >= -(2n ** 63n) && v < 2n ** 63n ? undefined : `int64 out of range: ${v}`;
      return typeof v === 'number' && Number.isSafeInteger(v) ? undefined : `expected a safe integer or bigint, got ${describe(v)}`;
    case 'float32':
    case 'float64':
      return typeof v === 'number' ? undefined : `expected a number, got ${describe(v)}`;
    case 'bool':
      return typeof v === 'boolean' ? undefined : `expected a boolean, got ${describe(v)}`;
    case 'list<float32>':
    case 'list<float64>':
      if (v instanceof Float32Array || v instanceof Float64Array) return undefined;
      if (Array.isArray(v)) {
        for (const x of v) if (typeof x !== 'number') return `list element ${describe(x)} is not a number`;
        return undefined;
      }
      return `expected a Float32Array/Float64Array/number[], got ${describe(v)}`;
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  const s = typeof v === 'string' ? JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v) : String(v);
  return `${typeof v} ${s}`;
}

/** Convert a text-format cell (CSV string or JSON value) to a requested read type. Throws a short reason. */
export function coerce(v: unknown, type: ColumnType): unknown {
  if (v === null || v === undefined) return null;
  switch (type) {
    case 'string':
      return typeof v === 'string' ? v : JSON.stringify(v);
    case 'int': {
      const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
      if (!Number.isInteger(n)) throw new Error(`cannot convert ${JSON.stringify(v)} to int`);
      if (!Number.isSafeInteger(n)) throw new Error(`${JSON.stringify(v)} is outside the safe integer range`);
      return n;
    }
    case 'float': {
      if (typeof v === 'number') return v;
      if (typeof v === 'string') {
        const t = v.trim();
        // Number('') is 0 and Number('0x10') is 16: accept only decimal floats plus the usual spellings.
        if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t)) return Number(t);
        if (/^[+-]?(inf|infinity)$/i.test(t)) return t.startsWith('-') ? -Infinity : Infinity;
        if (/^nan$/i.test(t)) return NaN;
      }
      throw new Error(`cannot convert ${JSON.stringify(v)} to float`);
    }
    case 'bool': {
      if (typeof v === 'boolean') return v;
      if (typeof v === 'string') {
        const t = v.trim().toLowerCase();
        if (t === 'true' || t === '1') return true;
        if (t === 'false' || t === '0') return false;
      }
      if (v === 1) return true;
      if (v === 0) return false;
      throw new Error(`cannot convert ${JSON.stringify(v)} to bool`);
    }
    case 'list<float>':
    case 'list<double>': {
      const arr = typeof v === 'string' ? JSON.parse(v) : v;
      if (!Array.isArray(arr)) throw new Error(`expected a JSON array of numbers, got ${JSON.stringify(v).slice(0, 40)}`);
      const out = type === 'list<float>' ? new Float32Array(arr.length) : new Float64Array(arr.length);
      for (let i = 0; i < arr.length; i++) {
        const x = arr[i];
        // JSON has no NaN/Infinity: writers emit null for NaN and strings for ±Infinity; undo that here.
        if (typeof x === 'number') out[i] = x;
        else if (x === null) out[i] = NaN;
        else if (x === 'Infinity' || x === '-Infinity' || x === 'NaN') out[i] = Number(x);
        else throw new Error(`list element ${JSON.stringify(x)} is not a number`);
      }
      return out;
    }
    case 'other':
      return v;
  }
}

/** JSON for a float list: NaN as null and ±Infinity as strings, since JSON has no spelling for them. */
export function floatListToJson(v: ArrayLike<number>): string {
  let s = '[';
  for (let i = 0; i < v.length; i++) {
    if (i) s += ',';
    const x = v[i];
    s += Number.isFinite(x) ? String(x) : Number.isNaN(x) ? 'null' : x > 0 ? '"Infinity"' : '"-Infinity"';
  }
  return s + ']';
}

/** A decoded chunk of a columnar file (a Parquet row group, an Arrow IPC batch): one array per selected column. */
export interface ColumnGroup {
  rows: number;
  cols: unknown[][];
}

/**
 * Re-cut groups of any size into batches of exactly batchRows rows (only the last may be smaller), so callers
 * get the batch size they asked for whatever row-group size the file's writer chose. Holds at most one
 * group plus one partial batch; stats.bufferedRows tracks exactly that.
 */
export async function* rebatch(
  schema: ColumnInfo[],
  groups: AsyncIterable<ColumnGroup>,
  batchRows: number,
  stats: ReadStats,
): AsyncGenerator<ReadBatch> {
  let carry: unknown[][] = schema.map(() => []);
  let carryRows = 0;
  let held = 0;
  const emit = (cols: unknown[][], n: number): ReadBatch => {
    const columns: Record<string, unknown[]> = {};
    schema.forEach((c, k) => (columns[c.name] = cols[k]));
    releaseRows(stats, n);
    held -= n;
    stats.rowsRead += n;
    return { numRows: n, columns };
  };
  try {
    for await (const g of groups) {
      holdRows(stats, g.rows);
      held += g.rows;
      let s = 0;
      if (carryRows > 0) {
        const take = Math.min(batchRows - carryRows, g.rows);
        carry = carry.map((c, k) => c.concat(g.cols[k].slice(0, take)));
        carryRows += take;
        s = take;
        if (carryRows === batchRows) {
          const full = carry;
          carry = schema.map(() => []);
          carryRows = 0;
          yield emit(full, batchRows);
        }
      }
      while (g.rows - s >= batchRows) {
        const whole = s === 0 && g.rows === batchRows;
        yield emit(whole ? g.cols : g.cols.map((c) => c.slice(s, s + batchRows)), batchRows);
        s += batchRows;
      }
      if (s < g.rows) {
        carry = g.cols.map((c) => c.slice(s));
        carryRows = g.rows - s;
      }
    }
    if (carryRows > 0) yield emit(carry, carryRows);
  } finally {
    releaseRows(stats, held);
  }
}

/**
 * The common tabular model shared by every reader and writer in src/data.
 *
 * Batch representation (both directions): a batch is column-major,
 *   { numRows, columns: { [name]: values } }
 * where `values` is an array-like of length numRows, one entry per row:
 *   'string'       -> JS string (UTF-8 decoded; see InvalidUtf8Policy)
 *   'int'          -> JS number (int64 converted when |v| <= 2^53 - 1, otherwise an Error)
 *   'float'        -> JS number
 *   'bool'         -> boolean
 *   'list<float>'  -> Float32Array (one per row; a float32 list, e.g. an embedding)
 *   'list<double>' -> Float64Array (one per row; a float64 list, e.g. class probabilities)
 *   'other'        -> whatever the format yields (JSON value, Arrow row value, ...)
 *   null           -> null in any column
 * Readers always return plain JS arrays for `values`. Writers accept any ArrayLike (a Float32Array for a
 * float32 column, Int32Array for int32, ...), and for list columns also number[] per row.
 */

export type TableFormat = 'parquet' | 'arrow' | 'jsonl' | 'csv' | 'tsv';

/** Read-side logical type: deliberately coarse; it says how values are represented in JS. */
export type ColumnType = 'string' | 'int' | 'float' | 'bool' | 'list<float>' | 'list<double>' | 'other';

export interface ColumnInfo {
  name: string;
  type: ColumnType;
}

export type ColumnValues = ArrayLike<unknown>;

export interface RecordBatchLike {
  numRows: number;
  columns: Record<string, ColumnValues>;
}

/** What a batch from a reader looks like: every column is a plain array. */
export interface ReadBatch extends RecordBatchLike {
  columns: Record<string, unknown[]>;
}

/**
 * Invalid UTF-8 in text: 'replace' (default) decodes with U+FFFD replacement characters and counts the
 * affected records in `stats.invalidUtf8`; 'error' throws naming the line (text formats) or column.
 */
export type InvalidUtf8Policy = 'replace' | 'error';

/**
 * CSV/TSV quote handling.
 * - 'rfc4180': a field starting with `"` is quoted; `""` is a literal quote; quoted fields may hold the
 *   delimiter and newlines; a closing quote followed by anything but a delimiter/line end is an Error.
 *   A `"` inside an unquoted field is kept literally.
 * - 'auto': as 'rfc4180', but a field that *looks* quoted and is not well formed (closing quote followed by
 *   text, never closed, or a multi-line quoted field that leaves the row with the wrong field count) is
 *   re-read as a literal, unquoted field. Needed for TSV files that mix pandas-quoted rows with raw text
 *   that merely starts with a quote (e.g. nsmc-raw-ratings: `"온국민이 감상하시라" 라는 ...`).
 * - 'none': quotes are ordinary characters; no field can contain the delimiter or a newline.
 * Defaults: 'rfc4180' for .csv, 'auto' for .tsv.
 */
export type QuoteMode = 'rfc4180' | 'auto' | 'none';

export interface OpenTableOptions {
  /** Only these columns, in this order. A missing one is an Error listing those that exist. */
  columns?: string[];
  /** Override extension-based format detection (e.g. 'tsv' for nsmc's ratings_train.txt). */
  format?: TableFormat;
  /**
   * CSV/TSV/JSONL: convert these columns to the given type (CSV values are otherwise all strings; JSONL
   * types are otherwise inferred). A value that does not convert is an Error naming the line.
   */
  types?: Record<string, ColumnType>;
  invalidUtf8?: InvalidUtf8Policy;
  /** CSV/TSV only. */
  quote?: QuoteMode;
  /** JSONL only: how many leading records to look at to infer column names and types (default 1000). */
  inferRows?: number;
}

export interface ReadStats {
  /** Rows yielded so far (across all batches() calls). */
  rowsRead: number;
  /**
   * Records in which invalid UTF-8 was replaced by U+FFFD (policy 'replace'): rows for CSV/TSV/JSONL/Arrow,
   * string cells for Parquet (hyparquet decodes cell by cell without row context).
   */
  invalidUtf8: number;
  /** Decoded rows currently held inside the reader, not yet handed out (instrumentation for memory bounds). */
  bufferedRows: number;
  /** Peak of bufferedRows. Bounded by about one batch (text formats) or one row group / IPC batch. */
  peakBufferedRows: number;
}

export interface TableReader {
  readonly path: string;
  readonly format: TableFormat;
  readonly schema: ColumnInfo[];
  /** Total rows when known without scanning (Parquet footer); otherwise undefined. */
  readonly numRows?: number;
  readonly stats: ReadStats;
  /** Stream the table in batches of at most batchRows rows (the last may be smaller). Each call restarts. */
  batches(batchRows?: number): AsyncIterable<ReadBatch>;
  /** Everything in one batch. Convenience for small files; memory grows with the file. */
  readAll(): Promise<ReadBatch>;
  close(): Promise<void>;
}

/** Write-side physical types. */
export type WriteColumnType =
  | 'string'
  | 'int32'
  | 'int64'
  | 'float32'
  | 'float64'
  | 'bool'
  | 'list<float32>'
  | 'list<float64>';

export interface WriteColumn {
  name: string;
  type: WriteColumnType;
  /** Default true. A null in a non-nullable column is an Error. */
  nullable?: boolean;
}

export interface OpenTableWriterOptions {
  format?: TableFormat;
  /** Parquet: rows per row group; write() buffers up to this many rows (default 8192). */
  rowGroupRows?: number;
  /** Parquet: 'snappy' (default) or 'none'. */
  compression?: 'snappy' | 'none';
  /** Arrow: 'file' (default for .arrow/.feather) or 'stream' (default for .arrows). */
  arrowFormat?: 'file' | 'stream';
}

export interface TableWriter {
  readonly path: string;
  readonly rowsWritten: number;
  /** Validate and write one batch. Nothing is visible at `path` until close(). */
  write(batch: RecordBatchLike): Promise<void>;
  /** Flush, finalize the format and atomically rename onto `path`. */
  close(): Promise<void>;
  /** Discard everything written; the target path is left as it was. */
  abort(): Promise<void>;
}

/** The read-side type that a written column comes back as. */
export function readTypeOf(t: WriteColumnType): ColumnType {
  switch (t) {
    case 'string':
      return 'string';
    case 'int32':
    case 'int64':
      return 'int';
    case 'float32':
    case 'float64':
      return 'float';
    case 'bool':
      return 'bool';
    case 'list<float32>':
      return 'list<float>';
    case 'list<float64>':
      return 'list<double>';
  }
}

/**
 * Entry points: pick the format module from the file extension (or `options.format`).
 * See ./types.ts for the batch representation shared by all formats.
 */
import { stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { openArrow, openArrowWriter } from './arrow-ipc.js';
import { openDelimited, openDelimitedWriter } from './csv.js';
import { openJsonl, openJsonlWriter } from './jsonl.js';
import { openParquet, openParquetWriter } from './parquet.js';
import type { OpenTableOptions, OpenTableWriterOptions, TableFormat, TableReader, TableWriter, WriteColumn } from './types.js';

export * from './types.js';

const EXTENSIONS: Record<string, TableFormat> = {
  '.parquet': 'parquet',
  '.pq': 'parquet',
  '.arrow': 'arrow',
  '.arrows': 'arrow',
  '.feather': 'arrow',
  '.ipc': 'arrow',
  '.jsonl': 'jsonl',
  '.ndjson': 'jsonl',
  '.csv': 'csv',
  '.tsv': 'tsv',
};

export const SUPPORTED_EXTENSIONS: readonly string[] = Object.keys(EXTENSIONS);

export function formatFromPath(path: string): TableFormat {
  const ext = extname(path).toLowerCase();
  const f = EXTENSIONS[ext];
  if (!f) {
    throw new Error(
      `${path}: unsupported file extension ${ext ? JSON.stringify(ext) : '(none)'}; supported: ${SUPPORTED_EXTENSIONS.join(', ')} ` +
        `(or pass format: 'parquet' | 'arrow' | 'jsonl' | 'csv' | 'tsv')`,
    );
  }
  return f;
}

export async function openTable(path: string, options: OpenTableOptions = {}): Promise<TableReader> {
  const format = options.format ?? formatFromPath(path);
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${path}: no such file` : `${path}: ${(e as Error).message}`);
  }
  if (size === 0) throw new Error(`${path}: empty file (0 bytes)`);
  switch (format) {
    case 'parquet':
      return openParquet(path, options);
    case 'arrow':
      return openArrow(path, options);
    case 'jsonl':
      return openJsonl(path, options);
    case 'csv':
    case 'tsv':
      return openDelimited(path, format, options);
  }
}

export async function openTableWriter(path: string, schema: WriteColumn[], options: OpenTableWriterOptions = {}): Promise<TableWriter> {
  const format = options.format ?? formatFromPath(path);
  const names = new Set<string>();
  for (const c of schema) {
    if (names.has(c.name)) throw new Error(`${path}: duplicate column name ${JSON.stringify(c.name)}`);
    names.add(c.name);
  }
  switch (format) {
    case 'parquet':
      return openParquetWriter(path, schema, options);
    case 'arrow':
      return openArrowWriter(path, schema, options.arrowFormat ?? (extname(path).toLowerCase() === '.arrows' ? 'stream' : 'file'));
    case 'jsonl':
      return openJsonlWriter(path, schema);
    case 'csv':
    case 'tsv':
      return openDelimitedWriter(path, format, schema);
  }
}

/**
 * Reading one work unit: a (file, row range) in fixed-size chunks, starting at a row offset.
 *
 * Chunks are cut at fixed offsets from the unit's start (0, chunkRows, 2*chunkRows, ...), whichever rank
 * reads the unit and wherever a resumed run starts (resume offsets are always chunk boundaries). The
 * encoder batches inside a chunk, so identical chunks give bit-identical scores.
 *
 * Parquet is read row group by row group (only the unit's groups; memory is one group of the selected
 * columns). Other formats are units of a whole file, streamed by the existing readers; a resume skips
 * whole chunks without tokenizing them.
 */
import { open } from 'node:fs/promises';
import { parquetMetadataAsync, parquetScan, type FileMetaData } from 'hyparquet';
import { bigintToNumber, newStats, rebatch, type ColumnGroup } from '../data/common.js';
import { fileBuffer } from '../data/parquet.js';
import { openTable } from '../data/table.js';
import type { ColumnInfo, ReadBatch } from '../data/types.js';

/** The footer of a Parquet file (row groups, schema), read through a file handle. */
export async function readParquetFooter(path: string): Promise<FileMetaData> {
  const fh = await open(path, 'r');
  try {
    return await parquetMetadataAsync(fileBuffer(fh, (await fh.stat()).size));
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  } finally {
    await fh.close();
  }
}

/** A unit to read: rows [rowStart, rowEnd) of the file; rowEnd null = to its end (non-Parquet). */
export interface UnitRange {
  path: string;
  format: string;
  rowStart: number;
  rowEnd: number | null;
}

export interface UnitChunk {
  /** Row offset of the chunk's first row within the unit. */
  offset: number;
  batch: ReadBatch;
}

/**
 * Chunks of a unit from `fromRow` (a multiple of chunkRows, or the unit's end). The plan checked that
 * every file has `columns`.
 */
export async function* unitChunks(unit: UnitRange, columns: ColumnInfo[], fromRow: number, chunkRows: number): AsyncGenerator<UnitChunk> {
  if (fromRow % chunkRows !== 0 && unit.rowEnd !== null && unit.rowStart + fromRow < unit.rowEnd) {
    throw new Error(`internal: resume offset ${fromRow} is not a chunk boundary (${chunkRows} rows)`);
  }
  const batches = unit.format === 'parquet' ? parquetBatches(unit, columns, fromRow, chunkRows) : streamedBatches(unit, columns, fromRow, chunkRows);
  let offset = fromRow;
  for await (const batch of batches) {
    yield { offset, batch };
    offset += batch.numRows;
  }
}

async function* streamedBatches(unit: UnitRange, columns: ColumnInfo[], fromRow: number, chunkRows: number): AsyncGenerator<ReadBatch> {
  const reader = await openTable(unit.path, { columns: columns.map((c) => c.name) });
  try {
    let skipped = 0;
    for await (const b of reader.batches(chunkRows)) {
      if (skipped < fromRow) {
        skipped += b.numRows;
        continue;
      }
      yield b;
    }
  } finally {
    await reader.close();
  }
}

async function* parquetBatches(unit: UnitRange, columns: ColumnInfo[], fromRow: number, chunkRows: number): AsyncGenerator<ReadBatch> {
  const from = unit.rowStart + fromRow;
  const to = unit.rowEnd!;
  if (from >= to) return;
  const fh = await open(unit.path, 'r');
  try {
    const file = fileBuffer(fh, (await fh.stat()).size);
    const metadata = await parquetMetadataAsync(file);
    // Invalid UTF-8 becomes U+FFFD, the table readers' default policy.
    const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    const stringFromBytes = (bytes: Uint8Array | undefined): string | undefined => (bytes ? decoder.decode(bytes) : undefined);
    const scan = await parquetScan({ file, metadata, columns: columns.map((c) => c.name), parsers: { stringFromBytes }, useOffsetIndex: false });
    async function* groups(): AsyncGenerator<ColumnGroup> {
      for (const range of scan.ranges) {
        const s = Math.max(range.rowStart, from);
        const e = Math.min(range.rowEnd, to);
        if (s >= e) continue;
        const cols: unknown[][] = [];
        for (const c of columns) cols.push(toRows(unit.path, c, await scan.readColumn({ column: c.name, rowStart: s, rowEnd: e })));
        yield { rows: e - s, cols };
      }
    }
    yield* rebatch(columns, groups(), chunkRows, newStats());
  } finally {
    await fh.close();
  }
}

/** hyparquet values -> the table readers' JS representation (see src/data/types.ts). */
function toRows(path: string, c: ColumnInfo, data: ArrayLike<unknown>): unknown[] {
  const out = new Array(data.length);
  const where = `${path}: column "${c.name}"`;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v === null || v === undefined) out[i] = null;
    else if (typeof v === 'bigint') out[i] = c.type === 'int' ? bigintToNumber(v, where) : v;
    else if (c.type === 'list<float>') out[i] = Float32Array.from(v as ArrayLike<number>);
    else if (c.type === 'list<double>') out[i] = Float64Array.from(v as ArrayLike<number>);
    else out[i] = v;
  }
  return out;
}

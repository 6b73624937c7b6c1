/**
 * Parquet via hyparquet (read) and hyparquet-writer (write), both pure JS.
 *
 * Reading goes one row group at a time through an AsyncBuffer over an open file handle, so only the footer
 * and the selected columns' chunks of the current row group are ever read or decoded: memory is about one
 * row group of the selected columns, whatever the file size. (A file written by another tool with one huge
 * row group is read as that one group; row groups are the unit Parquet compresses in.)
 *
 * Writing uses hyparquet-writer's ParquetWriter incrementally: rows are buffered to `rowGroupRows`, encoded
 * as one row group, and the encoded bytes are flushed to the temp file in ~1 MiB pieces while encoding;
 * the footer is written on close().
 */
import { isUtf8 } from 'node:buffer';
import { writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { parquetMetadataAsync, parquetSchema, parquetScan, type AsyncBuffer, type FileMetaData, type SchemaElement, type SchemaTree } from 'hyparquet';
import { ByteWriter, ParquetWriter } from 'hyparquet-writer';
import { bigintToNumber, checkBatchRows, DEFAULT_BATCH_ROWS, newStats, readAllFrom, rebatch, selectColumns, validateBatch, type ColumnGroup } from './common.js';
import type { ColumnInfo, ColumnType, OpenTableOptions, ReadBatch, RecordBatchLike, TableReader, TableWriter, WriteColumn } from './types.js';
import { createAtomicFile } from '../util/atomic-write.js';

/** hyparquet's AsyncBuffer over an open file: reads exactly the byte ranges asked for. */
export function fileBuffer(fh: FileHandle, size: number): AsyncBuffer {
  return {
    byteLength: size,
    async slice(start: number, end?: number): Promise<ArrayBuffer> {
      const stop = end ?? size;
      const buf = new Uint8Array(stop - start);
      let off = 0;
      while (off < buf.length) {
        const { bytesRead } = await fh.read(buf, off, buf.length - off, start + off);
        if (bytesRead === 0) throw new Error(`unexpected end of file reading bytes ${start}..${stop}`);
        off += bytesRead;
      }
      return buf.buffer;
    },
  };
}

async function withFile<T>(path: string, f: (file: AsyncBuffer) => Promise<T>): Promise<T> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    if (size === 0) throw new Error('empty file (0 bytes) is not a Parquet file');
    return await f(fileBuffer(fh, size));
  } catch (e) {
    throw e instanceof Error && !e.message.startsWith(path) ? new Error(`${path}: ${e.message}`) : e;
  } finally {
    await fh.close();
  }
}

function isStringLeaf(e: SchemaElement): boolean {
  return e.type === 'BYTE_ARRAY' && (e.converted_type === 'UTF8' || e.logical_type?.type === 'STRING' || (!e.converted_type && !e.logical_type));
}

/** Map a top-level Parquet column to our coarse type. */
export function columnTypeOf(node: SchemaTree): ColumnType {
  const e = node.element;
  if (!node.children.length) {
    if (e.converted_type && !['UTF8', 'INT_8', 'INT_16', 'INT_32', 'INT_64', 'UINT_8', 'UINT_16', 'UINT_32'].includes(e.converted_type)) return 'other';
    if (e.logical_type && !['STRING', 'INTEGER'].includes(e.logical_type.type)) return 'other';
    switch (e.type) {
      case 'BYTE_ARRAY':
        return isStringLeaf(e) ? 'string' : 'other';
      case 'INT32':
      case 'INT64':
        return 'int';
      case 'FLOAT':
      case 'DOUBLE':
        return 'float';
      case 'BOOLEAN':
        return 'bool';
      default:
        return 'other';
    }
  }
  // 3-level LIST (or legacy 2-level) whose leaf is FLOAT/DOUBLE.
  if (e.converted_type === 'LIST' || e.logical_type?.type === 'LIST') {
    let leaf = node.children[0];
    while (leaf && leaf.children.length === 1) leaf = leaf.children[0];
    if (leaf && !leaf.children.length && leaf.element.type === 'FLOAT') return 'list<float>';
    if (leaf && !leaf.children.length && leaf.element.type === 'DOUBLE') return 'list<double>';
  }
  return 'other';
}

export async function openParquet(path: string, opts: OpenTableOptions): Promise<TableReader> {
  // The footer is read once here; each batches() pass opens its own handle and closes it when done (or
  // abandoned), so a reader never leaks a file descriptor even if close() is forgotten.
  const metadata = await withFile(path, async (file) => parquetMetadataAsync(file));
  const tree = parquetSchema(metadata);
  const all: ColumnInfo[] = tree.children.map((c) => ({ name: c.element.name, type: columnTypeOf(c) }));
  const schema = selectColumns(path, all, opts.columns);
  const stats = newStats();
  const policy = opts.invalidUtf8 ?? 'replace';
  // ignoreBOM: keep a leading U+FEFF that is part of the value (the default would silently drop it).
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  // hyparquet decodes strings cell by cell through this hook, so that is where invalid UTF-8 is caught.
  const stringFromBytes = (bytes: Uint8Array | undefined): string | undefined => {
    if (!bytes) return undefined;
    if (!isUtf8(bytes)) {
      if (policy === 'error') throw new Error(`${path}: invalid UTF-8 in a string column`);
      stats.invalidUtf8++;
    }
    return decoder.decode(bytes);
  };

  function toRows(c: ColumnInfo, data: ArrayLike<unknown>): unknown[] {
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

  async function* groups(): AsyncGenerator<ColumnGroup> {
    const fh = await open(path, 'r');
    try {
      const file = fileBuffer(fh, (await fh.stat()).size);
      // One scan per pass; its per-column cache holds only the most recent row group.
      const scan = await parquetScan({ file, metadata, columns: schema.map((c) => c.name), parsers: { stringFromBytes }, useOffsetIndex: false });
      for (const range of scan.ranges) {
        const cols: unknown[][] = [];
        for (const c of schema) {
          const data = await scan.readColumn({ column: c.name, rowStart: range.rowStart, rowEnd: range.rowEnd });
          cols.push(toRows(c, data));
        }
        yield { rows: range.rowEnd - range.rowStart, cols };
      }
    } finally {
      await fh.close();
    }
  }

  function batches(batchRows = DEFAULT_BATCH_ROWS): AsyncGenerator<ReadBatch> {
    checkBatchRows(batchRows);
    return rebatch(schema, groups(), batchRows, stats);
  }

  return {
    path,
    format: 'parquet',
    schema,
    numRows: Number(metadata.num_rows),
    stats,
    batches,
    readAll: () => readAllFrom(schema, batches(65536)),
    close: async () => {},
  };
}

// ---------------------------------------------------------------------------------------------- writer

function schemaElements(schema: WriteColumn[]): SchemaElement[] {
  const out: SchemaElement[] = [{ name: 'root', num_children: schema.length }];
  for (const c of schema) {
    const repetition_type = c.nullable === false ? 'REQUIRED' : 'OPTIONAL';
    switch (c.type) {
      case 'string':
        out.push({ name: c.name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type });
        break;
      case 'int32':
        out.push({ name: c.name, type: 'INT32', repetition_type });
        break;
      case 'int64':
        out.push({ name: c.name, type: 'INT64', repetition_type });
        break;
      case 'float32':
        out.push({ name: c.name, type: 'FLOAT', repetition_type });
        break;
      case 'float64':
        out.push({ name: c.name, type: 'DOUBLE', repetition_type });
        break;
      case 'bool':
        out.push({ name: c.name, type: 'BOOLEAN', repetition_type });
        break;
      case 'list<float32>':
      case 'list<float64>':
        // The standard 3-level LIST layout (what Arrow/pyarrow/Spark write and read).
        out.push(
          { name: c.name, repetition_type, converted_type: 'LIST', num_children: 1 },
          { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
          { name: 'element', type: c.type === 'list<float32>' ? 'FLOAT' : 'DOUBLE', repetition_type: 'REQUIRED' },
        );
        break;
    }
  }
  return out;
}

/** A hyparquet-writer Writer that streams to a file descriptor instead of growing one big buffer. */
function fdWriter(fd: number): ByteWriter {
  const w = new ByteWriter(1 << 20);
  const CHUNK = 1 << 20;
  const flush = () => {
    let off = 0;
    const bytes = new Uint8Array(w.buffer, 0, w.index);
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    w.index = 0;
  };
  const grow = ByteWriter.prototype.ensure;
  // ensure() is called before every append: flushing here keeps the buffer near 1 MiB (synchronous writes:
  // ParquetWriter's encoders are synchronous, and a 1 MiB write is cheap next to encoding it).
  w.ensure = function (size: number) {
    if (w.index > CHUNK) flush();
    grow.call(w, size);
  };
  w.finish = flush;
  return w;
}

/** Column values in the form hyparquet-writer's encoder wants. */
function columnData(c: WriteColumn, values: ArrayLike<unknown>, n: number): unknown[] {
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === null || v === undefined) out[i] = null;
    else if (c.type === 'int64') out[i] = typeof v === 'bigint' ? v : BigInt(v as number);
    // The Dremel encoder requires real Arrays for repeated fields.
    else if (c.type === 'list<float32>' || c.type === 'list<float64>') out[i] = Array.isArray(v) ? v : Array.from(v as ArrayLike<number>);
    else out[i] = v;
  }
  return out;
}

export async function openParquetWriter(
  path: string,
  schema: WriteColumn[],
  options: { rowGroupRows?: number; compression?: 'snappy' | 'none' },
): Promise<TableWriter> {
  const rowGroupRows = options.rowGroupRows ?? 8192;
  checkBatchRows(rowGroupRows);
  const file = await createAtomicFile(path);
  const writer = fdWriter(file.handle.fd);
  let pq: ParquetWriter;
  try {
    pq = new ParquetWriter({
      writer,
      schema: schemaElements(schema),
      codec: options.compression === 'none' ? 'UNCOMPRESSED' : 'SNAPPY',
      createdBy: 'edu-train (hyparquet-writer)',
    });
  } catch (e) {
    await file.abort();
    throw e;
  }
  let pending: RecordBatchLike[] = [];
  let pendingRows = 0;
  let rowsWritten = 0;
  let closed = false;

  const flushGroup = async () => {
    if (pendingRows === 0) return;
    const cols = schema.map((c) => {
      // Concatenate pending batches for this column (often just one).
      const parts = pending.map((b) => columnData(c, b.columns[c.name], b.numRows));
      return parts.length === 1 ? parts[0] : ([] as unknown[]).concat(...parts);
    });
    const n = pendingRows;
    pending = [];
    pendingRows = 0;
    await pq.write({
      columnData: schema.map((c, k) => ({
        name: c.name,
        data: cols[k] as never,
        // Embeddings/probabilities: dictionary encoding never pays off on float vectors and min/max
        // statistics are useless for them; skipping both is a large part of the write time.
        ...(c.type === 'list<float32>' || c.type === 'list<float64>' ? { encoding: 'PLAIN' as const, statistics: false } : {}),
      })),
      rowGroupSize: n,
    });
    rowsWritten += n;
  };

  const fail = async (e: unknown): Promise<never> => {
    closed = true;
    await file.abort();
    throw e;
  };

  return {
    path,
    get rowsWritten() {
      return rowsWritten;
    },
    async write(batch: RecordBatchLike) {
      if (closed) throw new Error(`${path}: writer is closed`);
      try {
        validateBatch(schema, batch);
        // Split big batches so each row group holds exactly rowGroupRows (except the last).
        let start = 0;
        while (start < batch.numRows) {
          const take = Math.min(rowGroupRows - pendingRows, batch.numRows - start);
          pending.push(take === batch.numRows ? batch : sliceBatch(schema, batch, start, start + take));
          pendingRows += take;
          start += take;
          if (pendingRows === rowGroupRows) await flushGroup();
        }
      } catch (e) {
        await fail(e);
      }
    },
    async close() {
      if (closed) throw new Error(`${path}: writer is closed`);
      try {
        await flushGroup();
        await pq.finish();
        closed = true;
        await file.commit();
      } catch (e) {
        await fail(e);
      }
    },
    async abort() {
      closed = true;
      pending = [];
      await file.abort();
    },
  };
}

function sliceBatch(schema: WriteColumn[], b: RecordBatchLike, s: number, e: number): RecordBatchLike {
  const columns: Record<string, ArrayLike<unknown>> = {};
  for (const c of schema) {
    const v = b.columns[c.name] as ArrayLike<unknown> & { slice?: (s: number, e: number) => ArrayLike<unknown> };
    columns[c.name] = typeof v.slice === 'function' ? v.slice(s, e) : Array.prototype.slice.call(v, s, e);
  }
  return { numRows: e - s, columns };
}

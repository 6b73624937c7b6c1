/**
 * Arrow IPC via apache-arrow: both the file format ("ARROW1" magic + footer; .arrow, .feather v2, .ipc) and
 * the stream format (.arrows), detected from the bytes when reading.
 *
 * Reading streams IPC record batches from a file handle: memory is about one IPC batch (the writer of the
 * file chose its size) plus one output batch. Writing serialises one RecordBatch per write() call and
 * drains the serialised bytes to the temp file before returning, so memory is about one batch.
 */
import { isUtf8 } from 'node:buffer';
import { open, type FileHandle } from 'node:fs/promises';
import {
  Bool,
  Field,
  Float32,
  Float64,
  Int32,
  Int64,
  List,
  makeData,
  RecordBatch,
  RecordBatchFileWriter,
  RecordBatchReader,
  RecordBatchStreamWriter,
  type RecordBatchWriter,
  Schema,
  Struct,
  Utf8,
  vectorFromArray,
  type Data,
  type DataType,
  type Vector,
} from 'apache-arrow';
import { bigintToNumber, checkBatchRows, DEFAULT_BATCH_ROWS, newStats, readAllFrom, rebatch, selectColumns, validateBatch, type ColumnGroup } from './common.js';
import type { ColumnInfo, ColumnType, OpenTableOptions, ReadBatch, RecordBatchLike, TableReader, TableWriter, WriteColumn } from './types.js';
import { createAtomicFile } from '../util/atomic-write.js';

export function arrowColumnType(t: DataType): ColumnType {
  const id = t.typeId as number;
  // Type ids from the Arrow spec (apache-arrow's Type enum): 5 Utf8, 20 LargeUtf8, 2 Int, 3 Float, 6 Bool,
  // 12 List, 16 FixedSizeList.
  if (id === 5 || id === 20) return 'string';
  if (id === 2) return 'int';
  if (id === 3) return 'float';
  if (id === 6) return 'bool';
  if (id === 12 || id === 16) {
    const child = t.children?.[0]?.type as DataType | undefined;
    if (child && (child.typeId as number) === 3) {
      const precision = (child as unknown as { precision: number }).precision;
      if (precision === 1) return 'list<float>';
      if (precision === 2) return 'list<double>';
    }
  }
  return 'other';
}

async function openReader(path: string) {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    if (size === 0) throw new Error(`${path}: empty file (0 bytes) is not an Arrow IPC file`);
    const reader = await RecordBatchReader.from(fh);
    await reader.open();
    if (!reader.schema) throw new Error(`${path}: no Arrow schema found (not an Arrow IPC file or stream?)`);
    return { reader, fh };
  } catch (e) {
    await fh.close().catch(() => {});
    throw e instanceof Error && !e.message.startsWith(path) ? new Error(`${path}: ${e.message}`) : e;
  }
}

/**
 * Decode a Utf8/LargeUtf8 column straight from its buffers. apache-arrow's own decoding uses a TextDecoder
 * that drops a leading U+FEFF from every value and cannot report invalid bytes; Buffer.toString keeps the
 * value intact, and isUtf8 on the raw bytes lets us count (or refuse) rows with invalid UTF-8.
 */
function decodeStrings(vec: Vector, out: unknown[], bad: Set<number>): void {
  let base = 0;
  for (const d of vec.data as Data[]) {
    const offsets = d.valueOffsets as Int32Array | BigInt64Array;
    const values = d.values as Uint8Array;
    const buf = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
    const allValid = isUtf8(buf.subarray(Number(offsets[0]), Number(offsets[d.length])));
    for (let i = 0; i < d.length; i++) {
      if (!d.getValid(i)) {
        out[base + i] = null;
        continue;
      }
      const s = Number(offsets[i]);
      const e = Number(offsets[i + 1]);
      if (!allValid && !isUtf8(buf.subarray(s, e))) bad.add(base + i);
      out[base + i] = buf.toString('utf8', s, e);
    }
    base += d.length;
  }
}

export async function openArrow(path: string, opts: OpenTableOptions): Promise<TableReader> {
  const { reader, fh } = await openReader(path);
  const arrowSchema = reader.schema;
  await reader.cancel().catch(() => {});
  await fh.close().catch(() => {});
  const all: ColumnInfo[] = arrowSchema.fields.map((f) => ({ name: f.name, type: arrowColumnType(f.type) }));
  const schema = selectColumns(path, all, opts.columns);
  const fieldIndex = schema.map((c) => arrowSchema.fields.findIndex((f) => f.name === c.name));
  const policy = opts.invalidUtf8 ?? 'replace';
  const stats = newStats();

  function convert(rb: RecordBatch): unknown[][] {
    const bad = new Set<number>();
    const cols = schema.map((c, k) => {
      const vec = rb.getChildAt(fieldIndex[k])!;
      const out = new Array(rb.numRows);
      if (c.type === 'string') {
        decodeStrings(vec, out, bad);
        return out;
      }
      const where = `${path}: column "${c.name}"`;
      for (let i = 0; i < rb.numRows; i++) {
        const v = vec.get(i);
        if (v === null || v === undefined) out[i] = null;
        else if (typeof v === 'bigint') out[i] = c.type === 'int' ? bigintToNumber(v, where) : v;
        // List rows come back as views on the IPC buffer; copy so callers own (and may mutate) them.
        else if (c.type === 'list<float>') out[i] = Float32Array.from((v as Vector).toArray() as Float32Array);
        else if (c.type === 'list<double>') out[i] = Float64Array.from((v as Vector).toArray() as Float64Array);
        else out[i] = v;
      }
      return out;
    });
    if (bad.size) {
      if (policy === 'error') throw new Error(`${path}: invalid UTF-8 in a string column`);
      stats.invalidUtf8 += bad.size;
    }
    return cols;
  }

  async function* groups(): AsyncGenerator<ColumnGroup> {
    const { reader: r, fh: h } = await openReader(path);
    try {
      for await (const rb of r) yield { rows: rb.numRows, cols: convert(rb as RecordBatch) };
    } finally {
      await r.cancel().catch(() => {});
      await h.close().catch(() => {});
    }
  }

  function batches(batchRows = DEFAULT_BATCH_ROWS): AsyncGenerator<ReadBatch> {
    checkBatchRows(batchRows);
    return rebatch(schema, groups(), batchRows, stats);
  }

  return {
    path,
    format: 'arrow',
    schema,
    numRows: undefined,
    stats,
    batches,
    readAll: () => readAllFrom(schema, batches(65536)),
    close: async () => {},
  };
}

// ---------------------------------------------------------------------------------------------- writer

function arrowType(t: WriteColumn['type']): DataType {
  switch (t) {
    case 'string':
      return new Utf8();
    case 'int32':
      return new Int32();
    case 'int64':
      return new Int64();
    case 'float32':
      return new Float32();
    case 'float64':
      return new Float64();
    case 'bool':
      return new Bool();
    case 'list<float32>':
      return new List(new Field('item', new Float32(), false));
    case 'list<float64>':
      return new List(new Field('item', new Float64(), false));
  }
}

function validityBitmap(values: ArrayLike<unknown>, n: number): { nullCount: number; nullBitmap?: Uint8Array } {
  let nullCount = 0;
  for (let i = 0; i < n; i++) if (values[i] === null || values[i] === undefined) nullCount++;
  if (nullCount === 0) return { nullCount };
  const nullBitmap = new Uint8Array((n + 7) >> 3);
  for (let i = 0; i < n; i++) if (values[i] !== null && values[i] !== undefined) nullBitmap[i >> 3] |= 1 << (i & 7);
  return { nullCount, nullBitmap };
}

/** One column as Arrow Data. Lists are assembled by hand: one copy into a flat Float32Array, no per-value builder calls. */
function columnToData(field: Field, c: WriteColumn, values: ArrayLike<unknown>, n: number): Data {
  if (c.type === 'list<float32>' || c.type === 'list<float64>') {
    const offsets = new Int32Array(n + 1);
    for (let i = 0; i < n; i++) {
      const v = values[i] as ArrayLike<number> | null | undefined;
      offsets[i + 1] = offsets[i] + (v ? v.length : 0);
    }
    const flat = c.type === 'list<float32>' ? new Float32Array(offsets[n]) : new Float64Array(offsets[n]);
    for (let i = 0; i < n; i++) {
      const v = values[i] as ArrayLike<number> | null | undefined;
      if (v) flat.set(v, offsets[i]);
    }
    const listType = field.type as List;
    const child = makeData({ type: listType.children[0].type, length: flat.length, data: flat as never });
    const { nullCount, nullBitmap } = validityBitmap(values, n);
    return makeData({ type: listType, length: n, nullCount, nullBitmap, valueOffsets: offsets, child }) as Data;
  }
  let arr: ArrayLike<unknown> = values;
  if (c.type === 'int64') {
    const out = new Array(n);
    for (let i = 0; i < n; i++) {
      const v = values[i];
      out[i] = v === null || v === undefined ? null : typeof v === 'bigint' ? v : BigInt(v as number);
    }
    arr = out;
  } else if (values.length !== n || !Array.isArray(values)) {
    arr = Array.prototype.slice.call(values, 0, n);
  }
  const vec = vectorFromArray(arr as unknown[], field.type);
  return vec.data[0] as Data;
}

/**
 * An Arrow IPC writer pushes bytes into an internal async queue; this pulls them out and writes them to
 * `handle`. `drain(false)` returns once everything produced so far is written (so memory stays about one
 * batch); `drain(true)` after w.close() writes the rest. `_position` (bytes produced so far) is protected in
 * the typings, hence the cast.
 */
export function ipcDrainer(w: RecordBatchWriter, handle: FileHandle): (untilDone: boolean) => Promise<void> {
  const queue = w[Symbol.asyncIterator]();
  const produced = () => (w as unknown as { _position: number })._position;
  let consumed = 0;
  return async (untilDone: boolean) => {
    while (untilDone || consumed < produced()) {
      const r = await queue.next();
      if (r.done) break;
      await handle.write(r.value);
      consumed += r.value.byteLength;
    }
  };
}

export async function openArrowWriter(path: string, schema: WriteColumn[], format: 'file' | 'stream'): Promise<TableWriter> {
  const fields = schema.map((c) => new Field(c.name, arrowType(c.type), c.nullable !== false));
  const arrowSchema = new Schema(fields);
  const file = await createAtomicFile(path);
  const w = format === 'file' ? new RecordBatchFileWriter() : new RecordBatchStreamWriter();
  // Start with the schema now, so a table with zero batches is still a valid IPC file.
  w.reset(undefined, arrowSchema);
  const drain = ipcDrainer(w, file.handle);
  let rowsWritten = 0;
  let closed = false;
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
        if (batch.numRows === 0) return;
        const n = batch.numRows;
        const children = schema.map((c, k) => columnToData(fields[k], c, batch.columns[c.name], n));
        const struct = makeData({ type: new Struct(fields), length: n, nullCount: 0, children });
        w.write(new RecordBatch(arrowSchema, struct));
        await drain(false);
        rowsWritten += n;
      } catch (e) {
        await fail(e);
      }
    },
    async close() {
      if (closed) throw new Error(`${path}: writer is closed`);
      try {
        w.close(); // writes the footer (file format) / end-of-stream marker, then ends the queue
        await drain(true);
        closed = true;
        await file.commit();
      } catch (e) {
        await fail(e);
      }
    },
    async abort() {
      closed = true;
      await file.abort();
    },
  };
}

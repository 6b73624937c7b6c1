/**
 * The writer shared by the line formats (CSV, TSV, JSONL): an optional header line, then one line per
 * row, buffered into ~1 MiB writes, through an atomic temp file (src/util/atomic-write.ts) so the target
 * path is whole or absent. A failed write aborts the file; close() commits it.
 */
import { createAtomicFile } from '../util/atomic-write.js';
import { validateBatch } from './common.js';
import type { RecordBatchLike, TableWriter, WriteColumn } from './types.js';

const FLUSH_CHARS = 1 << 20;

/** `formatRow(cols, i)` returns row i (without the newline); `cols[k]` is the column of schema[k]. */
export type RowFormatter = (cols: unknown[][], i: number) => string;

export async function openLineWriter(path: string, schema: WriteColumn[], header: string | null, formatRow: RowFormatter): Promise<TableWriter> {
  const file = await createAtomicFile(path);
  let rowsWritten = 0;
  let closed = false;
  if (header !== null) await file.handle.write(header + '\n');
  return {
    path,
    get rowsWritten() {
      return rowsWritten;
    },
    async write(batch: RecordBatchLike) {
      if (closed) throw new Error(`${path}: writer is closed`);
      try {
        validateBatch(schema, batch);
        const cols = schema.map((c) => batch.columns[c.name] as unknown[]);
        let buf = '';
        for (let i = 0; i < batch.numRows; i++) {
          buf += formatRow(cols, i) + '\n';
          if (buf.length > FLUSH_CHARS) {
            await file.handle.write(buf);
            buf = '';
          }
        }
        if (buf) await file.handle.write(buf);
        rowsWritten += batch.numRows;
      } catch (e) {
        closed = true;
        await file.abort();
        throw e;
      }
    },
    async close() {
      if (closed) throw new Error(`${path}: writer is closed`);
      closed = true;
      await file.commit();
    },
    async abort() {
      closed = true;
      await file.abort();
    },
  };
}

/**
 * Streamed physical lines of a UTF-8 text file, with bounded memory.
 *
 * Splits on the byte 0x0A *before* decoding: in UTF-8 that byte never occurs inside a multi-byte sequence,
 * so each line can be validated on its own and an invalid byte sequence is attributed to its line number.
 * The trailing '\r' of a CRLF line is kept (CSV needs to know it, JSONL strips it); a leading BOM is dropped;
 * a final line without a newline is still returned. Invalid UTF-8 is decoded with U+FFFD and reported in
 * `invalid`; callers apply the InvalidUtf8Policy.
 */
import { isUtf8 } from 'node:buffer';
import { open } from 'node:fs/promises';

export interface LineChunk {
  /** Physical line number (1-based) of lines[0]. */
  firstLineNo: number;
  lines: string[];
  /** Indices into `lines` whose bytes were not valid UTF-8 (decoded with U+FFFD). */
  invalid: number[];
}

const READ_SIZE = 1 << 20;
/** A single line longer than this is almost certainly not a text table (or a runaway quote): fail clearly. */
export const MAX_LINE_BYTES = 256 << 20;

export async function* readLines(path: string): AsyncGenerator<LineChunk> {
  const fh = await open(path, 'r');
  try {
    let carry: Buffer = Buffer.alloc(0);
    let lineNo = 1;
    let first = true;
    for (;;) {
      const buf = Buffer.allocUnsafe(READ_SIZE);
      const { bytesRead } = await fh.read(buf, 0, READ_SIZE, null);
      if (bytesRead === 0) break;
      let data = carry.length ? Buffer.concat([carry, buf.subarray(0, bytesRead)]) : buf.subarray(0, bytesRead);
      if (first) {
        first = false;
        if (data.length >= 3 && data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf) data = data.subarray(3);
      }
      const chunk: LineChunk = { firstLineNo: lineNo, lines: [], invalid: [] };
      let start = 0;
      for (;;) {
        const nl = data.indexOf(10, start);
        if (nl < 0) break;
        pushLine(chunk, data.subarray(start, nl));
        lineNo++;
        start = nl + 1;
      }
      // Copy the tail so the 1 MiB read buffer can be collected.
      carry = Buffer.from(data.subarray(start));
      if (carry.length > MAX_LINE_BYTES) throw new Error(`${path}:${lineNo}: line longer than ${MAX_LINE_BYTES} bytes`);
      if (chunk.lines.length) yield chunk;
    }
    if (carry.length) {
      const chunk: LineChunk = { firstLineNo: lineNo, lines: [], invalid: [] };
      pushLine(chunk, carry);
      yield chunk;
    }
  } finally {
    await fh.close();
  }
}

function pushLine(chunk: LineChunk, bytes: Buffer): void {
  // isUtf8 is a SIMD validator; toString('utf8') then substitutes U+FFFD exactly like TextDecoder would
  // (but keeps a U+FEFF inside the text). The caller applies the policy when it reaches the line, so an
  // 'error' is raised in order and never for a line the caller does not read.
  if (!isUtf8(bytes)) chunk.invalid.push(chunk.lines.length);
  chunk.lines.push(bytes.toString('utf8'));
}

export function invalidUtf8Error(path: string, lineNo: number): Error {
  return new Error(`${path}:${lineNo}: invalid UTF-8 (use invalidUtf8: 'replace' to substitute U+FFFD and count)`);
}

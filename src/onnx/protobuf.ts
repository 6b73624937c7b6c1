/**
 * A minimal protobuf (proto2 wire format) writer: just what ONNX's ModelProto needs.
 *
 * Messages are built as lists of byte chunks rather than one buffer, so a 440 MB weight tensor is
 * referenced, never copied, until the chunks are written to disk (see writeChunks in export.ts).
 * Repeated scalars are written unpacked (one tag per element), which every proto2 parser accepts.
 */

/** An encoded message: its chunks in order and their total length. */
export interface Encoded {
  chunks: Uint8Array[];
  length: number;
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

export class ProtoWriter {
  private readonly chunks: Uint8Array[] = [];
  private length = 0;
  /** Small scalar bytes accumulate here and are flushed as one chunk before any big one. */
  private pending: number[] = [];

  private pushBytes(bytes: Uint8Array): void {
    this.flush();
    if (bytes.length === 0) return;
    this.chunks.push(bytes);
    this.length += bytes.length;
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    const b = Uint8Array.from(this.pending);
    this.chunks.push(b);
    this.length += b.length;
    this.pending = [];
  }

  /** Unsigned varint of a non-negative or negative safe integer (negatives as 64-bit two's complement). */
  private varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    if (v < 0x80n) {
      this.pending.push(Number(v));
      return;
    }
    while (v >= 0x80n) {
      this.pending.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.pending.push(Number(v));
  }

  private tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  /** int32 / int64 / enum field. */
  int(field: number, value: number | bigint): this {
    this.tag(field, WIRE_VARINT);
    this.varint(value);
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, WIRE_FIXED32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.pending.push(...b);
    return this;
  }

  double(field: number, value: number): this {
    this.tag(field, WIRE_FIXED64);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, value, true);
    this.pending.push(...b);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  /** Length-delimited bytes; the array is referenced, not copied. */
  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WIRE_LEN);
    this.varint(value.length);
    this.pushBytes(value);
    return this;
  }

  /** Embedded message. */
  message(field: number, msg: Encoded): this {
    this.tag(field, WIRE_LEN);
    this.varint(msg.length);
    this.flush();
    for (const c of msg.chunks) this.chunks.push(c);
    this.length += msg.length;
    return this;
  }

  finish(): Encoded {
    this.flush();
    return { chunks: this.chunks, length: this.length };
  }
}

/** Joins an encoded message into one buffer (for small messages and tests). */
export function concatEncoded(e: Encoded): Uint8Array {
  const out = new Uint8Array(e.length);
  let off = 0;
  for (const c of e.chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

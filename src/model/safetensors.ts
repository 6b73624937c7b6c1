/**
 * safetensors: a reader that trusts nothing in the file, and a writer for the standard layout.
 *
 * Layout: 8-byte little-endian u64 N, N bytes of UTF-8 JSON (tensor name -> {dtype, shape,
 * data_offsets: [begin, end]} relative to the data section, plus "__metadata__"), then the data.
 * The header is validated completely (types, sizes, ranges, overlaps) before any data is read,
 * so a hostile or truncated file is an Error naming the file and the tensor, never a crash or a
 * huge allocation. Tensors are read one by one into their own arrays, so memory is bounded by the
 * weights actually asked for, and the ~2 GiB Buffer limit does not apply to the file as a whole.
 *
 * This module also holds the element-type table and the exact float16/bfloat16 <-> float32
 * conversions that the pytorch_model.bin reader shares.
 */
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { ModelFormatError } from './errors.js';
import { endianness } from 'node:os';

/** Element types named as in the safetensors format (pytorch storages map onto the same set). */
export type Dtype =
  | 'F64' | 'F32' | 'F16' | 'BF16'
  | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'U16' | 'U32' | 'U64' | 'BOOL' | 'F8_E4M3' | 'F8_E5M2';

export const DTYPE_BYTES: Readonly<Record<Dtype, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2,
  I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, U16: 2, U32: 4, U64: 8, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1,
};

/** The element types a weight may have; everything is converted to float32 on load. */
export type FloatDtype = 'F32' | 'F16' | 'BF16';
export const FLOAT_DTYPES: ReadonlySet<Dtype> = new Set<Dtype>(['F32', 'F16', 'BF16']);
/** Integer buffers (embeddings.position_ids) that a reader lists but never loads as weights. */
export const INT_DTYPES: ReadonlySet<Dtype> = new Set<Dtype>(['I64', 'I32']);

export function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

// The readers reinterpret file bytes as Float32Array/Uint16Array, which is only right on a
// little-endian host (every platform Node ships for today). Fail loudly rather than silently.
if (endianness() !== 'LE') {
  throw new Error('edu-train weight readers need a little-endian CPU');
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

let f16Table: Float32Array | null = null;

/** float16 bit pattern -> float32 value (exact: every half is representable in float32). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero or subnormal
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** bfloat16 bit pattern -> float32 value (exact: bf16 is the top half of a float32). */
export function bf16BitsToF32(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0];
}

/** float32 -> float16 bit pattern, round to nearest even; overflow gives inf, NaN stays NaN. */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Result is a half subnormal (or zero): value / 2^-24, rounded.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to inf).
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** float32 -> bfloat16 bit pattern, round to nearest even; NaN stays (quiet) NaN. */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7f800000) === 0x7f800000 && b & 0x7fffff) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Raw little-endian bytes of a float tensor -> float32 values (a copy; never aliases `bytes`). */
export function decodeFloats(dtype: FloatDtype, bytes: Uint8Array): Float32Array {
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  if (dtype === 'F32') {
    const out = new Float32Array(n);
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }
  // Copy into an aligned buffer first: the source offset inside a file buffer may be odd.
  const aligned = new Uint8Array(bytes.byteLength);
  aligned.set(bytes);
  const src = new Uint16Array(aligned.buffer);
  const out = new Float32Array(n);
  if (dtype === 'BF16') {
    const outBits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) outBits[i] = src[i] << 16;
  } else {
    if (!f16Table) {
      f16Table = new Float32Array(65536);
      for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
    }
    const table = f16Table;
    for (let i = 0; i < n; i++) out[i] = table[src[i]];
  }
  return out;
}

/** float32 values -> little-endian bytes in `dtype` (rounded to nearest even for the 16-bit types). */
export function encodeFloats(dtype: FloatDtype, data: Float32Array): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint16Array(data.length);
  const conv = dtype === 'F16' ? f32ToF16Bits : f32ToBf16Bits;
  for (let i = 0; i < data.length; i++) out[i] = conv(data[i]);
  return new Uint8Array(out.buffer);
}

/** Product of dims, or an Error message when it leaves the exactly representable integers. */
export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) throw new RangeError(`shape [${shape.join(', ')}] has too many elements`);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Reader

/** A header larger than this is rejected as absurd before it is read (real ones are < 1 MB). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** One tensor as the header describes it; begin/end are relative to the data section. */
export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  numel: number;
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  file: string;
  /** Absolute file offset of the data section (8 + header length). */
  dataStart: number;
  dataLength: number;
  /** In header order (which a reader must not rely on). */
  tensors: TensorInfo[];
  metadata: Record<string, unknown> | null;
}

/** A loaded weight, converted to float32. `dtype` is what the file stored. */
export interface FloatTensor {
  dtype: FloatDtype;
  shape: number[];
  data: Float32Array;
}

export interface ReadOptions {
  /**
   * Which tensors to load (default: every float tensor). Integer buffers are never loaded;
   * a selected tensor of another non-float dtype is an Error.
   */
  select?: (info: TensorInfo) => boolean;
}

/**
 * Validates a parsed header against the size of the data section. Pure: used by the file reader
 * and the in-memory parser alike.
 */
export function validateHeader(file: string, header: unknown, dataLength: number): Omit<SafetensorsHeader, 'file' | 'dataStart' | 'dataLength'> {
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new ModelFormatError(file, 'safetensors header is not a JSON object');
  }
  const tensors: TensorInfo[] = [];
  let metadata: Record<string, unknown> | null = null;
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        throw new ModelFormatError(file, 'safetensors "__metadata__" is not an object');
      }
      metadata = entry as Record<string, unknown>;
      continue;
    }
    const bad = (what: string): never => {
      throw new ModelFormatError(file, `tensor "${name}": ${what}`);
    };
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) bad('header entry is not an object');
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (!isDtype(dtype)) bad(`unknown dtype ${JSON.stringify(dtype)}`);
    const dt = dtype as Dtype;
    if (!Array.isArray(shape)) bad(`shape is not an array (${JSON.stringify(shape)})`);
    for (const d of shape as unknown[]) {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
        bad(`shape ${JSON.stringify(shape)} has a dimension that is not a non-negative integer`);
      }
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)) {
      bad(`data_offsets ${JSON.stringify(offsets)} is not [begin, end] of non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) bad(`data_offsets [${begin}, ${end}] end before begin`);
    if (end > dataLength) bad(`data_offsets [${begin}, ${end}] run past the end of the data section (${dataLength} bytes); the file is truncated or corrupt`);
    let numel = 0;
    try {
      numel = numelOf(shape as number[]);
    } catch {
      bad(`shape ${JSON.stringify(shape)} has too many elements`);
    }
    const expected = numel * DTYPE_BYTES[dt];
    if (end - begin !== expected) {
      bad(`byte size ${end - begin} != ${JSON.stringify(shape)} x ${dt} (${DTYPE_BYTES[dt]} bytes) = ${expected}`);
    }
    tensors.push({ name, dtype: dt, shape: [...(shape as number[])], numel, begin, end });
  }
  // Two tensors sharing bytes would let one file alias weights in ways no writer produces.
  const byStart = tensors.filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < byStart.length; i++) {
    const prev = byStart[i - 1];
    const cur = byStart[i];
    if (cur.begin < prev.end) {
      throw new ModelFormatError(file, `tensors "${prev.name}" [${prev.begin}, ${prev.end}] and "${cur.name}" [${cur.begin}, ${cur.end}] overlap`);
    }
  }
  return { tensors, metadata };
}

function parseHeaderJson(file: string, bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ModelFormatError(file, 'safetensors header is not valid UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ModelFormatError(file, `safetensors header is not valid JSON (${(err as Error).message}); is this a safetensors file?`);
  }
}

/** Checks the 8-byte length prefix against the file size; returns the header length. */
function checkHeaderLength(file: string, prefix: Uint8Array, fileSize: number): number {
  if (fileSize < 8) throw new ModelFormatError(file, `file is ${fileSize} bytes, too short for a safetensors header (truncated?)`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new ModelFormatError(file, `safetensors header length ${n} is absurd (> ${MAX_HEADER_BYTES} bytes); not a safetensors file, or corrupt`);
  }
  const len = Number(n);
  if (8 + len > fileSize) {
    throw new ModelFormatError(file, `safetensors header length ${len} runs past the end of the file (${fileSize} bytes); the file is truncated or not safetensors`);
  }
  return len;
}

/** Reads `target.byteLength` bytes at `position`, in chunks (single reads are capped near 2 GiB). */
function readFully(fd: number, file: string, target: Uint8Array, position: number): void {
  const CHUNK = 1 << 30;
  let done = 0;
  while (done < target.byteLength) {
    const len = Math.min(CHUNK, target.byteLength - done);
    const n = readSync(fd, target, done, len, position + done);
    if (n === 0) throw new ModelFormatError(file, `unexpected end of file at byte ${position + done} (truncated?)`);
    done += n;
  }
}

/** Reads and validates the header only (cheap: no tensor data is touched). */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openSync(path, 'r');
  try {
    const fileSize = fstatSync(fd).size;
    const prefix = new Uint8Array(8);
    if (fileSize >= 8) readFully(fd, path, prefix, 0);
    const len = checkHeaderLength(path, prefix, fileSize);
    const headerBytes = new Uint8Array(len);
    readFully(fd, path, headerBytes, 8);
    const dataStart = 8 + len;
    const dataLength = fileSize - dataStart;
    const { tensors, metadata } = validateHeader(path, parseHeaderJson(path, headerBytes), dataLength);
    return { file: path, dataStart, dataLength, tensors, metadata };
  } finally {
    closeSync(fd);
  }
}

function selectedForLoad(file: string, info: TensorInfo, select?: ReadOptions['select']): boolean {
  if (INT_DTYPES.has(info.dtype)) return false;
  if (select && !select(info)) return false;
  if (!FLOAT_DTYPES.has(info.dtype)) {
    throw new ModelFormatError(file, `tensor "${info.name}" has dtype ${info.dtype}; weights must be F32, F16 or BF16`);
  }
  return true;
}

/**
 * Loads the selected float tensors of a safetensors file as float32, each into its own array
 * (one positioned read per tensor). Header problems are found before any data is read.
 */
export async function readSafetensors(path: string, options: ReadOptions = {}): Promise<Map<string, FloatTensor>> {
  const header = readSafetensorsHeader(path);
  const wanted = header.tensors.filter((t) => selectedForLoad(path, t, options.select));
  const out = new Map<string, FloatTensor>();
  const fh = await open(path, 'r');
  try {
    for (const t of wanted) {
      const dtype = t.dtype as FloatDtype;
      const bytes = t.end - t.begin;
      // F32 is read straight into the result's memory; 16-bit types go through a temporary.
      const data = dtype === 'F32' ? new Float32Array(t.numel) : null;
      const target = data ? new Uint8Array(data.buffer) : new Uint8Array(bytes);
      let done = 0;
      while (done < bytes) {
        const len = Math.min(1 << 30, bytes - done);
        const { bytesRead } = await fh.read(target, done, len, header.dataStart + t.begin + done);
        if (bytesRead === 0) throw new ModelFormatError(path, `tensor "${t.name}": unexpected end of file (truncated?)`);
        done += bytesRead;
      }
      out.set(t.name, { dtype, shape: t.shape, data: data ?? decodeFloats(dtype, target) });
    }
  } finally {
    await fh.close();
  }
  return out;
}

/**
 * Parses a safetensors file already in memory. Aligned F32 tensors are zero-copy views into
 * `bytes` (keep it alive and unmodified); everything else is copied and converted.
 */
export function parseSafetensors(bytes: Uint8Array, file = '<buffer>', options: ReadOptions = {}): Map<string, FloatTensor> {
  const len = checkHeaderLength(file, bytes.subarray(0, 8), bytes.byteLength);
  const dataStart = 8 + len;
  const { tensors } = validateHeader(file, parseHeaderJson(file, bytes.subarray(8, dataStart)), bytes.byteLength - dataStart);
  const out = new Map<string, FloatTensor>();
  for (const t of tensors) {
    if (!selectedForLoad(file, t, options.select)) continue;
    const dtype = t.dtype as FloatDtype;
    const start = bytes.byteOffset + dataStart + t.begin;
    const data = dtype === 'F32' && start % 4 === 0
      ? new Float32Array(bytes.buffer, start, t.numel)
      : decodeFloats(dtype, bytes.subarray(dataStart + t.begin, dataStart + t.end));
    out.set(t.name, { dtype, shape: t.shape, data });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writer

/** A tensor to write: float data is stored as `dtype` (rounded), integer data as I64/I32. */
export interface TensorToWrite {
  dtype: FloatDtype | 'I64' | 'I32';
  shape: number[];
  data: Float32Array | Int32Array | BigInt64Array;
}

/** Little-endian bytes of one tensor in its target dtype. */
export function encodeTensor(name: string, t: TensorToWrite): Uint8Array {
  const numel = numelOf(t.shape);
  if (t.data.length !== numel) {
    throw new Error(`tensor "${name}": ${t.data.length} values for shape [${t.shape.join(', ')}] (${numel})`);
  }
  if (t.dtype === 'I64' || t.dtype === 'I32') {
    const out = t.dtype === 'I64' ? new BigInt64Array(numel) : new Int32Array(numel);
    for (let i = 0; i < numel; i++) {
      const v = t.data[i];
      if (out instanceof BigInt64Array) out[i] = typeof v === 'bigint' ? v : BigInt(Math.trunc(v));
      else out[i] = Number(v);
    }
    return new Uint8Array(out.buffer);
  }
  const floats = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as ArrayLike<number>, Number);
  return encodeFloats(t.dtype, floats);
}

/**
 * Writes the standard layout: tensors in sorted name order, back to back; the JSON header padded
 * with spaces to a multiple of 8 (so the data section starts 8-aligned); `__metadata__` first.
 */
export function writeSafetensors(path: string, tensors: Map<string, TensorToWrite>,
  metadata: Record<string, string> = { format: 'pt' }): void {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = { __metadata__: metadata };
  const encoded: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const bytes = encodeTensor(name, t);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    encoded.push(bytes);
    offset += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (jsonBytes % 8)) % 8);
  const headerBuf = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBuf.byteLength));
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, prefix);
    writeSync(fd, headerBuf);
    for (const bytes of encoded) writeAll(fd, bytes);
  } finally {
    closeSync(fd);
  }
}

/** writeSync may write less than asked (and caps near 2 GiB per call): loop until done. */
export function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) {
    done += writeSync(fd, bytes, done, Math.min(1 << 30, bytes.byteLength - done));
  }
}

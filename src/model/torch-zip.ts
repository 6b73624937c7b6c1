/**
 * The zip container of torch.save files (PyTorch >= 1.6): a minimal reader and writer.
 *
 * torch stores every entry uncompressed (STORED) and aligns data to 64 bytes, so an entry is just a
 * byte range of the file: the reader parses the central directory (zip64 included, since
 * checkpoints over 4 GiB exist) and hands out ranges; it never loads the whole file. Compressed or
 * encrypted entries are rejected: torch never writes them, and inflating is not this module's job.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { ModelFormatError } from './errors.js';
import { writeAll } from './safetensors.js';

export interface ZipEntry {
  name: string;
  /** Absolute file offset of the entry's data. */
  dataOffset: number;
  size: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;

/** An open zip file: entries from the central directory, data read by range. Close it when done. */
export class ZipReader {
  readonly entries = new Map<string, ZipEntry>();
  private fd: number;

  private constructor(readonly path: string, fd: number, readonly fileSize: number) {
    this.fd = fd;
  }

  static open(path: string): ZipReader {
    const fd = openSync(path, 'r');
    try {
      const zip = new ZipReader(path, fd, fstatSync(fd).size);
      zip.readCentralDirectory();
      return zip;
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  /** Bytes [start, start+length) of an entry's data, into `target` when given. */
  read(entry: ZipEntry, start = 0, length = entry.size - start, target?: Uint8Array): Uint8Array {
    if (start < 0 || length < 0 || start + length > entry.size) {
      throw new ModelFormatError(this.path, `read of bytes [${start}, ${start + length}) outside zip entry ${entry.name} (${entry.size} bytes)`);
    }
    const out = target ?? new Uint8Array(length);
    this.readAt(out.subarray(0, length), entry.dataOffset + start);
    return out;
  }

  private fail(msg: string): never {
    throw new ModelFormatError(this.path, `${msg}; the zip is truncated or corrupt`);
  }

  private readAt(target: Uint8Array, position: number): void {
    if (position < 0 || position + target.byteLength > this.fileSize) this.fail(`read past the end of the file at byte ${position}`);
    let done = 0;
    while (done < target.byteLength) {
      const n = readSync(this.fd, target, done, Math.min(1 << 30, target.byteLength - done), position + done);
      if (n === 0) this.fail(`unexpected end of file at byte ${position + done}`);
      done += n;
    }
  }

  private readCentralDirectory(): void {
    // The end-of-central-directory record sits in the last 22 + up to 65535 (comment) bytes.
    const tailLen = Math.min(this.fileSize, 22 + 65535);
    if (tailLen < 22) this.fail('file too short for a zip');
    const tail = new Uint8Array(tailLen);
    this.readAt(tail, this.fileSize - tailLen);
    const tv = new DataView(tail.buffer);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tv.getUint32(i, true) === SIG_EOCD && i + 22 + tv.getUint16(i + 20, true) <= tailLen) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) this.fail('no end-of-central-directory record');
    let count = tv.getUint16(eocd + 10, true);
    let cdSize = tv.getUint32(eocd + 12, true);
    let cdOffset = tv.getUint32(eocd + 16, true);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const locPos = this.fileSize - tailLen + eocd - 20;
      const loc = new Uint8Array(20);
      this.readAt(loc, locPos);
      const lv = new DataView(loc.buffer);
      if (lv.getUint32(0, true) !== SIG_ZIP64_LOCATOR) this.fail('zip64 fields without a zip64 locator');
      const recPos = this.u64(lv, 8);
      const rec = new Uint8Array(56);
      this.readAt(rec, recPos);
      const rv = new DataView(rec.buffer);
      if (rv.getUint32(0, true) !== SIG_ZIP64_EOCD) this.fail('bad zip64 end-of-central-directory record');
      count = this.u64(rv, 32);
      cdSize = this.u64(rv, 40);
      cdOffset = this.u64(rv, 48);
    }
    if (cdOffset + cdSize > this.fileSize) this.fail('central directory runs past the end of the file');
    if (cdSize > 1 << 30) this.fail('central directory is absurdly large');
    const cd = new Uint8Array(cdSize);
    this.readAt(cd, cdOffset);
    const cv = new DataView(cd.buffer);
    const names = new TextDecoder('utf-8');
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cdSize || cv.getUint32(p, true) !== SIG_CENTRAL) this.fail(`bad central directory entry ${i}`);
      const flags = cv.getUint16(p + 8, true);
      const method = cv.getUint16(p + 10, true);
      let csize = cv.getUint32(p + 20, true);
      let usize = cv.getUint32(p + 24, true);
      const nameLen = cv.getUint16(p + 28, true);
      const extraLen = cv.getUint16(p + 30, true);
      const commentLen = cv.getUint16(p + 32, true);
      let localOffset = cv.getUint32(p + 42, true);
      if (p + 46 + nameLen + extraLen + commentLen > cdSize) this.fail(`central directory entry ${i} runs past the directory`);
      const name = names.decode(cd.subarray(p + 46, p + 46 + nameLen));
      // zip64 extended information: 8-byte values for exactly the fields saturated above, in order.
      let e = p + 46 + nameLen;
      const extraEnd = e + extraLen;
      while (e + 4 <= extraEnd) {
        const id = cv.getUint16(e, true);
        const len = cv.getUint16(e + 2, true);
        if (id === 0x0001) {
          let q = e + 4;
          const take = (): number => {
            if (q + 8 > e + 4 + len) this.fail(`short zip64 extra field in ${name}`);
            const v = this.u64(cv, q);
            q += 8;
            return v;
          };
          if (usize === 0xffffffff) usize = take();
          if (csize === 0xffffffff) csize = take();
          if (localOffset === 0xffffffff) localOffset = take();
        }
        e += 4 + len;
      }
      p = extraEnd + commentLen;
      if (flags & 1) throw new ModelFormatError(this.path, `zip entry ${name} is encrypted`);
      if (method !== 0) {
        throw new ModelFormatError(this.path, `zip entry ${name} is compressed (method ${method}); torch.save stores entries uncompressed. Re-save with torch.save or convert to safetensors`);
      }
      if (csize !== usize) this.fail(`stored zip entry ${name} has different compressed and uncompressed sizes`);
      const lh = new Uint8Array(30);
      this.readAt(lh, localOffset);
      const lv = new DataView(lh.buffer);
      if (lv.getUint32(0, true) !== SIG_LOCAL) this.fail(`no local header for ${name}`);
      const dataOffset = localOffset + 30 + lv.getUint16(26, true) + lv.getUint16(28, true);
      if (dataOffset + usize > this.fileSize) this.fail(`zip entry ${name} runs past the end of the file`);
      this.entries.set(name, { name, dataOffset, size: usize });
    }
  }

  private u64(v: DataView, at: number): number {
    const x = v.getBigUint64(at, true);
    if (x > BigInt(Number.MAX_SAFE_INTEGER)) this.fail('zip64 value out of range');
    return Number(x);
  }
}

/** True when the file starts like a zip (local header or empty-archive EOCD). */
export function looksLikeZip(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b &&
    ((head[2] === 3 && head[3] === 4) || (head[2] === 5 && head[3] === 6));
}

// ---------------------------------------------------------------------------------------------
// Writer

export interface ZipWriteOptions {
  /** Align entry data to this many bytes, as torch does (64), using padding in the extra field. */
  align?: number;
  /** Write zip64 records even when not needed (tests the reader's zip64 path). */
  forceZip64?: boolean;
}

/**
 * Writes STORED entries in order, like PyTorch's writer: data aligned via an extra field,
 * CRC-32s filled in (torch.load checks them), zip64 records when offsets or sizes need them.
 */
export function writeZip(path: string, entries: { name: string; data: Uint8Array }[], options: ZipWriteOptions = {}): void {
  const align = options.align ?? 64;
  const fd = openSync(path, 'w');
  let offset = 0;
  const central: Buffer[] = [];
  const put = (b: Uint8Array): void => {
    writeAll(fd, b);
    offset += b.byteLength;
  };
  try {
    for (const { name, data } of entries) {
      const nameBuf = Buffer.from(name, 'utf8');
      const zip64 = options.forceZip64 || data.byteLength >= 0xffffffff || offset >= 0xffffffff;
      const crc = crc32(data) >>> 0;
      const localOffset = offset;
      // Local zip64 extra carries both sizes; then pad so the data lands on an aligned offset.
      const z64Local = zip64 ? 20 : 0;
      const base = localOffset + 30 + nameBuf.byteLength + z64Local;
      const pad = (align - ((base + 4) % align)) % align;
      const extra = Buffer.alloc(z64Local + 4 + pad);
      if (zip64) {
        extra.writeUInt16LE(0x0001, 0);
        extra.writeUInt16LE(16, 2);
        extra.writeBigUInt64LE(BigInt(data.byteLength), 4);
        extra.writeBigUInt64LE(BigInt(data.byteLength), 12);
      }
      extra.writeUInt16LE(0x4246, z64Local); // 'FB': torch's padding record
      extra.writeUInt16LE(pad, z64Local + 2);
      extra.fill(0x5a, z64Local + 4); // 'Z', as torch writes
      const lh = Buffer.alloc(30);
      lh.writeUInt32LE(SIG_LOCAL, 0);
      lh.writeUInt16LE(zip64 ? 45 : 20, 4); // version needed
      lh.writeUInt16LE(0x0800, 6); // utf-8 names
      lh.writeUInt16LE(0, 8); // STORED
      lh.writeUInt32LE(crc, 14);
      lh.writeUInt32LE(zip64 ? 0xffffffff : data.byteLength, 18);
      lh.writeUInt32LE(zip64 ? 0xffffffff : data.byteLength, 22);
      lh.writeUInt16LE(nameBuf.byteLength, 26);
      lh.writeUInt16LE(extra.byteLength, 28);
      put(lh);
      put(nameBuf);
      put(extra);
      put(data);

      const cx = zip64 ? Buffer.alloc(28) : Buffer.alloc(0);
      if (zip64) {
        cx.writeUInt16LE(0x0001, 0);
        cx.writeUInt16LE(24, 2);
        cx.writeBigUInt64LE(BigInt(data.byteLength), 4);
        cx.writeBigUInt64LE(BigInt(data.byteLength), 12);
        cx.writeBigUInt64LE(BigInt(localOffset), 20);
      }
      const ch = Buffer.alloc(46);
      ch.writeUInt32LE(SIG_CENTRAL, 0);
      ch.writeUInt16LE(zip64 ? 45 : 20, 4);
      ch.writeUInt16LE(zip64 ? 45 : 20, 6);
      ch.writeUInt16LE(0x0800, 8);
      ch.writeUInt32LE(crc, 16);
      ch.writeUInt32LE(zip64 ? 0xffffffff : data.byteLength, 20);
      ch.writeUInt32LE(zip64 ? 0xffffffff : data.byteLength, 24);
      ch.writeUInt16LE(nameBuf.byteLength, 28);
      ch.writeUInt16LE(cx.byteLength, 30);
      ch.writeUInt32LE(zip64 ? 0xffffffff : localOffset, 42);
      central.push(ch, nameBuf, cx);
    }
    const cdOffset = offset;
    for (const b of central) put(b);
    const cdSize = offset - cdOffset;
    const zip64End = options.forceZip64 || cdOffset >= 0xffffffff || entries.length >= 0xffff;
    if (zip64End) {
      const zr = Buffer.alloc(56);
      zr.writeUInt32LE(SIG_ZIP64_EOCD, 0);
      zr.writeBigUInt64LE(44n, 4);
      zr.writeUInt16LE(45, 12);
      zr.writeUInt16LE(45, 14);
      zr.writeBigUInt64LE(BigInt(entries.length), 24);
      zr.writeBigUInt64LE(BigInt(entries.length), 32);
      zr.writeBigUInt64LE(BigInt(cdSize), 40);
      zr.writeBigUInt64LE(BigInt(cdOffset), 48);
      const zrOffset = offset;
      put(zr);
      const loc = Buffer.alloc(20);
      loc.writeUInt32LE(SIG_ZIP64_LOCATOR, 0);
      loc.writeBigUInt64LE(BigInt(zrOffset), 8);
      loc.writeUInt32LE(1, 16);
      put(loc);
    }
    const end = Buffer.alloc(22);
    end.writeUInt32LE(SIG_EOCD, 0);
    end.writeUInt16LE(zip64End ? 0xffff : entries.length, 8);
    end.writeUInt16LE(zip64End ? 0xffff : entries.length, 10);
    end.writeUInt32LE(zip64End ? 0xffffffff : cdSize, 12);
    end.writeUInt32LE(zip64End ? 0xffffffff : cdOffset, 16);
    put(end);
  } finally {
    closeSync(fd);
  }
}

import { existsSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ModelFormatError } from '../src/model/errors.js';
import { loadModel } from '../src/model/load.js';
import { readSafetensors, type TensorToWrite } from '../src/model/safetensors.js';
import { readTorchBin, readTorchBinIndex, writeTorchZip } from '../src/model/torch-bin.js';
import { writeZip, ZipReader } from '../src/model/torch-zip.js';
import { PickleWriter, unpickle } from '../src/model/unpickle.js';
import { GOLDEN_CASES, sharedPath } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-train-pt-');

/**
 * A pytorch_model.bin written by Python itself: pickle.Pickler(protocol=2) with torch.save's
 * persistent_id / __reduce_ex__ (stand-in torch modules, same byte stream), stored with Python's
 * zipfile (force_zip64 local headers). Tensors: bert.x.weight F32 [[1,-2,0.5],[3.25,0,-0.125]],
 * y F16 [1,-2,65504,2^-24], bert.embeddings.position_ids I64 [[0,1,2,3]]; the OrderedDict carries
 * `_metadata` (BUILD), as a real state dict does. An independent writer for the reader to agree with.
 */
const PYTHON_WRITTEN_BIN =
  'UEsDBC0AAAAAAAAAIQAKF3wU//////////8QABQAcHltb2RlbC9kYXRhLnBrbAEAEACkAQAAAAAAAKQBAAAAAAAAgAJjY29sbGVj' +
  'dGlvbnMKT3JkZXJlZERpY3QKcQApUnEBKFgNAAAAYmVydC54LndlaWdodHECY3RvcmNoLl91dGlscwpfcmVidWlsZF90ZW5zb3Jf' +
  'djIKcQMoKFgHAAAAc3RvcmFnZXEEY3RvcmNoCkZsb2F0U3RvcmFnZQpxBVgBAAAAMHEGWAMAAABjcHVxB0sGdHEIUUsASwJLA4Zx' +
  'CUsDSwGGcQqJaAApUnELdHEMUnENWAEAAAB5cQ5oAygoaARjdG9yY2gKSGFsZlN0b3JhZ2UKcQ9YAQAAADFxEGgHSwR0cRFRSwBL' +
  'BIVxEksBhXETiWgAKVJxFHRxFVJxFlgcAAAAYmVydC5lbWJlZGRpbmdzLnBvc2l0aW9uX2lkc3EXaAMoKGgEY3RvcmNoCkxvbmdT' +
  'dG9yYWdlCnEYWAEAAAAycRloB0sEdHEaUUsASwFLBIZxG0sESwGGcRyJaAApUnEddHEeUnEfdX1xIFgJAAAAX21ldGFkYXRhcSFo' +
  'AClScSJYAAAAAHEjfXEkWAcAAAB2ZXJzaW9ucSVLAXNzc2IuUEsDBC0AAAAAAAAAIQA3vonw//////////8OABQAcHltb2RlbC9k' +
  'YXRhLzABABAAGAAAAAAAAAAYAAAAAAAAAAAAgD8AAADAAAAAPwAAUEAAAAAAAAAAvlBLAwQtAAAAAAAAACEAlUhOfP//////////' +
  'DgAUAHB5bW9kZWwvZGF0YS8xAQAQAAgAAAAAAAAACAAAAAAAAAAAPADA/3sBAFBLAwQtAAAAAAAAACEAChIAkf//////////DgAU' +
  'AHB5bW9kZWwvZGF0YS8yAQAQACAAAAAAAAAAIAAAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAgAAAAAAAAADAAAAAAAAAFBLAwQtAAAA' +
  'AAAAACEA0Z5nVf//////////DwAUAHB5bW9kZWwvdmVyc2lvbgEAEAACAAAAAAAAAAIAAAAAAAAAMwpQSwECLQMtAAAAAAAAACEA' +
  'Chd8FKQBAACkAQAAEAAAAAAAAAAAAAAAgAEAAAAAcHltb2RlbC9kYXRhLnBrbFBLAQItAy0AAAAAAAAAIQA3vonwGAAAABgAAAAO' +
  'AAAAAAAAAAAAAACAAeYBAABweW1vZGVsL2RhdGEvMFBLAQItAy0AAAAAAAAAIQCVSE58CAAAAAgAAAAOAAAAAAAAAAAAAACAAT4C' +
  'AABweW1vZGVsL2RhdGEvMVBLAQItAy0AAAAAAAAAIQAKEgCRIAAAACAAAAAOAAAAAAAAAAAAAACAAYYCAABweW1vZGVsL2RhdGEv' +
  'MlBLAQItAy0AAAAAAAAAIQDRnmdVAgAAAAIAAAAPAAAAAAAAAAAAAACAAeYCAABweW1vZGVsL3ZlcnNpb25QSwUGAAAAAAUABQAv' +
  'AQAAKQMAAAAA';

function tensorsOf(entries: [string, TensorToWrite][]): Map<string, TensorToWrite> {
  return new Map(entries);
}

/** A torch zip whose data.pkl is `pickle`; no storages. */
function zipWithPickle(dir: string, pickle: Uint8Array, name = 'pytorch_model.bin'): string {
  const file = join(dir, name);
  writeZip(file, [{ name: 'archive/data.pkl', data: pickle }, { name: 'archive/version', data: Buffer.from('3\n') }]);
  return file;
}

/** Pickle bytes of `GLOBAL module name` + (arg,) + REDUCE: what a malicious __reduce__ produces. */
function maliciousPickle(module: string, name: string, arg: string, stackGlobal = false): Uint8Array {
  const p = new PickleWriter().proto(2);
  if (stackGlobal) {
    p.str(module).str(name);
    const bytes = [...p.bytes(), 0x93];
    const rest = new PickleWriter().mark().str(arg).tuple().reduce().stop().bytes();
    return Uint8Array.from([...bytes, ...rest]);
  }
  return p.global(module, name).mark().str(arg).tuple().reduce().stop().bytes();
}

describe('writeTorchZip -> readTorchBin round trip', () => {
  it('round-trips F32, F16 and BF16 tensors and skips int64 buffers', async () => {
    const dir = tmp.make();
    const file = join(dir, 'pytorch_model.bin');
    const values = Float32Array.from({ length: 300 * 3 }, (_, i) => Math.sin(i) * 10);
    writeTorchZip(file, tensorsOf([
      ['bert.a.weight', { dtype: 'F32', shape: [300, 3], data: values }],
      ['h', { dtype: 'F16', shape: [4], data: Float32Array.from([1, -2, 65504, 2 ** -24]) }],
      ['b', { dtype: 'BF16', shape: [2, 2], data: Float32Array.from([1, -2, 3.140625, 0.5]) }],
      ['scalar', { dtype: 'F32', shape: [], data: Float32Array.from([7]) }],
      ['bert.embeddings.position_ids', { dtype: 'I64', shape: [1, 5], data: BigInt64Array.from([0n, 1n, 2n, 3n, 4n]) }],
    ]));
    const index = readTorchBinIndex(file);
    expect(index.map((t) => [t.name, t.dtype, t.shape])).toEqual([
      ['bert.a.weight', 'F32', [300, 3]], ['h', 'F16', [4]], ['b', 'BF16', [2, 2]], ['scalar', 'F32', []],
      ['bert.embeddings.position_ids', 'I64', [1, 5]],
    ]);
    const t = await readTorchBin(file);
    expect([...t.keys()]).toEqual(['bert.a.weight', 'h', 'b', 'scalar']);
    expect(t.get('bert.a.weight')!.data).toEqual(values);
    expect([...t.get('h')!.data]).toEqual([1, -2, 65504, 2 ** -24]);
    expect([...t.get('b')!.data]).toEqual([1, -2, 3.140625, 0.5]);
    expect([...t.get('scalar')!.data]).toEqual([7]);
    // Entries are 64-byte aligned, as torch writes them.
    const zip = ZipReader.open(file);
    try {
      for (const e of zip.entries.values()) expect(e.dataOffset % 64).toBe(0);
      expect([...zip.entries.keys()]).toContain('archive/data/0');
    } finally {
      zip.close();
    }
  });

  it('reads zip64 central directories', async () => {
    const file = join(tmp.make(), 'pytorch_model.bin');
    const data = Float32Array.from([1, 2, 3]);
    writeTorchZip(file, tensorsOf([['w', { dtype: 'F32', shape: [3], data }]]), { forceZip64: true });
    expect([...(await readTorchBin(file)).get('w')!.data]).toEqual([1, 2, 3]);
  });

  it('reads a file written by Python pickle + zipfile', async () => {
    const file = join(tmp.make(), 'pytorch_model.bin');
    writeFileSync(file, Buffer.from(PYTHON_WRITTEN_BIN, 'base64'));
    const t = await readTorchBin(file);
    expect([...t.keys()]).toEqual(['bert.x.weight', 'y']);
    expect(t.get('bert.x.weight')!.shape).toEqual([2, 3]);
    expect([...t.get('bert.x.weight')!.data]).toEqual([1, -2, 0.5, 3.25, 0, -0.125]);
    expect(t.get('y')!.dtype).toBe('F16');
    expect([...t.get('y')!.data]).toEqual([1, -2, 65504, 2 ** -24]);
    expect(readTorchBinIndex(file).find((x) => x.name === 'bert.embeddings.position_ids')).toMatchObject({ dtype: 'I64', shape: [1, 4] });
  });

  it.each(GOLDEN_CASES)('golden %s rewritten as pytorch_model.bin loads the same tensors as its safetensors', async (name) => {
    const golden = sharedPath('golden', name);
    const dir = tmp.make();
    copyFileSync(join(golden, 'config.json'), join(dir, 'config.json'));
    const st = await readSafetensors(join(golden, 'model.safetensors'));
    writeTorchZip(join(dir, 'pytorch_model.bin'), new Map([...st].map(([k, v]) => [k, { dtype: 'F32', shape: v.shape, data: v.data }])));
    const a = await loadModel(golden);
    const b = await loadModel(dir);
    expect(b.spec.weightFormat).toBe('pytorch');
    expect(b.spec.weightPrefix).toBe(a.spec.weightPrefix);
    expect(b.spec.hasPooler).toBe(a.spec.hasPooler);
    expect([...b.weights.tensors.keys()].sort()).toEqual([...a.weights.tensors.keys()].sort());
    for (const [k, v] of a.weights.tensors) {
      expect(b.weights.shapes.get(k)).toEqual(a.weights.shapes.get(k));
      expect(b.weights.tensors.get(k)).toEqual(v);
    }
  });
});

describe('hostile and unsupported pytorch_model.bin files', () => {
  const cases: [string, string, boolean][] = [
    ['os', 'system', false], ['posix', 'system', false], ['builtins', 'eval', false],
    ['subprocess', 'Popen', false], ['os', 'system', true], ['torch', 'load', false],
  ];
  it.each(cases)('rejects the global %s.%s (STACK_GLOBAL: %s) before anything runs', async (module, name, stackGlobal) => {
    const dir = tmp.make();
    const marker = join(dir, 'pwned');
    const file = zipWithPickle(dir, maliciousPickle(module, name, `touch ${marker}`, stackGlobal));
    await expect(readTorchBin(file)).rejects.toThrow(ModelFormatError);
    await expect(readTorchBin(file)).rejects.toThrow(`refusing global ${module}.${name}`);
    expect(() => readTorchBinIndex(file)).toThrow(/may be malicious; nothing from it was run/);
    expect(existsSync(marker)).toBe(false);
  });

  it('a malicious model folder fails at readModelSpec, naming the global', async () => {
    const dir = tmp.make();
    copyFileSync(sharedPath('golden', 'bert-tiny', 'config.json'), join(dir, 'config.json'));
    zipWithPickle(dir, maliciousPickle('os', 'system', 'echo hi'));
    await expect(loadModel(dir)).rejects.toThrow(/refusing global os\.system/);
  });

  it('unpickle never calls a global that is not interpreted', () => {
    const calls: string[] = [];
    const bytes = new PickleWriter().proto(2).global('torch', 'FloatStorage').emptyTuple().reduce().stop().bytes();
    expect(() => unpickle(bytes, {
      findGlobal: (module, name) => {
        calls.push(`${module}.${name}`);
        return { module, name }; // no call(): not callable
      },
    })).toThrow(/REDUCE on a value that is not a callable global \(torch\.FloatStorage\)/);
    expect(calls).toEqual(['torch.FloatStorage']);
  });

  it('rejects opcodes outside the subset (INST, NEWOBJ, EXT1) and truncated pickles', () => {
    const hooks = { findGlobal: () => { throw new Error('no'); } };
    expect(() => unpickle(Uint8Array.from([0x80, 0x02, 0x69, 0x6f, 0x73, 0x0a]), hooks)).toThrow(/unsupported opcode INST/);
    expect(() => unpickle(Uint8Array.from([0x80, 0x02, 0x29, 0x81]), hooks)).toThrow(/unsupported opcode NEWOBJ/);
    expect(() => unpickle(Uint8Array.from([0x80, 0x02, 0x82, 0x01]), hooks)).toThrow(/unsupported opcode EXT1/);
    expect(() => unpickle(Uint8Array.from([0x80, 0x02, 0x58, 0xff, 0xff, 0x00, 0x00, 0x41]), hooks)).toThrow(/truncated/);
    expect(() => unpickle(Uint8Array.from([0x80, 0x02, 0x4b, 0x01]), hooks)).toThrow(/truncated/);
    expect(() => unpickle(Uint8Array.from([0x80, 0x02, 0x30, 0x2e]), hooks)).toThrow(/stack underflow/);
    expect(() => unpickle(Uint8Array.from([0x80, 0x02, 0x68, 0x05, 0x2e]), hooks)).toThrow(/memo key 5/);
  });

  it('rejects non-contiguous tensors', async () => {
    const dir = tmp.make();
    const p = new PickleWriter().proto(2).global('collections', 'OrderedDict').emptyTuple().reduce().mark();
    p.str('w').global('torch._utils', '_rebuild_tensor_v2').mark();
    p.mark().str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(6).tuple().binpersid();
    p.int(0).mark().int(2).int(3).tuple().mark().int(1).int(2).tuple(); // transposed: stride (1, 2)
    p.bool(false).global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce();
    p.setitems().stop();
    const file = join(dir, 'pytorch_model.bin');
    writeZip(file, [{ name: 'archive/data.pkl', data: p.bytes() }, { name: 'archive/data/0', data: new Uint8Array(24) }]);
    await expect(readTorchBin(file)).rejects.toThrow(/size \[2,3\] and stride \[1,2\] is not contiguous/);
  });

  it('rejects a storage entry whose size disagrees with the persistent id', async () => {
    const dir = tmp.make();
    const file = join(dir, 'pytorch_model.bin');
    writeTorchZip(file, tensorsOf([['w', { dtype: 'F32', shape: [4], data: new Float32Array(4) }]]));
    // Rewrite with a storage entry that is too short.
    const zip = ZipReader.open(file);
    const pkl = zip.read(zip.entries.get('archive/data.pkl')!);
    zip.close();
    writeZip(file, [{ name: 'archive/data.pkl', data: pkl }, { name: 'archive/data/0', data: new Uint8Array(8) }]);
    await expect(readTorchBin(file)).rejects.toThrow(/storage 0: entry has 8 bytes, expected 4 x 4/);
  });

  it('truncated zips are clear Errors', async () => {
    const dir = tmp.make();
    const file = join(dir, 'pytorch_model.bin');
    writeTorchZip(file, tensorsOf([['w', { dtype: 'F32', shape: [64, 64], data: new Float32Array(64 * 64) }]]));
    const bytes = readFileSync(file);
    for (const cut of [bytes.byteLength - 10, Math.floor(bytes.byteLength / 2), 100, 3]) {
      const f = join(dir, `cut-${cut}.bin`);
      writeFileSync(f, bytes.subarray(0, cut));
      await expect(readTorchBin(f)).rejects.toThrow(ModelFormatError);
      await expect(readTorchBin(f)).rejects.toThrow(/truncated or corrupt|not a torch\.save zip/);
    }
  });

  it('a zip with a compressed entry is rejected clearly', async () => {
    const dir = tmp.make();
    const file = join(dir, 'pytorch_model.bin');
    writeTorchZip(file, tensorsOf([['w', { dtype: 'F32', shape: [2], data: new Float32Array(2) }]]));
    const bytes = readFileSync(file);
    const cd = bytes.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    bytes.writeUInt16LE(8, cd + 10); // method 8 = deflate in the first central directory entry
    writeFileSync(file, bytes);
    await expect(readTorchBin(file)).rejects.toThrow(/archive\/data\.pkl is compressed \(method 8\)/);
  });

  it('the legacy (pre-1.6) torch.save format is a clear Error', async () => {
    const dir = tmp.make();
    const file = join(dir, 'pytorch_model.bin');
    // torch.save with _use_new_zipfile_serialization=False starts with this magic-number pickle.
    writeFileSync(file, Buffer.from('80028a0a6cfc9c46f9206aa850192e80024de9032e', 'hex'));
    await expect(readTorchBin(file)).rejects.toThrow(/legacy \(pre-1\.6\) torch\.save format.*Re-save it with a newer PyTorch.*safetensors/);
    writeFileSync(file, Buffer.from('this is not a checkpoint'));
    await expect(readTorchBin(file)).rejects.toThrow(/not a torch\.save zip file/);
    rmSync(file);
  });

  it('a state dict holding a non-tensor is rejected', async () => {
    const dir = tmp.make();
    const p = new PickleWriter().proto(2).emptyDict().mark().str('w').int(5).setitems().stop();
    const file = zipWithPickle(dir, p.bytes());
    await expect(readTorchBin(file)).rejects.toThrow(/state dict entry "w" is not a tensor/);
  });

  it('random corruption of a valid file is either read or a ModelFormatError (property)', async () => {
    const dir = tmp.make();
    const file = join(dir, 'ok.bin');
    writeTorchZip(file, tensorsOf([
      ['a', { dtype: 'F32', shape: [2, 3], data: new Float32Array(6).fill(1) }],
      ['b', { dtype: 'F16', shape: [300], data: new Float32Array(300).fill(2) }],
    ]));
    const original = new Uint8Array(readFileSync(file));
    // Mostly hit the pickle and the zip structures, where the parsing is.
    const zip = ZipReader.open(file);
    const pkl = zip.entries.get('archive/data.pkl')!;
    zip.close();
    const target = fc.oneof(
      fc.integer({ min: pkl.dataOffset, max: pkl.dataOffset + pkl.size - 1 }),
      fc.integer({ min: original.byteLength - 400, max: original.byteLength - 1 }),
      fc.nat(original.byteLength - 1));
    const fuzzed = join(dir, 'fuzzed.bin');
    await fc.assert(fc.asyncProperty(
      fc.array(fc.tuple(target, fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
      async (edits) => {
        const bytes = original.slice();
        for (const [at, v] of edits) bytes[at] = v;
        writeFileSync(fuzzed, bytes);
        try {
          await readTorchBin(fuzzed);
        } catch (err) {
          if (!(err instanceof ModelFormatError)) throw err;
        }
      }), { numRuns: 1500, seed: 7 });
  });
});

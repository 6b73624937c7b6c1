/**
 * pytorch_model.bin (torch.save's zip format, PyTorch >= 1.6): state dict reader and writer.
 *
 * The file is a zip of `<archive>/data.pkl` (the pickled OrderedDict name -> tensor) and one entry
 * `<archive>/data/<key>` per storage. The pickle is read by the restricted VM in unpickle.ts with an
 * allowlist of exactly the globals a state dict needs; each "call" of those globals is interpreted
 * here (OrderedDict -> Map, _rebuild_tensor_v2 -> a tensor reference). Tensor data is then read
 * straight from the storage entries, one tensor at a time.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { ModelFormatError } from './errors.js';
import {
  DTYPE_BYTES, FLOAT_DTYPES, INT_DTYPES, decodeFloats, encodeTensor, numelOf,
  type Dtype, type FloatDtype, type FloatTensor, type TensorToWrite,
} from './safetensors.js';
import { looksLikeZip, writeZip, ZipReader, type ZipEntry } from './torch-zip.js';
import { PickleWriter, unpickle, UnpickleError, type PickleGlobal } from './unpickle.js';

/** A tensor of the state dict, located in its storage entry (no data read yet). */
export interface TorchTensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  numel: number;
  /** The storage's zip entry. */
  entry: ZipEntry;
  /** Byte offset of the tensor's first element inside the entry. */
  byteOffset: number;
}

/** torch's legacy storage classes, as named in persistent ids, and what they hold. */
const STORAGE_DTYPES: Record<string, Dtype> = {
  FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16', DoubleStorage: 'F64',
  LongStorage: 'I64', IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8', BoolStorage: 'BOOL',
};
const DTYPE_STORAGES: Partial<Record<Dtype, string>> = Object.fromEntries(
  Object.entries(STORAGE_DTYPES).map(([k, v]) => [v, k]));

interface StorageRef { dtype: Dtype; entry: ZipEntry; numel: number }
interface TensorRef { storage: StorageRef; offset: number; shape: number[] }
class StorageType implements PickleGlobal {
  readonly module = 'torch';
  constructor(readonly name: string, readonly dtype: Dtype) {}
}

const ALLOWED_GLOBALS = [
  'collections.OrderedDict', 'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_parameter',
  ...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`),
];

/** The first bytes of a pre-1.6 torch.save file: pickle PROTO 2 and the LONG1 magic number. */
const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

function checkFormat(path: string): void {
  const fd = openSync(path, 'r');
  const head = new Uint8Array(16);
  let n: number;
  try {
    n = readSync(fd, head, 0, 16, 0);
  } finally {
    closeSync(fd);
  }
  if (looksLikeZip(head.subarray(0, n))) return;
  if (n >= 2 && head[0] === 0x80) {
    const legacy = LEGACY_MAGIC.every((b, i) => head[i] === b);
    throw new ModelFormatError(path, `${legacy ? 'legacy (pre-1.6) torch.save format' : 'a raw pickle, not the torch.save zip format'}, which edu-train does not read. ` +
      'Re-save it with a newer PyTorch (torch.save(torch.load(f), f)) or convert it to model.safetensors');
  }
  throw new ModelFormatError(path, 'not a torch.save zip file (nor safetensors); the file is corrupt or of an unknown format');
}

function int(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new UnpickleError(`${what} is not a non-negative integer (${String(v)})`);
  return v;
}

function intTuple(v: unknown, what: string): number[] {
  if (!Array.isArray(v)) throw new UnpickleError(`${what} is not a tuple`);
  return v.map((x, i) => int(x, `${what}[${i}]`));
}

/** Parses data.pkl and locates every tensor; reads no tensor data. */
function indexStateDict(path: string, zip: ZipReader): TorchTensorInfo[] {
  const pkls = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1) {
    throw new ModelFormatError(path, `expected one <archive>/data.pkl in the torch zip, found ${pkls.length ? pkls.join(', ') : 'none'}`);
  }
  const archive = pkls[0].slice(0, -'data.pkl'.length);
  const pklEntry = zip.entries.get(pkls[0])!;
  if (pklEntry.size > 256 * 1024 * 1024) throw new ModelFormatError(path, `${pkls[0]} is absurdly large (${pklEntry.size} bytes)`);
  const storages = new Map<string, StorageRef>();
  const tensorRefs = new WeakSet<object>();

  const globals: Record<string, PickleGlobal> = {
    'collections.OrderedDict': {
      module: 'collections', name: 'OrderedDict',
      call: (args) => {
        const m = new Map<unknown, unknown>();
        if (args.length && Array.isArray(args[0])) {
          for (const kv of args[0] as unknown[]) if (Array.isArray(kv) && kv.length === 2) m.set(kv[0], kv[1]);
        }
        return m;
      },
    },
    'torch._utils._rebuild_tensor_v2': {
      module: 'torch._utils', name: '_rebuild_tensor_v2',
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      call: (args) => {
        if (args.length < 4) throw new UnpickleError(`_rebuild_tensor_v2 with ${args.length} arguments`);
        const storage = args[0] as StorageRef;
        if (!storage || typeof storage !== 'object' || !('entry' in storage)) throw new UnpickleError('_rebuild_tensor_v2 without a storage');
        const offset = int(args[1], 'storage_offset');
        const shape = intTuple(args[2], 'size');
        const stride = intTuple(args[3], 'stride');
        if (stride.length !== shape.length) throw new UnpickleError(`size ${JSON.stringify(shape)} and stride ${JSON.stringify(stride)} differ in rank`);
        // Only contiguous row-major tensors: a state dict saved from a module always is.
        let expect = 1;
        for (let i = shape.length - 1; i >= 0; i--) {
          if (shape[i] !== 1 && stride[i] !== expect) {
            throw new UnpickleError(`tensor with size ${JSON.stringify(shape)} and stride ${JSON.stringify(stride)} is not contiguous; save .contiguous() tensors or convert to safetensors`);
          }
          expect *= shape[i];
        }
        const numel = numelOf(shape);
        if (offset + numel > storage.numel) {
          throw new UnpickleError(`tensor [${shape.join(', ')}] at offset ${offset} runs past its storage (${storage.numel} elements)`);
        }
        const ref: TensorRef = { storage, offset, shape };
        tensorRefs.add(ref);
        return ref;
      },
    },
    'torch._utils._rebuild_parameter': {
      module: 'torch._utils', name: '_rebuild_parameter',
      call: (args) => {
        if (!args.length || !tensorRefs.has(args[0] as object)) throw new UnpickleError('_rebuild_parameter without a tensor');
        return args[0];
      },
    },
  };
  for (const [name, dtype] of Object.entries(STORAGE_DTYPES)) globals[`torch.${name}`] = new StorageType(name, dtype);

  let root: unknown;
  try {
    root = unpickle(zip.read(pklEntry), {
      findGlobal: (module, name) => {
        const g = globals[`${module}.${name}`];
        if (!g || !Object.prototype.hasOwnProperty.call(globals, `${module}.${name}`)) {
          throw new UnpickleError(`refusing global ${module}.${name}: a state dict only needs ${ALLOWED_GLOBALS.join(', ')}. ` +
            'The file may be malicious; nothing from it was run');
        }
        return g;
      },
      persistentLoad: (pid) => {
        // ('storage', storage_type, key, location, numel)
        if (!Array.isArray(pid) || pid.length < 5 || pid[0] !== 'storage' || !(pid[1] instanceof StorageType)) {
          throw new UnpickleError('persistent id is not a (\'storage\', type, key, location, numel) tuple');
        }
        const key = pid[2];
        if (typeof key !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(key)) throw new UnpickleError(`bad storage key ${JSON.stringify(key)}`);
        const cached = storages.get(key);
        if (cached) return cached;
        const dtype = pid[1].dtype;
        const numel = int(pid[4], 'storage numel');
        const entry = zip.entries.get(`${archive}data/${key}`);
        if (!entry) throw new UnpickleError(`storage ${key} has no zip entry ${archive}data/${key}`);
        if (entry.size !== numel * DTYPE_BYTES[dtype]) {
          throw new UnpickleError(`storage ${key}: entry has ${entry.size} bytes, expected ${numel} x ${DTYPE_BYTES[dtype]}`);
        }
        const ref: StorageRef = { dtype, entry, numel };
        storages.set(key, ref);
        return ref;
      },
      // The state dict's OrderedDict carries `_metadata` (module versions) as BUILD state: ignored.
      build: (obj, state) => {
        if (obj instanceof Map) return obj;
        throw new UnpickleError(`BUILD on an unexpected object (state ${typeof state})`);
      },
    });
  } catch (err) {
    // RangeError: a shape whose element count is not an exact integer (numelOf).
    if (err instanceof UnpickleError || err instanceof RangeError) {
      throw new ModelFormatError(path, `${pkls[0]}: ${err.message}`, { cause: err });
    }
    throw err;
  }
  if (!(root instanceof Map)) throw new ModelFormatError(path, 'data.pkl does not hold a state dict (an OrderedDict of tensors)');
  const out: TorchTensorInfo[] = [];
  for (const [name, value] of root) {
    if (typeof name !== 'string') throw new ModelFormatError(path, `state dict key ${String(name)} is not a string`);
    if (!tensorRefs.has(value as object)) {
      throw new ModelFormatError(path, `state dict entry "${name}" is not a tensor`);
    }
    const t = value as TensorRef;
    const es = DTYPE_BYTES[t.storage.dtype];
    out.push({ name, dtype: t.storage.dtype, shape: t.shape, numel: numelOf(t.shape), entry: t.storage.entry, byteOffset: t.offset * es });
  }
  return out;
}

/** Lists the tensors of a pytorch_model.bin (names, dtypes, shapes) without reading their data. */
export function readTorchBinIndex(path: string): TorchTensorInfo[] {
  checkFormat(path);
  const zip = ZipReader.open(path);
  try {
    return indexStateDict(path, zip);
  } finally {
    zip.close();
  }
}

/**
 * Loads the selected float tensors of a pytorch_model.bin as float32 (integer buffers are skipped;
 * another selected non-float dtype is an Error).
 */
export async function readTorchBin(path: string, options: { select?: (info: TorchTensorInfo) => boolean } = {}): Promise<Map<string, FloatTensor>> {
  checkFormat(path);
  const zip = ZipReader.open(path);
  try {
    const out = new Map<string, FloatTensor>();
    for (const t of indexStateDict(path, zip)) {
      if (INT_DTYPES.has(t.dtype)) continue;
      if (options.select && !options.select(t)) continue;
      if (!FLOAT_DTYPES.has(t.dtype)) throw new ModelFormatError(path, `tensor "${t.name}" has dtype ${t.dtype}; weights must be float32, float16 or bfloat16`);
      const dtype = t.dtype as FloatDtype;
      const bytes = t.numel * DTYPE_BYTES[dtype];
      let data: Float32Array;
      if (dtype === 'F32') {
        data = new Float32Array(t.numel);
        zip.read(t.entry, t.byteOffset, bytes, new Uint8Array(data.buffer));
      } else {
        data = decodeFloats(dtype, zip.read(t.entry, t.byteOffset, bytes));
      }
      out.set(t.name, { dtype, shape: t.shape, data });
    }
    return out;
  } finally {
    zip.close();
  }
}

/**
 * Writes tensors as torch.save(state_dict) would (zip format, pickle protocol 2, one storage per
 * tensor): a file torch.load reads, for fixtures and the generator.
 */
export function writeTorchZip(path: string, tensors: Map<string, TensorToWrite>,
  options: { archive?: string; forceZip64?: boolean } = {}): void {
  const archive = options.archive ?? 'archive';
  const p = new PickleWriter().proto(2);
  p.global('collections', 'OrderedDict').put().emptyTuple().reduce().put().mark();
  const storages: { name: string; data: Uint8Array }[] = [];
  let key = 0;
  for (const [name, t] of tensors) {
    const storageType = DTYPE_STORAGES[t.dtype];
    if (!storageType) throw new Error(`writeTorchZip: dtype ${t.dtype} of ${name}`);
    const data = encodeTensor(name, t);
    const numel = numelOf(t.shape);
    const k = String(key++);
    storages.push({ name: `${archive}/data/${k}`, data });
    p.str(name).put();
    p.global('torch._utils', '_rebuild_tensor_v2').put();
    p.mark();
    p.mark().str('storage').global('torch', storageType).put().str(k).put().str('cpu').put().int(numel).tuple().put().binpersid().put();
    p.int(0);
    p.mark();
    for (const d of t.shape) p.int(d);
    p.tuple().put();
    p.mark();
    let stride = 1;
    const strides: number[] = [];
    for (let i = t.shape.length - 1; i >= 0; i--) {
      strides.unshift(stride);
      stride *= t.shape[i];
    }
    for (const s of strides) p.int(s);
    p.tuple().put();
    p.bool(false);
    p.global('collections', 'OrderedDict').put().emptyTuple().reduce().put();
    p.tuple().put().reduce().put();
  }
  p.setitems().stop();
  writeZip(path, [
    { name: `${archive}/data.pkl`, data: p.bytes() },
    { name: `${archive}/byteorder`, data: Buffer.from('little') },
    ...storages,
    { name: `${archive}/version`, data: Buffer.from('3\n') },
  ], { forceZip64: options.forceZip64 });
}

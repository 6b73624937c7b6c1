/**
 * Embeddings computed once, kept on disk, reused by every later train / eval run on the same texts.
 *
 * Key: sha256 over (weights sha256, tokenizer.json sha256, config.json sha256, pooling, max length, the
 * texts in order). config.json is included because it changes the numerics (layer_norm_eps, ...) without
 * touching the weights. One entry = one Arrow IPC file `<key>.arrow` with a single FixedSizeList<float32>
 * column `embedding`; the schema metadata repeats the key, the shape and a sha256 of the float bytes, so a
 * truncated or bit-flipped file is detected on read and recomputed. Files are written atomically.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  Field,
  FixedSizeList,
  Float32,
  makeData,
  RecordBatch,
  RecordBatchFileWriter,
  RecordBatchReader,
  Schema,
  Struct,
  type Data,
} from 'apache-arrow';
import { defaultMaxLength, type Encoder, type Pooling } from '../encoder.js';
import { readModelSpec } from '../model/config.js';
import { sha256Files } from '../model/load.js';
import { parseDevice, selectDevice } from '../device/index.js';
import { loadAddon } from '../native/addon.js';
import type { ModelSpec } from '../model/types.js';
import { ipcDrainer } from '../data/arrow-ipc.js';
import { createAtomicFile } from '../util/atomic-write.js';
import { UsageError } from '../util/errors.js';
import { Progress } from '../util/progress.js';

const FORMAT = 'edu-train-embeddings-v1';

/** What identifies an encoder's outputs: everything the cache key needs, read without loading the weights. */
export interface ModelIdentity {
  dir: string;
  architecture: string;
  modelType: string;
  hiddenSize: number;
  hasPooler: boolean;
  weightsSha256: string;
  tokenizerSha256: string;
  configSha256: string;
  /** The effective max length (the --max-length given, or the model default). */
  maxLength: number;
}

export function defaultCacheDir(): string {
  return process.env.EDU_TRAIN_CACHE || join(homedir(), '.cache', 'edu-train', 'embeddings');
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Hashes the model folder's files; validates --max-length against the model like Encoder.load does. */
export async function modelIdentity(dir: string, maxLength?: number): Promise<{ identity: ModelIdentity; spec: ModelSpec }> {
  const spec = readModelSpec(dir);
  const limit = spec.config.maxPositions - spec.config.positionOffset;
  const ml = maxLength ?? defaultMaxLength(spec);
  if (!Number.isInteger(ml) || ml < 2 || ml > limit) {
    throw new UsageError(`--max-length ${ml} is outside [2, ${limit}] for ${spec.dir}`);
  }
  const tokenizerFile = join(spec.dir, 'tokenizer.json');
  let tokenizerSha256: string;
  try {
    tokenizerSha256 = sha256File(tokenizerFile);
  } catch {
    throw new UsageError(`No tokenizer found: ${tokenizerFile} does not exist`);
  }
  return {
    spec,
    identity: {
      dir: spec.dir,
      architecture: spec.architecture,
      modelType: spec.config.modelType,
      hiddenSize: spec.config.hiddenSize,
      hasPooler: spec.hasPooler,
      weightsSha256: await sha256Files(spec.weightFiles),
      tokenizerSha256,
      configSha256: sha256File(join(spec.dir, 'config.json')),
      maxLength: ml,
    },
  };
}

/**
 * The cache key of (model, pooling, max length, numerics, texts). Texts are length-prefixed, so no two
 * lists collide. `numerics` says what arithmetic produced the vectors ('fp32' on the CPU, 'cpu-bf16',
 * 'cuda-bf16' ...): bf16 embeddings (CPU or GPU) must never be served to a run that asked for fp32 ones.
 */
export function embeddingCacheKey(identity: Pick<ModelIdentity, 'weightsSha256' | 'tokenizerSha256' | 'configSha256' | 'maxLength'>,
  pooling: Pooling, texts: readonly string[], numerics = 'fp32'): string {
  const h = createHash('sha256');
  h.update(`${FORMAT}\n${identity.weightsSha256}\n${identity.tokenizerSha256}\n${identity.configSha256}\n${pooling}\n${identity.maxLength}\n${numerics}\n${texts.length}\n`);
  const len = Buffer.alloc(8);
  for (const t of texts) {
    const b = Buffer.from(t, 'utf8');
    len.writeBigUInt64LE(BigInt(b.byteLength));
    h.update(len);
    h.update(b);
  }
  return h.digest('hex');
}

function floatsSha256(x: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(x.buffer, x.byteOffset, x.byteLength)).digest('hex');
}

export type CacheLookup =
  | { status: 'hit'; embeddings: Float32Array; path: string }
  | { status: 'miss'; path: string }
  | { status: 'corrupt'; path: string; reason: string };

const ROWS_PER_BATCH = 16384;

export class EmbeddingCache {
  readonly dir: string;

  constructor(dir: string = defaultCacheDir()) {
    this.dir = resolve(dir);
  }

  pathFor(key: string): string {
    return join(this.dir, `${key}.arrow`);
  }

  /** Reads an entry; anything unexpected (unreadable, wrong shape, wrong checksum) is 'corrupt', never a throw. */
  async load(key: string, rows: number, hidden: number): Promise<CacheLookup> {
    const path = this.pathFor(key);
    let fh;
    try {
      fh = await open(path, 'r');
    } catch {
      return { status: 'miss', path };
    }
    try {
      const reader = await RecordBatchReader.from(fh);
      await reader.open();
      const meta = reader.schema?.metadata;
      const expect = { format: FORMAT, key, rows: String(rows), hidden: String(hidden) };
      for (const [k, v] of Object.entries(expect)) {
        if (meta?.get(k) !== v) return { status: 'corrupt', path, reason: `metadata ${k} is ${meta?.get(k)}, expected ${v}` };
      }
      const out = new Float32Array(rows * hidden);
      let filled = 0;
      for await (const rb of reader) {
        const col = (rb as RecordBatch).getChildAt(0);
        if (!col) return { status: 'corrupt', path, reason: 'no embedding column' };
        for (const d of col.data as Data[]) {
          const values = d.children[0].values as Float32Array;
          const part = values.subarray(d.offset * hidden, (d.offset + d.length) * hidden);
          if (filled + part.length > out.length || part.length !== d.length * hidden) {
            return { status: 'corrupt', path, reason: 'more rows than recorded' };
          }
          out.set(part, filled);
          filled += part.length;
        }
      }
      if (filled !== out.length) return { status: 'corrupt', path, reason: `${filled / hidden} rows, expected ${rows}` };
      if (floatsSha256(out) !== meta!.get('sha256')) return { status: 'corrupt', path, reason: 'checksum mismatch' };
      return { status: 'hit', embeddings: out, path };
    } catch (e) {
      return { status: 'corrupt', path, reason: (e as Error).message };
    } finally {
      await fh.close().catch(() => {});
    }
  }

  /** Writes an entry atomically (temp file + rename); returns its path. */
  async store(key: string, embeddings: Float32Array, hidden: number, extra: Record<string, string> = {}): Promise<string> {
    mkdirSync(this.dir, { recursive: true });
    const path = this.pathFor(key);
    const rows = embeddings.length / hidden;
    const item = new Field('item', new Float32(), false);
    const fields = [new Field('embedding', new FixedSizeList(hidden, item), false)];
    const metadata = new Map<string, string>(Object.entries({
      ...extra, format: FORMAT, key, rows: String(rows), hidden: String(hidden), sha256: floatsSha256(embeddings),
    }));
    const schema = new Schema(fields, metadata);
    const file = await createAtomicFile(path);
    try {
      const w = new RecordBatchFileWriter();
      w.reset(undefined, schema);
      const drain = ipcDrainer(w, file.handle); // memory stays about one batch
      for (let start = 0; start < rows; start += ROWS_PER_BATCH) {
        const n = Math.min(ROWS_PER_BATCH, rows - start);
        const child = makeData({ type: new Float32(), length: n * hidden, data: embeddings.subarray(start * hidden, (start + n) * hidden) });
        const list = makeData({ type: fields[0].type as FixedSizeList<Float32>, length: n, nullCount: 0, child });
        const struct = makeData({ type: new Struct(fields), length: n, nullCount: 0, children: [list] });
        w.write(new RecordBatch(schema, struct));
        await drain(false);
      }
      w.close();
      await drain(true);
      await file.commit();
    } catch (e) {
      await file.abort();
      throw e;
    }
    return path;
  }

  remove(key: string): void {
    rmSync(this.pathFor(key), { force: true });
  }
}

export interface ComputeOptions {
  pooling: Pooling;
  batchSize: number;
  quiet?: boolean;
  label?: string;
}

/** Runs the encoder over texts in chunks, tokenizing chunk k+1 while chunk k runs; rows in input order. */
export async function computeEmbeddings(encoder: Encoder, texts: readonly string[], o: ComputeOptions): Promise<Float32Array> {
  const tokenizer = encoder.tokenizer;
  if (!tokenizer) throw new Error('internal: computing embeddings needs a tokenizer');
  const hidden = encoder.hiddenSize;
  const out = new Float32Array(texts.length * hidden);
  const chunk = Math.max(o.batchSize * 16, 512);
  const progress = new Progress({ total: texts.length, unit: 'docs', secondaryUnit: 'tokens', label: o.label ?? 'embed', quiet: o.quiet });
  let next = texts.length > 0 ? tokenizer.encode(texts.slice(0, chunk)) : null;
  for (let start = 0; start < texts.length; start += chunk) {
    const encoded = await next!;
    const after = start + chunk;
    next = after < texts.length ? tokenizer.encode(texts.slice(after, after + chunk)) : null;
    const r = await encoder.embedEncoded(encoded, { pooling: o.pooling, batchSize: o.batchSize });
    out.set(r.embeddings, start * hidden);
    progress.tick(encoded.length, r.stats.tokens);
  }
  progress.finish();
  return out;
}

export type CacheStatus = 'hit' | 'miss' | 'recomputed' | 'off';

export interface CachedEmbeddingsRequest {
  cache: EmbeddingCache | null;
  identity: ModelIdentity;
  pooling: Pooling;
  texts: readonly string[];
  /** The arithmetic the encoder will use (see embeddingNumerics); default 'fp32'. */
  numerics?: string;
  /** Called only on a miss: the encoder is loaded lazily, so a hit never touches the weights. */
  compute: () => Promise<Float32Array>;
  /** One line per lookup (hit / computed / corrupt), for logs and tests. */
  log?: (line: string) => void;
  what?: string;
}

export interface CachedEmbeddings {
  embeddings: Float32Array;
  status: CacheStatus;
  key: string;
  path?: string;
}

export async function cachedEmbeddings(req: CachedEmbeddingsRequest): Promise<CachedEmbeddings> {
  const { identity, texts } = req;
  const log = req.log ?? (() => {});
  const what = req.what ?? 'texts';
  const key = embeddingCacheKey(identity, req.pooling, texts, req.numerics);
  const hidden = identity.hiddenSize;
  if (!req.cache) {
    const embeddings = await req.compute();
    log(`embeddings (${what}, ${texts.length} texts): computed, cache off`);
    return { embeddings, status: 'off', key };
  }
  const found = await req.cache.load(key, texts.length, hidden);
  if (found.status === 'hit') {
    log(`embeddings (${what}, ${texts.length} texts): cache hit ${found.path}`);
    return { embeddings: found.embeddings, status: 'hit', key, path: found.path };
  }
  if (found.status === 'corrupt') log(`embeddings (${what}): cache file ${found.path} is unusable (${found.reason}); recomputing`);
  const embeddings = await req.compute();
  if (embeddings.length !== texts.length * hidden) throw new Error(`internal: computed ${embeddings.length} values, expected ${texts.length} x ${hidden}`);
  const path = await req.cache.store(key, embeddings, hidden, { pooling: req.pooling, model_dir: identity.dir, max_length: String(identity.maxLength) });
  log(`embeddings (${what}, ${texts.length} texts): computed by the encoder, cached at ${path}`);
  return { embeddings, status: found.status === 'corrupt' ? 'recomputed' : 'miss', key, path };
}

/**
 * What arithmetic an encoder loaded with these options will use, without loading it: 'fp32' or
 * 'cpu-bf16' (--dtype bf16) on the CPU, 'cuda-bf16' / 'cuda-fp32' on a GPU (`auto` resolves the same
 * way loadEncoder does). Encoder.numerics gives the same string for a loaded encoder. CPU fp32 keeps
 * the plain 'fp32' of earlier versions, so existing cache entries stay valid.
 */
export function embeddingNumerics(device: string | undefined, precision: string | undefined, dtype?: string): string {
  const choice = selectDevice(parseDevice(device), () => loadAddon().cudaInfo?.());
  if (choice.kind === 'cuda') return `cuda-${precision ?? 'bf16'}`;
  return dtype === 'bf16' ? 'cpu-bf16' : 'fp32';
}

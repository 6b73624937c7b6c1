/**
 * The library's front door for running an encoder: load a Hugging Face model folder once, keep its
 * weights in the native addon, and run forward passes or whole-text embedding on it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readModelSpec } from './model/config.js';
import { loadWeights } from './model/load.js';
import { applyPipeline, loadSentenceTransformers, requiredOutputs, type SentenceTransformersPipeline } from './model/sentence-transformers.js';
import type { ModelSpec } from './model/types.js';
import { defaultMaxBatchTokens, describeChoice, deviceFlag, parseDevice, runBatches, selectDevice, type OomEvent } from './device/index.js';
import type { CpuDtype, CpuIsa, CudaPrecision, NativeCudaEncoder, NativeEncoder, NativeForwardResult } from './native/addon-types.js';
import { loadAddon } from './native/addon.js';
import { TextTokenizer, padEncoded, type Encoded } from './tokenize/tokenizer.js';
import { UsageError } from './util/errors.js';
import { l2NormalizeRows } from './util/vectors.js';

export type Device = 'cpu' | 'auto' | 'cuda' | `cuda:${number}`;
export type Pooling = 'mean' | 'cls' | 'pooler';
/** Pooling of embed(): the encoder poolings, or the folder's own sentence-transformers pipeline (modules.json). */
export type EmbedPooling = Pooling | 'sentence-transformers';

export interface LoadEncoderOptions {
  /**
   * 'cpu' (default), 'cuda' / 'cuda:N' (an error when no usable GPU: never a silent CPU fallback) or
   * 'auto' (the first usable GPU, else the CPU; the choice is logged).
   */
  device?: Device | string;
  /** CUDA arithmetic: 'bf16' (default: tensor cores, fp32 accumulation) or 'fp32' (the GPU reference path). */
  precision?: CudaPrecision;
  /** GPU batches: at most this many padded tokens per forward (default: sized from free GPU memory). */
  maxBatchTokens?: number;
  /** Where device notes go (auto's choice, out-of-memory retries); default stderr. */
  log?: (line: string) => void;
  /** CPU threads for the kernels (default: all available). */
  threads?: number;
  /** Force a CPU code path (default: best supported, or EDU_TRAIN_CPU_ISA). 'amx' is a bf16-only path. */
  isa?: CpuIsa;
  /**
   * CPU arithmetic of the linear layers: 'fp32' (default) or 'bf16' (weights rounded to bf16 once at
   * load, activations per GEMM, fp32 accumulation; LayerNorm, attention, GELU and pooling stay fp32).
   * A GPU has its own `precision`; 'bf16' with a CUDA device is an error.
   */
  dtype?: CpuDtype;
  /** Maximum tokens per text; default min(512, max positions usable, sentence-transformers max_seq_length). */
  maxLength?: number;
  /** Skip loading tokenizer.json (forward() on token ids only). */
  withoutTokenizer?: boolean;
}

/** Where and how an encoder runs, as the CLI's device flags (--device, --precision, --max-batch-tokens, --threads, --dtype) and EDU_TRAIN_CPU_ISA set it. */
export type EncoderRuntime = Pick<LoadEncoderOptions, 'device' | 'precision' | 'maxBatchTokens' | 'threads' | 'isa' | 'dtype'>;

/** Token ids for forward(): nested arrays [batch][seqLen] or flat typed arrays with shape. */
export interface ForwardInputs {
  input_ids: number[][];
  attention_mask?: number[][];
  token_type_ids?: number[][];
}

export interface ForwardOutputs {
  shape: { batch: number; seqLen: number; hidden: number };
  last_hidden_state: Float32Array;
  mean_pooled: Float32Array;
  mean_pooled_normalized: Float32Array;
  cls: Float32Array;
  pooler_output?: Float32Array;
  logits?: Float32Array;
}

export interface EmbedOptions {
  /** Default 'mean'. 'sentence-transformers' runs the folder's Pooling/Dense/Normalize modules (SentenceTransformer.encode). */
  pooling?: EmbedPooling;
  normalize?: boolean;
  /** Texts per forward pass (default 32). Texts are sorted by length first, so batches carry little padding. */
  batchSize?: number;
  /** Optional second segments (sentence pairs). */
  pairs?: readonly string[];
}

export interface EmbedStats {
  texts: number;
  /** Real tokens run through the encoder (special tokens included, padding excluded). */
  tokens: number;
  /** Tokens computed including padding. */
  paddedTokens: number;
  truncatedTexts: number;
  droppedTokens: number;
}

export interface EmbedResult {
  /** [texts, hidden] row-major. */
  embeddings: Float32Array;
  hidden: number;
  stats: EmbedStats;
}

export class Encoder {
  readonly spec: ModelSpec;
  readonly weightsSha256: string;
  readonly tokenizer: TextTokenizer | null;
  readonly device: 'cpu' | 'cuda';
  /** GPU token budget per forward (undefined on the CPU: fixed batch sizes). */
  maxBatchTokens: number | undefined;
  /** Where device notes go (out-of-memory retries). */
  log: (line: string) => void = (line) => process.stderr.write(`${line}\n`);
  /** The folder's sentence-transformers modules (modules.json), or null for a plain transformers folder. */
  readonly sentenceTransformers: SentenceTransformersPipeline | null;
  private readonly native: NativeEncoder | NativeCudaEncoder;
  private disposed = false;

  private constructor(spec: ModelSpec, native: NativeEncoder | NativeCudaEncoder, sha256: string, tokenizer: TextTokenizer | null,
    st: SentenceTransformersPipeline | null) {
    this.spec = spec;
    this.native = native;
    this.weightsSha256 = sha256;
    this.tokenizer = tokenizer;
    this.device = 'precision' in native ? 'cuda' : 'cpu';
    this.sentenceTransformers = st;
  }

  static async load(dir: string, options: LoadEncoderOptions = {}): Promise<Encoder> {
    const dtype = parseCpuDtype(options.dtype);
    const deviceRequest = parseDevice(options.device);
    // --dtype is the CPU's arithmetic; a GPU has its own (--precision). Contradictions fail before any work.
    const gpuDtypeError = (where: string) => new UsageError(
      `--dtype bf16 selects the CPU's bf16 arithmetic, but the encoder runs on ${where}; on a GPU use --precision bf16|fp32 instead (and leave --dtype at fp32).`,
    );
    if (deviceRequest.kind === 'cuda' && dtype === 'bf16') throw gpuDtypeError(deviceFlag(deviceRequest).replace('--device ', ''));
    const choice = selectDevice(deviceRequest, () => loadAddon().cudaInfo?.());
    if (choice.kind === 'cuda' && dtype === 'bf16') throw gpuDtypeError(`cuda:${choice.index} (chosen by --device auto)`);
    const spec = await readModelSpec(dir);
    const maxLength = options.maxLength ?? defaultMaxLength(spec);
    validateMaxLength(spec, maxLength);
    const tokenizer = options.withoutTokenizer
      ? null
      : TextTokenizer.load(spec.dir, { maxLength, padId: spec.config.padTokenId });
    const weights = await loadWeights(spec);
    const st = await loadSentenceTransformers(spec.dir, spec.config.hiddenSize);
    const addon = loadAddon();
    const c = spec.config;
    const nativeConfig = {
      vocabSize: c.vocabSize,
      hiddenSize: c.hiddenSize,
      embeddingSize: c.embeddingSize,
      numLayers: c.numLayers,
      numHeads: c.numHeads,
      intermediateSize: c.intermediateSize,
      maxPositions: c.maxPositions,
      typeVocabSize: c.typeVocabSize,
      layerNormEps: c.layerNormEps,
      padTokenId: c.padTokenId,
      positionStyle: c.positionStyle,
      hasPooler: spec.hasPooler,
      head: spec.head.kind,
      numLabels: spec.head.kind === 'none' ? 0 : spec.head.numLabels,
    };
    const tensors = Object.fromEntries(weights.tensors);
    let native: NativeEncoder | NativeCudaEncoder;
    let kernels: string;
    if (choice.kind === 'cuda') {
      if (addon.CudaEncoder === undefined) throw new UsageError(`--device cuda: this build of edu-train has no CUDA backend`);
      try {
        native = new addon.CudaEncoder(nativeConfig, tensors, { deviceIndex: choice.index, precision: options.precision });
      } catch (err) {
        throw new UsageError(`--device cuda:${choice.index}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      kernels = `${native.device} ${native.precision}: ${native.kernels}`;
    } else {
      native = new addon.Encoder(nativeConfig, tensors, { threads: options.threads, isa: options.isa, dtype });
      kernels = `cpu ${native.isa}${native.dtype === 'bf16' ? ' bf16' : ''} x ${native.threads} threads`;
    }
    const encoder = new Encoder(spec, native, weights.sha256, tokenizer, st);
    if (options.log) encoder.log = options.log;
    if ('memInfo' in native) {
      encoder.maxBatchTokens = options.maxBatchTokens ??
        defaultMaxBatchTokens({ freeBytes: native.memInfo().free, bytesPerToken: native.bytesPerToken });
    } else {
      encoder.maxBatchTokens = options.maxBatchTokens;
    }
    if (deviceRequest.kind === 'auto') encoder.log(describeChoice(choice, kernels));
    return encoder;
  }

  /** The pooling the folder prescribes: its sentence-transformers pipeline when it has one, else mean. */
  get defaultPooling(): EmbedPooling {
    return this.sentenceTransformers ? 'sentence-transformers' : 'mean';
  }

  /** Width of embed()'s vectors for a pooling (a sentence-transformers Dense may change it). */
  embeddingSize(pooling: EmbedPooling = 'mean'): number {
    return pooling === 'sentence-transformers' ? this.requireSt().outputDim : this.hiddenSize;
  }

  get hiddenSize(): number {
    return this.spec.config.hiddenSize;
  }

  get isa(): string {
    return 'isa' in this.native ? this.native.isa : `cuda-${this.native.precision}`;
  }

  get threads(): number {
    return 'threads' in this.native ? this.native.threads : 1;
  }

  /** CPU arithmetic ('fp32' | 'bf16'); undefined on a GPU (see `numerics`). */
  get dtype(): CpuDtype | undefined {
    return 'dtype' in this.native ? this.native.dtype : undefined;
  }

  /**
   * The arithmetic that produced this encoder's outputs, as the embedding cache keys it: 'fp32' (CPU),
   * 'cpu-bf16', 'cuda-bf16' or 'cuda-fp32'.
   */
  get numerics(): string {
    if ('precision' in this.native) return `cuda-${this.native.precision}`;
    return this.native.dtype === 'bf16' ? 'cpu-bf16' : 'fp32';
  }

  /** Runs the encoder on token ids, returning every output the model has. */
  async forward(inputs: ForwardInputs): Promise<ForwardOutputs> {
    this.assertLive();
    const { batch, seqLen, inputIds, attentionMask, tokenTypeIds } = flattenInputs(inputs, this.spec);
    const r = await this.native.forward({
      inputIds,
      attentionMask,
      tokenTypeIds,
      batch,
      seqLen,
      outputs: {
        lastHiddenState: true,
        meanPooled: true,
        cls: true,
        pooler: this.spec.hasPooler,
        logits: this.spec.head.kind !== 'none',
      },
    });
    const hidden = this.hiddenSize;
    return {
      shape: { batch, seqLen, hidden },
      last_hidden_state: required(r.lastHiddenState, 'lastHiddenState'),
      mean_pooled: required(r.meanPooled, 'meanPooled'),
      mean_pooled_normalized: l2NormalizeRows(required(r.meanPooled, 'meanPooled'), hidden),
      cls: required(r.cls, 'cls'),
      pooler_output: r.poolerOutput,
      logits: r.logits,
    };
  }

  /** Tokenizes and embeds texts; returns one pooled vector per text, in input order. */
  async embed(texts: readonly string[], options: EmbedOptions = {}): Promise<EmbedResult> {
    this.assertLive();
    const tokenizer = this.requireTokenizer();
    const encoded = await tokenizer.encode(texts, options.pairs);
    return this.embedEncoded(encoded, options);
  }

  /** Embeds already tokenized rows (see TextTokenizer.encode); the building block of streaming jobs. */
  async embedEncoded(encoded: readonly Encoded[], options: EmbedOptions = {}): Promise<EmbedResult> {
    this.assertLive();
    const pooling = options.pooling ?? 'mean';
    const st = pooling === 'sentence-transformers' ? this.requireSt() : null;
    const batchSize = options.batchSize ?? 32;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new UsageError(`batch size must be a positive integer, got ${batchSize}`);
    }
    if (pooling === 'pooler' && !this.spec.hasPooler) {
      throw new UsageError(`--pooling pooler needs a model with a pooler (pooler.dense.*); ${this.spec.dir} has none. Use mean or cls.`);
    }
    const hidden = this.hiddenSize;
    const width = st ? st.outputDim : hidden;
    const n = encoded.length;
    const embeddings = new Float32Array(n * width);
    const stats: EmbedStats = { texts: n, tokens: 0, paddedTokens: 0, truncatedTexts: 0, droppedTokens: 0 };
    // Longest first: similar lengths share a batch, so little compute is spent on padding.
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => encoded[b].ids.length - encoded[a].ids.length);
    const padId = this.spec.config.padTokenId;
    const lengths = order.map((i) => encoded[i].ids.length);
    await runBatches({ lengths, maxTokens: this.maxBatchTokens, maxRows: batchSize, onOom: (e) => this.reportOom(e) }, async (start, end) => {
      const rows = order.slice(start, end);
      const batch = padEncoded(rows.map((i) => encoded[i]), padId);
      const r = await this.native.forward({
        inputIds: batch.inputIds,
        attentionMask: batch.attentionMask,
        tokenTypeIds: batch.tokenTypeIds,
        batch: batch.batch,
        seqLen: batch.seqLen,
        outputs: st ? requiredOutputs(st) : { meanPooled: pooling === 'mean', cls: pooling === 'cls', pooler: pooling === 'pooler' },
      });
      const pooled = st
        ? applyPipeline(st, { ...r, batch: batch.batch, seqLen: batch.seqLen, hidden, attentionMask: batch.attentionMask })
        : pooledOutput(r, pooling as Pooling);
      rows.forEach((row, j) => embeddings.set(pooled.subarray(j * width, (j + 1) * width), row * width));
      stats.paddedTokens += batch.batch * batch.seqLen;
    });
    for (const e of encoded) {
      stats.tokens += e.ids.length;
      if (e.droppedTokens > 0) {
        stats.truncatedTexts++;
        stats.droppedTokens += e.droppedTokens;
      }
    }
    return { embeddings: options.normalize ? l2NormalizeRows(embeddings, width) : embeddings, hidden: width, stats };
  }

  /**
   * The sequence-classification head's logits ([rows, numLabels], input order) for tokenized rows:
   * what AutoModelForSequenceClassification returns. Needs a folder with a *ForSequenceClassification head.
   */
  async classifyEncoded(encoded: readonly Encoded[], options: { batchSize?: number } = {}): Promise<Float32Array> {
    this.assertLive();
    if (this.spec.head.kind === 'none') {
      throw new UsageError(`${this.spec.dir} (${this.spec.architecture}) has no sequence-classification head`);
    }
    const batchSize = options.batchSize ?? 32;
    const c = this.spec.head.numLabels;
    const n = encoded.length;
    const out = new Float32Array(n * c);
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => encoded[b].ids.length - encoded[a].ids.length);
    const lengths = order.map((i) => encoded[i].ids.length);
    await runBatches({ lengths, maxTokens: this.maxBatchTokens, maxRows: batchSize, onOom: (e) => this.reportOom(e) }, async (start, end) => {
      const rows = order.slice(start, end);
      const batch = padEncoded(rows.map((i) => encoded[i]), this.spec.config.padTokenId);
      const r = await this.native.forward({
        inputIds: batch.inputIds, attentionMask: batch.attentionMask, tokenTypeIds: batch.tokenTypeIds,
        batch: batch.batch, seqLen: batch.seqLen, outputs: { logits: true },
      });
      const logits = required(r.logits, 'logits');
      rows.forEach((row, j) => out.set(logits.subarray(j * c, (j + 1) * c), row * c));
    });
    return out;
  }

  /** Frees the native weights. Safe to call twice. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.native.dispose();
  }

  private reportOom(e: OomEvent): void {
    this.log(`[edu-train] ${this.device}: ${e.message}`);
  }

  private assertLive(): void {
    if (this.disposed) throw new UsageError('This encoder has been disposed.');
  }

  private requireSt(): SentenceTransformersPipeline {
    if (!this.sentenceTransformers) {
      throw new UsageError(`--pooling sentence-transformers needs a sentence-transformers folder (modules.json); ${this.spec.dir} has none`);
    }
    return this.sentenceTransformers;
  }

  private requireTokenizer(): TextTokenizer {
    if (!this.tokenizer) throw new UsageError('This encoder was loaded without a tokenizer.');
    return this.tokenizer;
  }

}

/** Validates a CPU dtype before it reaches the addon (undefined = 'fp32'). */
export function parseCpuDtype(dtype: unknown): CpuDtype {
  if (dtype === undefined) return 'fp32';
  if (dtype === 'fp32' || dtype === 'bf16') return dtype;
  throw new UsageError(`dtype must be 'fp32' or 'bf16', got ${typeof dtype === 'string' ? `'${dtype}'` : String(dtype)}`);
}

/** Loads a model folder (config.json, tokenizer.json, weights) into the native encoder. */
export function loadEncoder(dir: string, options?: LoadEncoderOptions): Promise<Encoder> {
  return Encoder.load(dir, options);
}

function pooledOutput(r: NativeForwardResult, pooling: Pooling): Float32Array {
  const out = pooling === 'mean' ? r.meanPooled : pooling === 'cls' ? r.cls : r.poolerOutput;
  return required(out, pooling);
}

function required<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw new Error(`internal: the native encoder returned no ${name}`);
  return value;
}


/** min(512, positions usable by real tokens, sentence-transformers max_seq_length if the folder has one). */
export function defaultMaxLength(spec: ModelSpec): number {
  let max = Math.min(512, spec.config.maxPositions - spec.config.positionOffset);
  const stConfig = join(spec.dir, 'sentence_bert_config.json');
  if (existsSync(stConfig)) {
    try {
      const s = JSON.parse(readFileSync(stConfig, 'utf8')) as { max_seq_length?: unknown };
      if (typeof s.max_seq_length === 'number' && s.max_seq_length > 0) max = Math.min(max, s.max_seq_length);
    } catch {
      throw new UsageError(`${stConfig} is not valid JSON`);
    }
  }
  return max;
}

function validateMaxLength(spec: ModelSpec, maxLength: number): void {
  const limit = spec.config.maxPositions - spec.config.positionOffset;
  if (!Number.isInteger(maxLength) || maxLength < 2) {
    throw new UsageError(`--max-length must be an integer >= 2, got ${maxLength}`);
  }
  if (maxLength > limit) {
    throw new UsageError(
      `--max-length ${maxLength} is longer than the model allows: max_position_embeddings ${spec.config.maxPositions}` +
        (spec.config.positionOffset ? ` minus the position offset ${spec.config.positionOffset}` : '') +
        ` leaves ${limit} tokens.`,
    );
  }
}

/** Validates nested id arrays (rectangular, integers, in range) and flattens them for the addon. */
function flattenInputs(inputs: ForwardInputs, spec: ModelSpec) {
  const ids = inputs.input_ids;
  if (!Array.isArray(ids) || ids.length === 0 || !Array.isArray(ids[0])) {
    throw new UsageError('input_ids must be a non-empty array of arrays [batch][seq_len]');
  }
  const batch = ids.length;
  const seqLen = ids[0].length;
  if (seqLen === 0) throw new UsageError('input_ids rows must not be empty');
  const flat = (name: string, rows: number[][] | undefined, fill: number, max: number): Int32Array => {
    const out = new Int32Array(batch * seqLen).fill(fill);
    if (rows === undefined) return out;
    if (!Array.isArray(rows) || rows.length !== batch) {
      throw new UsageError(`${name} must have ${batch} rows like input_ids, got ${Array.isArray(rows) ? rows.length : typeof rows}`);
    }
    rows.forEach((row, b) => {
      if (!Array.isArray(row) || row.length !== seqLen) {
        throw new UsageError(
          `${name}[${b}] has ${Array.isArray(row) ? row.length : 'no'} entries; every row must have ${seqLen} (ragged input)`,
        );
      }
      row.forEach((v, t) => {
        if (!Number.isInteger(v) || v < 0 || v >= max) {
          throw new UsageError(`${name}[${b}][${t}] = ${v} is out of range [0, ${max})`);
        }
        out[b * seqLen + t] = v;
      });
    });
    return out;
  };
  const c = spec.config;
  const inputIds = flat('input_ids', ids, 0, c.vocabSize);
  const attentionMask = flat('attention_mask', inputs.attention_mask, 1, 2);
  const tokenTypeIds = flat('token_type_ids', inputs.token_type_ids, 0, c.typeVocabSize);
  if (seqLen > c.maxPositions - c.positionOffset) {
    throw new UsageError(
      `sequence length ${seqLen} is longer than the model supports (${c.maxPositions - c.positionOffset} tokens: ` +
        `max_position_embeddings ${c.maxPositions}${c.positionOffset ? `, position offset ${c.positionOffset}` : ''})`,
    );
  }
  return { batch, seqLen, inputIds, attentionMask, tokenTypeIds };
}

/**
 * The contract of the native addon (build/Release/edu_train.node), as seen from JavaScript.
 *
 * This file is the only description of the N-API boundary; native/ implements it and
 * src/native/addon.ts loads it. Everything here is low level: typed arrays in, typed arrays out,
 * canonical (unprefixed) Hugging Face weight names. Validation of user input happens in TypeScript
 * before this boundary; native/ re-checks sizes and ranges so a bad call is an Error, never a crash.
 */

/**
 * Which CPU code path runs the kernels. 'auto' picks the best one the CPU supports. 'amx' (AMX-BF16
 * tiles) exists for dtype 'bf16' only; with 'bf16', 'avx512' means the AVX512_BF16 instructions.
 */
export type CpuIsa = 'auto' | 'amx' | 'avx512' | 'avx2' | 'scalar';

/**
 * Arithmetic of the CPU encoder's linear layers: 'fp32', or 'bf16' = weights rounded to bf16 once at
 * load, activations rounded to bf16 per GEMM, fp32 accumulation; LayerNorm, attention, GELU, residuals
 * and pooling stay fp32 (kernels/include/edu_bf16.h).
 */
export type CpuDtype = 'fp32' | 'bf16';

export interface CpuInfo {
  /** The fp32 path that 'auto' resolves to on this machine (after EDU_TRAIN_CPU_ISA, if set). */
  isa: Exclude<CpuIsa, 'auto' | 'amx'>;
  /** The bf16 path that 'auto' resolves to (after EDU_TRAIN_CPU_ISA, if set). */
  bf16Isa: Exclude<CpuIsa, 'auto'>;
  /** Every bf16 path this CPU + OS can run, best first (amx needs Linux's AMX permission, asked once). */
  bf16Isas: Exclude<CpuIsa, 'auto'>[];
  amxTile: boolean;
  avx2: boolean;
  fma: boolean;
  avx512f: boolean;
  avx512bf16: boolean;
  amxBf16: boolean;
  /** Logical CPUs the process may use (sched_getaffinity). */
  logicalCpus: number;
}

/** Position ids: 'absolute' = 0..L-1 (BERT, ELECTRA); 'roberta' = pad+1+cumsum(ids != pad), pads get pad. */
export type PositionStyle = 'absolute' | 'roberta';

/**
 * Sequence-classification head on top of the encoder:
 * - 'bert': logits = classifier(pooler_output) with classifier.weight [numLabels, H], classifier.bias.
 * - 'roberta': logits = classifier.out_proj(tanh(classifier.dense(h[:, 0]))).
 * - 'electra': logits = classifier.out_proj(gelu(classifier.dense(h[:, 0]))).
 */
export type NativeHeadKind = 'none' | 'bert' | 'roberta' | 'electra';

export interface NativeEncoderConfig {
  vocabSize: number;
  hiddenSize: number;
  /** ELECTRA: embeddings live in embeddingSize and are projected by embeddings_project when != hiddenSize. */
  embeddingSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  maxPositions: number;
  typeVocabSize: number;
  layerNormEps: number;
  padTokenId: number;
  positionStyle: PositionStyle;
  hasPooler: boolean;
  head: NativeHeadKind;
  /** Number of logits of the head; 0 when head is 'none'. */
  numLabels: number;
}

/**
 * Weights under canonical names (no 'bert.' / 'roberta.' / 'electra.' prefix, LayerNorm as weight/bias):
 *   embeddings.word_embeddings.weight [V, E], embeddings.position_embeddings.weight [P, E],
 *   embeddings.token_type_embeddings.weight [T, E], embeddings.LayerNorm.{weight,bias} [E],
 *   embeddings_project.{weight [H, E], bias [H]}                (only when E != H),
 *   encoder.layer.{i}.attention.self.{query,key,value}.{weight [H, H], bias [H]},
 *   encoder.layer.{i}.attention.output.dense.{weight [H, H], bias},
 *   encoder.layer.{i}.attention.output.LayerNorm.{weight,bias},
 *   encoder.layer.{i}.intermediate.dense.{weight [I, H], bias [I]},
 *   encoder.layer.{i}.output.dense.{weight [H, I], bias [H]},
 *   encoder.layer.{i}.output.LayerNorm.{weight,bias},
 *   pooler.dense.{weight [H, H], bias}                          (when hasPooler),
 *   classifier.{weight [N, H], bias [N]}                        (head 'bert'),
 *   classifier.dense.{weight [H, H], bias}, classifier.out_proj.{weight [N, H], bias [N]} (head 'roberta' | 'electra').
 * Linear weights are [out, in] (y = x W^T + b), row-major float32. The addon copies (and may re-pack)
 * them, so the caller may drop its arrays after construction.
 */
export type NativeWeights = Record<string, Float32Array>;

export interface NativeEncoderOptions {
  /** Threads for the kernels (default: all logical CPUs). */
  threads?: number;
  /**
   * Force a code path; default 'auto' (or EDU_TRAIN_CPU_ISA when set). An unsupported ISA is an Error,
   * and so is 'amx' with dtype 'fp32'.
   */
  isa?: CpuIsa;
  /** Arithmetic of the linear layers; default 'fp32'. */
  dtype?: CpuDtype;
}

export interface NativeForwardRequest {
  /** [batch, seqLen] row-major token ids. */
  inputIds: Int32Array;
  /** [batch, seqLen] 1 = real token, 0 = padding. */
  attentionMask: Int32Array;
  /** [batch, seqLen]; omitted = all zeros. */
  tokenTypeIds?: Int32Array;
  batch: number;
  seqLen: number;
  /** Which outputs to return; anything not asked for may be skipped. */
  outputs: {
    lastHiddenState?: boolean;
    meanPooled?: boolean;
    cls?: boolean;
    pooler?: boolean;
    logits?: boolean;
  };
}

export interface NativeForwardResult {
  /** [batch, seqLen, H] */
  lastHiddenState?: Float32Array;
  /** [batch, H] masked mean, denominator max(sum(mask), 1e-9) */
  meanPooled?: Float32Array;
  /** [batch, H] */
  cls?: Float32Array;
  /** [batch, H] tanh(pooler.dense(h[:, 0])) */
  poolerOutput?: Float32Array;
  /** [batch, numLabels] */
  logits?: Float32Array;
}

export interface NativeEncoder {
  /** Runs on a libuv worker thread; the event loop stays free. Calls on one encoder are serialised. */
  forward(request: NativeForwardRequest): Promise<NativeForwardResult>;
  /** Frees the weights. Idempotent; any later forward() rejects with a clear Error. */
  dispose(): void;
  /** The GEMM code path (with dtype 'bf16': 'amx' | 'avx512' | 'avx2' | 'scalar'). */
  readonly isa: Exclude<CpuIsa, 'auto'>;
  readonly dtype: CpuDtype;
  readonly threads: number;
  /** Bytes held natively for weights. */
  readonly weightBytes: number;
}

export interface NativeEncoderConstructor {
  new (config: NativeEncoderConfig, weights: NativeWeights, options?: NativeEncoderOptions): NativeEncoder;
}

/**
 * Individual kernels, exposed synchronously for unit tests against an independent reference
 * (@tensorflow/tfjs-core). Not for production use: they run on the calling thread.
 */
export interface NativeKernels {
  /** C[M, N] = A[M, K] · W[N, K]^T (+ bias[N]); with transA, A is given as [K, M]. */
  gemm(a: Float32Array, w: Float32Array, bias: Float32Array | null, m: number, n: number, k: number,
    options?: { transA?: boolean; isa?: CpuIsa; threads?: number }): Float32Array;
  /** Row-wise LayerNorm over the last dim of x [rows, cols] (biased variance, eps inside the sqrt). */
  layerNorm(x: Float32Array, gamma: Float32Array, beta: Float32Array, rows: number, cols: number, eps: number,
    options?: { isa?: CpuIsa }): Float32Array;
  /** Exact erf GELU, elementwise. */
  gelu(x: Float32Array, options?: { isa?: CpuIsa }): Float32Array;
  /** Softmax over the last dim of scores [rows, cols]; keys with keyMask[col] == 0 get exactly 0. */
  maskedSoftmax(scores: Float32Array, keyMask: Int32Array, rows: number, cols: number,
    options?: { isa?: CpuIsa }): Float32Array;
  /**
   * Multi-head attention core: q, k, v are [batch, seqLen, heads * headDim] (the projections' outputs),
   * mask [batch, seqLen]; returns softmax(q k^T / sqrt(headDim) + mask) v as [batch, seqLen, heads * headDim].
   */
  attention(q: Float32Array, k: Float32Array, v: Float32Array, mask: Int32Array, batch: number, seqLen: number,
    heads: number, headDim: number, options?: { isa?: CpuIsa; threads?: number }): Float32Array;
  /** Masked mean over the sequence: h [batch, seqLen, H] -> [batch, H]. */
  meanPool(h: Float32Array, mask: Int32Array, batch: number, seqLen: number, hidden: number): Float32Array;
  /**
   * The bf16 linear layer: C[M, N] = bf16(A[M, K]) · bf16(W[N, K])^T (+ bias[N]) with fp32 accumulation,
   * then the epilogue in fp32. isa is a bf16 path ('auto' | 'amx' | 'avx512' | 'avx2' | 'scalar').
   */
  gemmBf16(a: Float32Array, w: Float32Array, bias: Float32Array | null, m: number, n: number, k: number,
    options?: { isa?: CpuIsa; threads?: number; epilogue?: 'none' | 'gelu' | 'tanh' }): Float32Array;
  /** Each value rounded to the nearest bf16 (ties to even; NaN stays NaN), as float32. */
  bf16Round(x: Float32Array): Float32Array;
}

/** Arithmetic of the CUDA encoder: 'fp32' = SIMT reference path, 'bf16' = tensor cores (fp32 accumulation). */
export type CudaPrecision = 'fp32' | 'bf16';

export interface CudaDeviceInfo {
  index: number;
  name: string;
  /** e.g. "9.0" */
  computeCapability: string;
  multiProcessors: number;
  /** Bytes of device memory. */
  totalMemory: number;
  /** compute capability >= 8.0 (the kernels need sm_80+). */
  usable: boolean;
  /** Why the device is not usable. */
  reason?: string;
}

export interface CudaInfo {
  /** The addon was built with nvcc (the CUDA backend exists in this build). */
  compiled: boolean;
  /** CUDA runtime version, e.g. 13000; 0 when not compiled. */
  runtimeVersion: number;
  /** Driver's CUDA version; 0 when no driver is installed. */
  driverVersion: number;
  deviceCount: number;
  /** Why there is no device, e.g. "cudaGetDeviceCount: cudaErrorNoDevice: no CUDA-capable device is detected". */
  error?: string;
  devices: CudaDeviceInfo[];
}

export interface NativeCudaEncoderOptions {
  /** CUDA device ordinal (default 0). */
  deviceIndex?: number;
  /** Default 'bf16'. */
  precision?: CudaPrecision;
}

/**
 * The encoder on a CUDA GPU: same forward() contract as NativeEncoder (computes only real tokens:
 * packed variable-length batches). A CUDA out-of-memory rejection has code 'EDU_CUDA_OOM' and a
 * message containing "CUDA out of memory".
 */
export interface NativeCudaEncoder {
  forward(request: NativeForwardRequest): Promise<NativeForwardResult>;
  dispose(): void;
  /** e.g. "cuda:0 NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)" */
  readonly device: string;
  readonly deviceIndex: number;
  readonly precision: CudaPrecision;
  /** Which kernels run (GEMM, attention, ...), for logs. */
  readonly kernels: string;
  /** Device activation bytes per computed token (sizing --max-batch-tokens). */
  readonly bytesPerToken: number;
  /** Bytes of weights on the device. */
  readonly weightBytes: number;
  /** cudaMemGetInfo of the encoder's device. */
  memInfo(): { free: number; total: number };
}

export interface NativeCudaEncoderConstructor {
  new (config: NativeEncoderConfig, weights: NativeWeights, options?: NativeCudaEncoderOptions): NativeCudaEncoder;
}

/** Host-side logic of the CUDA backend, exposed for tests (works without a GPU or nvcc). */
export interface NativeCudaDebug {
  /** The packed layout of a request; tiles is [q0, qn, k0, kn, uniform] per attention tile. */
  planPacking(config: NativeEncoderConfig, request: NativeForwardRequest, tileQ?: number): {
    tokens: number; allPositions: boolean; ids: Int32Array; types: Int32Array; pos: Int32Array;
    seqStart: Int32Array; seqKeys: Int32Array; seqVisible: Int32Array; seqUniform: Int32Array;
    clsRow: Int32Array; rowOf: Int32Array; tiles: Int32Array;
  };
  workspaceBytesPerToken(config: NativeEncoderConfig, precision: CudaPrecision): { perToken: number; weights: number };
  /** Round-trip through bf16 (round to nearest even), as the weights are uploaded. */
  bf16Round(x: Float32Array): Float32Array;
}

export interface NativeAddon {
  cpuInfo(): CpuInfo;
  Encoder: NativeEncoderConstructor;
  kernels: NativeKernels;
  /** CUDA runtime view (absent in addons built before the CUDA backend). Never throws for a missing GPU. */
  cudaInfo?(): CudaInfo;
  /** The CUDA encoder; constructing it throws when the build has no CUDA backend or no usable GPU. */
  CudaEncoder?: NativeCudaEncoderConstructor;
  cudaDebug?: NativeCudaDebug;
}

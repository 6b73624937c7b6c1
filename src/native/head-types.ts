/**
 * The TS contract of the native trainable head (`addon.Head`, implemented by native/head_binding.cpp over
 * kernels/cpu/head.cpp).
 *
 *   x [n, H] -> (hidden: tanh(x Wh^T + bh), the BERT pooler) -> dropout(p) -> z = . W^T + b  [n, C]
 *
 * Losses: 'ce' = class-weighted cross-entropy, reduction mean over the summed weights of the batch
 * (sum_i w[y_i] nll_i / sum_i w[y_i], like torch); 'mse' = mean (z - y)^2 with numOutputs = 1.
 * Optimiser: torch.optim.AdamW, one parameter group (weight decay on weights AND biases), optional
 * torch-style global-norm clipping. Storage is float32; losses, norms and AdamW scalars are double.
 *
 * Zero-copy: trainEpoch/predict read the given typed arrays in place on a worker thread (a 450k x 768
 * feature matrix is never copied). Do not write to or transfer those arrays until the promise settles.
 * One call at a time per head: calling anything while trainEpoch/predict runs throws (await first).
 * Results do not depend on the thread count; dropout masks depend only on (seed, step, row in batch).
 */

/** Parameters in PyTorch layout: Linear weights are [out, in] row-major. */
export interface HeadParams {
  /** [numOutputs, inFeatures] */
  weight: Float32Array;
  /** [numOutputs] */
  bias: Float32Array;
  /** [inFeatures, inFeatures]: the pooler dense weight; only when hidden. */
  hiddenWeight?: Float32Array;
  /** [inFeatures]; only when hidden. */
  hiddenBias?: Float32Array;
}

/** Everything needed to resume training exactly: parameters, AdamW moments and the step count t. */
export interface HeadState extends HeadParams {
  expAvg: HeadParams;
  expAvgSq: HeadParams;
  /** AdamW step count t (also keys the dropout masks). */
  step: number;
}

export interface HeadOptimizerOptions {
  /** Default [0.9, 0.999]. */
  betas?: [number, number];
  /** Added after the bias-corrected square root. Default 1e-8. */
  eps?: number;
  /** Decoupled: p *= 1 - lr * weightDecay each step. Default 0. */
  weightDecay?: number;
}

export interface HeadOptions {
  inFeatures: number;
  /** Dense H -> H + tanh before dropout (initialised from init.hiddenWeight/hiddenBias). Default false. */
  hidden?: boolean;
  /** Classes for 'ce' (>= 2) or 1 for 'mse'. */
  numOutputs: number;
  loss: 'ce' | 'mse';
  /** Dropout probability in [0, 1), inverted scaling 1/(1-p), training steps only. Default 0. */
  dropout?: number;
  /** Dropout seed (a non-negative integer). Default 0. */
  seed?: number;
  /** 'ce' only: one positive weight per class. Default all 1. */
  classWeights?: Float32Array | number[];
  init: HeadParams;
  optimizer: HeadOptimizerOptions;
  /** torch.nn.utils.clip_grad_norm_ max_norm; 0 or absent = off. */
  clipGradNorm?: number;
  /** Worker threads of this head; 0 or absent = all logical CPUs. */
  threads?: number;
}

/** Rows and their targets. features is [rows, inFeatures]; targets has one entry per row. */
export interface HeadData {
  features: Float32Array;
  /** Int32Array of class ids for 'ce', Float32Array of scores for 'mse'. */
  targets: Int32Array | Float32Array;
}

export interface HeadEpochRequest extends HeadData {
  /** Row indices in visiting order (may repeat, e.g. a weighted sampler draws with replacement). */
  order: Int32Array;
  batchSize: number;
  /** One learning rate per step: length ceil(order.length / batchSize). */
  lrs: Float64Array;
}

export interface HeadEpochResult {
  /** Mean over the epoch's steps of the training-mode (dropout on) batch loss before each update. */
  meanLoss: number;
  steps: number;
  /** Global gradient L2 norm of the last step, before clipping. */
  lastGradNorm: number;
}

export interface HeadStepRequest extends HeadData {
  lr: number;
  /** Rows of this batch; absent = all rows (a full-batch step). */
  indices?: Int32Array;
  /** Return the gradients used for the update (after clipping). Default false. */
  returnGrads?: boolean;
}

export interface HeadStepResult {
  /** Training-mode loss at the parameters before the update. */
  loss: number;
  /** Global gradient L2 norm before clipping (what clip_grad_norm_ returns). */
  gradNorm: number;
  grads?: HeadParams;
}

export interface NativeHead {
  /** Runs the epoch's steps on a worker thread. */
  trainEpoch(request: HeadEpochRequest): Promise<HeadEpochResult>;
  /** One synchronous step (tests, tiny batches). */
  step(request: HeadStepRequest): HeadStepResult;
  /** Eval mode (no dropout): logits (ce) or scores (mse), [rows, numOutputs]. */
  predict(features: Float32Array): Promise<Float32Array>;
  /** Eval-mode loss over all rows, no update; synchronous. */
  evalLoss(data: HeadData): number;
  getState(): HeadState;
  /** Sizes and finiteness are checked; a mismatch throws and leaves the head unchanged. */
  setState(state: HeadState): void;
  /** Frees native memory; later calls throw. Throws while a call is running. */
  dispose(): void;
  readonly inFeatures: number;
  readonly numOutputs: number;
  readonly hidden: boolean;
  readonly paramCount: number;
  /** 'avx2' or 'scalar' (EDU_TRAIN_CPU_ISA=scalar forces the scalar path). */
  readonly isa: string;
  readonly busy: boolean;
  readonly stepCount: number;
}

export interface NativeHeadConstructor {
  new (options: HeadOptions): NativeHead;
}

/** The part of the addon's exports this module needs. */
export interface HeadAddon {
  Head: NativeHeadConstructor;
}

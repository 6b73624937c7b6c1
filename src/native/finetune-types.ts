/**
 * The N-API contract of full fine-tuning (native/finetune_binding.cpp over
 * kernels/include/edu_train_encoder.h): exports.FineTuner and exports.fineTuneKernels.
 *
 * CPU, float32, dropout off (the reference numerics of ../shared/golden/backward). Weights use the
 * canonical names of addon-types.ts, plus the head: 'linear' = head.weight [C, H] / head.bias [C] on the
 * pooled vector; 'bert' = pooler.dense.* + classifier.*; 'roberta' / 'electra' = classifier.dense.* +
 * classifier.out_proj.*.
 */
import { loadAddon } from './addon.js';
import type { CpuIsa, NativeEncoderConfig } from './addon-types.js';

export type FineTuneHead = 'none' | 'linear' | 'bert' | 'roberta' | 'electra';
export type FineTuneLoss = 'cross-entropy' | 'mse' | 'mnrl';

export interface FineTuneOptimizerConfig {
  /** Defaults: 0.9, 0.999, 1e-8, 0.01, clip 1.0 (<= 0: no clipping), decay on every parameter. */
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  maxGradNorm?: number;
  /** false: no weight decay on biases and LayerNorm weights (the Hugging Face Trainer grouping). */
  decayBiasAndNorm?: boolean;
}

export interface NativeFineTuneConfig {
  /** head / numLabels of the encoder config are ignored here. */
  encoder: Omit<NativeEncoderConfig, 'head' | 'numLabels'> & Partial<Pick<NativeEncoderConfig, 'head' | 'numLabels'>>;
  head: FineTuneHead;
  /** Pooling for the 'linear' head and MNRL (default 'mean'); the *ForSequenceClassification heads read h[:, 0]. */
  pooling?: 'mean' | 'cls';
  /** Classes (CE) or 1 (MSE); 0 / absent for head 'none'. */
  numOutputs?: number;
  loss: FineTuneLoss;
  /** CE: per-class weights; the batch loss is divided by the summed weights of its labels. */
  classWeights?: Float32Array;
  /** MNRL: cosine-similarity scale (default 20). */
  mnrlScale?: number;
  optimizer?: FineTuneOptimizerConfig;
  /**
   * Training-mode dropout (inverted), where transformers applies it: embeddings output, attention
   * probabilities, attention-output and FFN-output dense layers, classifier head. Masks are a
   * counter-based hash of (seed, accumulate call, pass, site, element): reproducible, thread-independent.
   * Default all 0 (the reference numerics). Off in predict().
   */
  dropout?: { hidden?: number; attention?: number; classifier?: number; seed?: number };
}

export interface NativeSequenceBatch {
  /** [batch, seqLen] */
  inputIds: Int32Array;
  attentionMask: Int32Array;
  tokenTypeIds?: Int32Array;
  batch: number;
  seqLen: number;
}

export interface NativeTrainBatch extends NativeSequenceBatch {
  /** CE: class ids [batch]. */
  labels?: Int32Array;
  /** MSE: targets [batch]. */
  targets?: Float32Array;
  /** MNRL: the positives (row i is the positive of anchor i; extra rows are negatives only). */
  positive?: NativeSequenceBatch;
  /**
   * Loss normaliser; absent/0 = this batch's own (CE: summed class weights of its labels; MSE: rows;
   * MNRL: anchors). When a batch is split into micro-batches, pass the whole batch's value to each so
   * the gradients add up to the whole batch's.
   */
  normalizer?: number;
}

export interface AccumulateResult {
  /** This micro-batch's loss (with its normaliser). */
  loss: number;
  /** Logits [rows, cols] (heads) or the scaled cosine scores [anchors, positives] (MNRL). */
  outputs: Float32Array;
  rows: number;
  cols: number;
}

export interface ApplyStepResult {
  /** Global L2 norm of the accumulated gradients before clipping. */
  gradNorm: number;
  /** min(1, maxGradNorm / (gradNorm + 1e-6)), or 1 without clipping. */
  clipCoef: number;
  /** AdamW t after the step. */
  step: number;
}

export interface FineTuneParamInfo {
  name: string;
  shape: number[];
  /** false: the loss never reaches it (e.g. the pooler under mean pooling): no gradient, no update. */
  trainable: boolean;
}

export interface NativeFineTuner {
  /** Forward + backward; adds the gradients. Calls on one FineTuner run one at a time, in order. */
  accumulate(batch: NativeTrainBatch): Promise<AccumulateResult>;
  /** Clip by global norm, one AdamW step at lr, zero the gradients. */
  applyStep(lr: number): Promise<ApplyStepResult>;
  /** accumulate(batch) then applyStep(lr). */
  step(batch: NativeTrainBatch, lr: number): Promise<AccumulateResult & ApplyStepResult>;
  /** Eval forward (nothing kept): logits, and the pooled embedding when request.pooled. */
  predict(request: NativeSequenceBatch & { pooled?: boolean }): Promise<{ logits?: Float32Array; pooled?: Float32Array }>;
  /** Every parameter (trainable or not) under its canonical name. */
  getWeights(): Promise<Record<string, Float32Array>>;
  /** The accumulated gradients (zeros for parameters without a gradient). */
  getGradients(): Promise<Record<string, Float32Array>>;
  gradNorm(): Promise<number>;
  zeroGrad(): Promise<void>;
  /** Bytes of activations one accumulate() keeps for a [batch, seqLen] batch (MNRL: per pass). */
  activationBytes(batch: number, seqLen: number): number;
  /**
   * GradCache (head 'none' only), step 1: training-mode forward (dropout on) of one mini-batch, nothing
   * kept; the pooled embeddings [batch, H]. Dropout masks come from the current dropout call and `pass`
   * (accumulate() uses pass 0 for the anchors and 1 for the positives), so backwardPooled with the same
   * batch and pass replays them exactly. Does not advance the dropout call.
   */
  forwardPooled(request: NativeSequenceBatch & { pass: number }): Promise<{ pooled: Float32Array }>;
  /**
   * GradCache step 3: the same forward keeping activations, then the backward of sum(gradPooled * pooled)
   * (gradPooled [batch, H] = d loss / d pooled embedding); adds to the gradients. Returns this forward's
   * pooled embeddings (equal to forwardPooled's). Does not advance the dropout call.
   */
  backwardPooled(request: NativeSequenceBatch & { pass: number; gradPooled: Float32Array }): Promise<{ pooled: Float32Array }>;
  /** Fresh dropout masks for what follows (what one accumulate() call does); ends a GradCache batch. */
  nextDropoutCall(): Promise<void>;
  dispose(): void;
  readonly params: FineTuneParamInfo[];
  readonly stepCount: number;
  readonly trainableParameters: number;
  readonly isa: Exclude<CpuIsa, 'auto'>;
  readonly threads: number;
}

export interface NativeFineTunerConstructor {
  new (config: NativeFineTuneConfig, weights: Record<string, Float32Array>, options?: { threads?: number; isa?: CpuIsa }): NativeFineTuner;
}

/** Single-threaded backward kernels, for finite-difference tests. */
export interface NativeFineTuneKernels {
  /** LayerNorm forward + backward for upstream gradient dy. */
  layerNorm(x: Float32Array, gamma: Float32Array, beta: Float32Array, rows: number, cols: number, eps: number, dy: Float32Array):
    { y: Float32Array; dx: Float32Array; dgamma: Float32Array; dbeta: Float32Array };
  /** du = dy * GELU'(u) (exact erf GELU). */
  gelu(u: Float32Array, dy: Float32Array): { du: Float32Array };
  /** Masked multi-head attention on fused qkv [B*L, 3*heads*headDim]: out and d(qkv) for upstream dout. */
  attention(qkv: Float32Array, mask: Int32Array, batch: number, seqLen: number, heads: number, headDim: number,
    dout: Float32Array, options?: { isa?: CpuIsa }): { out: Float32Array; dqkv: Float32Array };
}

export interface FineTuneAddon {
  FineTuner: NativeFineTunerConstructor;
  fineTuneKernels: NativeFineTuneKernels;
}

/** The fine-tuning part of the addon; a clear Error when the addon predates it. */
export function loadFineTuneAddon(): FineTuneAddon {
  const addon = loadAddon() as unknown as Partial<FineTuneAddon>;
  if (typeof addon.FineTuner !== 'function' || typeof addon.fineTuneKernels !== 'object') {
    throw new Error('edu-train: the native addon has no FineTuner (built before full fine-tuning); rebuild it with `npm run build:native`');
  }
  return addon as FineTuneAddon;
}

/**
 * The epoch loop of head training: per-epoch order (shuffle or weighted sampler) -> one native trainEpoch
 * with the epoch's slice of the LR schedule -> validation metrics -> early stopping with best-state restore.
 * All heavy work (forward/backward/AdamW over 450k x 768 features) is in the native Head; this file only
 * decides what to run.
 */
import { loadAddon } from '../native/addon.js';
import type { HeadAddon, HeadParams, HeadState, NativeHead } from '../native/head-types.js';
import { argmaxRows, classificationReport, intScores, mse, pearson, spearman, INT_SCORE_LABELS } from '../eval/metrics.js';
import { EarlyStopping, type EarlyStoppingOptions } from './early-stopping.js';
import { Rng } from './rng.js';
import { shuffleOrder, weightedRandomOrder } from './sampler.js';
import { learningRates, warmupStepsFromRatio, type ScheduleKind, type ScheduleSpec } from './schedule.js';

/** The addon's Head class, or an Error that says to rebuild when the addon predates it. */
export function loadHeadAddon(): HeadAddon {
  const addon = loadAddon() as unknown as Partial<HeadAddon>;
  if (typeof addon.Head !== 'function') {
    throw new Error('edu-train: the native addon has no Head class; rebuild it with `npm run build:native`');
  }
  return addon as HeadAddon;
}

export type HeadTask = 'classification' | 'regression';

export interface HeadTrainerConfig {
  task: HeadTask;
  inFeatures: number;
  /** classification: number of classes (>= 2). */
  numClasses?: number;
  /** Train a dense H->H + tanh (the BERT pooler) before the classifier. */
  hidden?: boolean;
  /**
   * Initial parameters. Default (Hugging Face _init_weights, as BertForSequenceClassification's head):
   * weights ~ N(0, 0.02), biases 0, drawn from `seed`. With hidden, pass the pretrained pooler as
   * init.hiddenWeight/hiddenBias; otherwise it is drawn the same way.
   */
  init?: HeadParams;
  epochs: number;
  batchSize: number;
  lr: number;
  schedule?: ScheduleKind;
  warmupRatio?: number;
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
  dropout?: number;
  clipGradNorm?: number;
  seed?: number;
  /** classification only: one weight per class (see class-weights.ts). */
  classWeights?: Float32Array;
  /** 'weighted' = WeightedRandomSampler with 1/count weights (regression: over the int scores). */
  sampler?: 'shuffle' | 'weighted';
  earlyStopping?: EarlyStoppingOptions;
  threads?: number;
}

export interface HeadTrainData {
  /** [n, inFeatures] */
  features: Float32Array;
  /** classification: class ids; regression: scores. */
  targets: Int32Array | Float32Array;
}

export type Metrics = Record<string, number>;

/** Validation hook: receives the head's raw outputs [n, numOutputs] for the validation features. */
export type EvaluateFn = (ctx: { epoch: number; outputs: Float32Array; validation: HeadTrainData }) => Metrics | Promise<Metrics>;

export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  /** LR of the epoch's last step. */
  lr: number;
  steps: number;
  lastGradNorm: number;
  val?: Metrics;
  improved?: boolean;
}

export interface HeadTrainResult {
  history: EpochRecord[];
  /** Epoch (0-based) whose state is kept: the best validation epoch, or the last epoch without validation. */
  bestEpoch: number;
  bestMetrics?: Metrics;
  bestState: HeadState;
  stoppedEarly: boolean;
}

/** Default validation metrics (names match early-stopping.ts). */
export function evaluateOutputs(
  task: HeadTask,
  outputs: Float32Array,
  targets: Int32Array | Float32Array,
  numOutputs: number,
  classWeights?: Float32Array,
): Metrics {
  if (task === 'classification') {
    const pred = argmaxRows(outputs, numOutputs);
    const labels = Array.from({ length: numOutputs }, (_, i) => i);
    const r = classificationReport(targets, pred, labels);
    return { loss: crossEntropy(outputs, targets, numOutputs, classWeights), accuracy: r.accuracy, macro_f1: r.macroAvg.f1, weighted_f1: r.weightedAvg.f1 };
  }
  const intTrue = intScores(targets);
  const intPred = intScores(outputs);
  const r = classificationReport(intTrue, intPred, INT_SCORE_LABELS);
  const m = mse(targets, outputs);
  return { loss: m, mse: m, pearson: pearson(targets, outputs), spearman: spearman(targets, outputs), macro_f1: r.macroAvg.f1, weighted_f1: r.weightedAvg.f1, accuracy: r.accuracy };
}

/** Class-weighted mean cross-entropy in float64 (the training loss definition). */
function crossEntropy(logits: Float32Array, y: ArrayLike<number>, c: number, w?: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < y.length; i++) {
    let mx = -Infinity;
    for (let k = 0; k < c; k++) mx = Math.max(mx, logits[i * c + k]);
    let se = 0;
    for (let k = 0; k < c; k++) se += Math.exp(logits[i * c + k] - mx);
    const wi = w ? w[y[i]] : 1;
    num += wi * (mx + Math.log(se) - logits[i * c + y[i]]);
    den += wi;
  }
  return num / den;
}

export class HeadTrainer {
  readonly config: Required<Pick<HeadTrainerConfig, 'schedule' | 'warmupRatio' | 'weightDecay' | 'betas' | 'eps' | 'dropout' | 'clipGradNorm' | 'seed' | 'sampler'>> & HeadTrainerConfig;
  readonly numOutputs: number;
  private readonly addon: HeadAddon;
  private readonly evaluate?: EvaluateFn;
  private readonly onEpoch?: (record: EpochRecord) => void;
  private head: NativeHead | null = null;

  /** deps.onEpoch: called after each epoch's record is complete (progress logs, metrics files). */
  constructor(config: HeadTrainerConfig, deps: { addon?: HeadAddon; evaluate?: EvaluateFn; onEpoch?: (record: EpochRecord) => void } = {}) {
    this.config = {
      schedule: 'linear', warmupRatio: 0, weightDecay: 0, betas: [0.9, 0.999], eps: 1e-8, dropout: 0, clipGradNorm: 0, seed: 0, sampler: 'shuffle',
      ...config,
    };
    const c = this.config;
    if (c.task === 'classification') {
      if (!Number.isInteger(c.numClasses) || c.numClasses! < 2) throw new Error(`classification needs numClasses >= 2, got ${c.numClasses}`);
      this.numOutputs = c.numClasses!;
    } else if (c.task === 'regression') {
      if (c.classWeights) throw new Error('classWeights apply to classification only');
      this.numOutputs = 1;
    } else {
      throw new Error(`unknown task '${String(c.task)}' (classification or regression)`);
    }
    for (const [k, v] of [['epochs', c.epochs], ['batchSize', c.batchSize], ['inFeatures', c.inFeatures]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer, got ${v}`);
    }
    if (!Number.isFinite(c.lr) || c.lr <= 0) throw new Error(`lr must be a positive number, got ${c.lr}`);
    this.addon = deps.addon ?? loadHeadAddon();
    this.evaluate = deps.evaluate;
    this.onEpoch = deps.onEpoch;
    if (c.earlyStopping) new EarlyStopping(c.earlyStopping); // validates the metric name and patience early
  }

  /** The native head (after train() started); use it to predict with the best state. */
  get nativeHead(): NativeHead {
    if (!this.head) throw new Error('HeadTrainer: train() has not run yet');
    return this.head;
  }

  private defaultInit(): HeadParams {
    const { inFeatures: h, hidden, seed } = this.config;
    const rng = new Rng(seed, 0x1417);
    const normal = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.normal(0, 0.02));
    const p: HeadParams = { weight: normal(this.numOutputs * h), bias: new Float32Array(this.numOutputs) };
    if (hidden) {
      p.hiddenWeight = normal(h * h);
      p.hiddenBias = new Float32Array(h);
    }
    return p;
  }

  private createHead(): NativeHead {
    const c = this.config;
    return new this.addon.Head({
      inFeatures: c.inFeatures,
      hidden: c.hidden ?? false,
      numOutputs: this.numOutputs,
      loss: c.task === 'classification' ? 'ce' : 'mse',
      dropout: c.dropout,
      seed: c.seed,
      classWeights: c.classWeights,
      init: c.init ?? this.defaultInit(),
      optimizer: { betas: c.betas, eps: c.eps, weightDecay: c.weightDecay },
      clipGradNorm: c.clipGradNorm,
      threads: c.threads,
    });
  }

  private epochOrder(train: HeadTrainData, epoch: number): Int32Array {
    const c = this.config;
    const n = train.targets.length;
    if (c.sampler === 'shuffle') return shuffleOrder(n, c.seed, epoch);
    const strata = c.task === 'classification' ? train.targets : intScores(train.targets);
    return weightedRandomOrder(strata, c.seed, epoch);
  }

  async train(train: HeadTrainData, validation?: HeadTrainData): Promise<HeadTrainResult> {
    const c = this.config;
    const n = train.targets.length;
    if (n === 0) throw new Error('no training rows');
    if (train.features.length !== n * c.inFeatures) {
      throw new Error(`training features have ${train.features.length} values, expected ${n} rows x ${c.inFeatures}`);
    }
    if (c.earlyStopping && !validation) throw new Error('early stopping needs validation data');
    this.head?.dispose();
    const head = (this.head = this.createHead());
    // Both samplers draw n indices per epoch, so every epoch has the same number of steps.
    const stepsPerEpoch = Math.ceil(n / c.batchSize);
    const totalSteps = stepsPerEpoch * c.epochs;
    const spec: ScheduleSpec = { kind: c.schedule, totalSteps, warmupSteps: warmupStepsFromRatio(c.warmupRatio, totalSteps) };
    const stopper = c.earlyStopping ? new EarlyStopping(c.earlyStopping) : null;
    const history: EpochRecord[] = [];
    let bestState: HeadState | null = null;
    let bestEpoch = -1;
    let bestMetrics: Metrics | undefined;
    let stoppedEarly = false;

    for (let epoch = 0; epoch < c.epochs; epoch++) {
      const order = this.epochOrder(train, epoch);
      const lrs = learningRates(spec, c.lr, epoch * stepsPerEpoch, stepsPerEpoch);
      const r = await head.trainEpoch({ features: train.features, targets: train.targets, order, batchSize: c.batchSize, lrs });
      const record: EpochRecord = { epoch, trainLoss: r.meanLoss, lr: lrs[lrs.length - 1], steps: r.steps, lastGradNorm: r.lastGradNorm };
      if (validation) {
        const outputs = await head.predict(validation.features);
        record.val = this.evaluate
          ? await this.evaluate({ epoch, outputs, validation })
          : evaluateOutputs(c.task, outputs, validation.targets, this.numOutputs, c.classWeights);
      }
      if (stopper) {
        const value = record.val![stopper.metric];
        if (value === undefined) throw new Error(`validation metrics have no '${stopper.metric}' (got: ${Object.keys(record.val!).join(', ')})`);
        const u = stopper.update(value, { epoch, step: (epoch + 1) * stepsPerEpoch });
        record.improved = u.improved;
        if (u.improved) {
          bestState = head.getState();
          bestEpoch = epoch;
          bestMetrics = record.val;
        }
        history.push(record);
        this.onEpoch?.(record);
        if (u.shouldStop) {
          stoppedEarly = epoch < c.epochs - 1;
          break;
        }
      } else {
        history.push(record);
        this.onEpoch?.(record);
      }
    }
    if (bestState === null) {
      // no early stopping (or no epoch ever improved on a NaN metric): keep the last epoch
      bestState = head.getState();
      bestEpoch = history.length - 1;
      bestMetrics = history[history.length - 1].val;
    } else {
      head.setState(bestState); // the head now predicts with the best epoch's parameters
    }
    return { history, bestEpoch, bestMetrics, bestState, stoppedEarly };
  }

  dispose(): void {
    this.head?.dispose();
    this.head = null;
  }
}

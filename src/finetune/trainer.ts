/**
 * The full fine-tuning loop over a FineTuner: epochs of (weighted-)sampled batches, each split into
 * micro-batches that fit an activation-memory budget (gradients accumulated with the whole batch's loss
 * normaliser, so the step equals the unsplit batch's), a warmup + decay schedule, evaluation after every
 * epoch, early stopping and a callback whenever the monitored metric improves (the caller saves the
 * best checkpoint there).
 */
import type { NativeFineTuner, NativeTrainBatch } from '../native/finetune-types.js';
import { padEncoded, type Encoded } from '../tokenize/tokenizer.js';
import { EarlyStopping } from '../train/early-stopping.js';
import { type Metrics } from '../train/head-trainer.js';
import { shuffleOrder, weightedRandomOrder } from '../train/sampler.js';
import { lrMultiplier, validateSchedule, warmupStepsFromRatio, type ScheduleKind, type ScheduleSpec } from '../train/schedule.js';

export interface FineTuneData {
  encoded: readonly Encoded[];
  /** Class ids (classification) or scores (regression). */
  y: Int32Array | Float32Array;
}

export interface FineTuneLoopOptions {
  task: 'classification' | 'regression';
  numOutputs: number;
  epochs: number;
  batchSize: number;
  lr: number;
  schedule: ScheduleKind;
  warmupRatio: number;
  seed: number;
  sampler: 'shuffle' | 'weighted';
  /** CE class weights (the loss normaliser is the batch's summed weights). */
  classWeights?: Float32Array;
  earlyStop: string;
  patience: number | 'off';
  padId: number;
  /** Activation bytes one micro-batch may keep (FineTuner.activationBytes); rows per micro-batch adapt to lengths. */
  maxActivationBytes: number;
  /** Fixed rows per micro-batch instead of the budget. */
  microBatchSize?: number;
  evalBatchSize: number;
  /** Stop after this many optimizer steps in total (the schedule still spans all epochs). */
  maxSteps?: number;
  evaluate: (outputs: Float32Array, targets: Int32Array | Float32Array) => Metrics;
  /** Called when the monitored metric improves (after the epoch's evaluation). */
  onBest?: (epoch: number, outputs: Float32Array) => Promise<void>;
  onEpoch?: (r: EpochResult) => void;
  /** Progress lines (every logEvery steps). */
  log?: (line: string) => void;
  logEvery?: number;
}

export interface EpochResult {
  epoch: number;
  trainLoss: number;
  lr: number;
  steps: number;
  lastGradNorm: number;
  tokens: number;
  seconds: number;
  val: Metrics;
  improved: boolean;
}

export interface FineTuneLoopResult {
  history: EpochResult[];
  bestEpoch: number;
  bestMetrics: Metrics | null;
  /** Validation outputs of the best epoch. */
  bestOutputs: Float32Array | null;
  stoppedEarly: boolean;
  steps: number;
}

/** Rows of one batch grouped into micro-batches (longest first) within the activation budget. */
export function planMicroBatches(lengths: readonly number[], rows: readonly number[],
  fits: (count: number, seqLen: number) => boolean, fixed?: number): number[][] {
  const sorted = [...rows].sort((a, b) => lengths[b] - lengths[a] || a - b);
  const out: number[][] = [];
  let cur: number[] = [];
  for (const r of sorted) {
    const seqLen = cur.length ? lengths[cur[0]] : lengths[r];
    const ok = fixed !== undefined ? cur.length < fixed : fits(cur.length + 1, seqLen);
    if (cur.length > 0 && !ok) {
      out.push(cur);
      cur = [];
    }
    cur.push(r);
  }
  if (cur.length) out.push(cur);
  return out;
}

export function toBatch(encoded: readonly Encoded[], rows: readonly number[], padId: number): NativeTrainBatch {
  const p = padEncoded(rows.map((r) => encoded[r]), padId);
  return { inputIds: p.inputIds, attentionMask: p.attentionMask, tokenTypeIds: p.tokenTypeIds, batch: p.batch, seqLen: p.seqLen };
}

/** Eval-mode outputs [n, numOutputs] in row order (batches of similar lengths, so little padding). */
export async function predictAll(ft: NativeFineTuner, data: readonly Encoded[], numOutputs: number, batchSize: number, padId: number): Promise<Float32Array> {
  const order = Array.from(data.keys()).sort((a, b) => data[b].ids.length - data[a].ids.length || a - b);
  const out = new Float32Array(data.length * numOutputs);
  for (let i = 0; i < order.length; i += batchSize) {
    const rows = order.slice(i, i + batchSize);
    const r = await ft.predict(toBatch(data, rows, padId));
    rows.forEach((row, k) => out.set(r.logits!.subarray(k * numOutputs, (k + 1) * numOutputs), row * numOutputs));
  }
  return out;
}

export async function fineTuneLoop(ft: NativeFineTuner, train: FineTuneData, val: FineTuneData, o: FineTuneLoopOptions): Promise<FineTuneLoopResult> {
  const n = train.encoded.length;
  if (n === 0) throw new Error('no training rows');
  const stepsPerEpoch = Math.ceil(n / o.batchSize);
  const totalSteps = stepsPerEpoch * o.epochs;
  const spec: ScheduleSpec = { kind: o.schedule, totalSteps, warmupSteps: warmupStepsFromRatio(o.warmupRatio, totalSteps) };
  validateSchedule(spec);
  const lengths = train.encoded.map((e) => e.ids.length);
  const fits = (count: number, seqLen: number) => ft.activationBytes(count, seqLen) <= o.maxActivationBytes;
  const stopper = new EarlyStopping({ metric: o.earlyStop, patience: o.patience });
  const history: EpochResult[] = [];
  let bestOutputs: Float32Array | null = null;
  let bestMetrics: Metrics | null = null;
  let step = 0;
  const logEvery = o.logEvery ?? 10;
  const classLabels = o.task === 'classification' ? Int32Array.from(train.y) : null;
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    const order = o.sampler === 'weighted' && classLabels
      ? weightedRandomOrder(classLabels, o.seed, epoch)
      : shuffleOrder(n, o.seed, epoch);
    const t0 = Date.now();
    let lossSum = 0;
    let steps = 0;
    let tokens = 0;
    let lastGradNorm = 0;
    let lr = 0;
    for (let s = 0; s < stepsPerEpoch; s++) {
      if (o.maxSteps !== undefined && step >= o.maxSteps) break;
      const rows = Array.from(order.subarray(s * o.batchSize, Math.min(n, (s + 1) * o.batchSize)));
      // The whole batch's normaliser, so the micro-batch gradients add up to the batch's.
      let normalizer = rows.length;
      if (classLabels && o.classWeights) normalizer = rows.reduce((acc, r) => acc + o.classWeights![classLabels[r]], 0);
      if (!(normalizer > 0)) continue; // only zero-weight classes in this batch: nothing to learn
      let loss = 0;
      for (const micro of planMicroBatches(lengths, rows, fits, o.microBatchSize)) {
        const b = toBatch(train.encoded, micro, o.padId);
        if (classLabels) b.labels = Int32Array.from(micro, (r) => classLabels[r]);
        else b.targets = Float32Array.from(micro, (r) => train.y[r]);
        b.normalizer = normalizer;
        loss += (await ft.accumulate(b)).loss;
        tokens += micro.reduce((acc, r) => acc + lengths[r], 0);
      }
      lr = o.lr * lrMultiplier(spec, step);
      const r = await ft.applyStep(lr);
      step++;
      steps++;
      lossSum += loss;
      lastGradNorm = r.gradNorm;
      if (o.log && (step % logEvery === 0 || s === stepsPerEpoch - 1)) {
        const secs = (Date.now() - t0) / 1000;
        o.log(`epoch ${epoch + 1}/${o.epochs} step ${s + 1}/${stepsPerEpoch}: loss ${loss.toFixed(4)}, grad norm ${r.gradNorm.toFixed(3)}, ` +
          `lr ${lr.toExponential(2)}, ${(tokens / Math.max(secs, 1e-9)).toFixed(0)} tokens/s`);
      }
    }
    if (steps === 0) break;
    const outputs = await predictAll(ft, val.encoded, o.numOutputs, o.evalBatchSize, o.padId);
    const metrics = o.evaluate(outputs, val.y);
    const u = stopper.update(metrics[o.earlyStop], { epoch, step });
    const rec: EpochResult = {
      epoch, trainLoss: lossSum / steps, lr, steps, lastGradNorm, tokens, seconds: (Date.now() - t0) / 1000, val: metrics, improved: u.improved,
    };
    history.push(rec);
    if (u.improved) {
      bestOutputs = outputs;
      bestMetrics = metrics;
      if (o.onBest) await o.onBest(epoch, outputs);
    }
    o.onEpoch?.(rec);
    if (u.shouldStop) break;
  }
  return {
    history, bestEpoch: stopper.bestEpoch, bestMetrics, bestOutputs,
    stoppedEarly: stopper.shouldStop && history.length < o.epochs, steps: step,
  };
}

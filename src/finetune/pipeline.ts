/**
 * `finetune` orchestration: read the table(s) -> labels -> validation split -> tokenize once -> FineTuner
 * (the whole encoder + a *ForSequenceClassification head, CPU fp32) -> the epoch loop with early
 * stopping -> a complete Hugging Face model folder of the best epoch, plus the training record.
 *
 * Output folder (staged, renamed into place only when finished):
 *   config.json, model.safetensors, tokenizer files   (load with transformers or any edu-train command)
 *   label_mapping.json, metrics.jsonl, best.json, report.txt, report.json,
 *   val_predictions.jsonl (the best epoch's validation outputs), finetune.json (options, data, timings; last)
 */
import { resolve } from 'node:path';
import { evaluateClassification, evaluateRegression, evaluationText, type Evaluation } from '../eval/evaluate.js';
import { argmaxRows } from '../eval/metrics.js';
import { readModelSpec } from '../model/config.js';
import { loadFineTuneAddon, type NativeFineTuner } from '../native/finetune-types.js';
import { TextTokenizer, type Encoded } from '../tokenize/tokenizer.js';
import { computeClassWeights, readClassWeightsFile, type ClassWeightMode } from '../train/class-weights.js';
import { evaluateOutputs } from '../train/head-trainer.js';
import { encodeRegressionTargets, LabelMap } from '../train/label-map.js';
import { encodeWithMap, normalizeLabels, rawLabels, readColumns, textsOf, TASK_METRICS } from '../train/pipeline.js';
import { RUN_FILES, StagedRun, writeJson, writeJsonl } from '../train/run-dir.js';
import type { ScheduleKind } from '../train/schedule.js';
import { stratifiedSplit } from '../train/split.js';
import { intScores } from '../eval/metrics.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { UsageError, messageOf } from '../util/errors.js';
import { packageVersion } from '../util/package-info.js';
import { METRIC_MODES } from '../train/early-stopping.js';
import { configDropout, prepareModel, saveSeqClsFolder } from './model-io.js';

/** --dropout: the model config's probabilities, or one p for every site. */
export function resolveDropout(d: 'config' | number, raw: Record<string, unknown>): { hidden: number; attention: number; classifier: number } {
  return d === 'config' ? configDropout(raw) : { hidden: d, attention: d, classifier: d };
}
import { fineTuneLoop, predictAll, type EpochResult } from './trainer.js';

export type FineTuneTask = 'classification' | 'regression';

export interface FineTuneOptions {
  modelDir: string;
  train: string;
  val?: string;
  valSplit?: number;
  textColumn: string;
  labelColumn: string;
  task: FineTuneTask;
  labels?: string[];
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  betas: [number, number];
  eps: number;
  schedule: ScheduleKind;
  warmupRatio: number;
  clipGradNorm: number;
  /** none | balanced | sqrt | a JSON file. */
  classWeights: string;
  sampler: 'shuffle' | 'weighted';
  earlyStop: string;
  patience: number | 'off';
  seed: number;
  threshold: number;
  maxLength: number;
  /** Activation memory per micro-batch, MiB. */
  maxActivationMemory: number;
  microBatchSize?: number;
  evalBatchSize: number;
  maxSteps?: number;
  /** Exclude biases and LayerNorm weights from weight decay (the Hugging Face Trainer grouping). */
  noDecayBiasNorm: boolean;
  /** 'config': the model's hidden/attention/classifier dropout (transformers' training mode); a number: that p everywhere. */
  dropout: 'config' | number;
  output: string;
  overwrite: boolean;
  threads?: number;
  quiet: boolean;
}

/** The Korean sentence-type recipe (fine-tuned end to end): AdamW 2e-5, wd 0.01, warmup 0.1 + linear decay, max length 256, batch 32, clip 1.0, class-weighted CE, weighted sampler, early stopping patience 2 on macro F1. */
export const FINETUNE_DEFAULTS = {
  valSplit: 0.1,
  epochs: 8,
  batchSize: 32,
  lr: 2e-5,
  weightDecay: 0.01,
  betas: [0.9, 0.999] as [number, number],
  eps: 1e-8,
  schedule: 'linear' as ScheduleKind,
  warmupRatio: 0.1,
  clipGradNorm: 1.0,
  classWeights: 'balanced',
  sampler: 'weighted' as const,
  earlyStop: 'macro_f1',
  patience: 2,
  seed: 42,
  threshold: 3,
  maxLength: 256,
  maxActivationMemory: 4096,
  evalBatchSize: 64,
  dropout: 'config' as const,
};

export const FINETUNE_FILES = {
  record: 'finetune.json',
  predictions: 'val_predictions.jsonl',
} as const;

export function validateFineTuneOptions(o: FineTuneOptions): void {
  const bad = (m: string): never => {
    throw new UsageError(m);
  };
  if (o.val !== undefined && o.valSplit !== undefined) bad('--val and --val-split are exclusive: give a validation file or a fraction to split off, not both');
  if (o.valSplit !== undefined && !(o.valSplit > 0 && o.valSplit < 1)) bad(`--val-split must be in (0, 1), got ${o.valSplit}`);
  if (METRIC_MODES[o.earlyStop] === undefined || !TASK_METRICS[o.task].includes(o.earlyStop)) {
    bad(`--early-stop ${o.earlyStop} is not reported for ${o.task} (use one of ${TASK_METRICS[o.task].join(', ')})`);
  }
  if (o.patience !== 'off' && (!Number.isInteger(o.patience) || o.patience < 1)) bad(`--patience must be an integer >= 1 or 'off', got ${o.patience}`);
  if (o.task === 'regression') {
    if (o.labels) bad('--labels applies to classification only');
    if (o.sampler === 'weighted') bad('--sampler weighted balances classes; regression needs --sampler shuffle');
    if (o.classWeights !== 'none') bad('--class-weights applies to classification only (regression uses MSE); pass --class-weights none');
  }
  if (!(o.lr > 0 && Number.isFinite(o.lr))) bad(`--lr must be a positive number, got ${o.lr}`);
  if (!(o.weightDecay >= 0 && Number.isFinite(o.weightDecay))) bad(`--weight-decay must be >= 0, got ${o.weightDecay}`);
  if (!(o.eps > 0 && Number.isFinite(o.eps))) bad(`--eps must be a positive number, got ${o.eps}`);
  if (!o.betas.every((b) => b >= 0 && b < 1)) bad(`--betas must be two numbers in [0, 1), got ${o.betas.join(',')}`);
  if (!(o.warmupRatio >= 0 && o.warmupRatio <= 1)) bad(`--warmup-ratio must be in [0, 1], got ${o.warmupRatio}`);
  if (!(o.clipGradNorm >= 0 && Number.isFinite(o.clipGradNorm))) bad(`--clip-grad-norm must be >= 0 (0 = off), got ${o.clipGradNorm}`);
  if (!(o.maxActivationMemory > 0)) bad(`--max-activation-memory must be > 0 MiB, got ${o.maxActivationMemory}`);
  if (!Number.isSafeInteger(o.seed) || o.seed < 0) bad(`--seed must be a non-negative integer, got ${o.seed}`);
  if (o.dropout !== 'config' && !(o.dropout >= 0 && o.dropout < 1)) bad(`--dropout must be 'config' or a probability in [0, 1), got ${o.dropout}`);
  const out = resolve(o.output);
  for (const f of [o.train, o.val]) if (f && resolve(f) === out) bad('--output must not be an input file');
  StagedRun.checkTarget(o.output, o.overwrite);
}

interface Table {
  file: string;
  texts: string[];
  y: Int32Array | Float32Array;
}

async function readTable(file: string, o: FineTuneOptions, map: LabelMap | null): Promise<{ table: Table; map: LabelMap | null }> {
  const cols = await readColumns(file, [{ name: o.textColumn, flag: '--text-column' }, { name: o.labelColumn, flag: '--label-column' }]);
  const texts = textsOf(cols[o.textColumn], o.textColumn, file);
  if (o.task === 'regression') {
    try {
      return { table: { file, texts, y: encodeRegressionTargets(cols[o.labelColumn]) }, map: null };
    } catch (e) {
      throw new UsageError(`${file}: ${messageOf(e)}`);
    }
  }
  const labels = normalizeLabels(rawLabels(cols[o.labelColumn], o.labelColumn, file));
  let m = map;
  if (!m) {
    try {
      if (o.labels) {
        const numeric = typeof labels[0] === 'number';
        m = new LabelMap(o.labels.map((l) => (numeric ? Number(l) : l)));
      } else {
        m = LabelMap.fromValues(labels);
      }
    } catch (e) {
      throw new UsageError(messageOf(e));
    }
  }
  return { table: { file, texts, y: encodeWithMap(m, labels, file, o.labels ? '--labels' : 'the training labels') }, map: m };
}

function pick<T extends Int32Array | Float32Array>(y: T, rows: ArrayLike<number>): T {
  const out = new (y.constructor as { new (n: number): T })(rows.length);
  for (let i = 0; i < rows.length; i++) out[i] = y[rows[i]];
  return out;
}

export interface FineTuneSummary {
  outputDir: string;
  evaluation: Evaluation;
  bestEpoch: number;
  epochs: EpochResult[];
  steps: number;
  files: string[];
}

export async function runFineTune(o: FineTuneOptions, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<FineTuneSummary> {
  validateFineTuneOptions(o);
  const started = new Date();
  const info = (l: string) => (o.quiet ? undefined : log(l));
  let spec;
  try {
    spec = readModelSpec(o.modelDir);
  } catch (e) {
    throw new UsageError(messageOf(e));
  }
  const limit = spec.config.maxPositions - spec.config.positionOffset;
  if (!Number.isInteger(o.maxLength) || o.maxLength < 2 || o.maxLength > limit) {
    throw new UsageError(`--max-length ${o.maxLength} is outside [2, ${limit}] for ${spec.dir}`);
  }

  // Data and labels, all checked before any work.
  const first = await readTable(o.train, o, null);
  const labelMap = first.map;
  const valTable = o.val ? (await readTable(o.val, o, labelMap)).table : null;
  const all = first.table;
  if (labelMap && new Set(all.y).size < 2) throw new UsageError(`${o.train}: only one class present; classification needs at least two`);
  let trainRows: Int32Array;
  let valRows: Int32Array | null = null;
  if (valTable) {
    trainRows = Int32Array.from(all.texts.keys());
  } else {
    try {
      const strata = labelMap ? (all.y as Int32Array) : intScores(all.y);
      const s = stratifiedSplit(strata, o.valSplit ?? FINETUNE_DEFAULTS.valSplit, o.seed);
      trainRows = s.train;
      valRows = s.validation;
    } catch (e) {
      throw new UsageError(messageOf(e));
    }
    if (valRows.length === 0) throw new UsageError(`${o.train}: too few rows to split off a validation set`);
  }
  const trainY = pick(all.y, trainRows);
  const valY = valTable ? valTable.y : pick(all.y, valRows!);
  const numOutputs = labelMap ? labelMap.size : 1;
  let classWeights: Float32Array | undefined;
  if (labelMap) {
    try {
      classWeights = ['none', 'balanced', 'sqrt'].includes(o.classWeights)
        ? computeClassWeights(trainY, labelMap.size, o.classWeights as ClassWeightMode, labelMap.labels)
        : readClassWeightsFile(o.classWeights, labelMap.labels);
    } catch (e) {
      throw new UsageError(messageOf(e));
    }
  }

  // Tokenize once (dynamic padding per micro-batch later).
  const tokenizer = TextTokenizer.load(spec.dir, { maxLength: o.maxLength, padId: spec.config.padTokenId });
  const encode = async (texts: string[]): Promise<Encoded[]> => tokenizer.encode(texts);
  const trainTexts = Array.from(trainRows, (r) => all.texts[r]);
  const valTexts = valTable ? valTable.texts : Array.from(valRows!, (r) => all.texts[r]);
  const trainEnc = await encode(trainTexts);
  const valEnc = await encode(valTexts);
  const truncated = trainEnc.filter((e) => e.droppedTokens > 0).length;
  info(`fine-tuning ${spec.dir} (${spec.config.modelType}, ${spec.config.numLayers} layers, hidden ${spec.config.hiddenSize}) on ` +
    `${trainEnc.length} training / ${valEnc.length} validation rows; max length ${o.maxLength} (${truncated} training texts truncated)`);

  const prepared = await prepareModel(spec, {
    numOutputs,
    loss: labelMap ? 'cross-entropy' : 'mse',
    classWeights,
    optimizer: {
      beta1: o.betas[0], beta2: o.betas[1], eps: o.eps, weightDecay: o.weightDecay, maxGradNorm: o.clipGradNorm,
      decayBiasAndNorm: !o.noDecayBiasNorm,
    },
    seed: o.seed,
    dropout: { ...resolveDropout(o.dropout, spec.rawConfig), seed: o.seed },
  });
  const { FineTuner } = loadFineTuneAddon();
  const ft: NativeFineTuner = new FineTuner(prepared.config, prepared.weights, { threads: o.threads });
  const shapes = new Map(ft.params.map((p) => [p.name, p.shape]));
  const dr = prepared.config.dropout!;
  info(`dropout: hidden ${dr.hidden}, attention ${dr.attention}, classifier ${dr.classifier}`);
  info(`${ft.trainableParameters.toLocaleString('en-US')} trainable parameters; head ${prepared.head}` +
    `${prepared.reusedHead ? ' (from the checkpoint)' : ' (new)'}; cpu ${ft.isa} x ${ft.threads} threads; ` +
    `activations ${(ft.activationBytes(o.batchSize, o.maxLength) / 2 ** 20).toFixed(0)} MiB for a full ${o.batchSize} x ${o.maxLength} batch, ` +
    `micro-batches ${o.microBatchSize ? `of ${o.microBatchSize} rows` : `within ${o.maxActivationMemory} MiB`}`);
  const names = labelMap ? labelMap.labels.map(String) : null;

  const staged = StagedRun.create(o.output);
  try {
    let modelFiles: string[] = [];
    const saveModel = async (): Promise<void> => {
      const w = await ft.getWeights();
      modelFiles = saveSeqClsFolder(staged.dir, spec, w, shapes, { labels: names, head: prepared.head });
    };
    const rows: Record<string, unknown>[] = [];
    const result = await fineTuneLoop(ft, { encoded: trainEnc, y: trainY }, { encoded: valEnc, y: valY }, {
      task: o.task, numOutputs, epochs: o.epochs, batchSize: o.batchSize, lr: o.lr, schedule: o.schedule, warmupRatio: o.warmupRatio,
      seed: o.seed, sampler: o.sampler, classWeights, earlyStop: o.earlyStop, patience: o.patience,
      padId: tokenizer.padId, maxActivationBytes: o.maxActivationMemory * 2 ** 20, microBatchSize: o.microBatchSize,
      evalBatchSize: o.evalBatchSize, maxSteps: o.maxSteps,
      evaluate: (outputs, targets) => {
        const m = evaluateOutputs(o.task, outputs, targets, numOutputs, classWeights);
        if (o.task === 'regression') {
          const e = evaluateRegression(targets, outputs, o.threshold);
          m.binary_f1 = e.binary_f1;
        }
        return m;
      },
      onBest: async () => saveModel(),
      onEpoch: (r) => {
        const val = Object.fromEntries(Object.entries(r.val).map(([k, v]) => [`val_${k}`, v]));
        rows.push({ epoch: r.epoch + 1, train_loss: r.trainLoss, lr: r.lr, steps: r.steps, grad_norm: r.lastGradNorm,
          tokens: r.tokens, seconds: r.seconds, ...val, improved: r.improved });
        info(`epoch ${r.epoch + 1}/${o.epochs}: train loss ${r.trainLoss.toFixed(4)}, val ${o.earlyStop} ${(r.val[o.earlyStop] ?? NaN).toFixed(4)}, ` +
          `accuracy ${(r.val.accuracy ?? NaN).toFixed(4)}, ${(r.tokens / Math.max(r.seconds, 1e-9)).toFixed(0)} tokens/s${r.improved ? ' (best, saved)' : ''}`);
      },
      log: o.quiet ? undefined : info,
    });
    let bestOutputs = result.bestOutputs;
    if (!bestOutputs) {
      // No epoch improved (e.g. the metric was NaN throughout): keep the last weights.
      await saveModel();
      bestOutputs = await predictAll(ft, valEnc, numOutputs, o.evalBatchSize, tokenizer.padId);
    }
    const evaluation = labelMap
      ? evaluateClassification(valY, argmaxRows(bestOutputs, numOutputs), names!)
      : evaluateRegression(valY, bestOutputs, o.threshold);
    writeJson(staged.path(RUN_FILES.labels), labelMap ? labelMap.toJSON() : { task: 'regression', labels: null });
    writeJsonl(staged.path(RUN_FILES.metrics), rows);
    writeJson(staged.path(RUN_FILES.reportJson), { split: 'validation', ...evaluation });
    writeFileAtomic(staged.path(RUN_FILES.reportText), evaluationText(evaluation));
    const best = {
      best_epoch: result.bestEpoch + 1, metric: o.earlyStop, value: result.bestMetrics?.[o.earlyStop] ?? null,
      epochs_run: result.history.length, stopped_early: result.stoppedEarly, steps: result.steps, metrics: result.bestMetrics,
    };
    writeJson(staged.path(RUN_FILES.best), best);
    const preds = Array.from({ length: valY.length }, (_, i) => {
      const out = Array.from(bestOutputs!.subarray(i * numOutputs, (i + 1) * numOutputs));
      return labelMap
        ? { row: i, label: names![valY[i]], pred: names![argmaxRows(out, numOutputs)[0]], logits: out }
        : { row: i, target: valY[i], score: out[0] };
    });
    writeJsonl(staged.path(FINETUNE_FILES.predictions), preds);
    const files = [...modelFiles, RUN_FILES.labels, RUN_FILES.metrics, RUN_FILES.best, RUN_FILES.reportText, RUN_FILES.reportJson,
      FINETUNE_FILES.predictions, FINETUNE_FILES.record];
    writeJson(staged.path(FINETUNE_FILES.record), {
      format: 'edu-train-finetune',
      edu_train_version: packageVersion(),
      command: 'finetune',
      task: o.task,
      options: Object.fromEntries(Object.entries(o).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), v ?? null])),
      base_model: { dir: spec.dir, architecture: spec.architecture, model_type: spec.config.modelType },
      head: { kind: prepared.head, reused_from_checkpoint: prepared.reusedHead, initialised: prepared.initialised },
      class_weights: classWeights ? Array.from(classWeights) : null,
      labels: labelMap ? labelMap.labels : null,
      data: {
        train: { file: resolve(o.train), rows: trainEnc.length, truncated },
        validation: valTable ? { file: resolve(valTable.file), rows: valEnc.length } : { split: o.valSplit ?? FINETUNE_DEFAULTS.valSplit, rows: valEnc.length },
      },
      runtime: { isa: ft.isa, threads: ft.threads, trainable_parameters: ft.trainableParameters, precision: 'fp32' },
      dropout: prepared.config.dropout,
      started_at: started.toISOString(),
      finished_at: new Date().toISOString(),
      duration_s: (Date.now() - started.getTime()) / 1000,
      files,
    });
    staged.commit();
    if (!o.quiet) log(`\nvalidation report of the best epoch (${result.bestEpoch + 1}):\n${evaluationText(evaluation)}`);
    return { outputDir: staged.target, evaluation, bestEpoch: result.bestEpoch, epochs: result.history, steps: result.steps, files };
  } catch (e) {
    staged.discard();
    throw e;
  } finally {
    ft.dispose();
  }
}

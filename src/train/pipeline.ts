/**
 * `train` orchestration: read the table(s) -> labels -> validation split or folds -> embeddings (cached)
 * -> HeadTrainer per run -> reports -> the run folder. Everything a user can get wrong is checked before
 * the encoder or the trainer starts, and a failure removes the half-written run folder.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadEncoder, type Encoder, type Pooling } from '../encoder.js';
import { openTable } from '../data/table.js';
import type { ColumnInfo } from '../data/types.js';
import { evaluateClassification, evaluateRegression, evaluationText, perLabelF1, type Evaluation } from '../eval/evaluate.js';
import { argmaxRows, classificationReport, intScores } from '../eval/metrics.js';
import { displayWidth, padEnd } from '../eval/report-text.js';
import type { CpuDtype, CpuIsa, CudaPrecision } from '../native/addon-types.js';
import type { HeadParams } from '../native/head-types.js';
import type { EpochRow } from '../report/charts.js';
import { writeCvReport, writeRunReport } from '../report/run-report.js';
import { REPORT_FILES } from '../report/write.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { UsageError, messageOf } from '../util/errors.js';
import { packageVersion } from '../util/package-info.js';
import { computeClassWeights, readClassWeightsFile, type ClassWeightMode } from './class-weights.js';
import { METRIC_MODES } from './early-stopping.js';
import { cachedEmbeddings, computeEmbeddings, EmbeddingCache, embeddingNumerics, modelIdentity, type CacheStatus, type ModelIdentity } from './embedding-cache.js';
import { readPoolerWeights, saveHead } from './head-io.js';
import { evaluateOutputs, HeadTrainer, type EpochRecord, type HeadTrainResult, type Metrics } from './head-trainer.js';
import { encodeRegressionTargets, LabelMap, type Label } from './label-map.js';
import { Rng } from './rng.js';
import { RUN_FILES, StagedRun, writeJson, writeJsonl } from './run-dir.js';
import type { ScheduleKind } from './schedule.js';
import { stratifiedKFold, stratifiedSplit } from './split.js';

export type Task = 'classification' | 'regression';
export type HeadKind = 'linear' | 'pooler';

/** Every train option, defaults filled in: this object is what run.json records. */
export interface TrainOptions {
  modelDir: string;
  train: string;
  val?: string;
  valSplit?: number;
  textColumn: string;
  labelColumn: string;
  task: Task;
  labels?: string[];
  head: HeadKind;
  /** Undefined = the head's default: mean for linear, cls for pooler. */
  pooling?: Pooling;
  dropout: number;
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
  folds?: number;
  seed: number;
  threshold: number;
  output: string;
  overwrite: boolean;
  threads?: number;
  /** Where the encoder runs to embed (the head always trains on the CPU): see LoadEncoderOptions. */
  device?: string;
  precision?: CudaPrecision;
  maxBatchTokens?: number;
  /** CPU arithmetic of the encoder while embedding (--dtype); part of the embedding cache key. */
  dtype?: CpuDtype;
  maxLength?: number;
  embedBatchSize: number;
  cacheDir?: string;
  cache: boolean;
  quiet: boolean;
  isa?: CpuIsa;
}

export const TRAIN_DEFAULTS = {
  valSplit: 0.1,
  dropout: 0.1,
  epochs: 20,
  batchSize: 256,
  lr: 3e-4,
  weightDecay: 0.01,
  betas: [0.9, 0.999] as [number, number],
  eps: 1e-8,
  schedule: 'linear' as ScheduleKind,
  warmupRatio: 0.1,
  clipGradNorm: 1.0,
  classWeights: 'none',
  sampler: 'shuffle' as const,
  earlyStop: 'macro_f1',
  patience: 3,
  seed: 42,
  threshold: 3,
  embedBatchSize: 32,
};

/** Early-stopping metrics each task reports per epoch. */
export const TASK_METRICS: Record<Task, readonly string[]> = {
  classification: ['macro_f1', 'weighted_f1', 'accuracy', 'loss'],
  regression: ['macro_f1', 'weighted_f1', 'accuracy', 'mse', 'loss', 'pearson', 'spearman', 'binary_f1'],
};

// ---------------------------------------------------------------------------------------------
// Option checks (no side effects)

export function resolvedPooling(o: Pick<TrainOptions, 'head' | 'pooling'>): Pooling {
  if (o.head === 'pooler') {
    if (o.pooling && o.pooling !== 'cls') {
      throw new UsageError(`--head pooler runs the BERT pooler on the CLS vector, so it needs --pooling cls (got ${o.pooling}); use --head linear for ${o.pooling} pooling`);
    }
    return 'cls';
  }
  return o.pooling ?? 'mean';
}

export function validateTrainOptions(o: TrainOptions): void {
  const bad = (m: string): never => {
    throw new UsageError(m);
  };
  if (o.val !== undefined && o.valSplit !== undefined) bad('--val and --val-split are exclusive: give a validation file or a fraction to split off, not both');
  if (o.folds !== undefined) {
    if (!Number.isInteger(o.folds) || o.folds < 2) bad(`--folds must be an integer >= 2 (got ${o.folds}); leave it out for a single train/validation run`);
    if (o.val !== undefined || o.valSplit !== undefined) bad('--folds validates each fold on its held-out part; do not combine it with --val or --val-split');
  }
  if (o.valSplit !== undefined && !(o.valSplit > 0 && o.valSplit < 1)) bad(`--val-split must be in (0, 1), got ${o.valSplit}`);
  if (!(METRIC_MODES[o.earlyStop] !== undefined)) {
    bad(`unknown --early-stop metric '${o.earlyStop}' (known: ${TASK_METRICS[o.task].join(', ')})`);
  }
  if (!TASK_METRICS[o.task].includes(o.earlyStop)) bad(`--early-stop ${o.earlyStop} is not reported for ${o.task} (use one of ${TASK_METRICS[o.task].join(', ')})`);
  if (o.patience !== 'off' && (!Number.isInteger(o.patience) || o.patience < 1)) bad(`--patience must be an integer >= 1 or 'off', got ${o.patience}`);
  if (o.task === 'regression') {
    if (o.labels) bad('--labels applies to classification only');
    if (o.classWeights !== 'none') bad('--class-weights applies to classification only (regression uses MSE)');
  } else if (!['none', 'balanced', 'sqrt'].includes(o.classWeights) && !existsSync(o.classWeights)) {
    bad(`--class-weights ${o.classWeights}: not none, balanced, sqrt or an existing JSON file`);
  }
  if (!(o.dropout >= 0 && o.dropout < 1)) bad(`--dropout must be in [0, 1), got ${o.dropout}`);
  if (!(o.lr > 0 && Number.isFinite(o.lr))) bad(`--lr must be a positive number, got ${o.lr}`);
  if (!(o.weightDecay >= 0 && Number.isFinite(o.weightDecay))) bad(`--weight-decay must be >= 0, got ${o.weightDecay}`);
  if (!(o.eps > 0 && Number.isFinite(o.eps))) bad(`--eps must be a positive number, got ${o.eps}`);
  if (!o.betas.every((b) => b >= 0 && b < 1)) bad(`--betas must be two numbers in [0, 1), got ${o.betas.join(',')}`);
  if (!(o.warmupRatio >= 0 && o.warmupRatio <= 1)) bad(`--warmup-ratio must be in [0, 1], got ${o.warmupRatio}`);
  if (!(o.clipGradNorm >= 0 && Number.isFinite(o.clipGradNorm))) bad(`--clip-grad-norm must be >= 0 (0 = off), got ${o.clipGradNorm}`);
  if (!Number.isSafeInteger(o.seed) || o.seed < 0) bad(`--seed must be a non-negative integer, got ${o.seed}`);
  if (!Number.isFinite(o.threshold)) bad(`--threshold must be a number, got ${o.threshold}`);
  resolvedPooling(o);
  if (o.labels) {
    if (o.labels.length < 2) bad('--labels needs at least two labels for classification');
    if (new Set(o.labels).size !== o.labels.length) bad(`--labels has duplicates: ${o.labels.join(',')}`);
  }
  const out = resolve(o.output);
  for (const f of [o.train, o.val]) if (f && resolve(f) === out) bad('--output must not be an input file');
  StagedRun.checkTarget(o.output, o.overwrite);
}

// ---------------------------------------------------------------------------------------------
// Reading labelled tables and labels

function findColumn(schema: ColumnInfo[], name: string, flag: string, file: string): ColumnInfo {
  const col = schema.find((c) => c.name === name);
  if (!col) throw new UsageError(`${flag} ${name}: ${file} has no such column; its columns are ${schema.map((c) => c.name).join(', ')}`);
  return col;
}

/** Reads whole columns of a (training / evaluation) table; problems become UsageErrors naming the file. */
export async function readColumns(file: string, columns: { name: string; flag: string }[]): Promise<Record<string, unknown[]>> {
  let reader;
  try {
    reader = await openTable(file);
  } catch (e) {
    throw new UsageError(messageOf(e));
  }
  await reader.close();
  for (const c of columns) findColumn(reader.schema, c.name, c.flag, file);
  try {
    const r = await openTable(file, { columns: [...new Set(columns.map((c) => c.name))] });
    try {
      const batch = await r.readAll();
      if (batch.numRows === 0) throw new UsageError(`${file}: no rows`);
      return batch.columns;
    } finally {
      await r.close();
    }
  } catch (e) {
    throw e instanceof UsageError ? e : new UsageError(messageOf(e));
  }
}

export function textsOf(values: unknown[], column: string, file: string): string[] {
  return values.map((v, i) => {
    if (typeof v === 'string') return v;
    if (v === null || v === undefined) throw new UsageError(`${file}: row ${i} has no text (null in column ${column}); drop or fill such rows first`);
    throw new UsageError(`${file}: row ${i}: column ${column} holds ${typeof v}, not text`);
  });
}

const INT_LIKE = /^[+-]?\d+$/;

/** Label cells as labels: empty / null / NaN is an error naming the row; strings are kept as written. */
export function rawLabels(values: unknown[], column: string, file: string): Label[] {
  return values.map((v, i) => {
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    if (typeof v === 'bigint') return Number(v);
    if (typeof v === 'string' && v.trim() !== '' && v.trim().toLowerCase() !== 'nan') return v;
    throw new UsageError(`${file}: row ${i} has an empty or invalid label (${JSON.stringify(v) ?? String(v)}) in column ${column}; drop or fill such rows first`);
  });
}

/** CSV gives every cell as text: integer labels written as "0".."4" become numbers (sorted numerically). */
export function normalizeLabels(labels: Label[]): Label[] {
  if (labels.every((l) => typeof l === 'number' || INT_LIKE.test(l.trim()))) return labels.map((l) => (typeof l === 'number' ? l : Number(l)));
  return labels.map((l) => (typeof l === 'number' ? String(l) : l));
}

/** Converts a value to the kind (number / string) of the mapping's labels. */
export function toMappingKind(map: LabelMap, l: Label): Label {
  const numeric = typeof map.labels[0] === 'number';
  if (numeric && typeof l === 'string' && INT_LIKE.test(l.trim())) return Number(l);
  if (!numeric && typeof l === 'number') return String(l);
  return l;
}

export function encodeWithMap(map: LabelMap, labels: readonly Label[], file: string, flagHint: string): Int32Array {
  const out = new Int32Array(labels.length);
  for (let i = 0; i < labels.length; i++) {
    const l = toMappingKind(map, labels[i]);
    if (!map.has(l)) {
      throw new UsageError(`${file}: row ${i} has label ${JSON.stringify(l)}, which is not one of ${flagHint} (${map.labels.map((x) => JSON.stringify(x)).join(', ')})`);
    }
    out[i] = map.id(l);
  }
  return out;
}

function buildLabelMap(o: TrainOptions, trainLabels: Label[]): LabelMap {
  if (!o.labels) {
    try {
      return LabelMap.fromValues(trainLabels);
    } catch (e) {
      throw new UsageError(messageOf(e));
    }
  }
  const numeric = typeof trainLabels[0] === 'number';
  const list: Label[] = o.labels.map((l) => {
    if (!numeric) return l;
    if (!INT_LIKE.test(l.trim())) throw new UsageError(`--labels ${l}: the label column holds integers, so --labels must list integers`);
    return Number(l);
  });
  return new LabelMap(list);
}

// ---------------------------------------------------------------------------------------------
// Training

interface Dataset {
  file: string;
  texts: string[];
  /** classification: class ids; regression: scores. */
  y: Int32Array | Float32Array;
  /** Integer strata for stratified splits. */
  strata: Int32Array;
}

async function readDataset(file: string, o: TrainOptions, labelMap: LabelMap | null, mapFrom?: (l: Label[]) => LabelMap): Promise<{ data: Dataset; labelMap: LabelMap | null }> {
  const cols = await readColumns(file, [{ name: o.textColumn, flag: '--text-column' }, { name: o.labelColumn, flag: '--label-column' }]);
  const texts = textsOf(cols[o.textColumn], o.textColumn, file);
  if (o.task === 'regression') {
    let y: Float32Array;
    try {
      y = encodeRegressionTargets(cols[o.labelColumn]);
    } catch (e) {
      throw new UsageError(`${file}: ${messageOf(e)}`);
    }
    return { data: { file, texts, y, strata: intScores(y) }, labelMap: null };
  }
  const labels = normalizeLabels(rawLabels(cols[o.labelColumn], o.labelColumn, file));
  const map = labelMap ?? mapFrom!(labels);
  const y = encodeWithMap(map, labels, file, o.labels ? '--labels' : 'the training labels');
  return { data: { file, texts, y, strata: y }, labelMap: map };
}

function takeRows(x: Float32Array, rows: Int32Array, width: number): Float32Array {
  const out = new Float32Array(rows.length * width);
  for (let i = 0; i < rows.length; i++) out.set(x.subarray(rows[i] * width, (rows[i] + 1) * width), i * width);
  return out;
}

function takeTargets<T extends Int32Array | Float32Array>(y: T, rows: Int32Array): T {
  const out = new (y.constructor as { new (n: number): T })(rows.length);
  for (let i = 0; i < rows.length; i++) out[i] = y[rows[i]];
  return out;
}

interface Job {
  name: string;
  /** Folder inside the staged run ('' = the run folder itself). */
  sub: string;
  trainX: Float32Array;
  trainY: Int32Array | Float32Array;
  valX: Float32Array;
  valY: Int32Array | Float32Array;
  fold?: number;
}

interface JobResult {
  evaluation: Evaluation;
  best: Record<string, unknown>;
  trainRows: number;
  valRows: number;
}

export interface TrainSummary {
  runDir: string;
  files: string[];
  evaluation?: Evaluation;
  cv?: CvSummary;
  embeddings: { what: string; texts: number; cache: CacheStatus; file?: string }[];
}

function snake(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), v === undefined ? null : v]));
}

/** The CPU code path is an environment detail (EDU_TRAIN_CPU_ISA), not a training option. */
function withoutIsa(o: TrainOptions): Omit<TrainOptions, 'isa'> {
  const { isa: _isa, ...rest } = o;
  return rest;
}

function binaryF1(targets: ArrayLike<number>, outputs: ArrayLike<number>, threshold: number): number {
  const t = Int32Array.from(intScores(targets), (v) => (v >= threshold ? 1 : 0));
  const p = Int32Array.from(intScores(outputs), (v) => (v >= threshold ? 1 : 0));
  return classificationReport(t, p, [0, 1]).perClass[1].f1;
}

function fmtMetric(x: number | undefined): string {
  return x === undefined ? '-' : Number.isFinite(x) ? x.toFixed(4) : 'nan';
}

export async function runTraining(o: TrainOptions, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<TrainSummary> {
  validateTrainOptions(o);
  const started = new Date();
  const info = (l: string) => (o.quiet ? undefined : log(l));
  const pooling = resolvedPooling(o);
  const { identity, spec } = await modelIdentity(o.modelDir, o.maxLength);
  const pooler = o.head === 'pooler' ? await readPoolerWeights(spec) : null;
  if (pooling === 'pooler' && !spec.hasPooler) {
    throw new UsageError(`--pooling pooler needs a model with a pooler (pooler.dense.*); ${spec.dir} has none. Use mean or cls.`);
  }

  // Data and labels, all checked before anything is written.
  const first = await readDataset(o.train, o, null, (labels) => buildLabelMap(o, labels));
  const trainSet = first.data;
  const labelMap = first.labelMap;
  const valSet = o.val ? (await readDataset(o.val, o, labelMap)).data : null;
  if (labelMap && new Set(trainSet.y).size < 2) throw new UsageError(`${o.train}: only one class present; classification needs at least two`);
  const names = labelMap ? labelMap.labels.map(String) : null;
  let splits: { train: Int32Array; val: Int32Array }[];
  try {
    if (o.folds) splits = stratifiedKFold(trainSet.strata, o.folds, o.seed).map((f) => ({ train: f.train, val: f.test }));
    else if (valSet) splits = [{ train: Int32Array.from(trainSet.texts.keys()), val: new Int32Array(0) }];
    else splits = [(({ train, validation }) => ({ train, val: validation }))(stratifiedSplit(trainSet.strata, o.valSplit ?? TRAIN_DEFAULTS.valSplit, o.seed))];
  } catch (e) {
    throw new UsageError(messageOf(e));
  }
  if (!valSet && splits.some((s) => s.val.length === 0)) throw new UsageError(`${o.train}: too few rows to split off a validation set`);
  const classWeightsFor = (y: Int32Array): Float32Array | undefined => {
    if (!labelMap) return undefined;
    try {
      if (['none', 'balanced', 'sqrt'].includes(o.classWeights)) return computeClassWeights(y, labelMap.size, o.classWeights as ClassWeightMode, labelMap.labels);
      return readClassWeightsFile(o.classWeights, labelMap.labels);
    } catch (e) {
      throw new UsageError(messageOf(e));
    }
  };
  // Class weights of every split are computed up front: an impossible weighting fails before any work.
  splits.forEach((s) => classWeightsFor(takeTargets(trainSet.y as Int32Array, s.train)));

  const staged = StagedRun.create(o.output);
  let encoder: Encoder | null = null;
  try {
    const cache = o.cache ? new EmbeddingCache(o.cacheDir) : null;
    const getEncoder = async (): Promise<Encoder> => {
      if (!encoder) {
        encoder = await loadEncoder(identity.dir, {
          device: o.device,
          precision: o.precision,
          maxBatchTokens: o.maxBatchTokens,
          threads: o.threads,
          isa: o.isa,
          dtype: o.dtype,
          maxLength: identity.maxLength,
        });
        if (encoder.weightsSha256 !== identity.weightsSha256) throw new Error(`${identity.dir}: the weights changed while training started`);
      }
      return encoder;
    };
    const embeddingsLog: TrainSummary['embeddings'] = [];
    const numerics = embeddingNumerics(o.device, o.precision, o.dtype);
    const embed = async (what: string, texts: string[]): Promise<Float32Array> => {
      const r = await cachedEmbeddings({
        cache, identity, pooling, texts, what, log: info, numerics,
        compute: async () => computeEmbeddings(await getEncoder(), texts, { pooling, batchSize: o.embedBatchSize, quiet: o.quiet, label: `embed ${what}` }),
      });
      embeddingsLog.push({ what, texts: texts.length, cache: r.status, file: r.path });
      return r.embeddings;
    };
    const trainEmb = await embed('train', trainSet.texts);
    const valEmb = valSet ? await embed('validation', valSet.texts) : null;
    if (encoder) (encoder as Encoder).dispose();
    encoder = null;

    const H = identity.hiddenSize;
    const jobs: Job[] = splits.map((s, k) => ({
      name: o.folds ? `fold ${k + 1}/${o.folds}` : 'train',
      sub: o.folds ? `fold-${k}` : '',
      fold: o.folds ? k : undefined,
      trainX: takeRows(trainEmb, s.train, H),
      trainY: takeTargets(trainSet.y, s.train),
      valX: valEmb ?? takeRows(trainEmb, s.val, H),
      valY: valSet ? valSet.y : takeTargets(trainSet.y, s.val),
    }));

    const base = {
      format: 'edu-train-run',
      edu_train_version: packageVersion(),
      command: 'train',
      task: o.task,
      options: snake({ ...withoutIsa(o), pooling, valSplit: o.val || o.folds ? null : (o.valSplit ?? TRAIN_DEFAULTS.valSplit) }),
      encoder: {
        model_dir: identity.dir,
        architecture: identity.architecture,
        model_type: identity.modelType,
        hidden_size: H,
        has_pooler: identity.hasPooler,
        weights_sha256: identity.weightsSha256,
        tokenizer_sha256: identity.tokenizerSha256,
        config_sha256: identity.configSha256,
        pooling,
        max_length: identity.maxLength,
      },
      head: { kind: o.head, in_features: H, num_outputs: labelMap ? labelMap.size : 1, hidden: o.head === 'pooler' },
      labels: labelMap ? labelMap.labels : null,
      embeddings: embeddingsLog,
    };

    const results: JobResult[] = [];
    for (const job of jobs) {
      const dir = job.sub ? staged.path(job.sub) : staged.dir;
      if (job.sub) mkdirSync(dir);
      const r = await trainJob(job, o, { H, labelMap, names, pooler, dir, info });
      results.push(r);
      if (labelMap) writeJson(`${dir}/${RUN_FILES.labels}`, labelMap.toJSON());
      else writeJson(`${dir}/${RUN_FILES.labels}`, { task: 'regression', labels: null });
      if (job.sub) {
        writeJson(`${dir}/${RUN_FILES.run}`, {
          ...base,
          fold: { index: job.fold, folds: o.folds },
          data: { train: { file: resolve(o.train), rows: r.trainRows }, validation: { source: `fold ${job.fold} of ${o.train}`, rows: r.valRows } },
          started_at: started.toISOString(),
          finished_at: new Date().toISOString(),
        });
      }
    }

    let cv: CvSummary | undefined;
    const files: string[] = [];
    if (o.folds) {
      writeJson(staged.path(RUN_FILES.labels), labelMap ? labelMap.toJSON() : { task: 'regression', labels: null });
      cv = cvSummary(results.map((r) => r.evaluation));
      writeJson(staged.path(RUN_FILES.cvSummary), cv);
      const text = cvText(cv);
      writeFileAtomic(staged.path(RUN_FILES.cvReport), text);
      await writeCvReport(staged.dir, cv, o, jobs.map((j) => j.sub));
      if (!o.quiet) log(`\n${text}`);
      files.push(RUN_FILES.cvSummary, RUN_FILES.cvReport, REPORT_FILES.html, `${REPORT_FILES.charts}/`, ...jobs.map((j) => `${j.sub}/`));
    } else {
      if (!o.quiet) log(`\nvalidation report of the best head (epoch ${(results[0].best as { best_epoch: number }).best_epoch}):\n${evaluationText(results[0].evaluation)}`);
      files.push(RUN_FILES.head, RUN_FILES.metrics, RUN_FILES.best, RUN_FILES.reportText, RUN_FILES.reportJson, REPORT_FILES.html, `${REPORT_FILES.charts}/`);
    }
    files.push(RUN_FILES.labels, RUN_FILES.run);
    // run.json last: a folder without it is not a finished run.
    writeJson(staged.path(RUN_FILES.run), {
      ...base,
      folds: o.folds ?? null,
      data: {
        train: { file: resolve(o.train), rows: trainSet.texts.length, used: o.folds ? null : results[0].trainRows },
        validation: valSet ? { file: resolve(valSet.file), rows: valSet.texts.length } : o.folds ? null : { split: o.valSplit ?? TRAIN_DEFAULTS.valSplit, rows: results[0].valRows },
      },
      started_at: started.toISOString(),
      finished_at: new Date().toISOString(),
      duration_s: (Date.now() - started.getTime()) / 1000,
      files,
    });
    staged.commit();
    info(`HTML report (charts, no network needed): ${staged.target}/${REPORT_FILES.html}`);
    return { runDir: staged.target, files, evaluation: o.folds ? undefined : results[0].evaluation, cv, embeddings: embeddingsLog };
  } catch (e) {
    staged.discard();
    throw e;
  } finally {
    (encoder as Encoder | null)?.dispose();
  }
}

interface JobContext {
  H: number;
  labelMap: LabelMap | null;
  names: string[] | null;
  pooler: { weight: Float32Array; bias: Float32Array } | null;
  dir: string;
  info: (l: string) => void;
}

async function trainJob(job: Job, o: TrainOptions, ctx: JobContext): Promise<JobResult> {
  const { H, labelMap } = ctx;
  const numOutputs = labelMap ? labelMap.size : 1;
  const classWeights = labelMap
    ? ['none', 'balanced', 'sqrt'].includes(o.classWeights)
      ? computeClassWeights(job.trainY, labelMap.size, o.classWeights as ClassWeightMode, labelMap.labels)
      : readClassWeightsFile(o.classWeights, labelMap.labels)
    : undefined;
  let init: HeadParams | undefined;
  if (ctx.pooler) {
    // Same draw as HeadTrainer's default init (N(0, 0.02) from Rng(seed, 0x1417)); the hidden layer is the checkpoint's pooler.
    const rng = new Rng(o.seed, 0x1417);
    init = {
      weight: Float32Array.from({ length: numOutputs * H }, () => rng.normal(0, 0.02)),
      bias: new Float32Array(numOutputs),
      hiddenWeight: Float32Array.from(ctx.pooler.weight),
      hiddenBias: Float32Array.from(ctx.pooler.bias),
    };
  }
  const rows: Record<string, unknown>[] = [];
  const onEpoch = (r: EpochRecord): void => {
    const val = Object.fromEntries(Object.entries(r.val ?? {}).map(([k, v]) => [`val_${k}`, v]));
    rows.push({ epoch: r.epoch + 1, train_loss: r.trainLoss, lr: r.lr, steps: r.steps, grad_norm: r.lastGradNorm, ...val, improved: r.improved ?? null });
    ctx.info(
      `${job.name} epoch ${r.epoch + 1}/${o.epochs}: train loss ${fmtMetric(r.trainLoss)}, lr ${r.lr.toExponential(2)}, ` +
        `val ${o.earlyStop} ${fmtMetric(r.val?.[o.earlyStop])}, accuracy ${fmtMetric(r.val?.accuracy)}${r.improved ? ' (best)' : ''}`,
    );
  };
  const trainer = new HeadTrainer(
    {
      task: o.task,
      inFeatures: H,
      numClasses: labelMap ? labelMap.size : undefined,
      hidden: o.head === 'pooler',
      init,
      epochs: o.epochs,
      batchSize: o.batchSize,
      lr: o.lr,
      schedule: o.schedule,
      warmupRatio: o.warmupRatio,
      weightDecay: o.weightDecay,
      betas: o.betas,
      eps: o.eps,
      dropout: o.dropout,
      clipGradNorm: o.clipGradNorm,
      seed: o.seed,
      classWeights,
      sampler: o.sampler,
      earlyStopping: { metric: o.earlyStop, patience: o.patience },
      threads: o.threads,
    },
    {
      onEpoch,
      evaluate: ({ outputs, validation }): Metrics => {
        const m = evaluateOutputs(o.task, outputs, validation.targets, numOutputs, classWeights);
        if (o.task === 'regression') m.binary_f1 = binaryF1(validation.targets, outputs, o.threshold);
        return m;
      },
    },
  );
  let result: HeadTrainResult;
  let evaluation: Evaluation;
  let outputs: Float32Array;
  try {
    result = await trainer.train({ features: job.trainX, targets: job.trainY }, { features: job.valX, targets: job.valY });
    outputs = await trainer.nativeHead.predict(job.valX); // the best epoch's state is restored
    evaluation = labelMap
      ? evaluateClassification(job.valY, argmaxRows(outputs, numOutputs), ctx.names!)
      : evaluateRegression(job.valY, outputs, o.threshold);
  } finally {
    trainer.dispose();
  }
  saveHead(`${ctx.dir}/${RUN_FILES.head}`, result.bestState, { inFeatures: H, numOutputs, hidden: o.head === 'pooler' }, {
    edu_train_task: o.task,
    edu_train_head: o.head,
  });
  writeJsonl(`${ctx.dir}/${RUN_FILES.metrics}`, rows);
  writeJson(`${ctx.dir}/${RUN_FILES.reportJson}`, { split: 'validation', ...evaluation });
  writeFileAtomic(`${ctx.dir}/${RUN_FILES.reportText}`, evaluationText(evaluation));
  const best = {
    best_epoch: result.bestEpoch + 1,
    metric: o.earlyStop,
    value: result.bestMetrics?.[o.earlyStop] ?? null,
    epochs_run: result.history.length,
    stopped_early: result.stoppedEarly,
    metrics: result.bestMetrics ?? null,
  };
  writeJson(`${ctx.dir}/${RUN_FILES.best}`, best);
  await writeRunReport(ctx.dir, {
    name: job.name, options: o, evaluation, epochs: rows as EpochRow[], best,
    scores: labelMap ? undefined : { truth: job.valY, pred: outputs },
  });
  return { evaluation, best, trainRows: job.trainY.length, valRows: job.valY.length };
}

// ---------------------------------------------------------------------------------------------
// Cross-validation summary

export interface MeanStd {
  mean: number;
  /** Population standard deviation (ddof = 0, numpy's default). */
  std: number;
  values: number[];
}

export interface CvSummary {
  folds: number;
  task: Task;
  metrics: Record<string, MeanStd>;
  /** Per-label F1 (regression: per int score 0..5). */
  f1_per_label: Record<string, MeanStd>;
}

export function meanStd(values: number[]): MeanStd {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) * (b - mean), 0) / n);
  return { mean, std, values };
}

export function cvSummary(evals: Evaluation[]): CvSummary {
  const task = evals[0].task;
  const keys = task === 'classification' ? ['accuracy', 'macro_f1', 'weighted_f1'] : ['accuracy', 'macro_f1', 'weighted_f1', 'mse', 'pearson', 'spearman', 'binary_f1'];
  const metrics: Record<string, MeanStd> = {};
  for (const k of keys) metrics[k] = meanStd(evals.map((e) => (e as unknown as Record<string, number>)[k]));
  const perLabel = evals.map(perLabelF1);
  const f1_per_label: Record<string, MeanStd> = {};
  for (const label of Object.keys(perLabel[0])) f1_per_label[label] = meanStd(perLabel.map((p) => p[label]));
  return { folds: evals.length, task, metrics, f1_per_label };
}

export function cvText(cv: CvSummary): string {
  const rows: [string, MeanStd][] = [...Object.entries(cv.metrics), ...Object.entries(cv.f1_per_label).map(([k, v]) => [`F1 ${k}`, v] as [string, MeanStd])];
  const width = Math.max(...rows.map(([k]) => displayWidth(k)), 6);
  let out = `${cv.folds}-fold cross-validation: mean ± std over folds (std with ddof=0)\n`;
  for (const [k, v] of rows) {
    out += `${padEnd(k, width)}  ${fmtMetric(v.mean)} ± ${fmtMetric(v.std)}   [${v.values.map(fmtMetric).join(', ')}]\n`;
  }
  return out;
}

export type { ModelIdentity };

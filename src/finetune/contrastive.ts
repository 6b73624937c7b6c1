/**
 * `finetune-embeddings`: contrastive fine-tuning of a sentence-embedding model with
 * MultipleNegativesRankingLoss (cosine similarity x scale, in-batch negatives: the positive of anchor i is
 * positive i, every other positive of the batch is a negative), the KLUE-STS sentence-transformers recipe
 * as defaults (lr 5e-5, 100 warmup steps then linear decay, batch 16, 1 epoch, clip 1, weight decay 0.01
 * off biases/LayerNorm as sentence-transformers' fit does), and an STS evaluation: Pearson and Spearman
 * of the cosine similarity of the two sentences' embeddings against the gold score, before training and
 * after every epoch (the best epoch by Spearman is kept).
 *
 * Output: a sentence-transformers folder (config.json, model.safetensors, tokenizer files, modules.json,
 * 1_Pooling/config.json, sentence_bert_config.json) plus metrics.jsonl, sts_eval.json, finetune.json.
 */
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pearson, spearman } from '../eval/metrics.js';
import { readModelSpec } from '../model/config.js';
import { loadWeights } from '../model/load.js';
import { writeSafetensors, type TensorToWrite } from '../model/safetensors.js';
import { loadSentenceTransformers } from '../model/sentence-transformers.js';
import type { ModelSpec, ModelType } from '../model/types.js';
import { loadFineTuneAddon, type NativeFineTuner } from '../native/finetune-types.js';
import { TextTokenizer, type Encoded } from '../tokenize/tokenizer.js';
import { readColumns, textsOf } from '../train/pipeline.js';
import { RUN_FILES, StagedRun, writeJson, writeJsonl } from '../train/run-dir.js';
import { shuffleOrder } from '../train/sampler.js';
import { lrMultiplier, validateSchedule, type ScheduleKind, type ScheduleSpec } from '../train/schedule.js';
import { UsageError, messageOf } from '../util/errors.js';
import { packageVersion } from '../util/package-info.js';
import { gradCacheAccumulate } from './gradcache.js';
import { configDropout, TOKENIZER_FILES } from './model-io.js';
import { toBatch } from './trainer.js';

export interface ContrastiveOptions {
  modelDir: string;
  train: string;
  anchorColumn: string;
  positiveColumn: string;
  /** Keep only rows whose score column is >= minScore (e.g. KLUE-STS pairs with a similarity >= 3). */
  scoreColumn?: string;
  minScore?: number;
  sts?: string;
  stsScoreColumn: string;
  pooling: 'mean' | 'cls';
  scale: number;
  epochs: number;
  batchSize: number;
  lr: number;
  warmupSteps: number;
  schedule: ScheduleKind;
  weightDecay: number;
  clipGradNorm: number;
  maxLength: number;
  seed: number;
  maxSteps?: number;
  evalBatchSize: number;
  /**
   * GradCache: embed, then backpropagate, the batch in mini-batches of this many texts (same gradients as
   * the full batch, activation memory of one mini-batch). Absent: the whole batch at once.
   */
  miniBatchSize?: number;
  /** 'config': the model's hidden/attention dropout (sentence-transformers trains in train mode); a number: that p. */
  dropout: 'config' | number;
  output: string;
  overwrite: boolean;
  threads?: number;
  quiet: boolean;
}

export const CONTRASTIVE_DEFAULTS = {
  anchorColumn: 'sentence1',
  positiveColumn: 'sentence2',
  stsScoreColumn: 'label',
  pooling: 'mean' as const,
  scale: 20,
  epochs: 1,
  batchSize: 16,
  lr: 5e-5,
  warmupSteps: 100,
  schedule: 'linear' as ScheduleKind,
  weightDecay: 0.01,
  clipGradNorm: 1,
  maxLength: 128,
  seed: 42,
  evalBatchSize: 64,
  dropout: 'config' as const,
};

const BASE_ARCH: Record<ModelType, string> = { bert: 'BertModel', roberta: 'RobertaModel', 'xlm-roberta': 'XLMRobertaModel', electra: 'ElectraModel' };

export interface StsResult {
  pearson: number;
  spearman: number;
  pairs: number;
}

/** Cosine similarity of the pooled embeddings of each pair, against the gold scores. */
export async function stsEvaluate(ft: NativeFineTuner, a: readonly Encoded[], b: readonly Encoded[], gold: ArrayLike<number>,
  hidden: number, batchSize: number, padId: number): Promise<StsResult & { cosines: Float64Array }> {
  const embed = async (rows: readonly Encoded[]): Promise<Float32Array> => {
    const order = Array.from(rows.keys()).sort((x, y) => rows[y].ids.length - rows[x].ids.length || x - y);
    const out = new Float32Array(rows.length * hidden);
    for (let i = 0; i < order.length; i += batchSize) {
      const idx = order.slice(i, i + batchSize);
      const r = await ft.predict({ ...toBatch(rows, idx, padId), pooled: true });
      idx.forEach((row, k) => out.set(r.pooled!.subarray(k * hidden, (k + 1) * hidden), row * hidden));
    }
    return out;
  };
  const ea = await embed(a);
  const eb = await embed(b);
  const cos = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) {
    let dot = 0, na = 0, nb = 0;
    for (let j = 0; j < hidden; j++) {
      const x = ea[i * hidden + j], y = eb[i * hidden + j];
      dot += x * y;
      na += x * x;
      nb += y * y;
    }
    cos[i] = dot / (Math.max(Math.sqrt(na), 1e-12) * Math.max(Math.sqrt(nb), 1e-12));
  }
  return { pearson: pearson(gold, cos), spearman: spearman(gold, cos), pairs: a.length, cosines: cos };
}

/** Writes the sentence-transformers folder (Transformer at the root + mean/cls Pooling). */
export function saveSentenceTransformer(dir: string, spec: ModelSpec, weights: Record<string, Float32Array>, shapes: Map<string, number[]>,
  pooling: 'mean' | 'cls', maxLength: number): string[] {
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, data] of Object.entries(weights)) {
    if (name.startsWith('classifier.') || name.startsWith('head.')) continue;
    tensors.set(name, { dtype: 'F32', shape: shapes.get(name)!, data });
  }
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  const raw: Record<string, unknown> = { ...spec.rawConfig, architectures: [BASE_ARCH[spec.config.modelType]], torch_dtype: 'float32' };
  for (const k of ['id2label', 'label2id', 'problem_type', 'num_labels', '_num_labels']) delete raw[k];
  const json = (file: string, v: unknown) => writeFileSync(join(dir, file), `${JSON.stringify(v, null, 2)}\n`);
  json('config.json', Object.fromEntries(Object.entries(raw).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))));
  json('modules.json', [
    { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
    { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
  ]);
  mkdirSync(join(dir, '1_Pooling'), { recursive: true });
  json('1_Pooling/config.json', {
    word_embedding_dimension: spec.config.hiddenSize, pooling_mode_cls_token: pooling === 'cls', pooling_mode_mean_tokens: pooling === 'mean',
    pooling_mode_max_tokens: false, pooling_mode_mean_sqrt_len_tokens: false,
  });
  json('sentence_bert_config.json', { max_seq_length: maxLength, do_lower_case: false });
  const files = ['config.json', 'model.safetensors', 'modules.json', '1_Pooling/config.json', 'sentence_bert_config.json'];
  for (const f of TOKENIZER_FILES) {
    if (existsSync(join(spec.dir, f))) {
      writeFileSync(join(dir, f), readFileSync(join(spec.dir, f)));
      files.push(f);
    }
  }
  return files;
}

async function readPairs(file: string, a: string, b: string, score?: string): Promise<{ a: string[]; b: string[]; score: Float64Array | null }> {
  const cols = await readColumns(file, [
    { name: a, flag: '--anchor-column' }, { name: b, flag: '--positive-column' },
    ...(score ? [{ name: score, flag: '--score-column' }] : []),
  ]);
  const s = score ? Float64Array.from(cols[score], (v, i) => {
    const x = typeof v === 'number' ? v : Number(v);
    if (!Number.isFinite(x)) throw new UsageError(`${file}: row ${i} has a non-numeric score ${JSON.stringify(v)} in column ${score}`);
    return x;
  }) : null;
  return { a: textsOf(cols[a], a, file), b: textsOf(cols[b], b, file), score: s };
}

export interface ContrastiveSummary {
  outputDir: string;
  pairs: number;
  steps: number;
  before: StsResult | null;
  after: StsResult | null;
  files: string[];
}

export async function runContrastive(o: ContrastiveOptions, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<ContrastiveSummary> {
  const info = (l: string) => (o.quiet ? undefined : log(l));
  const bad = (m: string): never => {
    throw new UsageError(m);
  };
  if (!(o.lr > 0)) bad(`--lr must be > 0, got ${o.lr}`);
  if (!(o.scale > 0)) bad(`--scale must be > 0, got ${o.scale}`);
  if (o.batchSize < 2) bad('--batch-size must be >= 2: MultipleNegativesRankingLoss needs in-batch negatives');
  if ((o.minScore === undefined) !== (o.scoreColumn === undefined)) bad('--score-column and --min-score go together');
  if (!(o.weightDecay >= 0)) bad(`--weight-decay must be >= 0, got ${o.weightDecay}`);
  if (!(o.clipGradNorm >= 0)) bad(`--clip-grad-norm must be >= 0, got ${o.clipGradNorm}`);
  if (o.miniBatchSize !== undefined && !(Number.isInteger(o.miniBatchSize) && o.miniBatchSize >= 1)) {
    bad(`--mini-batch-size must be an integer >= 1, got ${o.miniBatchSize}`);
  }
  if (o.dropout !== 'config' && !(o.dropout >= 0 && o.dropout < 1)) bad(`--dropout must be 'config' or a probability in [0, 1), got ${o.dropout}`);
  const out = resolve(o.output);
  for (const f of [o.train, o.sts]) if (f && resolve(f) === out) bad('--output must not be an input file');
  StagedRun.checkTarget(o.output, o.overwrite);
  const started = new Date();
  let spec: ModelSpec;
  try {
    spec = readModelSpec(o.modelDir);
  } catch (e) {
    throw new UsageError(messageOf(e));
  }
  const limit = spec.config.maxPositions - spec.config.positionOffset;
  if (!Number.isInteger(o.maxLength) || o.maxLength < 2 || o.maxLength > limit) bad(`--max-length ${o.maxLength} is outside [2, ${limit}] for ${spec.dir}`);
  const st = await loadSentenceTransformers(spec.dir, spec.config.hiddenSize);
  if (st && st.modules.some((m) => m.kind !== 'pooling' || m.modes.length !== 1 || m.modes[0] !== o.pooling)) {
    bad(`${spec.dir} is a sentence-transformers folder whose pipeline is not a single ${o.pooling} Pooling; only Transformer + ${o.pooling} pooling can be fine-tuned (pass --pooling to match)`);
  }

  const pairs = await readPairs(o.train, o.anchorColumn, o.positiveColumn, o.scoreColumn);
  let keep = Array.from(pairs.a.keys());
  if (pairs.score) keep = keep.filter((i) => pairs.score![i] >= o.minScore!);
  if (keep.length < 2) bad(`${o.train}: ${keep.length} training pair(s) left${pairs.score ? ` with ${o.scoreColumn} >= ${o.minScore}` : ''}; need at least 2`);
  const sts = o.sts ? await readPairs(o.sts, o.anchorColumn, o.positiveColumn, o.stsScoreColumn) : null;

  const tokenizer = TextTokenizer.load(spec.dir, { maxLength: o.maxLength, padId: spec.config.padTokenId });
  const anchors = await tokenizer.encode(keep.map((i) => pairs.a[i]));
  const positives = await tokenizer.encode(keep.map((i) => pairs.b[i]));
  const stsA = sts ? await tokenizer.encode(sts.a) : [];
  const stsB = sts ? await tokenizer.encode(sts.b) : [];
  info(`contrastive fine-tuning of ${spec.dir} on ${keep.length} (anchor, positive) pairs${pairs.score ? ` (of ${pairs.a.length}; ${o.scoreColumn} >= ${o.minScore})` : ''}` +
    `, batch ${o.batchSize}, ${o.pooling} pooling, scale ${o.scale}` +
    (o.miniBatchSize !== undefined ? `, GradCache mini-batches of ${Math.min(o.miniBatchSize, o.batchSize)}` : ''));

  const dropout = o.dropout === 'config' ? configDropout(spec.rawConfig) : { hidden: o.dropout, attention: o.dropout, classifier: o.dropout };
  const loaded = await loadWeights(spec);
  const weights = Object.fromEntries(loaded.tensors);
  const c = spec.config;
  const { FineTuner } = loadFineTuneAddon();
  const ft = new FineTuner({
    encoder: {
      vocabSize: c.vocabSize, hiddenSize: c.hiddenSize, embeddingSize: c.embeddingSize, numLayers: c.numLayers, numHeads: c.numHeads,
      intermediateSize: c.intermediateSize, maxPositions: c.maxPositions, typeVocabSize: c.typeVocabSize, layerNormEps: c.layerNormEps,
      padTokenId: c.padTokenId, positionStyle: c.positionStyle, hasPooler: 'pooler.dense.weight' in weights,
    },
    head: 'none', pooling: o.pooling, loss: 'mnrl', mnrlScale: o.scale,
    optimizer: { weightDecay: o.weightDecay, maxGradNorm: o.clipGradNorm, decayBiasAndNorm: false },
    dropout: { ...dropout, seed: o.seed },
  }, weights, { threads: o.threads });
  const shapes = new Map(ft.params.map((p) => [p.name, p.shape]));
  const H = c.hiddenSize;
  const padId = tokenizer.padId;
  const staged = StagedRun.create(o.output);
  try {
    const evalSts = async () => (sts ? stsEvaluate(ft, stsA, stsB, sts.score!, H, o.evalBatchSize, padId) : null);
    const before = await evalSts();
    if (before) info(`STS before training: Pearson ${before.pearson.toFixed(4)}, Spearman ${before.spearman.toFixed(4)} (${before.pairs} pairs)`);
    const n = anchors.length;
    const stepsPerEpoch = Math.ceil(n / o.batchSize);
    const totalSteps = stepsPerEpoch * o.epochs;
    const spec_: ScheduleSpec = { kind: o.schedule, totalSteps, warmupSteps: Math.min(o.warmupSteps, totalSteps) };
    validateSchedule(spec_);
    let files: string[] = [];
    const save = async () => {
      files = saveSentenceTransformer(staged.dir, spec, await ft.getWeights(), shapes, o.pooling, o.maxLength);
    };
    const rows: Record<string, unknown>[] = [];
    let best: StsResult | null = null;
    let bestEpoch = -1;
    let step = 0;
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      const order = shuffleOrder(n, o.seed, epoch);
      const t0 = Date.now();
      let lossSum = 0;
      let steps = 0;
      for (let s = 0; s < stepsPerEpoch; s++) {
        if (o.maxSteps !== undefined && step >= o.maxSteps) break;
        const idx = Array.from(order.subarray(s * o.batchSize, Math.min(n, (s + 1) * o.batchSize)));
        if (idx.length < 2) continue; // a last batch of one pair has no negative
        const lr = o.lr * lrMultiplier(spec_, step);
        let r: { loss: number; gradNorm: number };
        if (o.miniBatchSize !== undefined) {
          const acc = await gradCacheAccumulate(ft, anchors, positives, idx, { miniBatchSize: o.miniBatchSize, hidden: H, scale: o.scale, padId });
          r = { loss: acc.loss, gradNorm: (await ft.applyStep(lr)).gradNorm };
        } else {
          r = await ft.step({ ...toBatch(anchors, idx, padId), positive: toBatch(positives, idx, padId) }, lr);
        }
        step++;
        steps++;
        lossSum += r.loss;
        if (!o.quiet && (step % 20 === 0 || s === stepsPerEpoch - 1)) {
          info(`epoch ${epoch + 1}/${o.epochs} step ${s + 1}/${stepsPerEpoch}: loss ${r.loss.toFixed(4)}, grad norm ${r.gradNorm.toFixed(3)}, lr ${lr.toExponential(2)}`);
        }
      }
      if (steps === 0) break;
      const e = await evalSts();
      const improved = !e || best === null || e.spearman > best.spearman;
      rows.push({ epoch: epoch + 1, train_loss: lossSum / steps, steps, seconds: (Date.now() - t0) / 1000,
        ...(e ? { sts_pearson: e.pearson, sts_spearman: e.spearman } : {}), improved });
      info(`epoch ${epoch + 1}/${o.epochs}: train loss ${(lossSum / steps).toFixed(4)}` +
        (e ? `, STS Pearson ${e.pearson.toFixed(4)}, Spearman ${e.spearman.toFixed(4)}` : '') + (improved ? ' (saved)' : ''));
      if (improved) {
        best = e ? { pearson: e.pearson, spearman: e.spearman, pairs: e.pairs } : null;
        bestEpoch = epoch;
        await save();
      }
    }
    if (files.length === 0) await save();
    writeJsonl(staged.path(RUN_FILES.metrics), rows);
    const stsRecord = sts ? {
      file: resolve(o.sts!), score_column: o.stsScoreColumn, metric: 'cosine similarity vs gold score',
      before: before && { pearson: before.pearson, spearman: before.spearman, pairs: before.pairs }, best_epoch: bestEpoch + 1, after: best,
    } : null;
    if (stsRecord) writeJson(staged.path('sts_eval.json'), stsRecord);
    const all = [...files, RUN_FILES.metrics, ...(stsRecord ? ['sts_eval.json'] : []), 'finetune.json'];
    writeJson(staged.path('finetune.json'), {
      format: 'edu-train-finetune', edu_train_version: packageVersion(), command: 'finetune-embeddings', loss: 'mnrl',
      options: Object.fromEntries(Object.entries(o).map(([k, v]) => [k.replace(/[A-Z]/g, (x) => `_${x.toLowerCase()}`), v ?? null])),
      base_model: { dir: spec.dir, architecture: spec.architecture, model_type: spec.config.modelType },
      data: { train: { file: resolve(o.train), rows: pairs.a.length, pairs: keep.length } },
      sts: stsRecord, steps: step,
      runtime: { isa: ft.isa, threads: ft.threads, trainable_parameters: ft.trainableParameters, precision: 'fp32' },
      dropout,
      started_at: started.toISOString(), finished_at: new Date().toISOString(), duration_s: (Date.now() - started.getTime()) / 1000, files: all,
    });
    staged.commit();
    return { outputDir: staged.target, pairs: keep.length, steps: step, before: before && { pearson: before.pearson, spearman: before.spearman, pairs: before.pairs }, after: best, files: all };
  } catch (e) {
    staged.discard();
    throw e;
  } finally {
    ft.dispose();
  }
}

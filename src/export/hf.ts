/**
 * A trained run -> a folder Hugging Face transformers loads with AutoModelForSequenceClassification.
 *
 * Which heads transformers can express (eval mode, dropout off):
 *  - BertForSequenceClassification:    classifier(tanh(pooler.dense(h[:, 0])))
 *  - (XLM)RobertaForSequenceClassification: classifier.out_proj(tanh(classifier.dense(h[:, 0])))
 * so the edu-train pooler head (CLS -> dense+tanh -> linear) maps onto both, and a linear head on the
 * checkpoint's own pooler output (--pooling pooler) too. A linear head on mean (or raw CLS) pooling has no
 * tanh layer in front and is not expressible; that is written as a sentence-transformers folder (the
 * encoder + Pooling) plus classifier.safetensors / classifier_config.json (see README "Exporting to Hugging Face").
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MODEL_PREFIX, readModelSpec } from '../model/config.js';
import { loadWeights } from '../model/load.js';
import { writeSafetensors, type TensorToWrite } from '../model/safetensors.js';
import type { ModelSpec, ModelType } from '../model/types.js';
import { loadHead } from '../train/head-io.js';
import { readRun, runModelIdentity, RUN_FILES, type LoadedRun } from '../train/run-dir.js';
import { UsageError } from '../util/errors.js';

export const CLASSIFIER_CONFIG = 'classifier_config.json';
export const CLASSIFIER_WEIGHTS = 'classifier.safetensors';
export const CLASSIFIER_FORMAT = 'edu-train-classifier-v1';

/** classifier_config.json of the sentence-transformers + classifier layout. */
export interface ClassifierConfig {
  format: typeof CLASSIFIER_FORMAT;
  task: 'classification' | 'regression';
  /** Class names in output order (classification), null for regression. */
  labels: (string | number)[] | null;
  /** edu-train pooling of the embedding the head reads (mean or cls). */
  pooling: 'mean' | 'cls' | 'pooler';
  in_features: number;
  num_outputs: number;
  /** true: x -> tanh(hidden.weight x + hidden.bias) first. */
  hidden: boolean;
  max_length: number;
  formula: string;
}

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt', 'vocab.json',
  'merges.txt', 'sentencepiece.bpe.model', 'spiece.model', 'added_tokens.json'];

const SEQCLS_CLASS: Partial<Record<ModelType, string>> = {
  bert: 'BertForSequenceClassification', roberta: 'RobertaForSequenceClassification', 'xlm-roberta': 'XLMRobertaForSequenceClassification',
};
const BASE_CLASS: Record<ModelType, string> = { bert: 'BertModel', roberta: 'RobertaModel', 'xlm-roberta': 'XLMRobertaModel', electra: 'ElectraModel' };

export interface ExportOptions {
  runDir: string;
  output: string;
  /** The run's encoder if it moved (hash-checked like predict). */
  modelDir?: string;
  overwrite?: boolean;
}

export interface ExportResult {
  dir: string;
  layout: 'sequence-classification' | 'sentence-transformers+classifier';
  architecture: string;
  files: string[];
}

type Plan = { layout: 'seqcls'; head: 'bert' | 'roberta'; poolerFrom: 'head' | 'checkpoint' } | { layout: 'st'; reason: string };

/** Which layout a run's head needs. */
export function exportPlan(run: LoadedRun, modelType: ModelType): Plan {
  const c = run.config;
  const family = modelType === 'bert' ? 'bert' : modelType === 'roberta' || modelType === 'xlm-roberta' ? 'roberta' : null;
  if (!family) return { layout: 'st', reason: `${modelType} has no tanh classification head in transformers (ELECTRA's uses GELU)` };
  if (c.head.hidden) return { layout: 'seqcls', head: family, poolerFrom: 'head' };
  if (c.encoder.pooling === 'pooler') return { layout: 'seqcls', head: family, poolerFrom: 'checkpoint' };
  return { layout: 'st', reason: `a linear head on ${c.encoder.pooling} pooling has no tanh layer, which every transformers classification head has` };
}

function writeJson(dir: string, rel: string, value: unknown, files: string[]): void {
  writeFileSync(join(dir, rel), `${JSON.stringify(value, null, 2)}\n`);
  files.push(rel);
}

function copyTokenizer(spec: ModelSpec, dir: string, maxLength: number, files: string[]): void {
  for (const f of TOKENIZER_FILES) {
    const src = join(spec.dir, f);
    if (!existsSync(src)) continue;
    if (f === 'tokenizer_config.json') {
      // transformers truncates at model_max_length: make it the length the run was trained with.
      const cfg = JSON.parse(readFileSync(src, 'utf8')) as Record<string, unknown>;
      writeJson(dir, f, { ...cfg, model_max_length: maxLength }, files);
    } else {
      copyFileSync(src, join(dir, f));
      files.push(f);
    }
  }
  // edu-train reads its default max length from here, so predictions from the export use the run's length.
  writeJson(dir, 'sentence_bert_config.json', { max_seq_length: maxLength, do_lower_case: false }, files);
}

function labelsOf(run: LoadedRun): { id2label: Record<string, string>; label2id: Record<string, number> } {
  const names = run.labelMap ? run.labelMap.labels.map(String) : ['LABEL_0'];
  return {
    id2label: Object.fromEntries(names.map((n, i) => [String(i), n])),
    label2id: Object.fromEntries(names.map((n, i) => [n, i])),
  };
}

const f32 = (shape: number[], data: Float32Array): TensorToWrite => ({ dtype: 'F32', shape, data });

export async function exportRun(o: ExportOptions): Promise<ExportResult> {
  const run = readRun(o.runDir);
  const identity = await runModelIdentity(run, o.modelDir);
  const spec = readModelSpec(identity.dir);
  const type = spec.config.modelType;
  const target = resolve(o.output);
  if (existsSync(target)) {
    if (!statSync(target).isDirectory()) throw new UsageError(`--output ${o.output} exists and is not a folder`);
    if (readdirSync(target).length && !o.overwrite) throw new UsageError(`--output ${o.output} already exists; choose another folder or pass --overwrite`);
  }
  const h = run.config.head;
  const head = await loadHead(join(run.dir, RUN_FILES.head), { inFeatures: h.in_features, numOutputs: h.num_outputs, hidden: h.hidden });
  const weights = await loadWeights(spec);
  // The encoder only: a checkpoint that already had a classifier (e.g. a ready-made one used as backbone) loses it.
  const encoder = new Map<string, TensorToWrite>();
  for (const [name, data] of weights.tensors) {
    if (!name.startsWith('classifier.')) encoder.set(name, f32(weights.shapes.get(name)!, data));
  }
  const plan = exportPlan(run, type);
  const H = h.in_features;
  const C = h.num_outputs;
  const tmp = `${target}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const files: string[] = [];
  let architecture: string;
  try {
    const base = { ...spec.rawConfig };
    delete base.id2label;
    delete base.label2id;
    delete base.num_labels;
    delete base.problem_type;
    if (plan.layout === 'seqcls') {
      architecture = SEQCLS_CLASS[type]!;
      const prefix = MODEL_PREFIX[type];
      const t = new Map<string, TensorToWrite>();
      for (const [name, tensor] of encoder) {
        // RobertaForSequenceClassification has no pooler: its head's dense layer plays that part.
        if (plan.head === 'roberta' && name.startsWith('pooler.')) continue;
        t.set(`${prefix}${name}`, tensor);
      }
      const dense = plan.poolerFrom === 'head'
        ? { w: head.hiddenWeight!, b: head.hiddenBias! }
        : { w: weights.tensors.get('pooler.dense.weight')!, b: weights.tensors.get('pooler.dense.bias')! };
      if (!dense.w || !dense.b) throw new Error('internal: no pooler weights for the export');
      if (plan.head === 'bert') {
        t.set(`${prefix}pooler.dense.weight`, f32([H, H], dense.w));
        t.set(`${prefix}pooler.dense.bias`, f32([H], dense.b));
        t.set('classifier.weight', f32([C, H], head.weight));
        t.set('classifier.bias', f32([C], head.bias));
      } else {
        t.set('classifier.dense.weight', f32([H, H], dense.w));
        t.set('classifier.dense.bias', f32([H], dense.b));
        t.set('classifier.out_proj.weight', f32([C, H], head.weight));
        t.set('classifier.out_proj.bias', f32([C], head.bias));
      }
      writeSafetensors(join(tmp, 'model.safetensors'), t, { format: 'pt' });
      files.push('model.safetensors');
      writeJson(tmp, 'config.json', {
        ...base,
        architectures: [architecture],
        ...labelsOf(run),
        problem_type: run.config.task === 'regression' ? 'regression' : 'single_label_classification',
      }, files);
    } else {
      architecture = BASE_CLASS[type];
      writeSafetensors(join(tmp, 'model.safetensors'), encoder, { format: 'pt' });
      files.push('model.safetensors');
      writeJson(tmp, 'config.json', { ...base, architectures: [architecture] }, files);
      const pooling = run.config.encoder.pooling;
      writeJson(tmp, 'modules.json', [
        { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
        { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
      ], files);
      mkdirSync(join(tmp, '1_Pooling'));
      writeJson(tmp, '1_Pooling/config.json', {
        word_embedding_dimension: H,
        pooling_mode_cls_token: pooling === 'cls',
        pooling_mode_mean_tokens: pooling === 'mean',
        pooling_mode_max_tokens: false,
        pooling_mode_mean_sqrt_len_tokens: false,
      }, files);
      const ct = new Map<string, TensorToWrite>([['weight', f32([C, H], head.weight)], ['bias', f32([C], head.bias)]]);
      if (h.hidden) {
        ct.set('hidden.weight', f32([H, H], head.hiddenWeight!));
        ct.set('hidden.bias', f32([H], head.hiddenBias!));
      }
      writeSafetensors(join(tmp, CLASSIFIER_WEIGHTS), ct, { format: 'pt' });
      files.push(CLASSIFIER_WEIGHTS);
      const cc: ClassifierConfig = {
        format: CLASSIFIER_FORMAT,
        task: run.config.task,
        labels: run.labelMap ? [...run.labelMap.labels] : null,
        pooling,
        in_features: H,
        num_outputs: C,
        hidden: h.hidden,
        max_length: identity.maxLength,
        formula: `e = SentenceTransformer(dir).encode(text); ${h.hidden ? 'e = tanh(hidden.weight @ e + hidden.bias); ' : ''}` +
          `out = weight @ e + bias  (${run.config.task === 'regression' ? 'score = out[0]' : 'logits in label order'})`,
      };
      writeJson(tmp, CLASSIFIER_CONFIG, cc, files);
      if (plan.layout === 'st') writeFileSync(join(tmp, 'EXPORT_NOTE.txt'), `Not a transformers sequence-classification layout: ${plan.reason}.\n`);
    }
    copyTokenizer(spec, tmp, identity.maxLength, files);
    if (existsSync(target)) rmSync(target, { recursive: true, force: true });
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { dir: target, layout: plan.layout === 'seqcls' ? 'sequence-classification' : 'sentence-transformers+classifier', architecture, files };
}

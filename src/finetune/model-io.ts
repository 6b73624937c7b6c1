/**
 * Model folders in and out of full fine-tuning: a Hugging Face folder -> the FineTuner's config and
 * weights (head reused from the checkpoint when it fits, else freshly initialised as transformers
 * does), and the trained weights -> a complete *ForSequenceClassification folder (config.json,
 * model.safetensors, tokenizer files) that transformers and every edu-train command load.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL_PREFIX } from '../model/config.js';
import { loadWeights } from '../model/load.js';
import { writeSafetensors, type TensorToWrite } from '../model/safetensors.js';
import type { ModelSpec, ModelType } from '../model/types.js';
import type { FineTuneOptimizerConfig, NativeFineTuneConfig } from '../native/finetune-types.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { Rng } from '../train/rng.js';

/** The sequence-classification head transformers puts on each model type. */
export type SeqClsHead = 'bert' | 'roberta' | 'electra';

const SEQCLS_ARCH: Record<ModelType, string> = {
  bert: 'BertForSequenceClassification',
  roberta: 'RobertaForSequenceClassification',
  'xlm-roberta': 'XLMRobertaForSequenceClassification',
  electra: 'ElectraForSequenceClassification',
};

/** Files copied next to the weights so the folder tokenizes on its own. */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt',
  'vocab.json', 'merges.txt', 'sentencepiece.bpe.model', 'added_tokens.json'];

export function seqclsHeadFor(modelType: ModelType): SeqClsHead {
  return modelType === 'bert' ? 'bert' : modelType === 'electra' ? 'electra' : 'roberta';
}

export interface PreparedModel {
  config: NativeFineTuneConfig;
  weights: Record<string, Float32Array>;
  head: SeqClsHead;
  /** True when the checkpoint's own classifier (same kind and label count) is the starting point. */
  reusedHead: boolean;
  /** Parameters drawn fresh (N(0, initializer_range), biases 0). */
  initialised: string[];
}

/** Dropout probabilities of a config.json (transformers' defaults when absent). */
export function configDropout(raw: Record<string, unknown>): { hidden: number; attention: number; classifier: number } {
  const num = (k: string, d: number): number => (typeof raw[k] === 'number' ? (raw[k] as number) : d);
  const hidden = num('hidden_dropout_prob', 0.1);
  return { hidden, attention: num('attention_probs_dropout_prob', 0.1), classifier: num('classifier_dropout', hidden) };
}

export interface PrepareOptions {
  numOutputs: number;
  loss: 'cross-entropy' | 'mse';
  classWeights?: Float32Array;
  optimizer: FineTuneOptimizerConfig;
  seed: number;
  /** Training dropout (default: none). */
  dropout?: NativeFineTuneConfig['dropout'];
}

/**
 * Loads the encoder (and the checkpoint's head when it is the same kind with numOutputs labels) and
 * fills in what is missing: the classifier, and for BERT the pooler when the checkpoint has none.
 */
export async function prepareModel(spec: ModelSpec, o: PrepareOptions): Promise<PreparedModel> {
  const head = seqclsHeadFor(spec.config.modelType);
  const loaded = await loadWeights(spec);
  const weights: Record<string, Float32Array> = {};
  for (const [name, t] of loaded.tensors) weights[name] = t;
  const c = spec.config;
  const H = c.hiddenSize;
  const std = typeof spec.rawConfig.initializer_range === 'number' ? spec.rawConfig.initializer_range : 0.02;
  const rng = new Rng(o.seed, 0xf17e);
  const initialised: string[] = [];
  const init = (name: string, out: number, inp: number): void => {
    weights[`${name}.weight`] = Float32Array.from({ length: out * inp }, () => rng.normal(0, std));
    weights[`${name}.bias`] = new Float32Array(out);
    initialised.push(`${name}.weight`, `${name}.bias`);
  };
  const reusedHead = spec.head.kind === head && spec.head.numLabels === o.numOutputs;
  if (!reusedHead) {
    for (const k of Object.keys(weights)) if (k.startsWith('classifier.')) delete weights[k];
    if (head === 'bert') init('classifier', o.numOutputs, H);
    else {
      init('classifier.dense', H, H);
      init('classifier.out_proj', o.numOutputs, H);
    }
  }
  let hasPooler = 'pooler.dense.weight' in weights;
  if (head === 'bert' && !hasPooler) {
    init('pooler.dense', H, H);
    hasPooler = true;
  }
  const config: NativeFineTuneConfig = {
    encoder: {
      vocabSize: c.vocabSize, hiddenSize: H, embeddingSize: c.embeddingSize, numLayers: c.numLayers, numHeads: c.numHeads,
      intermediateSize: c.intermediateSize, maxPositions: c.maxPositions, typeVocabSize: c.typeVocabSize,
      layerNormEps: c.layerNormEps, padTokenId: c.padTokenId, positionStyle: c.positionStyle, hasPooler,
    },
    head,
    numOutputs: o.numOutputs,
    loss: o.loss,
    classWeights: o.classWeights,
    optimizer: o.optimizer,
    dropout: o.dropout,
  };
  return { config, weights, head, reusedHead, initialised };
}

export interface SaveOptions {
  /** Classification: label names in id order; regression: null. */
  labels: string[] | null;
  head: SeqClsHead;
}

/** The config.json of the fine-tuned folder: the base config with the seqcls architecture and labels. */
export function seqclsConfig(spec: ModelSpec, o: SaveOptions): Record<string, unknown> {
  const raw: Record<string, unknown> = { ...spec.rawConfig };
  delete raw.num_labels;
  delete raw._num_labels;
  const names = o.labels ?? ['LABEL_0'];
  raw.architectures = [SEQCLS_ARCH[spec.config.modelType]];
  raw.id2label = Object.fromEntries(names.map((l, i) => [String(i), l]));
  raw.label2id = Object.fromEntries(names.map((l, i) => [l, i]));
  raw.problem_type = o.labels ? 'single_label_classification' : 'regression';
  raw.torch_dtype = 'float32';
  return Object.fromEntries(Object.entries(raw).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * Writes config.json, model.safetensors (encoder names under the transformers prefix, classifier.*
 * beside it; RoBERTa/ELECTRA classification models have no pooler, so it is left out) and the tokenizer
 * files into `dir` (which must exist).
 */
export function saveSeqClsFolder(dir: string, spec: ModelSpec, weights: Record<string, Float32Array>, shapes: Map<string, number[]>,
  o: SaveOptions): string[] {
  const prefix = MODEL_PREFIX[spec.config.modelType];
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, data] of Object.entries(weights)) {
    if (o.head !== 'bert' && name.startsWith('pooler.')) continue;
    if (name.startsWith('head.')) continue;
    const shape = shapes.get(name);
    if (!shape) throw new Error(`internal: no shape for ${name}`);
    tensors.set(name.startsWith('classifier.') ? name : `${prefix}${name}`, { dtype: 'F32', shape, data });
  }
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(seqclsConfig(spec, o), null, 2)}\n`);
  const files = ['config.json', 'model.safetensors'];
  for (const f of TOKENIZER_FILES) {
    const src = join(spec.dir, f);
    // Not copyFileSync: it keeps the source's mode, and shared tokenizers are read-only.
    if (existsSync(src)) {
      writeFileSync(join(dir, f), readFileSync(src));
      files.push(f);
    }
  }
  return files;
}

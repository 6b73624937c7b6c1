/**
 * Hugging Face model folder -> ModelSpec: config.json parsed and checked against what the native
 * encoder implements, the weight files located, and the checkpoint's naming (prefix, pooler) read
 * from the weight names. Only headers / the pickle index are read here, never tensor data.
 *
 * readModelSpec is synchronous (it reads a few small files and headers); callers may await it.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ModelFormatError } from './errors.js';
import { readSafetensorsHeader } from './safetensors.js';
import { readTorchBinIndex } from './torch-bin.js';
import type { EncoderConfig, HeadSpec, ModelSpec, ModelType } from './types.js';

export const SUPPORTED_MODEL_TYPES: readonly ModelType[] = ['bert', 'roberta', 'xlm-roberta', 'electra'];

/** The class a bare checkpoint of each model_type would name, when config.json has no architectures. */
const BASE_ARCHITECTURE: Record<ModelType, string> = {
  bert: 'BertModel', roberta: 'RobertaModel', 'xlm-roberta': 'XLMRobertaModel', electra: 'ElectraModel',
};

/** *ForSequenceClassification classes and the head they carry. */
const SEQCLS_HEADS: Record<string, HeadSpec['kind']> = {
  BertForSequenceClassification: 'bert',
  RobertaForSequenceClassification: 'roberta',
  XLMRobertaForSequenceClassification: 'roberta',
  ElectraForSequenceClassification: 'electra',
};

/** The weight-name prefix the transformers class of each model_type uses for its encoder. */
export const MODEL_PREFIX: Record<ModelType, string> = {
  bert: 'bert.', roberta: 'roberta.', 'xlm-roberta': 'roberta.', electra: 'electra.',
};

const PROBLEM_TYPES = ['regression', 'single_label_classification', 'multi_label_classification'] as const;

export interface ParsedConfig {
  architecture: string;
  config: EncoderConfig;
  head: HeadSpec;
}

/** Parses and validates a config.json object; `file` names it in errors. */
export function parseModelConfig(raw: unknown, file: string): ParsedConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ModelFormatError(file, 'config.json is not a JSON object');
  const c = raw as Record<string, unknown>;
  const bad = (key: string, msg: string): never => {
    throw new ModelFormatError(file, `"${key}" ${msg}`);
  };

  const modelType = c.model_type;
  if (typeof modelType !== 'string') bad('model_type', 'is missing; edu-train needs it to know the architecture');
  if (!SUPPORTED_MODEL_TYPES.includes(modelType as ModelType)) {
    bad('model_type', `is ${JSON.stringify(modelType)}, which edu-train does not support (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  }
  const type = modelType as ModelType;

  const posInt = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (v === undefined) bad(key, 'is missing');
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) bad(key, `must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const vocabSize = posInt('vocab_size');
  const hiddenSize = posInt('hidden_size');
  const numLayers = posInt('num_hidden_layers');
  const numHeads = posInt('num_attention_heads');
  const intermediateSize = posInt('intermediate_size');
  const maxPositions = posInt('max_position_embeddings');
  const typeVocabSize = posInt('type_vocab_size', 2);
  // transformers' ElectraConfig defaults embedding_size to 128 (and save_pretrained always writes it).
  const embeddingSize = type === 'electra' ? posInt('embedding_size', 128) : hiddenSize;
  if (hiddenSize % numHeads !== 0) bad('hidden_size', `(${hiddenSize}) is not divisible by num_attention_heads (${numHeads})`);

  const eps = c.layer_norm_eps ?? 1e-12;
  if (typeof eps !== 'number' || !(eps > 0) || !Number.isFinite(eps)) bad('layer_norm_eps', `must be a positive number, got ${JSON.stringify(eps)}`);

  const defaultPad = type === 'roberta' || type === 'xlm-roberta' ? 1 : 0;
  const pad = c.pad_token_id ?? defaultPad;
  if (typeof pad !== 'number' || !Number.isSafeInteger(pad) || pad < 0 || pad >= vocabSize) {
    bad('pad_token_id', `must be an integer in [0, vocab_size = ${vocabSize}), got ${JSON.stringify(pad)}`);
  }
  const padTokenId = pad as number;

  const act = c.hidden_act ?? 'gelu';
  if (act !== 'gelu') {
    bad('hidden_act', `is ${JSON.stringify(act)}; edu-train implements only "gelu" (exact erf GELU). ` +
      'Approximations such as "gelu_new" / "gelu_pytorch_tanh" or other activations would give different outputs');
  }
  const posType = c.position_embedding_type ?? 'absolute';
  if (posType !== 'absolute') {
    bad('position_embedding_type', `is ${JSON.stringify(posType)}; only "absolute" position embeddings are supported`);
  }

  const roberta = type === 'roberta' || type === 'xlm-roberta';
  const positionOffset = roberta ? padTokenId + 1 : 0;
  if (positionOffset >= maxPositions) {
    bad('max_position_embeddings', `(${maxPositions}) leaves no positions after the RoBERTa offset pad_token_id + 1 = ${positionOffset}`);
  }
  const config: EncoderConfig = {
    modelType: type, vocabSize, hiddenSize, embeddingSize, numLayers, numHeads, intermediateSize, maxPositions,
    typeVocabSize, layerNormEps: eps as number, padTokenId,
    positionStyle: roberta ? 'roberta' : 'absolute', positionOffset,
  };

  let architecture = BASE_ARCHITECTURE[type];
  if (c.architectures !== undefined && c.architectures !== null) {
    if (!Array.isArray(c.architectures) || (c.architectures.length && typeof c.architectures[0] !== 'string')) {
      bad('architectures', 'must be a list of class names');
    }
    if ((c.architectures as string[]).length) architecture = (c.architectures as string[])[0];
  }
  return { architecture, config, head: parseHead(c, architecture, bad) };
}

function parseHead(c: Record<string, unknown>, architecture: string,
  bad: (key: string, msg: string) => never): HeadSpec {
  const kind = SEQCLS_HEADS[architecture] ?? 'none';
  if (kind === 'none') return { kind, numLabels: 0 };

  // As transformers does: id2label, when present, decides the label count; else num_labels; else 2.
  let id2label: Record<number, string> | undefined;
  let numLabels: number;
  if (c.id2label !== undefined && c.id2label !== null) {
    if (typeof c.id2label !== 'object' || Array.isArray(c.id2label)) bad('id2label', 'must be an object {"0": "label", ...}');
    id2label = {};
    for (const [k, v] of Object.entries(c.id2label as Record<string, unknown>)) {
      const id = Number(k);
      if (!/^\d+$/.test(k) || !Number.isSafeInteger(id)) bad('id2label', `has a key ${JSON.stringify(k)} that is not a label id`);
      if (typeof v !== 'string') bad('id2label', `has a non-string label for id ${k}`);
      id2label[id] = v as string;
    }
    numLabels = Object.keys(id2label).length;
    for (let i = 0; i < numLabels; i++) {
      if (!(i in id2label)) bad('id2label', `must have the ids 0..${numLabels - 1}; ${i} is missing`);
    }
  } else {
    const n = c.num_labels ?? c._num_labels ?? 2;
    if (typeof n !== 'number' || !Number.isSafeInteger(n)) bad('num_labels', `must be an integer, got ${JSON.stringify(n)}`);
    numLabels = n as number;
  }
  if (numLabels < 1) bad('id2label', `gives ${numLabels} labels; a classification head needs at least 1`);

  const head: HeadSpec = { kind, numLabels };
  if (id2label) head.id2label = id2label;
  const pt = c.problem_type;
  if (pt !== undefined && pt !== null) {
    if (!PROBLEM_TYPES.includes(pt as (typeof PROBLEM_TYPES)[number])) {
      bad('problem_type', `is ${JSON.stringify(pt)}; expected one of ${PROBLEM_TYPES.join(', ')}`);
    }
    head.problemType = pt as HeadSpec['problemType'];
  }
  return head;
}

// ---------------------------------------------------------------------------------------------
// Weight files

/** The file names looked for, in order of preference. */
export const WEIGHT_FILE_CANDIDATES = [
  'model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin', 'pytorch_model.bin.index.json',
] as const;

export interface WeightFiles {
  format: 'safetensors' | 'pytorch';
  /** Absolute paths of the weight files (one, or the shards in sorted order). */
  files: string[];
  /** For sharded checkpoints: the index's tensor names (so headers need not be read to list them). */
  indexNames?: string[];
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ModelFormatError(file, `cannot read: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ModelFormatError(file, `is not valid JSON (${(err as Error).message})`);
  }
}

function readIndex(dir: string, indexFile: string, format: WeightFiles['format']): WeightFiles {
  const raw = readJson(indexFile) as { weight_map?: unknown };
  const map = raw?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new ModelFormatError(indexFile, '"weight_map" is missing or not an object');
  const shards = new Set<string>();
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    // A shard must be a plain file name in the model folder: no paths out of it.
    if (typeof shard !== 'string' || shard !== basename(shard) || shard === '..' || shard === '.' || shard.includes('\\')) {
      throw new ModelFormatError(indexFile, `weight_map["${name}"] = ${JSON.stringify(shard)} is not a file name in the model folder`);
    }
    shards.add(shard);
  }
  const files = [...shards].sort().map((s) => join(dir, s));
  const missing = files.filter((f) => !existsSync(f));
  if (missing.length) throw new ModelFormatError(indexFile, `lists shard(s) that do not exist: ${missing.map((f) => basename(f)).join(', ')}`);
  return { format, files, indexNames: Object.keys(map as object) };
}

/** Finds the checkpoint: model.safetensors, its sharded index, pytorch_model.bin, or its index. */
export function findWeightFiles(dir: string): WeightFiles {
  const at = (f: string): string | null => (existsSync(join(dir, f)) && statSync(join(dir, f)).isFile() ? join(dir, f) : null);
  const st = at('model.safetensors');
  if (st) return { format: 'safetensors', files: [st] };
  const stIndex = at('model.safetensors.index.json');
  if (stIndex) return readIndex(dir, stIndex, 'safetensors');
  const pt = at('pytorch_model.bin');
  if (pt) return { format: 'pytorch', files: [pt] };
  const ptIndex = at('pytorch_model.bin.index.json');
  if (ptIndex) return readIndex(dir, ptIndex, 'pytorch');
  throw new ModelFormatError(dir, `no weights found: looked for ${WEIGHT_FILE_CANDIDATES.join(', ')}`);
}

/** All tensor names of a checkpoint, from the index or the files' headers. */
export function listWeightNames(w: WeightFiles): string[] {
  if (w.indexNames) return w.indexNames;
  return w.files.flatMap((f) => (w.format === 'safetensors'
    ? readSafetensorsHeader(f).tensors.map((t) => t.name)
    : readTorchBinIndex(f).map((t) => t.name)));
}

/** Names that locate the encoder in a checkpoint, most telling first. */
const PREFIX_ANCHORS = [
  'embeddings.word_embeddings.weight', 'embeddings.position_embeddings.weight', 'embeddings.LayerNorm.weight',
  'embeddings.LayerNorm.gamma', 'encoder.layer.0.attention.self.query.weight',
];

/**
 * The encoder prefix of a checkpoint: the one under which `embeddings.word_embeddings.weight`
 * exists (or, when that tensor is missing, another encoder tensor, so the loader can list what is
 * missing), preferring the model type's own prefix, then none, then any other '<name>.' prefix.
 */
export function detectWeightPrefix(names: Iterable<string>, modelType: ModelType): string | null {
  const all = [...names];
  for (const suffix of PREFIX_ANCHORS) {
    const found = new Set<string>();
    for (const n of all) {
      if (!n.endsWith(suffix)) continue;
      const p = n.slice(0, n.length - suffix.length);
      if (p === '' || /^[A-Za-z0-9_]+\.$/.test(p)) found.add(p);
    }
    for (const p of [MODEL_PREFIX[modelType], '']) if (found.has(p)) return p;
    if (found.size) return [...found].sort()[0];
  }
  return null;
}

/** Reads a Hugging Face model folder's config.json and locates and inspects its weights. */
export function readModelSpec(dir: string): ModelSpec {
  const absDir = resolve(dir);
  if (!existsSync(absDir) || !statSync(absDir).isDirectory()) throw new ModelFormatError(absDir, 'model folder does not exist');
  const configFile = join(absDir, 'config.json');
  if (!existsSync(configFile)) throw new ModelFormatError(absDir, 'no config.json: not a Hugging Face model folder');
  const rawConfig = readJson(configFile) as Record<string, unknown>;
  const { architecture, config, head } = parseModelConfig(rawConfig, configFile);

  const weights = findWeightFiles(absDir);
  const names = listWeightNames(weights);
  const prefix = detectWeightPrefix(names, config.modelType);
  if (prefix === null) {
    throw new ModelFormatError(weights.files[0], `no encoder weights (embeddings.word_embeddings.weight, encoder.layer.0.*, with or without a prefix such as "${MODEL_PREFIX[config.modelType]}"); is this a ${config.modelType} checkpoint?`);
  }
  const nameSet = new Set(names);
  return {
    dir: absDir,
    architecture,
    config,
    head,
    hasPooler: nameSet.has(`${prefix}pooler.dense.weight`),
    weightPrefix: prefix,
    weightFiles: weights.files,
    weightFormat: weights.format,
    rawConfig,
  };
}

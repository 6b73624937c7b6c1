/**
 * Random-weight model folders in the Hugging Face layout, for any BERT-family shape.
 *
 * No pretrained weights exist on the machines this project runs on, so forward-pass, training and
 * benchmark work uses these: same files, names and config keys as transformers' save_pretrained
 * (safetensors and/or pytorch_model.bin, optionally sharded), optionally paired with a real
 * tokenizer. Weights come from a seeded PRNG, so a (options, seed) pair always gives the same bytes.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL_PREFIX, SUPPORTED_MODEL_TYPES } from './config.js';
import { numelOf, writeSafetensors, type FloatDtype, type TensorToWrite } from './safetensors.js';
import { writeTorchZip } from './torch-bin.js';
import type { ModelType } from './types.js';

export interface ModelShape {
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  /** Raw max_position_embeddings; default 512 (128 for 'tiny'), plus pad+1 for RoBERTa types. */
  maxPositions?: number;
  vocabSize?: number;
}

export const PRESETS = {
  'bert-base': { hidden: 768, layers: 12, heads: 12, intermediate: 3072, positions: 512, vocabSize: 30522 },
  tiny: { hidden: 64, layers: 2, heads: 4, intermediate: 256, positions: 128, vocabSize: 1000 },
} as const;
export type PresetName = keyof typeof PRESETS;

export interface GenerateOptions {
  modelType?: ModelType;
  /** Default shape; explicit fields below override it. Default 'tiny'. */
  preset?: PresetName;
  hidden?: number;
  layers?: number;
  heads?: number;
  intermediate?: number;
  /** Default: the tokenizer's vocabulary size when tokenizerDir is given, else the preset's. */
  vocabSize?: number;
  /** Raw max_position_embeddings (for RoBERTa types this includes the pad+1 offset). */
  maxPositions?: number;
  /** Default 2 for BERT/ELECTRA, 1 for RoBERTa/XLM-R. */
  typeVocabSize?: number;
  /** ELECTRA only; default = hidden. */
  embeddingSize?: number;
  head?: 'none' | 'seqcls';
  /** Default 1 for regression, else 2. */
  numLabels?: number;
  problemType?: 'regression' | 'single_label_classification' | 'multi_label_classification';
  id2label?: Record<number, string> | string[];
  /** Default 'safetensors'. */
  format?: 'safetensors' | 'pytorch' | 'both';
  /** Stored element type; default 'F32'. */
  dtype?: FloatDtype;
  /** Split the weights into this many shard files with an index.json (default 1: one file). */
  sharded?: number;
  /** Copy the tokenizer files from this folder and take vocab size and special ids from it. */
  tokenizerDir?: string;
  /** PRNG seed; default 0. */
  seed?: number;
  /** Encoder weight prefix of a seqcls checkpoint; default the transformers one ('bert.', 'roberta.', 'electra.'). */
  prefix?: string;
  /** Also write modules.json, 1_Pooling/config.json (mean pooling) and sentence_bert_config.json. */
  sentenceTransformers?: boolean;
  /** With sentenceTransformers: add the Normalize module (L2), as all-MiniLM-L6-v2 has. */
  normalize?: boolean;
  /** With sentenceTransformers: the enabled pooling modes of 1_Pooling (default ['mean']). */
  stPooling?: ('cls' | 'max' | 'mean' | 'mean_sqrt_len')[];
  /** With sentenceTransformers: a 2_Dense module after pooling, as LaBSE has (random weights, seeded). */
  stDense?: { outFeatures?: number; activation?: string; bias?: boolean; format?: 'safetensors' | 'pytorch' };
  layerNormEps?: number;
}

export interface GeneratedModel {
  dir: string;
  config: Record<string, unknown>;
  /** Files written, relative to dir. */
  files: string[];
  /** Tensor names as stored, in state-dict order. */
  tensorNames: string[];
}

/** Deterministic PRNG (mulberry32) with Box-Muller normals: fast, seedable, good enough for weights. */
export class Rng {
  private s: number;
  private spare: number | null = null;
  constructor(seed: number) {
    this.s = (seed >>> 0) ^ 0x9e3779b9;
  }
  uniform(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const u = 1 - this.uniform(); // (0, 1]: log stays finite
    const r = Math.sqrt(-2 * Math.log(u));
    const a = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(a);
    return r * Math.cos(a);
  }
  fill(n: number, mean: number, std: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = mean + std * this.normal();
    return out;
  }
}

const ARCH_BASE: Record<ModelType, string> = { bert: 'Bert', roberta: 'Roberta', 'xlm-roberta': 'XLMRoberta', electra: 'Electra' };
const TORCH_DTYPE: Record<FloatDtype, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt',
  'vocab.json', 'merges.txt', 'sentencepiece.bpe.model'];

interface TokenizerFacts { vocabSize: number; pad?: number; bos?: number; eos?: number }

/** Vocabulary size and special-token ids of a tokenizer folder (tokenizer.json + the token maps). */
export function readTokenizerFacts(dir: string): TokenizerFacts {
  const tj = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as {
    model?: { vocab?: Record<string, number> | [string, number][] };
    added_tokens?: { id: number; content: string }[];
  };
  const ids = new Map<string, number>();
  const vocab = tj.model?.vocab;
  if (Array.isArray(vocab)) vocab.forEach(([tok], i) => ids.set(tok, i)); // Unigram: position = id
  else if (vocab) for (const [tok, id] of Object.entries(vocab)) ids.set(tok, id);
  for (const t of tj.added_tokens ?? []) ids.set(t.content, t.id);
  let vocabSize = 0;
  for (const id of ids.values()) vocabSize = Math.max(vocabSize, id + 1);
  if (vocabSize === 0) throw new Error(`${join(dir, 'tokenizer.json')}: no vocabulary found`);

  const maps: Record<string, unknown>[] = [];
  for (const f of ['special_tokens_map.json', 'tokenizer_config.json']) {
    if (existsSync(join(dir, f))) maps.push(JSON.parse(readFileSync(join(dir, f), 'utf8')) as Record<string, unknown>);
  }
  const tokenId = (...keys: string[]): number | undefined => {
    for (const key of keys) {
      for (const m of maps) {
        const v = m[key];
        const content = typeof v === 'string' ? v : (v as { content?: string } | undefined)?.content;
        if (typeof content === 'string' && ids.has(content)) return ids.get(content);
      }
    }
    return undefined;
  };
  return { vocabSize, pad: tokenId('pad_token'), bos: tokenId('bos_token', 'cls_token'), eos: tokenId('eos_token', 'sep_token') };
}

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v <= 0) throw new Error(`generateModelFolder: ${name} must be a positive integer, got ${v}`);
  return v;
}

/** Writes a random-weight model folder; returns what was written. Synchronous. */
export function generateModelFolder(dir: string, options: GenerateOptions = {}): GeneratedModel {
  const type = options.modelType ?? 'bert';
  if (!SUPPORTED_MODEL_TYPES.includes(type)) throw new Error(`generateModelFolder: unknown modelType ${type} (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  const preset = PRESETS[options.preset ?? 'tiny'];
  if (!preset) throw new Error(`generateModelFolder: unknown preset ${options.preset} (presets: ${Object.keys(PRESETS).join(', ')})`);
  const roberta = type === 'roberta' || type === 'xlm-roberta';
  const tok = options.tokenizerDir ? readTokenizerFacts(options.tokenizerDir) : null;

  const H = positiveInt('hidden', options.hidden ?? preset.hidden);
  const L = positiveInt('layers', options.layers ?? preset.layers);
  const heads = positiveInt('heads', options.heads ?? preset.heads);
  const I = positiveInt('intermediate', options.intermediate ?? preset.intermediate);
  const V = positiveInt('vocabSize', options.vocabSize ?? tok?.vocabSize ?? preset.vocabSize);
  const E = type === 'electra' ? positiveInt('embeddingSize', options.embeddingSize ?? H) : H;
  if (H % heads) throw new Error(`generateModelFolder: hidden ${H} is not divisible by heads ${heads}`);
  const pad = tok?.pad ?? (roberta ? 1 : 0);
  const P = positiveInt('maxPositions', options.maxPositions ?? preset.positions + (roberta ? pad + 1 : 0));
  const T = positiveInt('typeVocabSize', options.typeVocabSize ?? (roberta ? 1 : 2));
  const dtype = options.dtype ?? 'F32';
  const seqcls = (options.head ?? 'none') === 'seqcls';

  let id2label: Record<number, string> | undefined;
  let numLabels = 0;
  if (seqcls) {
    if (Array.isArray(options.id2label)) id2label = Object.fromEntries(options.id2label.map((l, i) => [i, l]));
    else if (options.id2label) id2label = { ...options.id2label };
    numLabels = positiveInt('numLabels', options.numLabels ?? (id2label ? Object.keys(id2label).length : options.problemType === 'regression' ? 1 : 2));
    id2label ??= Object.fromEntries(Array.from({ length: numLabels }, (_, i) => [i, `LABEL_${i}`]));
    if (Object.keys(id2label).length !== numLabels) throw new Error(`generateModelFolder: id2label has ${Object.keys(id2label).length} labels, numLabels is ${numLabels}`);
  }

  // --- weights, in state-dict order
  const rng = new Rng(options.seed ?? 0);
  const prefix = seqcls ? (options.prefix ?? MODEL_PREFIX[type]) : (options.prefix ?? '');
  const tensors = new Map<string, TensorToWrite>();
  const add = (name: string, shape: number[], mean: number, std: number): void => {
    tensors.set(name, { dtype, shape, data: rng.fill(numelOf(shape), mean, std) });
  };
  const linear = (name: string, out: number, inp: number): void => {
    add(`${name}.weight`, [out, inp], 0, 0.02);
    add(`${name}.bias`, [out], 0, 0.02);
  };
  const norm = (name: string, n: number): void => {
    add(`${name}.weight`, [n], 1, 0.02);
    add(`${name}.bias`, [n], 0, 0.02);
  };
  const p = prefix;
  add(`${p}embeddings.word_embeddings.weight`, [V, E], 0, 0.02);
  add(`${p}embeddings.position_embeddings.weight`, [P, E], 0, 0.02);
  add(`${p}embeddings.token_type_embeddings.weight`, [T, E], 0, 0.02);
  norm(`${p}embeddings.LayerNorm`, E);
  if (E !== H) linear(`${p}embeddings_project`, H, E);
  for (let i = 0; i < L; i++) {
    const l = `${p}encoder.layer.${i}`;
    linear(`${l}.attention.self.query`, H, H);
    linear(`${l}.attention.self.key`, H, H);
    linear(`${l}.attention.self.value`, H, H);
    linear(`${l}.attention.output.dense`, H, H);
    norm(`${l}.attention.output.LayerNorm`, H);
    linear(`${l}.intermediate.dense`, I, H);
    linear(`${l}.output.dense`, H, I);
    norm(`${l}.output.LayerNorm`, H);
  }
  // As transformers builds them: BERT always has a pooler; RoBERTa/XLM-R only when bare; ELECTRA never.
  if (type === 'bert' || (roberta && !seqcls)) linear(`${p}pooler.dense`, H, H);
  if (seqcls) {
    if (type === 'bert') linear('classifier', numLabels, H);
    else {
      linear('classifier.dense', H, H);
      linear('classifier.out_proj', numLabels, H);
    }
  }

  // --- config.json, keys sorted as save_pretrained writes them
  const arch = `${ARCH_BASE[type]}${seqcls ? 'ForSequenceClassification' : 'Model'}`;
  const cfg: Record<string, unknown> = {
    architectures: [arch],
    attention_probs_dropout_prob: 0.1,
    classifier_dropout: null,
    hidden_act: 'gelu',
    hidden_dropout_prob: 0.1,
    hidden_size: H,
    initializer_range: 0.02,
    intermediate_size: I,
    layer_norm_eps: options.layerNormEps ?? (roberta ? 1e-5 : 1e-12),
    max_position_embeddings: P,
    model_type: type,
    num_attention_heads: heads,
    num_hidden_layers: L,
    pad_token_id: pad,
    position_embedding_type: 'absolute',
    torch_dtype: TORCH_DTYPE[dtype],
    transformers_version: '4.44.2',
    type_vocab_size: T,
    use_cache: true,
    vocab_size: V,
  };
  if (roberta) {
    cfg.bos_token_id = tok?.bos ?? 0;
    cfg.eos_token_id = tok?.eos ?? 2;
  }
  if (type === 'electra') {
    Object.assign(cfg, { embedding_size: E, summary_activation: 'gelu', summary_last_dropout: 0.1, summary_type: 'first', summary_use_proj: true });
  }
  if (seqcls) {
    cfg.id2label = Object.fromEntries(Object.entries(id2label!).map(([k, v]) => [String(k), v]));
    cfg.label2id = Object.fromEntries(Object.entries(id2label!).map(([k, v]) => [v, Number(k)]));
    if (options.problemType) cfg.problem_type = options.problemType;
  }
  const sorted = Object.fromEntries(Object.entries(cfg).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const writeJson = (rel: string, value: unknown): void => {
    writeFileSync(join(dir, rel), `${JSON.stringify(value, null, 2)}\n`);
    files.push(rel);
  };
  writeJson('config.json', sorted);

  const format = options.format ?? 'safetensors';
  const shards = positiveInt('sharded', options.sharded ?? 1);
  if (format === 'safetensors' || format === 'both') {
    writeWeights(dir, tensors, shards, 'model', '.safetensors', (path, part) => writeSafetensors(path, part), files);
  }
  if (format === 'pytorch' || format === 'both') {
    writeWeights(dir, tensors, shards, 'pytorch_model', '.bin', (path, part) => writeTorchZip(path, part), files);
  }

  if (options.tokenizerDir) {
    for (const f of TOKENIZER_FILES) {
      if (existsSync(join(options.tokenizerDir, f))) {
        // Not copyFileSync: it keeps the source's mode, and shared tokenizers are read-only.
        writeFileSync(join(dir, f), readFileSync(join(options.tokenizerDir, f)));
        files.push(f);
      }
    }
  }
  if (options.sentenceTransformers) {
    const modules = [
      { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
      { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
    ];
    const modes = options.stPooling ?? ['mean'];
    const dense = options.stDense;
    if (dense) modules.push({ idx: 2, name: '2', path: '2_Dense', type: 'sentence_transformers.models.Dense' });
    if (options.normalize) {
      const idx = modules.length;
      modules.push({ idx, name: String(idx), path: `${idx}_Normalize`, type: 'sentence_transformers.models.Normalize' });
    }
    writeJson('modules.json', modules);
    mkdirSync(join(dir, '1_Pooling'), { recursive: true });
    writeJson('1_Pooling/config.json', {
      word_embedding_dimension: H,
      pooling_mode_cls_token: modes.includes('cls'),
      pooling_mode_mean_tokens: modes.includes('mean'),
      pooling_mode_max_tokens: modes.includes('max'),
      pooling_mode_mean_sqrt_len_tokens: modes.includes('mean_sqrt_len'),
    });
    if (dense) {
      // Drawn after the encoder's weights, so adding a Dense module leaves those bytes unchanged.
      const inF = H * modes.length;
      const outF = positiveInt('stDense.outFeatures', dense.outFeatures ?? H);
      const bias = dense.bias ?? true;
      mkdirSync(join(dir, '2_Dense'), { recursive: true });
      writeJson('2_Dense/config.json', {
        in_features: inF, out_features: outF, bias, activation_function: dense.activation ?? 'torch.nn.modules.activation.Tanh',
      });
      const t = new Map<string, TensorToWrite>();
      t.set('linear.weight', { dtype: 'F32', shape: [outF, inF], data: rng.fill(outF * inF, 0, 1 / Math.sqrt(inF)) });
      if (bias) t.set('linear.bias', { dtype: 'F32', shape: [outF], data: rng.fill(outF, 0, 0.1) });
      const rel = dense.format === 'pytorch' ? '2_Dense/pytorch_model.bin' : '2_Dense/model.safetensors';
      if (dense.format === 'pytorch') writeTorchZip(join(dir, rel), t);
      else writeSafetensors(join(dir, rel), t);
      files.push(rel);
    }
    writeJson('sentence_bert_config.json', { max_seq_length: Math.min(256, P - (roberta ? pad + 1 : 0)), do_lower_case: false });
  }
  return { dir, config: sorted, files, tensorNames: [...tensors.keys()] };
}

/** One file, or `shards` files of about equal size plus the index.json transformers writes. */
function writeWeights(dir: string, tensors: Map<string, TensorToWrite>, shards: number, stem: string, ext: string,
  write: (path: string, part: Map<string, TensorToWrite>) => void, files: string[]): void {
  if (shards === 1) {
    write(join(dir, `${stem}${ext}`), tensors);
    files.push(`${stem}${ext}`);
    return;
  }
  const bytesOf = (t: TensorToWrite): number => t.data.length * (t.dtype === 'F32' ? 4 : 2);
  const total = [...tensors.values()].reduce((s, t) => s + bytesOf(t), 0);
  const parts: Map<string, TensorToWrite>[] = Array.from({ length: shards }, () => new Map());
  let acc = 0;
  for (const [name, t] of tensors) {
    // Shard by the running byte offset, so shards are contiguous runs of the state dict.
    const k = Math.min(shards - 1, Math.floor((acc / total) * shards));
    parts[k].set(name, t);
    acc += bytesOf(t);
  }
  const weightMap: Record<string, string> = {};
  const nonEmpty = parts.filter((m) => m.size);
  nonEmpty.forEach((part, i) => {
    const file = `${stem}-${String(i + 1).padStart(5, '0')}-of-${String(nonEmpty.length).padStart(5, '0')}${ext}`;
    write(join(dir, file), part);
    files.push(file);
    for (const name of part.keys()) weightMap[name] = file;
  });
  const index = { metadata: { total_size: total }, weight_map: weightMap };
  writeFileSync(join(dir, `${stem}${ext}.index.json`), `${JSON.stringify(index, null, 2)}\n`);
  files.push(`${stem}${ext}.index.json`);
}

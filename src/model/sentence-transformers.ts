/**
 * sentence-transformers folders: modules.json -> the pipeline SentenceTransformer.encode runs after
 * the transformer (Pooling, Dense, Normalize), read and applied here so an edu-train embedding of such
 * a folder is the vector the model card promises.
 *
 * Pooling (1_Pooling/config.json) follows sentence_transformers.models.Pooling: the enabled modes are
 * concatenated in its order cls, max, mean, mean_sqrt_len. Dense (2_Dense/) is activation(W x + b) with
 * weights in model.safetensors or pytorch_model.bin (linear.weight / linear.bias). Normalize is
 * F.normalize(p=2, eps=1e-12). The Transformer module must be the folder root (path "").
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFormatError } from './errors.js';
import { readSafetensors } from './safetensors.js';
import { readTorchBin } from './torch-bin.js';
import { l2NormalizeRows } from '../util/vectors.js';

export type StPoolingMode = 'cls' | 'max' | 'mean' | 'mean_sqrt_len';
/** Concatenation order of sentence_transformers.models.Pooling.forward. */
const MODE_ORDER: readonly StPoolingMode[] = ['cls', 'max', 'mean', 'mean_sqrt_len'];

export type StActivation = 'identity' | 'tanh' | 'relu' | 'sigmoid' | 'gelu';
/** activation_function strings as sentence-transformers writes them (fully qualified torch class names). */
const ACTIVATIONS: Record<string, StActivation> = {
  'torch.nn.modules.linear.Identity': 'identity',
  'torch.nn.modules.activation.Tanh': 'tanh',
  'torch.nn.modules.activation.ReLU': 'relu',
  'torch.nn.modules.activation.Sigmoid': 'sigmoid',
  'torch.nn.modules.activation.GELU': 'gelu',
};

export interface StDense {
  path: string;
  inFeatures: number;
  outFeatures: number;
  activation: StActivation;
  /** [out, in] row-major (torch Linear layout). */
  weight: Float32Array;
  /** [out], zeros when the layer has no bias. */
  bias: Float32Array;
}

export type StModule =
  | { kind: 'pooling'; path: string; modes: StPoolingMode[]; dimension: number; includePrompt: boolean }
  | { kind: 'dense'; dense: StDense }
  | { kind: 'normalize' };

export interface SentenceTransformersPipeline {
  dir: string;
  /** The modules after the Transformer, in modules.json order. */
  modules: StModule[];
  /** sentence_bert_config.json max_seq_length, if any. */
  maxSeqLength?: number;
  /** Width of the final embedding. */
  outputDim: number;
}

interface ModuleEntry { idx?: number; name?: string; path?: unknown; type?: unknown }

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ModelFormatError(file, `cannot read as JSON (${(e as Error).message})`);
  }
}

/** True when the folder is a sentence-transformers model (has modules.json). */
export function isSentenceTransformersFolder(dir: string): boolean {
  return existsSync(join(dir, 'modules.json'));
}

/** Pooling config -> enabled modes; unsupported modes (weightedmean, lasttoken) are an error, not ignored. */
export function parsePoolingConfig(raw: unknown, file: string): { modes: StPoolingMode[]; dimension: number; includePrompt: boolean } {
  if (typeof raw !== 'object' || raw === null) throw new ModelFormatError(file, 'is not a JSON object');
  const c = raw as Record<string, unknown>;
  for (const key of ['pooling_mode_weightedmean_tokens', 'pooling_mode_lasttoken']) {
    if (c[key] === true) throw new ModelFormatError(file, `${key} is not supported by edu-train (supported: cls, max, mean, mean_sqrt_len)`);
  }
  // Newer sentence-transformers may also write "pooling_mode": "mean" alongside the flags.
  const flag: Record<StPoolingMode, string> = {
    cls: 'pooling_mode_cls_token', max: 'pooling_mode_max_tokens', mean: 'pooling_mode_mean_tokens', mean_sqrt_len: 'pooling_mode_mean_sqrt_len_tokens',
  };
  const modes = MODE_ORDER.filter((m) => c[flag[m]] === true);
  if (modes.length === 0) throw new ModelFormatError(file, 'enables no pooling mode');
  const dim = c.word_embedding_dimension;
  if (typeof dim !== 'number' || !Number.isSafeInteger(dim) || dim <= 0) throw new ModelFormatError(file, '"word_embedding_dimension" must be a positive integer');
  return { modes, dimension: dim, includePrompt: c.include_prompt !== false };
}

async function loadDense(dir: string, path: string): Promise<StDense> {
  const cfgFile = join(dir, path, 'config.json');
  const c = readJson(cfgFile) as Record<string, unknown>;
  const inF = c.in_features;
  const outF = c.out_features;
  if (typeof inF !== 'number' || typeof outF !== 'number' || !(inF > 0) || !(outF > 0)) {
    throw new ModelFormatError(cfgFile, 'in_features and out_features must be positive integers');
  }
  const actName = (c.activation_function as string | undefined) ?? 'torch.nn.modules.activation.Tanh';
  const activation = ACTIVATIONS[actName];
  if (!activation) throw new ModelFormatError(cfgFile, `activation_function ${JSON.stringify(actName)} is not supported (supported: ${Object.keys(ACTIVATIONS).join(', ')})`);
  const hasBias = c.bias !== false;
  const st = join(dir, path, 'model.safetensors');
  const pt = join(dir, path, 'pytorch_model.bin');
  const file = existsSync(st) ? st : existsSync(pt) ? pt : null;
  if (!file) throw new ModelFormatError(join(dir, path), 'Dense module has no weights (model.safetensors or pytorch_model.bin)');
  const select = (t: { name: string }): boolean => t.name === 'linear.weight' || t.name === 'linear.bias';
  const tensors = file === st ? await readSafetensors(file, { select }) : await readTorchBin(file, { select });
  const w = tensors.get('linear.weight');
  if (!w || w.shape.join(',') !== `${outF},${inF}`) throw new ModelFormatError(file, `linear.weight must have shape [${outF}, ${inF}]`);
  const b = tensors.get('linear.bias');
  if (hasBias && (!b || b.shape.join(',') !== `${outF}`)) throw new ModelFormatError(file, `linear.bias must have shape [${outF}]`);
  return { path, inFeatures: inF, outFeatures: outF, activation, weight: w.data, bias: hasBias ? b!.data : new Float32Array(outF) };
}

/**
 * Reads modules.json and the modules it lists. Returns null for a folder without modules.json.
 * `hidden` is the transformer's hidden size (checked against the pooling dimension).
 */
export async function loadSentenceTransformers(dir: string, hidden: number): Promise<SentenceTransformersPipeline | null> {
  const file = join(dir, 'modules.json');
  if (!existsSync(file)) return null;
  const entries = readJson(file);
  if (!Array.isArray(entries)) throw new ModelFormatError(file, 'must be a list of modules');
  const modules: StModule[] = [];
  let dim = hidden;
  let sawTransformer = false;
  for (const e of entries as ModuleEntry[]) {
    const type = String(e.type ?? '');
    const path = typeof e.path === 'string' ? e.path : '';
    const cls = type.split('.').pop();
    if (cls === 'Transformer') {
      if (path !== '') throw new ModelFormatError(file, `the Transformer module lives in "${path}/"; edu-train needs it at the folder root (point --model-dir at ${join(dir, path)})`);
      sawTransformer = true;
    } else if (cls === 'Pooling') {
      const p = parsePoolingConfig(readJson(join(dir, path, 'config.json')), join(dir, path, 'config.json'));
      if (p.dimension !== dim) throw new ModelFormatError(join(dir, path, 'config.json'), `word_embedding_dimension ${p.dimension} != the model's hidden size ${dim}`);
      modules.push({ kind: 'pooling', path, ...p });
      dim = p.dimension * p.modes.length;
    } else if (cls === 'Dense') {
      const d = await loadDense(dir, path);
      if (d.inFeatures !== dim) throw new ModelFormatError(join(dir, path, 'config.json'), `in_features ${d.inFeatures} != the incoming width ${dim}`);
      modules.push({ kind: 'dense', dense: d });
      dim = d.outFeatures;
    } else if (cls === 'Normalize') {
      modules.push({ kind: 'normalize' });
    } else {
      throw new ModelFormatError(file, `module type ${JSON.stringify(type)} is not supported (Transformer, Pooling, Dense, Normalize are)`);
    }
  }
  if (!sawTransformer) throw new ModelFormatError(file, 'lists no sentence_transformers.models.Transformer module');
  if (modules[0]?.kind !== 'pooling') throw new ModelFormatError(file, 'the module after the Transformer must be Pooling');
  let maxSeqLength: number | undefined;
  const sbc = join(dir, 'sentence_bert_config.json');
  if (existsSync(sbc)) {
    const m = (readJson(sbc) as { max_seq_length?: unknown }).max_seq_length;
    if (typeof m === 'number' && m > 0) maxSeqLength = m;
  }
  return { dir, modules, maxSeqLength, outputDim: dim };
}

/** What the encoder produced for one batch: the parts pooling may need. */
export interface TokenOutputs {
  batch: number;
  seqLen: number;
  hidden: number;
  /** [batch, seqLen, hidden]; needed for max and mean_sqrt_len. */
  lastHiddenState?: Float32Array;
  /** [batch, seqLen] 1 = real token. */
  attentionMask: Int32Array;
  /** [batch, hidden] from the encoder (saves recomputing). */
  meanPooled?: Float32Array;
  cls?: Float32Array;
}

/** Which encoder outputs a pipeline's pooling needs. */
export function requiredOutputs(p: SentenceTransformersPipeline): { lastHiddenState: boolean; meanPooled: boolean; cls: boolean } {
  const pool = p.modules[0] as Extract<StModule, { kind: 'pooling' }>;
  return {
    lastHiddenState: pool.modes.includes('max') || pool.modes.includes('mean_sqrt_len'),
    meanPooled: pool.modes.includes('mean'),
    cls: pool.modes.includes('cls'),
  };
}

function poolRows(pool: Extract<StModule, { kind: 'pooling' }>, t: TokenOutputs): Float32Array {
  const { batch, seqLen, hidden: H } = t;
  const width = H * pool.modes.length;
  const out = new Float32Array(batch * width);
  for (let b = 0; b < batch; b++) {
    let count = 0;
    for (let s = 0; s < seqLen; s++) count += t.attentionMask[b * seqLen + s] ? 1 : 0;
    pool.modes.forEach((mode, k) => {
      const dst = out.subarray(b * width + k * H, b * width + (k + 1) * H);
      if (mode === 'cls') dst.set(t.cls!.subarray(b * H, (b + 1) * H));
      else if (mode === 'mean') dst.set(t.meanPooled!.subarray(b * H, (b + 1) * H));
      else {
        const x = t.lastHiddenState!;
        for (let j = 0; j < H; j++) {
          // As sentence-transformers: masked tokens are -1e9 for max; sums are divided by sqrt(max(count, 1e-9)).
          let acc = mode === 'max' ? -1e9 : 0;
          for (let s = 0; s < seqLen; s++) {
            const v = t.attentionMask[b * seqLen + s] ? x[(b * seqLen + s) * H + j] : mode === 'max' ? -1e9 : 0;
            acc = mode === 'max' ? Math.max(acc, v) : acc + v;
          }
          dst[j] = mode === 'max' ? acc : acc / Math.sqrt(Math.max(count, 1e-9));
        }
      }
    });
  }
  return out;
}

function activate(x: number, a: StActivation): number {
  switch (a) {
    case 'identity': return x;
    case 'tanh': return Math.tanh(x);
    case 'relu': return x > 0 ? x : 0;
    case 'sigmoid': return 1 / (1 + Math.exp(-x));
    case 'gelu': return 0.5 * x * (1 + erf(x / Math.SQRT2));
  }
}

/** Abramowitz-Stegun 7.1.26 is too coarse for GELU parity; this is a series/continued-fraction erf to ~1e-15. */
function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // Maclaurin series: converges fast for small |x|.
    let term = x;
    let sum = x;
    const x2 = x * x;
    for (let n = 1; n < 60; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction (Lentz) for larger |x|.
  let f = ax;
  let C = ax;
  let D = 0;
  for (let n = 1; n < 200; n++) {
    const a = n / 2;
    D = ax + a * D;
    D = 1 / D;
    C = ax + a / C;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / (f * Math.sqrt(Math.PI));
  return Math.sign(x) * (1 - erfc);
}

/** y = act(W x + b) per row; accumulates in float64 and rounds once (torch rounds per fma, within ~1 ulp). */
export function applyDense(d: StDense, x: Float32Array, rows: number): Float32Array {
  const out = new Float32Array(rows * d.outFeatures);
  for (let r = 0; r < rows; r++) {
    const xr = r * d.inFeatures;
    for (let o = 0; o < d.outFeatures; o++) {
      let acc = d.bias[o];
      const wo = o * d.inFeatures;
      for (let i = 0; i < d.inFeatures; i++) acc += d.weight[wo + i] * x[xr + i];
      out[r * d.outFeatures + o] = activate(acc, d.activation);
    }
  }
  return out;
}

/** Runs Pooling -> (Dense | Normalize)* on one batch; returns [batch, outputDim]. */
export function applyPipeline(p: SentenceTransformersPipeline, t: TokenOutputs): Float32Array {
  let x: Float32Array = new Float32Array(0);
  let width = 0;
  for (const m of p.modules) {
    if (m.kind === 'pooling') {
      x = poolRows(m, t);
      width = t.hidden * m.modes.length;
    } else if (m.kind === 'dense') {
      x = applyDense(m.dense, x, t.batch);
      width = m.dense.outFeatures;
    } else {
      x = l2NormalizeRows(x, width);
    }
  }
  return x;
}

/** One line for listings: "cls -> Dense(768, 768, tanh) -> Normalize". */
export function describePipeline(p: SentenceTransformersPipeline): string {
  return p.modules.map((m) => {
    if (m.kind === 'pooling') return m.modes.join('+');
    if (m.kind === 'dense') return `Dense(${m.dense.inFeatures}, ${m.dense.outFeatures}, ${m.dense.activation})`;
    return 'Normalize';
  }).join(' -> ');
}

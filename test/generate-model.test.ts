import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readModelSpec } from '../src/model/config.js';
import { generateModelFolder, readTokenizerFacts, type GenerateOptions } from '../src/model/generate.js';
import { loadModel, loadWeights } from '../src/model/load.js';
import { decodeFloats, encodeFloats, readSafetensors, writeSafetensors, type TensorToWrite } from '../src/model/safetensors.js';
import type { ModelType } from '../src/model/types.js';
import { expectedShapes } from '../src/model/weights.js';
import { repoRoot, sharedPath } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-train-gen-');
const MODEL_TYPES: ModelType[] = ['bert', 'roberta', 'xlm-roberta', 'electra'];

/** Generates a folder and loads it back. */
async function generateAndLoad(options: GenerateOptions) {
  const dir = tmp.make();
  const gen = generateModelFolder(dir, options);
  const loaded = await loadModel(dir);
  return { dir, gen, ...loaded };
}

/** The canonical names the native encoder expects for a spec, straight from addon-types' list. */
function canonicalNames(layers: number, extra: string[]): string[] {
  const names = [
    'embeddings.word_embeddings.weight', 'embeddings.position_embeddings.weight', 'embeddings.token_type_embeddings.weight',
    'embeddings.LayerNorm.weight', 'embeddings.LayerNorm.bias',
  ];
  for (let i = 0; i < layers; i++) {
    for (const m of ['attention.self.query', 'attention.self.key', 'attention.self.value', 'attention.output.dense',
      'attention.output.LayerNorm', 'intermediate.dense', 'output.dense', 'output.LayerNorm']) {
      names.push(`encoder.layer.${i}.${m}.weight`, `encoder.layer.${i}.${m}.bias`);
    }
  }
  return [...names, ...extra].sort();
}

describe('generated folders load back under canonical names', () => {
  for (const modelType of MODEL_TYPES) {
    for (const head of ['none', 'seqcls'] as const) {
      it(`${modelType} / head ${head}`, async () => {
        const electraSmall = modelType === 'electra';
        const { spec, weights, gen } = await generateAndLoad({
          modelType, head, numLabels: 3, seed: 7, layers: 2, hidden: 32, heads: 4, intermediate: 48, vocabSize: 120,
          embeddingSize: electraSmall ? 16 : undefined,
        });
        const roberta = modelType === 'roberta' || modelType === 'xlm-roberta';
        const extra: string[] = [];
        if (electraSmall) extra.push('embeddings_project.weight', 'embeddings_project.bias');
        const pooler = modelType === 'bert' || (roberta && head === 'none');
        if (pooler) extra.push('pooler.dense.weight', 'pooler.dense.bias');
        if (head === 'seqcls') {
          extra.push(...(modelType === 'bert' ? ['classifier.weight', 'classifier.bias']
            : ['classifier.dense.weight', 'classifier.dense.bias', 'classifier.out_proj.weight', 'classifier.out_proj.bias']));
        }
        expect([...weights.tensors.keys()].sort()).toEqual(canonicalNames(2, extra));
        expect(spec.hasPooler).toBe(pooler);
        expect(spec.weightPrefix).toBe(head === 'seqcls' ? (roberta ? 'roberta.' : `${modelType}.`) : '');
        expect(spec.head.kind).toBe(head === 'none' ? 'none' : modelType === 'bert' ? 'bert' : roberta ? 'roberta' : 'electra');
        expect(spec.config).toMatchObject({
          modelType, hiddenSize: 32, numLayers: 2, numHeads: 4, intermediateSize: 48, vocabSize: 120,
          embeddingSize: electraSmall ? 16 : 32, padTokenId: roberta ? 1 : 0, positionOffset: roberta ? 2 : 0,
          maxPositions: roberta ? 130 : 128, typeVocabSize: roberta ? 1 : 2,
        });
        for (const [name, shape] of expectedShapes(spec)) {
          expect(weights.shapes.get(name)).toEqual(shape);
          expect(weights.tensors.get(name)!.length).toBe(shape.reduce((a, b) => a * b, 1));
        }
        expect(weights.sha256).toMatch(/^[0-9a-f]{64}$/);
        // Random and non-trivial: LayerNorm weights near 1 but not 1, biases non-zero.
        const ln = weights.tensors.get('embeddings.LayerNorm.weight')!;
        expect(ln.every((v) => Math.abs(v - 1) < 0.2 && v !== 1)).toBe(true);
        expect(weights.tensors.get('encoder.layer.0.output.dense.bias')!.every((v) => v !== 0)).toBe(true);
        expect(gen.config.architectures).toEqual([spec.architecture]);
      });
    }
  }

  it('is deterministic in the seed', async () => {
    const a = await generateAndLoad({ seed: 1 });
    const b = await generateAndLoad({ seed: 1 });
    const c = await generateAndLoad({ seed: 2 });
    expect(a.weights.sha256).toBe(b.weights.sha256);
    expect(c.weights.sha256).not.toBe(a.weights.sha256);
    const w = a.weights.tensors.get('encoder.layer.0.attention.self.query.weight')!;
    const mean = w.reduce((s, v) => s + v, 0) / w.length;
    const std = Math.sqrt(w.reduce((s, v) => s + (v - mean) ** 2, 0) / w.length);
    expect(Math.abs(mean)).toBeLessThan(0.003);
    expect(std).toBeGreaterThan(0.018);
    expect(std).toBeLessThan(0.022);
  });

  it('writes HF-style config.json (sorted keys, seqcls labels, roberta special ids)', () => {
    const dir = tmp.make();
    generateModelFolder(dir, { modelType: 'roberta', head: 'seqcls', problemType: 'single_label_classification', id2label: ['neg', 'pos'] });
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(Object.keys(cfg)).toEqual([...Object.keys(cfg)].sort());
    expect(cfg).toMatchObject({
      architectures: ['RobertaForSequenceClassification'], model_type: 'roberta', bos_token_id: 0, pad_token_id: 1, eos_token_id: 2,
      id2label: { 0: 'neg', 1: 'pos' }, label2id: { neg: 0, pos: 1 }, problem_type: 'single_label_classification',
      hidden_act: 'gelu', position_embedding_type: 'absolute', layer_norm_eps: 1e-5, torch_dtype: 'float32',
    });
    const spec = readModelSpec(dir);
    expect(spec.head).toEqual({ kind: 'roberta', numLabels: 2, problemType: 'single_label_classification', id2label: { 0: 'neg', 1: 'pos' } });
  });
});

describe('formats, dtypes and sharding', () => {
  it('sharded safetensors (index.json) loads the same tensors as one file', async () => {
    const one = await generateAndLoad({ seed: 3, head: 'seqcls' });
    const sharded = await generateAndLoad({ seed: 3, head: 'seqcls', sharded: 3 });
    expect(existsSync(join(sharded.dir, 'model.safetensors.index.json'))).toBe(true);
    expect(sharded.spec.weightFiles.length).toBeGreaterThan(1);
    expect(sharded.spec.weightFiles.every((f) => /model-\d{5}-of-\d{5}\.safetensors$/.test(f))).toBe(true);
    const index = JSON.parse(readFileSync(join(sharded.dir, 'model.safetensors.index.json'), 'utf8'));
    expect(Object.keys(index.weight_map)).toContain('bert.embeddings.word_embeddings.weight');
    expect(sharded.spec.weightPrefix).toBe('bert.');
    for (const [k, v] of one.weights.tensors) expect(sharded.weights.tensors.get(k)).toEqual(v);
  });

  it('pytorch_model.bin (single and sharded) loads the same tensors as safetensors', async () => {
    const st = await generateAndLoad({ seed: 4, modelType: 'electra', embeddingSize: 32 });
    const pt = await generateAndLoad({ seed: 4, modelType: 'electra', embeddingSize: 32, format: 'pytorch' });
    const ptSharded = await generateAndLoad({ seed: 4, modelType: 'electra', embeddingSize: 32, format: 'pytorch', sharded: 2 });
    expect(pt.spec.weightFormat).toBe('pytorch');
    expect(ptSharded.spec.weightFiles.length).toBe(2);
    expect(existsSync(join(ptSharded.dir, 'pytorch_model.bin.index.json'))).toBe(true);
    for (const other of [pt, ptSharded]) {
      expect([...other.weights.tensors.keys()].sort()).toEqual([...st.weights.tensors.keys()].sort());
      for (const [k, v] of st.weights.tensors) expect(other.weights.tensors.get(k)).toEqual(v);
    }
    const both = await generateAndLoad({ seed: 4, format: 'both' });
    expect(existsSync(join(both.dir, 'pytorch_model.bin'))).toBe(true);
    expect(both.spec.weightFormat).toBe('safetensors');
  });

  for (const dtype of ['F16', 'BF16'] as const) {
    it(`${dtype} weights load as float32 values equal to the rounded F32 weights`, async () => {
      const f32 = await generateAndLoad({ seed: 5, modelType: 'xlm-roberta' });
      const half = await generateAndLoad({ seed: 5, modelType: 'xlm-roberta', dtype, format: 'both' });
      expect(half.gen.config.torch_dtype).toBe(dtype === 'F16' ? 'float16' : 'bfloat16');
      for (const [k, v] of f32.weights.tensors) {
        expect(half.weights.tensors.get(k)).toEqual(decodeFloats(dtype, encodeFloats(dtype, v)));
      }
      const raw = await readSafetensors(half.spec.weightFiles[0]);
      expect([...raw.values()].every((t) => t.dtype === dtype)).toBe(true);
    });
  }
});

describe('tokenizers and sentence-transformers files', () => {
  it('copies a BERT tokenizer and takes vocab size and pad id from it', async () => {
    const tok = sharedPath('models', 'tokenizer-only', 'all-minilm-l6-v2');
    expect(readTokenizerFacts(tok)).toMatchObject({ vocabSize: 30522, pad: 0, bos: 101, eos: 102 });
    const { dir, spec } = await generateAndLoad({ tokenizerDir: tok, sentenceTransformers: true, normalize: true, hidden: 32, layers: 1, heads: 2, intermediate: 64 });
    expect(spec.config.vocabSize).toBe(30522);
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt', 'modules.json', '1_Pooling/config.json', 'sentence_bert_config.json']) {
      expect(existsSync(join(dir, f))).toBe(true);
    }
    expect(readFileSync(join(dir, 'tokenizer.json'))).toEqual(readFileSync(join(tok, 'tokenizer.json')));
    expect(JSON.parse(readFileSync(join(dir, '1_Pooling/config.json'), 'utf8'))).toMatchObject({ word_embedding_dimension: 32, pooling_mode_mean_tokens: true, pooling_mode_cls_token: false });
    expect(JSON.parse(readFileSync(join(dir, 'modules.json'), 'utf8')).map((m: { type: string }) => m.type)).toEqual([
      'sentence_transformers.models.Transformer', 'sentence_transformers.models.Pooling', 'sentence_transformers.models.Normalize']);
  });

  it('a RoBERTa model on the klue tokenizer uses its real special ids', async () => {
    const tok = sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer');
    const { spec, gen } = await generateAndLoad({ modelType: 'roberta', tokenizerDir: tok, hidden: 32, layers: 1, heads: 2, intermediate: 64 });
    expect(gen.config).toMatchObject({ vocab_size: 32000, pad_token_id: 1, bos_token_id: 0, eos_token_id: 2, max_position_embeddings: 130 });
    expect(spec.config).toMatchObject({ padTokenId: 1, positionOffset: 2, positionStyle: 'roberta' });
  });

  it('the bert-base preset has the bert-base shape', () => {
    // Config only: the 110M-parameter weights are exercised by the CLI check in the report, not here.
    const dir = tmp.make();
    const gen = generateModelFolder(dir, { preset: 'bert-base', layers: 1, vocabSize: 100 });
    expect(gen.config).toMatchObject({ hidden_size: 768, num_attention_heads: 12, intermediate_size: 3072, max_position_embeddings: 512 });
  });
});

describe('checkpoint naming quirks and errors (hand-made fixtures)', () => {
  /** The tensors of a generated bare BERT, renamed by `rename` and written as a new model.safetensors. */
  async function rewrite(rename: (name: string) => string | null, extra: [string, TensorToWrite][] = [],
    config: Record<string, unknown> = {}) {
    const src = tmp.make();
    generateModelFolder(src, { seed: 9 });
    const original = await loadModel(src);
    const tensors = new Map<string, TensorToWrite>(extra);
    for (const [name, t] of await readSafetensors(join(src, 'model.safetensors'))) {
      const n = rename(name);
      if (n) tensors.set(n, { dtype: 'F32', shape: t.shape, data: t.data });
    }
    const dir = tmp.make();
    const cfg = { ...JSON.parse(readFileSync(join(src, 'config.json'), 'utf8')), ...config };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    writeSafetensors(join(dir, 'model.safetensors'), tensors);
    return { dir, original };
  }

  it('gamma/beta, a bare checkpoint with a prefix, position_ids and pretraining heads', async () => {
    const { dir, original } = await rewrite(
      (n) => `bert.${n.replace(/LayerNorm\.weight$/, 'LayerNorm.gamma').replace(/LayerNorm\.bias$/, 'LayerNorm.beta')}`,
      [
        ['bert.embeddings.position_ids', { dtype: 'I64', shape: [1, 128], data: BigInt64Array.from({ length: 128 }, (_, i) => BigInt(i)) }],
        ['cls.predictions.bias', { dtype: 'F32', shape: [1000], data: new Float32Array(1000) }],
        ['cls.predictions.transform.dense.weight', { dtype: 'F32', shape: [64, 64], data: new Float32Array(64 * 64) }],
        ['cls.predictions.transform.LayerNorm.gamma', { dtype: 'F32', shape: [64], data: new Float32Array(64) }],
        ['lm_head.decoder.weight', { dtype: 'F32', shape: [1000, 64], data: new Float32Array(64000) }],
      ],
      { architectures: ['BertForPreTraining'] });
    const { spec, weights } = await loadModel(dir);
    expect(spec.weightPrefix).toBe('bert.');
    expect(spec.head.kind).toBe('none');
    expect([...weights.tensors.keys()].sort()).toEqual([...original.weights.tensors.keys()].sort());
    for (const [k, v] of original.weights.tensors) expect(weights.tensors.get(k)).toEqual(v);
  });

  it('an ELECTRA discriminator checkpoint drops discriminator_predictions and generator weights', async () => {
    const src = tmp.make();
    generateModelFolder(src, { modelType: 'electra', embeddingSize: 32, seed: 2 });
    const t = await readSafetensors(join(src, 'model.safetensors'));
    const tensors = new Map<string, TensorToWrite>([...t].map(([k, v]) => [`electra.${k}`, { dtype: 'F32', shape: v.shape, data: v.data }]));
    tensors.set('discriminator_predictions.dense.weight', { dtype: 'F32', shape: [64, 64], data: new Float32Array(4096) });
    tensors.set('generator_lm_head.bias', { dtype: 'F32', shape: [1000], data: new Float32Array(1000) });
    writeSafetensors(join(src, 'model.safetensors'), tensors);
    const cfg = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'));
    writeFileSync(join(src, 'config.json'), JSON.stringify({ ...cfg, architectures: ['ElectraForPreTraining'] }));
    const { spec, weights } = await loadModel(src);
    expect(spec.weightPrefix).toBe('electra.');
    expect(weights.tensors.has('embeddings_project.weight')).toBe(true);
    expect(weights.tensors.size).toBe(5 + 2 + 2 * 16);
  });

  it('missing tensors and wrong shapes are listed together in one Error', async () => {
    const { dir } = await rewrite((n) => {
      if (n === 'embeddings.word_embeddings.weight' || n === 'encoder.layer.1.attention.self.key.bias') return null;
      return n;
    });
    // Transpose one weight's shape (same element count).
    const file = join(dir, 'model.safetensors');
    const t = await readSafetensors(file);
    const tensors = new Map<string, TensorToWrite>([...t].map(([k, v]) => [k, { dtype: 'F32', shape: v.shape, data: v.data }]));
    tensors.get('encoder.layer.1.output.dense.weight')!.shape = [256, 64];
    writeSafetensors(file, tensors);
    const spec = readModelSpec(dir);
    expect(spec.weightPrefix).toBe(''); // found from the other embedding tensors
    await expect(loadWeights(spec)).rejects.toThrow(
      `${file}: missing tensor embeddings.word_embeddings.weight; missing tensor encoder.layer.1.attention.self.key.bias; ` +
      'encoder.layer.1.output.dense.weight has shape [256, 64], expected [64, 256]');
  });

  it('a BERT classification head without a pooler is reported', async () => {
    const { dir } = await rewrite((n) => (n.startsWith('pooler.') ? null : n),
      [['classifier.weight', { dtype: 'F32', shape: [2, 64], data: new Float32Array(128) }],
        ['classifier.bias', { dtype: 'F32', shape: [2], data: new Float32Array(2) }]],
      { architectures: ['BertForSequenceClassification'] });
    await expect(loadModel(dir)).rejects.toThrow(/missing tensor pooler\.dense\.weight; missing tensor pooler\.dense\.bias/);
  });

  it('two checkpoint names mapping to one canonical name is an Error', async () => {
    const { dir } = await rewrite((n) => n, [['embeddings.LayerNorm.gamma', { dtype: 'F32', shape: [64], data: new Float32Array(64) }]]);
    await expect(loadModel(dir)).rejects.toThrow(/both map to embeddings\.LayerNorm\.weight/);
  });
});

describe('scripts/generate-model.mjs', () => {
  const dist = join(repoRoot, 'dist', 'model', 'generate.js');
  // The CLI runs the compiled library; `npm test` builds dist/ first (pretest).
  it('writes a loadable folder', async () => {
    expect(existsSync(dist), `${dist} is missing: run npm run build:ts`).toBe(true);
    const out = join(tmp.make(), 'm');
    const stdout = execFileSync(process.execPath, [join(repoRoot, 'scripts', 'generate-model.mjs'), '--out', out,
      '--preset', 'tiny', '--model-type', 'roberta', '--head', 'seqcls', '--labels', 'a,b,c', '--format', 'pytorch', '--seed', '3'], { encoding: 'utf8' });
    expect(stdout).toMatch(/RobertaForSequenceClassification hidden 64/);
    const { spec } = await loadModel(out);
    expect(spec.head).toMatchObject({ kind: 'roberta', numLabels: 3 });
    expect(spec.weightFormat).toBe('pytorch');
    expect(() => execFileSync(process.execPath, [join(repoRoot, 'scripts', 'generate-model.mjs'), '--out', out, '--model-type', 'gpt2'], { stdio: 'pipe' }))
      .toThrow(/--model-type must be one of bert, roberta, xlm-roberta, electra/);
  });
});

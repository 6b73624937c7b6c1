/**
 * sentence-transformers folders: the embedding of Encoder.embed({ pooling: 'sentence-transformers' }) and of
 * `edu-train embed` (its default for such folders) must equal SentenceTransformer.encode. The reference here
 * is independent of src/model/sentence-transformers.ts: float64 pooling / Dense / normalize written out below,
 * from the encoder's own per-text forward() token outputs and the Dense weights read straight from the file.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openTable } from '../src/data/table.js';
import { loadEncoder, type Encoder } from '../src/encoder.js';
import { generateModelFolder, type GenerateOptions } from '../src/model/generate.js';
import { readSafetensors } from '../src/model/safetensors.js';
import { readTorchBin } from '../src/model/torch-bin.js';
import { runCli } from './helpers/cli.js';
import { sharedPath } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-st-');
const TEXTS = ['A short one.', 'Sentence embeddings should match what sentence-transformers returns, token for token.', '', '한국어 문장도 섞어 봅니다.'];

type Mode = 'cls' | 'max' | 'mean' | 'mean_sqrt_len';
interface Case {
  name: string;
  opts: GenerateOptions;
  modes: Mode[];
  dense?: { file: string; act: (x: number) => number; out: number; bias: boolean };
  normalize: boolean;
}

const BERT_TOK = () => sharedPath('models', 'tokenizer-only', 'all-minilm-l6-v2');
const ROBERTA_TOK = () => sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer');
const TINY = { preset: 'tiny' as const, hidden: 32, layers: 2, heads: 4, intermediate: 64 };

const CASES: Case[] = [
  {
    name: 'LaBSE layout: CLS -> Dense(32, 24, tanh) -> Normalize',
    opts: { ...TINY, modelType: 'bert', tokenizerDir: BERT_TOK(), sentenceTransformers: true, stPooling: ['cls'], stDense: { outFeatures: 24 }, normalize: true, seed: 3 },
    modes: ['cls'], dense: { file: '2_Dense/model.safetensors', act: Math.tanh, out: 24, bias: true }, normalize: true,
  },
  {
    name: 'RoBERTa, cls+max+mean+mean_sqrt_len concatenated -> Dense(128, 16, identity, no bias, pytorch_model.bin)',
    opts: {
      ...TINY, modelType: 'roberta', tokenizerDir: ROBERTA_TOK(), sentenceTransformers: true, stPooling: ['mean', 'max', 'cls', 'mean_sqrt_len'],
      stDense: { outFeatures: 16, activation: 'torch.nn.modules.linear.Identity', bias: false, format: 'pytorch' }, seed: 4,
    },
    modes: ['cls', 'max', 'mean', 'mean_sqrt_len'], dense: { file: '2_Dense/pytorch_model.bin', act: (x) => x, out: 16, bias: false }, normalize: false,
  },
  {
    name: 'all-MiniLM layout: mean -> Normalize',
    opts: { ...TINY, modelType: 'bert', tokenizerDir: BERT_TOK(), sentenceTransformers: true, normalize: true, seed: 5 },
    modes: ['mean'], normalize: true,
  },
];

/** float64 reference of sentence-transformers' Pooling/Dense/Normalize for one text. */
async function reference(enc: Encoder, dir: string, c: Case, text: string): Promise<Float64Array> {
  const [e] = await enc.tokenizer!.encode([text]);
  const out = await enc.forward({ input_ids: [Array.from(e.ids)], token_type_ids: [Array.from(e.typeIds)] });
  const H = out.shape.hidden;
  const T = out.shape.seqLen;
  const tok = (t: number, j: number) => out.last_hidden_state[t * H + j];
  let v: number[] = [];
  for (const m of c.modes) {
    for (let j = 0; j < H; j++) {
      let s = 0;
      let mx = -Infinity;
      for (let t = 0; t < T; t++) {
        s += tok(t, j);
        mx = Math.max(mx, tok(t, j));
      }
      v.push(m === 'cls' ? tok(0, j) : m === 'max' ? mx : m === 'mean' ? s / T : s / Math.sqrt(T));
    }
  }
  if (c.dense) {
    const f = join(dir, c.dense.file);
    const w = f.endsWith('.bin') ? await readTorchBin(f) : await readSafetensors(f);
    const W = w.get('linear.weight')!.data;
    const b = c.dense.bias ? w.get('linear.bias')!.data : null;
    const inF = v.length;
    v = Array.from({ length: c.dense.out }, (_, o) => {
      let acc = b ? b[o] : 0;
      for (let i = 0; i < inF; i++) acc += W[o * inF + i] * v[i];
      return c.dense!.act(acc);
    });
  }
  if (c.normalize) {
    const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    v = v.map((x) => x / Math.max(n, 1e-12));
  }
  return Float64Array.from(v);
}

describe('sentence-transformers folders', () => {
  it.each(CASES)('$name equals the float64 reference', async (c) => {
    const dir = join(tmp.make(), 'm');
    generateModelFolder(dir, c.opts);
    const enc = await loadEncoder(dir);
    try {
      expect(enc.defaultPooling).toBe('sentence-transformers');
      const r = await enc.embed(TEXTS, { pooling: 'sentence-transformers', batchSize: 3 });
      const width = c.dense ? c.dense.out : 32 * c.modes.length;
      expect(r.hidden).toBe(width);
      expect(enc.embeddingSize('sentence-transformers')).toBe(width);
      for (let i = 0; i < TEXTS.length; i++) {
        const ref = await reference(enc, dir, c, TEXTS[i]);
        const got = r.embeddings.subarray(i * width, (i + 1) * width);
        let m = 0;
        for (let j = 0; j < width; j++) m = Math.max(m, Math.abs(got[j] - ref[j]));
        // Batched (padded) forward vs the unpadded one: a few float32 ulps.
        expect(m, `text ${i}`).toBeLessThan(3e-5);
      }
    } finally {
      enc.dispose();
    }
  });

  it('rejects unsupported modules and pooling modes with the file named', async () => {
    const dir = join(tmp.make(), 'bad');
    generateModelFolder(dir, { ...TINY, tokenizerDir: BERT_TOK(), sentenceTransformers: true });
    writeFileSync(join(dir, '1_Pooling', 'config.json'), JSON.stringify({ word_embedding_dimension: 32, pooling_mode_lasttoken: true }));
    await expect(loadEncoder(dir)).rejects.toThrow(/1_Pooling.config\.json.*pooling_mode_lasttoken is not supported/);
    writeFileSync(join(dir, 'modules.json'), JSON.stringify([{ idx: 0, name: '0', path: '0_Transformer', type: 'sentence_transformers.models.Transformer' }]));
    await expect(loadEncoder(dir)).rejects.toThrow(/Transformer module lives in "0_Transformer\/"/);
  });

  it('a plain folder keeps mean pooling as the default and refuses --pooling sentence-transformers', async () => {
    const dir = join(tmp.make(), 'plain');
    generateModelFolder(dir, { ...TINY, tokenizerDir: BERT_TOK() });
    const enc = await loadEncoder(dir);
    expect(enc.defaultPooling).toBe('mean');
    await expect(enc.embed(['x'], { pooling: 'sentence-transformers' })).rejects.toThrow(/needs a sentence-transformers folder/);
    enc.dispose();
  });

  it('`edu-train embed` uses the folder pipeline by default and --pooling overrides it', async () => {
    const c = CASES[0];
    const dir = join(tmp.make(), 'labse-like');
    generateModelFolder(dir, c.opts);
    const input = join(tmp.make(), 't.jsonl');
    writeFileSync(input, TEXTS.map((t, i) => JSON.stringify({ id: i, text: t })).join('\n') + '\n');
    const read = async (extra: string[]): Promise<number[][]> => {
      const out = join(tmp.make(), 'e.jsonl');
      const r = await runCli(['embed', '--model-dir', dir, '--input', input, '--output', out, '--quiet', ...extra]);
      expect(r.code, r.stderr).toBe(0);
      const t = await openTable(out);
      const all = await t.readAll();
      await t.close();
      return all.columns.embedding as number[][];
    };
    const enc = await loadEncoder(dir);
    try {
      const def = await read([]);
      expect(def[0].length).toBe(24);
      const lib = await enc.embed(TEXTS, { pooling: 'sentence-transformers' });
      def.forEach((row, i) => row.forEach((x, j) => expect(Math.abs(x - lib.embeddings[i * 24 + j])).toBeLessThan(2e-5)));
      const mean = await read(['--pooling', 'mean']);
      expect(mean[0].length).toBe(32);
    } finally {
      enc.dispose();
    }
  });
});

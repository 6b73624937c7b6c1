/**
 * `edu-train embed` and Encoder.embed: batching, length sorting, padding and the scatter back to
 * input order must not change any vector. The reference is the same encoder run on each text alone
 * (batch of one, no padding at all) through forward(), whose numerics the golden suite pins down.
 */
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTable } from '../src/data/table.js';
import { loadEncoder, type Encoder } from '../src/encoder.js';
import { generateModelFolder } from '../src/model/generate.js';
import { runCli } from './helpers/cli.js';
import { sharedPath } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-embed-');

const TEXTS = [
  '0.75%포인트 금리 인상은 1994년 이후 28년 만에 처음이다.',
  '짧다.',
  '이번 정책은 내년 상반기부터 시행될 것으로 예상된다고 정부 관계자가 말했다.',
  '',
  'English words mixed in 한국어 문장 😀',
  '그는 "정말요?"라고 물었다.',
  '비가 오면 경기는 취소될 것이다.',
];

/** Cosine-free exact check: every element within tol. */
function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('embedding texts', () => {
  let modelDir: string;
  let encoder: Encoder;

  beforeAll(async () => {
    modelDir = join(tmp.make(), 'roberta');
    generateModelFolder(modelDir, {
      modelType: 'roberta',
      preset: 'tiny',
      tokenizerDir: sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer'),
      seed: 7,
    });
    encoder = await loadEncoder(modelDir, { maxLength: 16 });
  });
  afterAll(() => encoder?.dispose());

  /** The reference: each text alone, unpadded, through forward(). */
  async function alone(text: string, pooling: 'mean' | 'cls' | 'pooler'): Promise<Float32Array> {
    const [e] = await encoder.tokenizer!.encode([text]);
    const out = await encoder.forward({ input_ids: [Array.from(e.ids)], token_type_ids: [Array.from(e.typeIds)] });
    return pooling === 'mean' ? out.mean_pooled : pooling === 'cls' ? out.cls : out.pooler_output!;
  }

  it.each(['mean', 'cls', 'pooler'] as const)('batched %s pooling equals each text run alone', async (pooling) => {
    const r = await encoder.embed(TEXTS, { pooling, batchSize: 3 });
    expect(r.hidden).toBe(64);
    for (let i = 0; i < TEXTS.length; i++) {
      const ref = await alone(TEXTS[i], pooling);
      // Same kernels, different batch composition: padding must contribute exactly nothing, and the
      // GEMM's row blocking may change summation order -> allow a few float32 ulps of the outputs (~1).
      expect(maxAbsDiff(r.embeddings.subarray(i * 64, (i + 1) * 64), ref)).toBeLessThan(2e-5);
    }
  });

  it('counts truncation: texts longer than maxLength are cut and their dropped tokens reported', async () => {
    const long = '이것은 아주 긴 문장입니다 '.repeat(10);
    const encodedFull = await (await loadEncoder(modelDir, { maxLength: 128 })).tokenizer!.encode([long]);
    const r = await encoder.embed([long, '짧다.']);
    expect(r.stats.truncatedTexts).toBe(1);
    expect(r.stats.droppedTokens).toBe(encodedFull[0].ids.length - 16);
    expect(r.stats.tokens).toBe(16 + (await encoder.tokenizer!.encode(['짧다.']))[0].ids.length);
  });

  it('--normalize gives unit vectors', async () => {
    const r = await encoder.embed(TEXTS, { normalize: true });
    for (let i = 0; i < TEXTS.length; i++) {
      let ss = 0;
      for (let j = 0; j < 64; j++) ss += r.embeddings[i * 64 + j] ** 2;
      expect(Math.sqrt(ss)).toBeCloseTo(1, 5);
    }
  });

  it('rejects pooler pooling on a model without a pooler, and use after dispose', async () => {
    const dir = join(tmp.make(), 'nopooler');
    // ELECTRA checkpoints have no pooler.
    generateModelFolder(dir, { modelType: 'electra', preset: 'tiny', embeddingSize: 32, tokenizerDir: sharedPath('models', 'tokenizer-only', 'all-minilm-l6-v2') });
    const e = await loadEncoder(dir);
    expect(e.spec.hasPooler).toBe(false);
    expect((await e.embed(['hello world'])).embeddings.length).toBe(64);
    await expect(e.embed(['x'], { pooling: 'pooler' })).rejects.toThrow(/needs a model with a pooler/);
    e.dispose();
    e.dispose();
    await expect(e.embed(['x'])).rejects.toThrow(/disposed/);
  });

  describe('edu-train embed (CLI)', () => {
    let input: string;
    beforeAll(() => {
      input = join(tmp.make(), 'texts.jsonl');
      writeFileSync(input, TEXTS.map((t, i) => JSON.stringify({ doc: `d${i}`, text: t, other: i })).join('\n') + '\n');
    });

    it.each(['parquet', 'arrow', 'jsonl', 'csv'])('writes ids and embeddings in input order (.%s)', async (ext) => {
      const out = join(tmp.make(), `emb.${ext}`);
      const r = await runCli(['embed', '--model-dir', modelDir, '--input', input, '--id-column', 'doc', '--output', out,
        '--batch-size', '2', '--max-length', '16', '--quiet']);
      expect(r.stderr).toMatch(/embedded 7 texts/);
      expect(r.code).toBe(0);
      const table = await openTable(out, ext === 'csv' ? { types: { embedding: 'list<float>' } } as never : undefined);
      const all = await table.readAll();
      await table.close();
      expect(all.columns.doc).toEqual(TEXTS.map((_, i) => `d${i}`));
      const lib = await encoder.embed(TEXTS);
      for (let i = 0; i < TEXTS.length; i++) {
        const got = Float32Array.from(all.columns.embedding[i] as ArrayLike<number>);
        // Same batch composition as the library call only if batch sizes match; compare to the alone-reference.
        expect(maxAbsDiff(got, lib.embeddings.subarray(i * 64, (i + 1) * 64))).toBeLessThan(2e-5);
      }
    });

    it('writes a row number when the input has no id column, and reports truncation', async () => {
      const csv = join(tmp.make(), 'in.csv');
      writeFileSync(csv, 'text\n' + ['짧다.', '"이것은 아주 긴 문장입니다 이것은 아주 긴 문장입니다 이것은 아주 긴 문장입니다"'].join('\n') + '\n');
      const out = join(tmp.make(), 'o.jsonl');
      const r = await runCli(['embed', '--model-dir', modelDir, '--input', csv, '--output', out, '--max-length', '8', '--quiet']);
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(/truncated 1 texts/);
      const t = await openTable(out);
      const all = await t.readAll();
      await t.close();
      expect(all.columns.row).toEqual([0, 1]);
    });

    it('bad input is a clear error and leaves no output file', async () => {
      const dir = tmp.make();
      const out = join(dir, 'o.parquet');
      const cases: [string[], RegExp][] = [
        [['--text-column', 'nope'], /--text-column nope: no such column; the input has doc, text, other/],
        [['--id-column', 'nope'], /--id-column nope: no such column/],
        [['--batch-size', '0'], /--batch-size must be a positive integer/],
        [['--max-length', '100000'], /--max-length 100000 is longer than the model allows/],
        [['--device', 'cuda'], /--device cuda: no usable NVIDIA GPU/],
      ];
      for (const [extra, msg] of cases) {
        const r = await runCli(['embed', '--model-dir', modelDir, '--input', input, '--output', out, '--quiet', ...extra]);
        expect(r.code, extra.join(' ')).toBe(2);
        expect(r.stderr).toMatch(msg);
      }
      const same = await runCli(['embed', '--model-dir', modelDir, '--input', input, '--output', input]);
      expect(same.code).toBe(2);
      expect(same.stderr).toMatch(/must not be the --input/);
      const missing = await runCli(['embed', '--model-dir', join(dir, 'no-model'), '--input', input, '--output', out]);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/model folder does not exist/);
      expect(existsSync(out)).toBe(false);
      expect(readdirSync(dir)).toEqual([]);
    });
  });
});

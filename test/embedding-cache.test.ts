/**
 * The embedding cache: what changes the key, that a hit never calls the encoder, and that a damaged file
 * is detected (never returned) and recomputed. The reference for the cached values is the encoder itself.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEncoder, type Encoder } from '../src/encoder.js';
import { generateModelFolder } from '../src/model/generate.js';
import {
  cachedEmbeddings,
  computeEmbeddings,
  EmbeddingCache,
  embeddingCacheKey,
  embeddingNumerics,
  modelIdentity,
  type ModelIdentity,
} from '../src/train/embedding-cache.js';
import { sharedPath } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-cache-');
const TEXTS = ['0.75%포인트 금리 인상은 처음이다.', '짧다.', '', '비가 오면 경기는 취소될 것이다.', 'English 한국어 😀'];

describe('cache key', () => {
  const id = { weightsSha256: 'a'.repeat(64), tokenizerSha256: 'b'.repeat(64), configSha256: 'c'.repeat(64), maxLength: 64 };
  const base = embeddingCacheKey(id, 'mean', TEXTS);

  it('is stable and depends on every input', () => {
    expect(embeddingCacheKey({ ...id }, 'mean', [...TEXTS])).toBe(base);
    const variants = [
      embeddingCacheKey({ ...id, weightsSha256: 'd'.repeat(64) }, 'mean', TEXTS),
      embeddingCacheKey({ ...id, tokenizerSha256: 'd'.repeat(64) }, 'mean', TEXTS),
      embeddingCacheKey({ ...id, configSha256: 'd'.repeat(64) }, 'mean', TEXTS),
      embeddingCacheKey({ ...id, maxLength: 65 }, 'mean', TEXTS),
      embeddingCacheKey(id, 'cls', TEXTS),
      embeddingCacheKey(id, 'mean', TEXTS.slice(1)),
      embeddingCacheKey(id, 'mean', [...TEXTS].reverse()),
      embeddingCacheKey(id, 'mean', [...TEXTS.slice(0, 4), 'English 한국어 😀 ']),
      // GPU bf16 vectors are not CPU fp32 vectors.
      embeddingCacheKey(id, 'mean', TEXTS, 'cuda-bf16'),
    ];
    expect(embeddingCacheKey(id, 'mean', TEXTS, 'fp32')).toBe(base);
    expect(new Set([base, ...variants]).size).toBe(variants.length + 1);
  });

  it('knows what arithmetic a device choice means (no GPU here: cpu and auto are fp32, cuda is an error)', () => {
    expect(embeddingNumerics('cpu', undefined)).toBe('fp32');
    expect(embeddingNumerics('auto', 'bf16')).toBe('fp32');
    expect(() => embeddingNumerics('cuda', 'bf16')).toThrow(/no usable NVIDIA GPU/);
  });

  it('does not confuse text boundaries', () => {
    expect(embeddingCacheKey(id, 'mean', ['ab', 'c'])).not.toBe(embeddingCacheKey(id, 'mean', ['a', 'bc']));
    expect(embeddingCacheKey(id, 'mean', ['a\n', 'b'])).not.toBe(embeddingCacheKey(id, 'mean', ['a', '\nb']));
  });
});

describe('model identity', () => {
  it('hashes weights, tokenizer and config, and resolves the default max length', async () => {
    const tok = sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer');
    const a = join(tmp.make(), 'a');
    const b = join(tmp.make(), 'b');
    generateModelFolder(a, { modelType: 'roberta', tokenizerDir: tok, seed: 1 });
    generateModelFolder(b, { modelType: 'roberta', tokenizerDir: tok, seed: 2 });
    const ia = (await modelIdentity(a)).identity;
    const ib = (await modelIdentity(b, 32)).identity;
    expect(ia.weightsSha256).not.toBe(ib.weightsSha256);
    expect(ia.tokenizerSha256).toBe(ib.tokenizerSha256);
    expect(ia.configSha256).toBe(ib.configSha256);
    expect(ia.maxLength).toBe(128); // tiny preset: 128 usable positions
    expect(ib.maxLength).toBe(32);
    await expect(modelIdentity(a, 1000)).rejects.toThrow(/max-length 1000/);
  });
});

describe('cache files', () => {
  const hidden = 8;
  const rows = 40_000; // > one IPC batch (16,384 rows), so the multi-batch path is exercised
  const x = Float32Array.from({ length: rows * hidden }, (_, i) => Math.sin(i) * 1e3);

  it('round-trips exactly, atomically, and misses when absent', async () => {
    const cache = new EmbeddingCache(tmp.make());
    expect((await cache.load('k1', rows, hidden)).status).toBe('miss');
    const path = await cache.store('k1', x, hidden);
    expect(readdirSync(cache.dir)).toEqual(['k1.arrow']); // no temp file left
    const r = await cache.load('k1', rows, hidden);
    expect(r.status).toBe('hit');
    if (r.status === 'hit') expect(Buffer.compare(Buffer.from(r.embeddings.buffer), Buffer.from(x.buffer))).toBe(0);
    expect(path).toBe(cache.pathFor('k1'));
  });

  it('reports a truncated file, a flipped byte and a shape mismatch as corrupt', async () => {
    const cache = new EmbeddingCache(tmp.make());
    const path = await cache.store('k', x, hidden);
    const bytes = readFileSync(path);
    expect((await cache.load('k', rows + 1, hidden)).status).toBe('corrupt');
    expect((await cache.load('k', rows, hidden + 1)).status).toBe('corrupt');

    const flipped = Buffer.from(bytes);
    flipped[Math.floor(bytes.length / 2)] ^= 0x40; // inside the float data
    writeFileSync(path, flipped);
    const f = await cache.load('k', rows, hidden);
    expect(f.status).toBe('corrupt');

    writeFileSync(path, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    expect((await cache.load('k', rows, hidden)).status).toBe('corrupt');
    writeFileSync(path, 'not arrow at all');
    expect((await cache.load('k', rows, hidden)).status).toBe('corrupt');
  });
});

describe('cachedEmbeddings with the real encoder', () => {
  let dir: string;
  let encoder: Encoder;
  let identity: ModelIdentity;

  beforeAll(async () => {
    dir = join(tmp.make(), 'roberta');
    generateModelFolder(dir, { modelType: 'roberta', tokenizerDir: sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer'), seed: 5 });
    identity = (await modelIdentity(dir, 32)).identity;
    encoder = await loadEncoder(dir, { maxLength: 32 });
  });
  afterAll(() => encoder?.dispose());

  it('computes once, then serves the same vectors without the encoder; a damaged file is recomputed', async () => {
    const cache = new EmbeddingCache(tmp.make());
    let runs = 0;
    const compute = async () => {
      runs++;
      return computeEmbeddings(encoder, TEXTS, { pooling: 'cls', batchSize: 2, quiet: true });
    };
    const lines: string[] = [];
    const first = await cachedEmbeddings({ cache, identity, pooling: 'cls', texts: TEXTS, compute, log: (l) => lines.push(l) });
    expect(first.status).toBe('miss');
    expect(runs).toBe(1);
    // reference: the encoder's own embed() of the same texts
    const ref = await encoder.embed(TEXTS, { pooling: 'cls' });
    expect(Array.from(first.embeddings)).toEqual(Array.from(ref.embeddings));

    const second = await cachedEmbeddings({
      cache, identity, pooling: 'cls', texts: TEXTS, log: (l) => lines.push(l),
      compute: () => Promise.reject(new Error('the encoder must not run on a cache hit')),
    });
    expect(second.status).toBe('hit');
    expect(Array.from(second.embeddings)).toEqual(Array.from(first.embeddings));

    // other pooling = other key = encoder runs again
    const mean = await cachedEmbeddings({ cache, identity, pooling: 'mean', texts: TEXTS, compute: async () => (runs++, computeEmbeddings(encoder, TEXTS, { pooling: 'mean', batchSize: 4, quiet: true })) });
    expect(mean.status).toBe('miss');
    expect(runs).toBe(2);

    writeFileSync(first.path!, readFileSync(first.path!).subarray(0, 100));
    const third = await cachedEmbeddings({ cache, identity, pooling: 'cls', texts: TEXTS, compute, log: (l) => lines.push(l) });
    expect(third.status).toBe('recomputed');
    expect(runs).toBe(3);
    expect(Array.from(third.embeddings)).toEqual(Array.from(first.embeddings));
    expect(lines.some((l) => /unusable/.test(l))).toBe(true);
    expect((await cache.load(third.key, TEXTS.length, 64)).status).toBe('hit'); // rewritten
  });

  it('with the cache off, always computes', async () => {
    let runs = 0;
    for (let i = 0; i < 2; i++) {
      const r = await cachedEmbeddings({ cache: null, identity, pooling: 'mean', texts: TEXTS, compute: async () => (runs++, new Float32Array(TEXTS.length * 64)) });
      expect(r.status).toBe('off');
    }
    expect(runs).toBe(2);
  });
});

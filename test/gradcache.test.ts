/**
 * GradCache for MultipleNegativesRankingLoss (finetune-embeddings --mini-batch-size): a batch embedded and
 * backpropagated in mini-batches gives the full-batch gradients, the replay reuses the first pass's
 * dropout masks, the float64 embedding gradient matches finite differences, and the CLI runs with it.
 *
 * Tolerances. The gradients of a GradCache step and of the plain step are the same sums taken in a
 * different order (mini-batch partial sums, a float64 loss gradient in TS vs float32 scores in C++), so they
 * differ by fp32 rounding: a few ulps of the largest summands. Measured: at most 3.2e-6 x max|g| (the
 * token-type embedding gradient, a sum over every token of the batch). The check is 1e-4 x max|g| over
 * all parameters, 30x that, while a wrong or missing term (a mask not replayed, a mini-batch's gradient
 * dropped, the normalisation left out of the backward) is of the order of max|g| itself (with dropout 0.1
 * and different masks the gradients differ by 0.7 x max|g|).
 */
import { readFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { gradCacheAccumulate, miniBatches, mnrlLossAndGrad } from '../src/finetune/gradcache.js';
import { toBatch } from '../src/finetune/trainer.js';
import { readModelSpec } from '../src/model/config.js';
import { generateModelFolder } from '../src/model/generate.js';
import { loadWeights } from '../src/model/load.js';
import type { EncoderConfig } from '../src/model/types.js';
import { loadFineTuneAddon, type NativeFineTuner } from '../src/native/finetune-types.js';
import { TextTokenizer, type Encoded } from '../src/tokenize/tokenizer.js';
import { readColumns } from '../src/train/pipeline.js';
import { repoRoot, sharedPath } from './helpers/shared.js';
import { runAsync, runCli } from './helpers/cli.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-gradcache-');
const N = 8;
const SCALE = 20;
let work = '';
let model = '';
let cfg: EncoderConfig;
let weights: Record<string, Float32Array> = {};
let anchors: Encoded[] = [];
let positives: Encoded[] = [];
let padId = 0;
const rows = Array.from({ length: N }, (_, i) => i);

function headLines(src: string, dst: string, n: number): void {
  const lines = readFileSync(src, 'utf8').split('\n');
  writeFileSync(dst, lines.slice(0, n + 1).join('\n') + '\n');
}

beforeAll(async () => {
  work = tmp.make();
  model = join(work, 'tiny-roberta');
  generateModelFolder(model, {
    modelType: 'roberta', preset: 'tiny', maxPositions: 130, seed: 21,
    tokenizerDir: sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer'),
  });
  headLines(sharedPath('data', 'klue-sts', 'klue_sts_train.csv'), join(work, 'train.csv'), 40);
  headLines(sharedPath('data', 'klue-sts', 'klue_sts_val.csv'), join(work, 'sts.csv'), 20);
  const spec = readModelSpec(model);
  cfg = spec.config;
  weights = Object.fromEntries((await loadWeights(spec)).tensors);
  // The first N KLUE-STS pairs: lengths of 8 to 33 tokens, so padding varies within and across mini-batches.
  const cols = await readColumns(join(work, 'train.csv'), [{ name: 'sentence1', flag: 'a' }, { name: 'sentence2', flag: 'b' }]);
  const tok = TextTokenizer.load(model, { maxLength: 64, padId: cfg.padTokenId });
  padId = tok.padId;
  anchors = await tok.encode(cols.sentence1.slice(0, N).map(String));
  positives = await tok.encode(cols.sentence2.slice(0, N).map(String));
  expect(new Set(anchors.map((e) => e.ids.length)).size).toBeGreaterThan(3);
});

function fineTuner(dropout = 0, opt: { eps?: number } = {}): NativeFineTuner {
  const { FineTuner } = loadFineTuneAddon();
  const c = cfg;
  return new FineTuner({
    encoder: {
      vocabSize: c.vocabSize, hiddenSize: c.hiddenSize, embeddingSize: c.embeddingSize, numLayers: c.numLayers, numHeads: c.numHeads,
      intermediateSize: c.intermediateSize, maxPositions: c.maxPositions, typeVocabSize: c.typeVocabSize, layerNormEps: c.layerNormEps,
      padTokenId: c.padTokenId, positionStyle: c.positionStyle, hasPooler: 'pooler.dense.weight' in weights,
    },
    head: 'none', pooling: 'mean', loss: 'mnrl', mnrlScale: SCALE,
    optimizer: { weightDecay: 0.01, maxGradNorm: 1, decayBiasAndNorm: false, ...(opt.eps ? { eps: opt.eps } : {}) },
    dropout: { hidden: dropout, attention: dropout, seed: 42 },
  }, weights, { threads: 2 });
}

const fullBatch = () => ({ ...toBatch(anchors, rows, padId), positive: toBatch(positives, rows, padId) });
const gc = (ft: NativeFineTuner, m: number) => gradCacheAccumulate(ft, anchors, positives, rows, { miniBatchSize: m, hidden: cfg.hiddenSize, scale: SCALE, padId });

function maxAbs(g: Record<string, Float32Array>): number {
  let m = 0;
  for (const v of Object.values(g)) for (const x of v) m = Math.max(m, Math.abs(x));
  return m;
}

function maxDiff(a: Record<string, Float32Array>, b: Record<string, Float32Array>): { diff: number; name: string } {
  expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
  let diff = 0, name = '';
  for (const [k, v] of Object.entries(a)) {
    for (let i = 0; i < v.length; i++) {
      const d = Math.abs(v[i] - b[k][i]);
      if (!(d <= diff)) { diff = d; name = k; } // NaN propagates as a failure
    }
  }
  return { diff, name };
}

describe('GradCache (cached MultipleNegativesRankingLoss)', () => {
  it('mini-batches are consecutive chunks of the batch', () => {
    expect(miniBatches([5, 1, 4, 2, 3], 2)).toEqual([[5, 1], [4, 2], [3]]);
    expect(miniBatches([5, 1, 4], 3)).toEqual([[5, 1, 4]]);
    expect(miniBatches([5, 1, 4], 10)).toEqual([[5, 1, 4]]);
    expect(miniBatches([5, 1], 1)).toEqual([[5], [1]]);
  });

  it('with dropout 0, mini-batches of 1, 3 and N give the full-batch gradients, and the same weights after one AdamW step', async () => {
    // Adam eps 1e-6 instead of 1e-8: AdamW's first step moves each weight by lr * g / (|g| + eps), which
    // for |g| near eps turns rounding-level gradient differences into a visible weight difference; with
    // eps 1e-6 that amplification is bounded, and the weights are compared to 1 % of one step (lr).
    const lr = 1e-3;
    const ref = fineTuner(0, { eps: 1e-6 });
    try {
      const r = await ref.accumulate(fullBatch());
      const g0 = await ref.getGradients();
      const gmax = maxAbs(g0);
      expect(gmax).toBeGreaterThan(1e-3);
      const norm0 = await ref.gradNorm();
      const s0 = await ref.applyStep(lr);
      const w0 = await ref.getWeights();
      for (const m of [1, 3, N]) {
        const ft = fineTuner(0, { eps: 1e-6 });
        try {
          const res = await gc(ft, m);
          expect(res.miniBatches).toBe(Math.ceil(N / m));
          expect(res.replayMaxDiff).toBe(0); // the replay is bit-identical to the first pass
          expect(Math.abs(res.loss - r.loss)).toBeLessThan(1e-5 * r.loss);
          const g = await ft.getGradients();
          const d = maxDiff(g0, g);
          expect(d.diff, `m=${m}: ${d.name}`).toBeLessThan(1e-4 * gmax);
          expect(Math.abs((await ft.gradNorm()) - norm0)).toBeLessThan(1e-5 * norm0);
          const s = await ft.applyStep(lr);
          expect(s.clipCoef).toBeCloseTo(s0.clipCoef, 6);
          const dw = maxDiff(w0, await ft.getWeights());
          expect(dw.diff, `m=${m}: ${dw.name}`).toBeLessThan(0.01 * lr);
          expect(ft.stepCount).toBe(1);
        } finally {
          ft.dispose();
        }
      }
    } finally {
      ref.dispose();
    }
  });

  it('with dropout 0.1 the replay reuses the first pass\'s masks: m = N equals the plain step, m < N replays exactly', async () => {
    const plain = fineTuner(0.1);
    const cached = fineTuner(0.1);
    const small = fineTuner(0.1);
    const off = fineTuner(0);
    try {
      // Dropout is really on: the training-mode embeddings differ from the eval-mode (predict) ones, and
      // from one dropout call to the next.
      const b0 = toBatch(anchors, [0, 1, 2], padId);
      const e1 = (await small.forwardPooled({ ...b0, pass: 0 })).pooled;
      const e2 = (await small.forwardPooled({ ...b0, pass: 0 })).pooled;
      expect(Array.from(e2)).toEqual(Array.from(e1)); // same call, same pass: same masks
      const other = (await small.forwardPooled({ ...b0, pass: 1 })).pooled;
      const evalMode = (await small.predict({ ...b0, pooled: true })).pooled!;
      const spread = (x: Float32Array, y: Float32Array) => x.reduce((acc, v, i) => Math.max(acc, Math.abs(v - y[i])), 0);
      expect(spread(e1, other)).toBeGreaterThan(1e-3);
      expect(spread(e1, evalMode)).toBeGreaterThan(1e-3);
      await small.nextDropoutCall();
      expect(spread(e1, (await small.forwardPooled({ ...b0, pass: 0 })).pooled)).toBeGreaterThan(1e-3);

      // Two steps, so the dropout call advances the same way (accumulate once, GradCache once per step).
      for (let step = 0; step < 2; step++) {
        const r = await plain.accumulate(fullBatch());
        const g0 = await plain.getGradients();
        const gmax = maxAbs(g0);
        const res = await gc(cached, N);
        expect(res.replayMaxDiff).toBe(0);
        expect(Math.abs(res.loss - r.loss)).toBeLessThan(1e-5 * r.loss);
        const d = maxDiff(g0, await cached.getGradients());
        expect(d.diff, `step ${step}: ${d.name}`).toBeLessThan(1e-4 * gmax);
        // Mini-batches of 3: new shapes, so other masks than the plain step's, but both passes of each
        // mini-batch use the same ones (the replayed embeddings equal the first pass's bit for bit).
        const rs = await gc(small, 3);
        expect(rs.replayMaxDiff).toBe(0);
        expect(rs.loss).toBeGreaterThan(0);
        // ... and the masks matter: without dropout the gradients are far from the dropout ones.
        await gc(off, N);
        expect(maxDiff(g0, await off.getGradients()).diff).toBeGreaterThan(1e-2 * gmax);
        for (const ft of [plain, cached, small, off]) await ft.applyStep(1e-4);
      }
    } finally {
      for (const ft of [plain, cached, small, off]) ft.dispose();
    }
  });

  it('d loss / d embedding matches central finite differences of the float64 MNRL loss', () => {
    let s = 7;
    const rnd = () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return (s / 2 ** 32 - 0.5) * 2;
    };
    // nP > nA (extra negatives), a custom normaliser, and a short positive (norm ~1e-2, above the 1e-12 clamp).
    for (const [nA, nP, dim, scale, normalizer] of [[4, 4, 6, 20, undefined], [3, 5, 5, 7.5, 10], [2, 2, 3, 1, undefined]] as const) {
      const a = Float64Array.from({ length: nA * dim }, rnd);
      const p = Float64Array.from({ length: nP * dim }, rnd);
      for (let k = 0; k < dim; k++) p[k] *= 1e-2;
      const g = mnrlLossAndGrad(a, p, nA, nP, dim, scale, normalizer);
      const loss = (x: Float64Array, y: Float64Array) => mnrlLossAndGrad(x, y, nA, nP, dim, scale, normalizer).loss;
      // Central differences: truncation error ~ h^2 |f'''| (f''' ~ scale / |x|^3: ~2e7 for the short positive,
      // so ~2e-5 there), rounding ~ eps_64 |f| / h (~1e-9); compared at 1e-6 relative to the largest
      // gradient (~scale / |x| ~ 2e3 for the short positive, O(1..10) otherwise) or 1e-6 absolute.
      const h = 1e-6;
      for (const [x, gx, name] of [[a, g.gradAnchors, 'anchors'], [p, g.gradPositives, 'positives']] as const) {
        let gmax = 0;
        for (const v of gx) gmax = Math.max(gmax, Math.abs(v));
        for (let i = 0; i < x.length; i++) {
          const keep = x[i];
          x[i] = keep + h;
          const up = loss(a, p);
          x[i] = keep - h;
          const down = loss(a, p);
          x[i] = keep;
          const fd = (up - down) / (2 * h);
          expect(Math.abs(fd - gx[i]), `${name}[${i}] nA=${nA} nP=${nP}`).toBeLessThan(1e-6 * Math.max(gmax, 1));
        }
      }
      // The loss itself: mean over anchors of logsumexp(row) - diagonal.
      let ref = 0;
      for (let i = 0; i < nA; i++) {
        const row = Array.from({ length: nP }, (_, j) => g.scores[i * nP + j]);
        const mx = Math.max(...row);
        ref += (mx + Math.log(row.reduce((acc, v) => acc + Math.exp(v - mx), 0)) - row[i]) / (normalizer ?? nA);
      }
      expect(g.loss).toBeCloseTo(ref, 12);
    }
    expect(() => mnrlLossAndGrad(new Float64Array(6), new Float64Array(3), 2, 1, 3, 20)).toThrow(/nP >= nA/);
    expect(() => mnrlLossAndGrad(new Float64Array(5), new Float64Array(6), 2, 2, 3, 20)).toThrow(/anchors has 5 values/);
    expect(() => mnrlLossAndGrad([NaN, 1, 1, 1, 1, 1], new Float64Array(6).fill(1), 2, 2, 3, 20)).toThrow(/non-finite/);
  });

  it('the native entry points reject bad requests with a message and leave the gradients untouched', async () => {
    const ft = fineTuner(0);
    try {
      const b = toBatch(anchors, [0, 1], padId);
      const H = cfg.hiddenSize;
      await expect(ft.backwardPooled({ ...b, pass: 0, gradPooled: new Float32Array(H) })).rejects.toThrow(/gradPooled has length 64, expected batch \* hiddenSize = 128/);
      const nan = new Float32Array(2 * H);
      nan[5] = NaN;
      await expect(ft.backwardPooled({ ...b, pass: 0, gradPooled: nan })).rejects.toThrow(/gradPooled\[5\] is not finite/);
      await expect(ft.backwardPooled({ ...b, gradPooled: new Float32Array(2 * H) } as never)).rejects.toThrow(/request\.pass is required/);
      await expect(ft.forwardPooled({ ...b, pass: -1 })).rejects.toThrow(/request\.pass/);
      await expect(ft.forwardPooled({ ...b, pass: 0, inputIds: b.inputIds.map(() => cfg.vocabSize) })).rejects.toThrow(/inputIds\[0\] = \d+ is out of range/);
      await expect(ft.backwardPooled({ ...b, pass: 0, gradPooled: [1, 2] as never })).rejects.toThrow(/gradPooled/);
      expect(await ft.gradNorm()).toBe(0);
      await expect(gradCacheAccumulate(ft, anchors, positives, [0], { miniBatchSize: 2, hidden: H, scale: SCALE, padId })).rejects.toThrow(/at least 2 pairs/);
      await expect(gradCacheAccumulate(ft, anchors, positives, [0, 1], { miniBatchSize: 0, hidden: H, scale: SCALE, padId })).rejects.toThrow(/miniBatchSize must be an integer >= 1/);
      await expect(gradCacheAccumulate(ft, anchors, positives, [0, 99], { miniBatchSize: 1, hidden: H, scale: SCALE, padId })).rejects.toThrow(/row 99 is out of range/);
      expect(await ft.gradNorm()).toBe(0);
      // Later calls still work.
      await ft.backwardPooled({ ...b, pass: 0, gradPooled: new Float32Array(2 * H).fill(0.01) });
      expect(await ft.gradNorm()).toBeGreaterThan(0);
    } finally {
      ft.dispose();
    }
    // A FineTuner with a head trains logits, not the pooled embedding.
    const { FineTuner } = loadFineTuneAddon();
    const c = cfg;
    const headed = new FineTuner({
      encoder: {
        vocabSize: c.vocabSize, hiddenSize: c.hiddenSize, embeddingSize: c.embeddingSize, numLayers: c.numLayers, numHeads: c.numHeads,
        intermediateSize: c.intermediateSize, maxPositions: c.maxPositions, typeVocabSize: c.typeVocabSize, layerNormEps: c.layerNormEps,
        padTokenId: c.padTokenId, positionStyle: c.positionStyle, hasPooler: true,
      },
      head: 'linear', numOutputs: 2, loss: 'cross-entropy',
    }, { ...weights, 'head.weight': new Float32Array(2 * c.hiddenSize), 'head.bias': new Float32Array(2) }, { threads: 1 });
    try {
      await expect(headed.forwardPooled({ ...toBatch(anchors, [0], padId), pass: 0 })).rejects.toThrow(/head must be 'none'/);
    } finally {
      headed.dispose();
    }
  });

  it('CLI: finetune-embeddings --mini-batch-size 2 trains and writes the model folder; bad values exit 2', async () => {
    const out = join(work, 'gc-model');
    const r = await runAsync(process.execPath, [join(repoRoot, 'dist', 'cli.js'), 'finetune-embeddings', '--model-dir', model,
      '--train', join(work, 'train.csv'), '--sts', join(work, 'sts.csv'), '--batch-size', '8', '--mini-batch-size', '2', '--max-steps', '3',
      '--warmup-steps', '1', '--max-length', '48', '--threads', '2', '--output', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/GradCache mini-batches of 2/);
    for (const f of ['config.json', 'model.safetensors', 'modules.json', '1_Pooling/config.json', 'metrics.jsonl', 'sts_eval.json', 'finetune.json']) {
      expect(existsSync(join(out, f)), f).toBe(true);
    }
    const ft = JSON.parse(readFileSync(join(out, 'finetune.json'), 'utf8'));
    expect(ft.options).toMatchObject({ batch_size: 8, mini_batch_size: 2 });
    expect(ft.steps).toBe(3);
    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics[0].train_loss).toBeGreaterThan(0);

    // With dropout 0, GradCache and the plain step train the same model: same per-epoch loss and STS.
    const runs = await Promise.all(['plain', 'cached'].map(async (kind) => {
      const dir = join(work, `cmp-${kind}`);
      const rr = await runAsync(process.execPath, [join(repoRoot, 'dist', 'cli.js'), 'finetune-embeddings', '--model-dir', model,
        '--train', join(work, 'train.csv'), '--sts', join(work, 'sts.csv'), '--batch-size', '8', ...(kind === 'cached' ? ['--mini-batch-size', '3'] : []),
        '--max-steps', '3', '--warmup-steps', '1', '--lr', '1e-3', '--dropout', '0', '--max-length', '48', '--threads', '1', '--output', dir, '--quiet']);
      expect(rr.code, rr.stderr).toBe(0);
      return {
        loss: JSON.parse(readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n')[0]).train_loss as number,
        sts: JSON.parse(readFileSync(join(dir, 'sts_eval.json'), 'utf8')).after.pearson as number,
      };
    }));
    expect(Math.abs(runs[1].loss - runs[0].loss)).toBeLessThan(1e-5 * runs[0].loss); // measured 6e-8 relative
    expect(Math.abs(runs[1].sts - runs[0].sts)).toBeLessThan(1e-4); // measured 2e-8

    for (const [v, msg] of [['0', /--mini-batch-size must be a positive integer/], ['1.5', /--mini-batch-size must be a positive integer/], ['x', /--mini-batch-size must be a positive integer/]] as const) {
      const bad = await runCli(['finetune-embeddings', '--model-dir', model, '--train', join(work, 'train.csv'), '--mini-batch-size', v, '--output', join(work, 'never')]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(msg);
    }
    expect(existsSync(join(work, 'never'))).toBe(false);
    const help = await runCli(['finetune-embeddings', '--help']);
    expect(help.stdout).toMatch(/--mini-batch-size <n>/);
  });
});

/**
 * GradCache (Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup";
 * sentence-transformers' CachedMultipleNegativesRankingLoss with mini_batch_size) for
 * MultipleNegativesRankingLoss: the loss couples every pair of a batch, so a plain step keeps the
 * activations of all 2N texts at once. GradCache splits the step in three:
 *
 *   1. embed the anchors and positives in mini-batches of m texts with a training-mode forward that keeps
 *      no activations (FineTuner.forwardPooled);
 *   2. compute the loss and d loss / d embedding for the whole N x H batch here, in float64
 *      (mnrlLossAndGrad: L2 normalisation, scaled cosine scores, cross-entropy against the diagonal);
 *   3. replay each mini-batch's forward with activations and backpropagate its slice of the cached
 *      gradient (FineTuner.backwardPooled), accumulating the parameter gradients.
 *
 * The caller then takes one optimizer step (clip by global norm + AdamW) over the accumulated gradients,
 * so the step equals the full-batch step up to fp32 summation order. Dropout: both passes of a mini-batch
 * draw their masks from the same (dropout call, pass id), so the replay reproduces the first pass's masks
 * exactly; the anchors of mini-batch k are pass 2k and its positives pass 2k + 1, which with one
 * mini-batch (m >= N) are the pass ids FineTuner.accumulate uses (0 and 1): the same masks as a plain step.
 * Peak activation memory is that of one mini-batch of m texts instead of both passes of N.
 */
import type { NativeFineTuner } from '../native/finetune-types.js';
import type { Encoded } from '../tokenize/tokenizer.js';
import { toBatch } from './trainer.js';

export interface MnrlLossGrad {
  /** sum_i (logsumexp_j s_ij - s_ii) / normalizer. */
  loss: number;
  /** Scaled cosine scores s_ij = scale * cos(a_i, p_j), [nA, nP]. */
  scores: Float64Array;
  /** d loss / d a_i (the raw, unnormalised pooled anchors), [nA, dim]. */
  gradAnchors: Float64Array;
  /** d loss / d p_j, [nP, dim]. */
  gradPositives: Float64Array;
}

/** F.normalize's clamp of the norm. */
const NORM_EPS = 1e-12;

/**
 * MultipleNegativesRankingLoss and its gradient w.r.t. the raw embeddings, in float64: anchors [nA, dim],
 * positives [nP, dim] with nP >= nA (positive i is the target of anchor i; every other positive is a
 * negative), scores = scale * cos, cross-entropy over each anchor's row, divided by `normalizer` (default
 * nA, i.e. the mean). The backward includes the L2 normalisation (x / max(|x|, 1e-12)), as the native
 * accumulate() does.
 */
export function mnrlLossAndGrad(anchors: ArrayLike<number>, positives: ArrayLike<number>, nA: number, nP: number, dim: number,
  scale: number, normalizer = nA): MnrlLossGrad {
  if (!(Number.isInteger(nA) && nA >= 1 && Number.isInteger(nP) && nP >= nA && Number.isInteger(dim) && dim >= 1)) {
    throw new Error(`mnrlLossAndGrad: need integers nA >= 1, nP >= nA and dim >= 1 (got nA ${nA}, nP ${nP}, dim ${dim})`);
  }
  if (anchors.length !== nA * dim || positives.length !== nP * dim) {
    throw new Error(`mnrlLossAndGrad: anchors has ${anchors.length} values (expected ${nA * dim}), positives ${positives.length} (expected ${nP * dim})`);
  }
  if (!(scale > 0 && Number.isFinite(scale)) || !(normalizer > 0 && Number.isFinite(normalizer))) {
    throw new Error(`mnrlLossAndGrad: scale and normalizer must be finite and > 0 (got ${scale}, ${normalizer})`);
  }
  const normalise = (x: ArrayLike<number>, n: number) => {
    const xn = new Float64Array(n * dim);
    const len = new Float64Array(n);
    const clamped = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let k = 0; k < dim; k++) {
        const v = x[i * dim + k];
        if (!Number.isFinite(v)) throw new Error(`mnrlLossAndGrad: embedding ${i} has a non-finite value`);
        s += v * v;
      }
      const r = Math.sqrt(s);
      clamped[i] = r <= NORM_EPS ? 1 : 0;
      len[i] = Math.max(r, NORM_EPS);
      for (let k = 0; k < dim; k++) xn[i * dim + k] = x[i * dim + k] / len[i];
    }
    return { xn, len, clamped };
  };
  const a = normalise(anchors, nA);
  const p = normalise(positives, nP);
  const scores = new Float64Array(nA * nP);
  for (let i = 0; i < nA; i++) {
    for (let j = 0; j < nP; j++) {
      let s = 0;
      for (let k = 0; k < dim; k++) s += a.xn[i * dim + k] * p.xn[j * dim + k];
      scores[i * nP + j] = scale * s;
    }
  }
  // d loss / d s_ij = (softmax_i(s)_j - [j == i]) / normalizer
  let loss = 0;
  const ds = new Float64Array(nA * nP);
  for (let i = 0; i < nA; i++) {
    let mx = -Infinity;
    for (let j = 0; j < nP; j++) mx = Math.max(mx, scores[i * nP + j]);
    let s = 0;
    for (let j = 0; j < nP; j++) s += Math.exp(scores[i * nP + j] - mx);
    const lse = mx + Math.log(s);
    loss += (lse - scores[i * nP + i]) / normalizer;
    for (let j = 0; j < nP; j++) ds[i * nP + j] = (Math.exp(scores[i * nP + j] - lse) - (i === j ? 1 : 0)) / normalizer;
  }
  // Through the cosine: d an_i = scale sum_j ds_ij pn_j, d pn_j = scale sum_i ds_ij an_i.
  const dan = new Float64Array(nA * dim);
  const dpn = new Float64Array(nP * dim);
  for (let i = 0; i < nA; i++) {
    for (let j = 0; j < nP; j++) {
      const d = scale * ds[i * nP + j];
      if (d === 0) continue;
      for (let k = 0; k < dim; k++) {
        dan[i * dim + k] += d * p.xn[j * dim + k];
        dpn[j * dim + k] += d * a.xn[i * dim + k];
      }
    }
  }
  // Through the normalisation: dx = (g - xn (g . xn)) / |x|, or g / eps where the norm was clamped.
  const throughNorm = (g: Float64Array, t: { xn: Float64Array; len: Float64Array; clamped: Uint8Array }, n: number) => {
    const dx = new Float64Array(n * dim);
    for (let i = 0; i < n; i++) {
      let dot = 0;
      for (let k = 0; k < dim; k++) dot += g[i * dim + k] * t.xn[i * dim + k];
      for (let k = 0; k < dim; k++) {
        dx[i * dim + k] = t.clamped[i] ? g[i * dim + k] / t.len[i] : (g[i * dim + k] - t.xn[i * dim + k] * dot) / t.len[i];
      }
    }
    return dx;
  };
  return { loss, scores, gradAnchors: throughNorm(dan, a, nA), gradPositives: throughNorm(dpn, p, nP) };
}

export interface GradCacheOptions {
  /** Texts per forward / backward (m >= rows.length: one mini-batch). */
  miniBatchSize: number;
  hidden: number;
  scale: number;
  padId: number;
}

export interface GradCacheResult {
  loss: number;
  miniBatches: number;
  /** Largest |replayed embedding - first-pass embedding| over the batch (0 when the replay is exact). */
  replayMaxDiff: number;
}

/** Consecutive chunks of at most m rows (the order of the batch, as sentence-transformers splits it). */
export function miniBatches<T>(rows: readonly T[], m: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += m) out.push(rows.slice(i, i + m));
  return out;
}

/**
 * One GradCache accumulation of the MNRL gradient of the batch (anchors[r], positives[r]) for r in rows:
 * adds the whole batch's parameter gradients to ft (the caller then calls ft.applyStep(lr)) and advances
 * the dropout call once, as accumulate() does. ft must be a FineTuner with head 'none' and loss 'mnrl'.
 */
export async function gradCacheAccumulate(ft: NativeFineTuner, anchors: readonly Encoded[], positives: readonly Encoded[],
  rows: readonly number[], o: GradCacheOptions): Promise<GradCacheResult> {
  if (!(Number.isInteger(o.miniBatchSize) && o.miniBatchSize >= 1)) throw new Error(`GradCache: miniBatchSize must be an integer >= 1, got ${o.miniBatchSize}`);
  if (rows.length < 2) throw new Error(`GradCache: MNRL needs at least 2 pairs per batch, got ${rows.length}`);
  for (const r of rows) {
    if (!(Number.isInteger(r) && r >= 0 && r < anchors.length && r < positives.length)) throw new Error(`GradCache: row ${r} is out of range`);
  }
  const H = o.hidden;
  const N = rows.length;
  const chunks = miniBatches(rows, o.miniBatchSize);
  // 1. embeddings without activations
  const ea = new Float32Array(N * H);
  const ep = new Float32Array(N * H);
  const batches = chunks.map((c) => ({ a: toBatch(anchors, c, o.padId), p: toBatch(positives, c, o.padId) }));
  let off = 0;
  for (let k = 0; k < chunks.length; k++) {
    const ra = await ft.forwardPooled({ ...batches[k].a, pass: 2 * k });
    const rp = await ft.forwardPooled({ ...batches[k].p, pass: 2 * k + 1 });
    ea.set(ra.pooled, off * H);
    ep.set(rp.pooled, off * H);
    off += chunks[k].length;
  }
  // 2. loss and d loss / d embedding over the whole batch
  const g = mnrlLossAndGrad(ea, ep, N, N, H, o.scale);
  // 3. replay each mini-batch with activations, backpropagate its slice of the cached gradient
  let replayMaxDiff = 0;
  const check = (cached: Float32Array, replayed: Float32Array, from: number) => {
    for (let i = 0; i < replayed.length; i++) replayMaxDiff = Math.max(replayMaxDiff, Math.abs(replayed[i] - cached[from + i]));
  };
  off = 0;
  for (let k = 0; k < chunks.length; k++) {
    const n = chunks[k].length;
    const from = off * H, to = (off + n) * H;
    const rp = await ft.backwardPooled({ ...batches[k].p, pass: 2 * k + 1, gradPooled: Float32Array.from(g.gradPositives.subarray(from, to)) });
    check(ep, rp.pooled, from);
    const ra = await ft.backwardPooled({ ...batches[k].a, pass: 2 * k, gradPooled: Float32Array.from(g.gradAnchors.subarray(from, to)) });
    check(ea, ra.pooled, from);
    off += n;
  }
  await ft.nextDropoutCall();
  let maxAbs = 0;
  for (let i = 0; i < ea.length; i++) maxAbs = Math.max(maxAbs, Math.abs(ea[i]), Math.abs(ep[i]));
  if (replayMaxDiff > 1e-4 * Math.max(maxAbs, 1e-30)) {
    await ft.zeroGrad();
    throw new Error(`GradCache: the replayed forward differs from the first pass by ${replayMaxDiff} (max |embedding| ${maxAbs}); ` +
      'the dropout masks or the inputs were not reproduced, so the step was dropped');
  }
  return { loss: g.loss, miniBatches: chunks.length, replayMaxDiff };
}

/**
 * Per-epoch visiting orders for the head trainer. Each epoch gets its own stream Rng(seed, epoch), so an
 * epoch's order does not depend on how many epochs ran before it (resumable, reproducible).
 */
import { Rng } from './rng.js';

/** A random permutation of 0..n-1 for this (seed, epoch). */
export function shuffleOrder(n: number, seed: number, epoch: number): Int32Array {
  if (!Number.isInteger(n) || n < 0) throw new Error(`shuffleOrder: n must be a non-negative integer, got ${n}`);
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  return new Rng(seed, epoch).shuffle(order);
}

export interface WeightedOrderOptions {
  /** Per-sample weights (non-negative, finite, not all 0). Default: 1 / count(label of the sample). */
  weights?: ArrayLike<number>;
  /** Draws per epoch. Default: the number of samples. */
  numSamples?: number;
}

/**
 * torch.utils.data.WeightedRandomSampler(weights, num_samples, replacement=True): each draw picks sample i
 * with probability weights[i] / sum(weights), independently (so samples repeat). With the default weights
 * every class is drawn equally often in expectation, which is how the FineWeb-Edu-style recipes balance
 * skewed labels.
 */
export function weightedRandomOrder(
  labels: ArrayLike<number>,
  seed: number,
  epoch: number,
  options: WeightedOrderOptions = {},
): Int32Array {
  const n = labels.length;
  if (n === 0) throw new Error('weightedRandomOrder: no samples');
  let w: ArrayLike<number>;
  if (options.weights) {
    if (options.weights.length !== n) {
      throw new Error(`weightedRandomOrder: weights has ${options.weights.length} entries, expected one per sample (${n})`);
    }
    w = options.weights;
  } else {
    const counts = new Map<number, number>();
    for (let i = 0; i < n; i++) counts.set(labels[i], (counts.get(labels[i]) ?? 0) + 1);
    const ww = new Float64Array(n);
    for (let i = 0; i < n; i++) ww[i] = 1 / counts.get(labels[i])!;
    w = ww;
  }
  const numSamples = options.numSamples ?? n;
  if (!Number.isInteger(numSamples) || numSamples <= 0) {
    throw new Error(`weightedRandomOrder: numSamples must be a positive integer, got ${numSamples}`);
  }
  // Cumulative sums in float64, then inverse-CDF sampling by binary search: O(log n) per draw.
  const cdf = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const wi = w[i];
    if (!Number.isFinite(wi) || wi < 0) throw new Error(`weightedRandomOrder: weight of sample ${i} is ${wi}; weights must be finite and >= 0`);
    total += wi;
    cdf[i] = total;
  }
  if (!(total > 0)) throw new Error('weightedRandomOrder: all weights are 0');
  const rng = new Rng(seed, epoch);
  const out = new Int32Array(numSamples);
  for (let k = 0; k < numSamples; k++) {
    const u = rng.float() * total;
    // first i with cdf[i] > u (skips zero-weight samples, whose cdf equals their predecessor's)
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] > u) hi = mid;
      else lo = mid + 1;
    }
    out[k] = lo;
  }
  return out;
}

/**
 * Native kernels (addon.kernels) against an independent reference, on every ISA path this CPU runs.
 *
 * Reference: @tensorflow/tfjs-core with its CPU backend when '@tensorflow/tfjs-backend-cpu' is
 * installed (tfjs-core ships no backend of its own); otherwise a straightforward float64 JavaScript
 * implementation in this file (written from the definitions, sharing no code with the C++).
 *
 * Tolerances (fp32 unit roundoff u = 2^-24 ~ 6e-8, eps32 = 2u):
 *  - GEMM: a K-term fp32 dot product with a different summation order (blocked FMA vs. the
 *    reference's order) differs by about sqrt(K) * eps32 * sum_k |a_ik w_jk| (random-walk rounding);
 *    we allow 4x that per element, with the magnitude sum computed exactly from |A| |W|^T + |bias|.
 *  - LayerNorm / softmax / mean pooling: a few ulp of the output scale (sums of <= cols terms).
 *  - GELU: erf in fp32 is accurate to ~1 ulp of erf (6e-8 abs near |erf| = 1); GELU's absolute error is
 *    then 0.5 |x| * that, plus a few ulp of the result (tfjs's erf is a 1.5e-7 approximation: covered).
 *  - Attention: outputs are convex combinations of v; score errors of ~sqrt(D) eps32 |q||k| move the
 *    probabilities by the same relative amount, so we allow 1e-5 * max|v| * (1 + max|score|).
 */
import { beforeAll, describe, expect, it } from 'vitest';

import { loadAddon } from '../src/native/addon.js';
import type { CpuIsa, NativeKernels } from '../src/native/addon-types.js';

const addon = loadAddon();
const k: NativeKernels = addon.kernels;
const info = addon.cpuInfo();
const isas: Exclude<CpuIsa, 'auto'>[] = ['scalar'];
if (info.avx2 && info.fma) isas.push('avx2');
if (info.avx512f) isas.push('avx512');

const EPS32 = 2 ** -23;
const F32_MIN = -3.4028234663852886e38;

// ---------- deterministic random data ----------
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}
function randn(n: number, seed: number, scale = 1, offset = 0): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = r() + 1e-12, v = r();
    a[i] = offset + scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return a;
}

// ---------- float64 reference ----------
function erf64(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {  // Maclaurin series (cancellation costs < 4 digits of 16 here)
    let term = ax, sum = ax;
    for (let n = 1; n < 200; n++) {
      term *= -ax * ax / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    }
    const r = (2 / Math.sqrt(Math.PI)) * sum;
    return x < 0 ? -r : r;
  }
  // erfc continued fraction: erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))
  let f = ax;
  for (let n = 80; n >= 1; n--) f = ax + (n / 2) / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return x < 0 ? erfc - 1 : 1 - erfc;
}

interface Reference {
  name: string;
  /** C and the magnitude bound |op(A)| |W|^T + |bias|. */
  gemm(a: Float32Array, w: Float32Array, bias: Float32Array | null, m: number, n: number, kk: number, transA: boolean):
    { c: ArrayLike<number>; mag: ArrayLike<number> };
  layerNorm(x: Float32Array, g: Float32Array, b: Float32Array, rows: number, cols: number, eps: number): ArrayLike<number>;
  gelu(x: Float32Array): ArrayLike<number>;
  maskedSoftmax(s: Float32Array, mask: Int32Array, rows: number, cols: number): ArrayLike<number>;
  attention(q: Float32Array, kk: Float32Array, v: Float32Array, mask: Int32Array, b: number, l: number, h: number, d: number):
    ArrayLike<number>;
  meanPool(h: Float32Array, mask: Int32Array, b: number, l: number, hid: number): ArrayLike<number>;
}

const f64Reference: Reference = {
  name: 'float64 JS',
  gemm(a, w, bias, m, n, kk, transA) {
    const c = new Float64Array(m * n), mag = new Float64Array(m * n);
    const row = new Float64Array(kk);
    for (let i = 0; i < m; i++) {
      for (let p = 0; p < kk; p++) row[p] = transA ? a[p * m + i] : a[i * kk + p];
      for (let j = 0; j < n; j++) {
        let s = bias ? bias[j] : 0, t = bias ? Math.abs(bias[j]) : 0;
        const wo = j * kk;
        for (let p = 0; p < kk; p++) {
          const prod = row[p] * w[wo + p];
          s += prod;
          t += Math.abs(prod);
        }
        c[i * n + j] = s;
        mag[i * n + j] = t;
      }
    }
    return { c, mag };
  },
  layerNorm(x, g, b, rows, cols, eps) {
    const out = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      let mean = 0;
      for (let j = 0; j < cols; j++) mean += x[r * cols + j];
      mean /= cols;
      let v = 0;
      for (let j = 0; j < cols; j++) v += (x[r * cols + j] - mean) ** 2;
      v /= cols;
      const rstd = 1 / Math.sqrt(v + eps);
      for (let j = 0; j < cols; j++) out[r * cols + j] = (x[r * cols + j] - mean) * rstd * g[j] + b[j];
    }
    return out;
  },
  gelu(x) {
    return Float64Array.from(x, (v) => 0.5 * v * (1 + erf64(v / Math.SQRT2)));
  },
  maskedSoftmax(s, mask, rows, cols) {
    const out = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      // The additive mask as Hugging Face writes it, in float32: score + finfo.min.
      const z = Array.from({ length: cols }, (_, j) => (mask[j] ? s[r * cols + j] : Math.fround(s[r * cols + j] + F32_MIN)));
      const mx = Math.max(...z);
      const e = z.map((v) => Math.exp(v - mx));
      const sum = e.reduce((p, q) => p + q, 0);
      for (let j = 0; j < cols; j++) out[r * cols + j] = e[j] / sum;
    }
    return out;
  },
  attention(q, kk, v, mask, B, L, heads, D) {
    const W = heads * D, out = new Float64Array(B * L * W), scale = 1 / Math.sqrt(D);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < heads; h++) {
        for (let i = 0; i < L; i++) {
          const z = new Float64Array(L);
          for (let j = 0; j < L; j++) {
            let s = 0;
            for (let d = 0; d < D; d++) s += q[(b * L + i) * W + h * D + d] * kk[(b * L + j) * W + h * D + d];
            s *= scale;
            z[j] = mask[b * L + j] ? s : Math.fround(s + F32_MIN);
          }
          const mx = Math.max(...z);
          const e = Array.from(z, (x) => Math.exp(x - mx));
          const sum = e.reduce((p, c) => p + c, 0);
          for (let j = 0; j < L; j++) {
            const p = e[j] / sum;
            for (let d = 0; d < D; d++) out[(b * L + i) * W + h * D + d] += p * v[(b * L + j) * W + h * D + d];
          }
        }
      }
    }
    return out;
  },
  meanPool(h, mask, B, L, hid) {
    const out = new Float64Array(B * hid);
    for (let b = 0; b < B; b++) {
      let cnt = 0;
      for (let t = 0; t < L; t++) cnt += mask[b * L + t];
      for (let t = 0; t < L; t++)
        if (mask[b * L + t]) for (let j = 0; j < hid; j++) out[b * hid + j] += h[(b * L + t) * hid + j];
      for (let j = 0; j < hid; j++) out[b * hid + j] /= Math.max(cnt, 1e-9);
    }
    return out;
  },
};

// tfjs-core + its CPU backend (both devDependencies): the independent reference the kernels answer to.
async function tfjsReference(): Promise<Reference> {
  const tf = await import('@tensorflow/tfjs-core');
  await import('@tensorflow/tfjs-backend-cpu');
  if (!(await tf.setBackend('cpu'))) throw new Error('tfjs: the cpu backend did not initialise');
  await tf.ready();
  const T = tf;
  const maskAdd = (mask: Int32Array, shape: number[]) =>
    T.tensor(Float32Array.from(mask, (m) => (m ? 0 : F32_MIN)), shape);
  return {
    name: 'tfjs-core (cpu backend)',
    gemm(a, w, bias, m, n, kk, transA) {
      return T.tidy(() => {
        const A = T.tensor2d(a, transA ? [kk, m] : [m, kk]);
        const Wt = T.tensor2d(w, [n, kk]);
        let c = T.matMul(A, Wt, transA, true);
        let mag = T.matMul(T.abs(A), T.abs(Wt), transA, true);
        if (bias) {
          const bt = T.tensor1d(bias);
          c = T.add(c, bt);
          mag = T.add(mag, T.abs(bt));
        }
        return { c: c.dataSync(), mag: mag.dataSync() };
      });
    },
    layerNorm(x, g, b, rows, cols, eps) {
      return T.tidy(() => {
        const X = T.tensor2d(x, [rows, cols]);
        const { mean, variance } = T.moments(X, 1, true);
        return T.add(T.mul(T.mul(T.sub(X, mean), T.rsqrt(T.add(variance, eps))), T.tensor1d(g)), T.tensor1d(b)).dataSync();
      });
    },
    gelu(x) {
      return T.tidy(() => {
        const X = T.tensor1d(x);
        return T.mul(T.mul(X, 0.5), T.add(1, T.erf(T.mul(X, Math.SQRT1_2)))).dataSync();
      });
    },
    maskedSoftmax(s, mask, rows, cols) {
      return T.tidy(() => T.softmax(T.add(T.tensor2d(s, [rows, cols]), maskAdd(mask, [1, cols]))).dataSync());
    },
    attention(q, kk, v, mask, B, L, heads, D) {
      return T.tidy(() => {
        const split = (x: Float32Array) =>
          T.reshape(T.transpose(T.tensor4d(x, [B, L, heads, D]), [0, 2, 1, 3]), [B * heads, L, D]) as import('@tensorflow/tfjs-core').Tensor3D;
        const scores = T.reshape(T.div(T.matMul(split(q), split(kk), false, true), Math.sqrt(D)), [B, heads, L, L]);
        const p = T.softmax(T.add(scores, maskAdd(mask, [B, 1, 1, L])));
        const o = T.matMul(T.reshape(p, [B * heads, L, L]) as import('@tensorflow/tfjs-core').Tensor3D, split(v));
        return T.transpose(T.reshape(o, [B, heads, L, D]), [0, 2, 1, 3]).dataSync();
      });
    },
    meanPool(h, mask, B, L, hid) {
      return T.tidy(() => {
        const m = T.tensor3d(Float32Array.from(mask), [B, L, 1]);
        const s = T.sum(T.mul(T.tensor3d(h, [B, L, hid]), m), 1);
        return T.div(s, T.maximum(T.sum(m, 1), 1e-9)).dataSync();
      });
    },
  };
}

let ref: Reference = f64Reference;
beforeAll(async () => {
  ref = await tfjsReference();
  // eslint-disable-next-line no-console
  console.log(`kernels.test: reference = ${ref.name}; ISA paths = ${isas.join(', ')}`);
});

/** Max of |got - want| / tol(i); must be <= 1. */
function worst(got: ArrayLike<number>, want: ArrayLike<number>, tol: (i: number) => number): { ratio: number; at: number } {
  expect(got.length).toBe(want.length);
  let ratio = 0, at = -1;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= tol(i))) {  // also catches NaN
      const r = Number.isNaN(d) ? Infinity : d / tol(i);
      if (r > ratio) { ratio = r; at = i; }
    }
  }
  return { ratio, at };
}
function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: (i: number) => number, what: string) {
  const { ratio, at } = worst(got, want, tol);
  if (at >= 0) throw new Error(`${what}: element ${at} got ${got[at]} want ${want[at]} (tol ${tol(at)}, ${ratio.toFixed(2)}x)`);
}

describe.each(isas)('kernels on %s', (isa) => {
  const gemmShapes: [number, number, number][] = [
    [1, 1, 1], [7, 13, 5], [5, 17, 3], [33, 65, 97], [6, 16, 8], [14, 32, 33], [200, 1030, 300],
    [128, 768, 768], [3, 50, 1000],
  ];
  for (const [m, n, kk] of gemmShapes) {
    for (const transA of [false, true]) {
      it(`gemm ${m}x${n}x${kk}${transA ? ' transA' : ''} with/without bias, 1 and 2 threads`, () => {
        const a = randn(m * kk, m * 131 + kk), w = randn(n * kk, n * 7 + 3, 0.5), bias = randn(n, n + 11);
        for (const b of [null, bias]) {
          const want = ref.gemm(a, w, b, m, n, kk, transA);
          const tol = (i: number) => 4 * Math.sqrt(kk) * EPS32 * want.mag[i] + 1e-30;
          for (const threads of [1, 2]) {
            const got = k.gemm(a, w, b, m, n, kk, { transA, isa, threads });
            expect(got).toBeInstanceOf(Float32Array);
            expectClose(got, want.c, tol, `gemm ${m}x${n}x${kk} bias=${!!b} threads=${threads}`);
          }
        }
      });
    }
  }

  it('layerNorm: random rows, a large common offset (1e3), a constant row, eps 1e-12 and 1e-5', () => {
    const rows = 9, cols = 768;
    const x = randn(rows * cols, 5, 2);
    const off = randn(3 * cols, 6, 1, 1000);  // mean ~1e3, std ~1: one-pass E[x^2]-E[x]^2 fails here
    x.set(off, 3 * cols);
    x.fill(3.25, 8 * cols, 9 * cols);  // zero variance
    const g = randn(cols, 7, 0.3, 1), b = randn(cols, 8, 0.1);
    for (const eps of [1e-12, 1e-5]) {
      const want = ref.layerNorm(x, g, b, rows, cols, eps);
      const got = k.layerNorm(x, g, b, rows, cols, eps, { isa });
      // Output scale ~ |gamma| * 4 + |beta|: a few ulp of that. A float32 reference (tfjs) also rounds the
      // row mean to fp32, an error of eps32 * |mean| / std in every output: allowed for (x4) only then.
      // A one-pass variance (E[x^2] - E[x]^2 in fp32) is off by ~eps32 * 1e6 / var ~ 10% here: far outside.
      const rowTerm = Array.from({ length: rows }, (_, r) => {
        if (ref === f64Reference) return 0;
        let m = 0, v = 0;
        for (let j = 0; j < cols; j++) m += x[r * cols + j] / cols;
        for (let j = 0; j < cols; j++) v += (x[r * cols + j] - m) ** 2 / cols;
        return 4 * EPS32 * Math.abs(m) / Math.sqrt(v + eps);
      });
      expectClose(got, want, (i) => 16 * EPS32 * (Math.abs(want[i]) + 4 * Math.abs(g[i % cols]) + 1e-3) +
        rowTerm[Math.floor(i / cols)] * Math.abs(g[i % cols]), `layerNorm eps=${eps}`);
    }
  });

  it('gelu: dense grid over [-10, 10], large and special values', () => {
    const grid = Array.from({ length: 20001 }, (_, i) => -10 + i / 1000);
    const big = [-1e30, -3.4e38, -1e6, -50, -20, -12, 12, 20, 50, 1e6, 1e30, 3.4e38, 0, -0, 1e-30, -1e-30, 1e-8];
    const x = Float32Array.from([...grid, ...big]);
    const want = ref.gelu(x);
    const got = k.gelu(x, { isa });
    expectClose(got, want, (i) => 4 * EPS32 * Math.abs(want[i]) + 2e-7 * Math.min(Math.abs(x[i]), 10) + 1e-38, 'gelu');
    expect(k.gelu(new Float32Array(0), { isa }).length).toBe(0);
  });

  it('maskedSoftmax: masked keys are exactly 0, a fully masked row is uniform', () => {
    const rows = 17, cols = 45;
    const s = randn(rows * cols, 21, 4);
    s[3] = 80; s[cols + 4] = -80;  // large spread
    const mask = Int32Array.from({ length: cols }, (_, j) => (j % 3 === 1 || j > 40 ? 0 : 1));
    const got = k.maskedSoftmax(s, mask, rows, cols, { isa });
    const want = ref.maskedSoftmax(s, mask, rows, cols);
    expectClose(got, want, (i) => 8 * EPS32 * Math.abs(want[i]) + 1e-9, 'maskedSoftmax');
    for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) if (!mask[j]) expect(got[r * cols + j]).toBe(0);
    const none = new Int32Array(cols);
    const u = k.maskedSoftmax(s, none, rows, cols, { isa });
    expectClose(u, ref.maskedSoftmax(s, none, rows, cols), () => 4 * EPS32 / cols, 'fully masked softmax');
    for (const p of u) expect(p).toBeCloseTo(1 / cols, 7);
  });

  for (const [B, L, heads, D] of [[3, 37, 4, 16], [2, 128, 2, 64], [1, 1, 1, 8], [2, 70, 3, 20]]) {
    it(`attention B=${B} L=${L} heads=${heads} D=${D} (ragged masks, one fully masked sequence)`, () => {
      const W = heads * D;
      const q = randn(B * L * W, 31 + L, 1), kk = randn(B * L * W, 32 + L, 1), v = randn(B * L * W, 33 + L, 2);
      const mask = new Int32Array(B * L);
      const lens = [L, Math.max(1, L - 5), 0, Math.ceil(L / 2)];
      for (let b = 0; b < B; b++) for (let t = 0; t < lens[b % 4]; t++) mask[b * L + t] = 1;
      if (B >= 3) mask[2 * L + 1] = 0;  // sequence 2: all keys masked -> uniform over all keys
      const want = ref.attention(q, kk, v, mask, B, L, heads, D);
      let vmax = 0;
      for (const x of v) vmax = Math.max(vmax, Math.abs(x));
      const smax = Math.sqrt(D) * 4 * 4 / Math.sqrt(D);  // |q.k|/sqrt(D) for ~N(0,1) entries stays well below 4*4
      for (const threads of [1, 2]) {
        const got = k.attention(q, kk, v, mask, B, L, heads, D, { isa, threads });
        expectClose(got, want, () => 1e-5 * vmax * (1 + smax), `attention threads=${threads}`);
      }
    });
  }

  it('meanPool: masked mean with denominator max(sum(mask), 1e-9)', () => {
    const B = 4, L = 13, H = 40;
    const h = randn(B * L * H, 41, 3);
    const mask = new Int32Array(B * L);
    [13, 7, 1, 0].forEach((len, b) => { for (let t = 0; t < len; t++) mask[b * L + t] = 1; });
    const got = k.meanPool(h, mask, B, L, H);
    const want = ref.meanPool(h, mask, B, L, H);
    expectClose(got, want, () => 8 * EPS32 * 12, 'meanPool');
    for (let j = 0; j < H; j++) expect(got[3 * H + j]).toBe(0);  // empty mask -> 0 / 1e-9 = 0
  });
});

describe('kernel argument checks', () => {
  it('rejects wrong lengths, wrong array types and unsupported ISAs with clear Errors', () => {
    const a = new Float32Array(6), w = new Float32Array(6);
    expect(() => k.gemm(a, w, null, 3, 2, 3)).toThrow(/a has length 6, expected m \* k = 9/);
    expect(() => k.gemm(a, w, new Float32Array(3), 2, 2, 3)).toThrow(/bias has length 3, expected n = 2/);
    expect(() => k.gemm(a as unknown as Float32Array, Array.from(w) as unknown as Float32Array, null, 2, 2, 3))
      .toThrow(/w must be a Float32Array, got Array/);
    expect(() => k.gemm(a, w, null, 2.5, 2, 3)).toThrow(/m must be an integer/);
    expect(() => k.gemm(a, w, null, 0, 2, 3)).toThrow(/m must be in \[1/);
    expect(() => k.gemm(a, w, null, 2, 2, 3, { isa: 'sse' as CpuIsa })).toThrow(/expected one of 'auto', 'avx512', 'avx2', 'scalar'/);
    if (!info.avx512f) expect(() => k.gemm(a, w, null, 2, 2, 3, { isa: 'avx512' })).toThrow(/does not support it/);
    expect(() => k.maskedSoftmax(new Float32Array(4), new Int32Array([1, 2]), 2, 2)).toThrow(/keyMask\[1\] = 2, expected 0 or 1/);
    expect(() => k.layerNorm(new Float32Array(4), new Float32Array(2), new Float32Array(3), 2, 2, 1e-5)).toThrow(/beta has length 3/);
    expect(() => k.attention(new Float32Array(8), new Float32Array(8), new Float32Array(7), new Int32Array(2), 1, 2, 2, 2))
      .toThrow(/v has length 7/);
    expect(() => k.meanPool(new Float32Array(8), new Float32Array(2) as unknown as Int32Array, 1, 2, 4))
      .toThrow(/mask must be an Int32Array, got Float32Array/);
  });
});

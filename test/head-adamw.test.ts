/**
 * The native trainable head (addon.Head) against:
 *  - the AdamW golden trajectories (training/adamw.json, PyTorch float32), within 1e-6 absolute: the
 *    reference itself is float32, and the largest values (MSE loss ~7, weights ~4.4) have a float32 ulp of
 *    4.8e-7, so 1e-6 is about two ulps there, yet 6x tighter than the weight-decay effect (6e-6) it must see;
 *  - a float64 TypeScript reference (below) for clipping and the hidden (pooler) variant;
 *  - itself: trainEpoch == the same steps through step(), dropout determinism and inverted scaling.
 */
import { describe, expect, it } from 'vitest';
import { readSharedJson } from './helpers/shared.js';
import { HeadTrainer, loadHeadAddon, type HeadTrainData } from '../src/train/head-trainer.js';
import type { HeadOptions, HeadParams, NativeHead } from '../src/native/head-types.js';
import { Rng } from '../src/train/rng.js';

const { Head } = loadHeadAddon();
const golden = readSharedJson('golden', 'training', 'adamw.json');

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('AdamW golden trajectories (adamw.json)', () => {
  for (const [name, c] of Object.entries<any>(golden.cases)) {
    it(name, () => {
      const ce = c.loss_type === 'weighted_cross_entropy';
      const head = new Head({
        inFeatures: c.in_features,
        numOutputs: c.out_features,
        loss: ce ? 'ce' : 'mse',
        classWeights: ce ? c.class_weights : undefined,
        init: { weight: new Float32Array(c.initial_weight.flat()), bias: new Float32Array(c.initial_bias) },
        optimizer: { betas: c.optimizer.betas, eps: c.optimizer.eps, weightDecay: c.optimizer.weight_decay },
      });
      const features = new Float32Array(c.inputs.flat());
      const targets = ce ? new Int32Array(c.targets) : new Float32Array(c.targets);
      expect(c.history.length).toBe(c.steps);
      for (const h of c.history) {
        const r = head.step({ features, targets, lr: c.optimizer.lr, returnGrads: true });
        expect(Math.abs(r.loss - h.loss), `loss step ${h.step}`).toBeLessThan(1e-6);
        expect(maxAbsDiff(r.grads!.weight, h.grad_weight.flat()), `grad_weight step ${h.step}`).toBeLessThan(1e-6);
        expect(maxAbsDiff(r.grads!.bias, h.grad_bias), `grad_bias step ${h.step}`).toBeLessThan(1e-6);
        const s = head.getState();
        expect(maxAbsDiff(s.weight, h.weight.flat()), `weight step ${h.step}`).toBeLessThan(1e-6);
        expect(maxAbsDiff(s.bias, h.bias), `bias step ${h.step}`).toBeLessThan(1e-6);
      }
      expect(Math.abs(head.evalLoss({ features, targets }) - c.final_loss)).toBeLessThan(1e-6);
      expect(head.stepCount).toBe(c.steps);
      head.dispose();
    });
  }
});

// ---- float64 reference: forward, loss, backward, clip_grad_norm_, AdamW (no dropout).
interface RefParams { w: number[]; b: number[]; hw?: number[]; hb?: number[] }
interface RefOpts { H: number; C: number; loss: 'ce' | 'mse'; cw?: number[]; lr: number; betas: [number, number]; eps: number; wd: number; clip?: number }

function refStep(p: RefParams, x: Float32Array, y: ArrayLike<number>, o: RefOpts) {
  const { H, C } = o;
  const n = x.length / H;
  const hidden = !!p.hw;
  const feats: number[][] = [];
  const pre: number[][] = [];
  for (let i = 0; i < n; i++) {
    const xi = Array.from(x.subarray(i * H, (i + 1) * H));
    if (!hidden) { feats.push(xi); continue; }
    const h = new Array(H).fill(0);
    for (let k = 0; k < H; k++) { let s = p.hb![k]; for (let j = 0; j < H; j++) s += p.hw![k * H + j] * xi[j]; h[k] = Math.tanh(s); }
    feats.push(h);
    pre.push(xi);
  }
  const gw = new Array(C * H).fill(0), gb = new Array(C).fill(0);
  const ghw = hidden ? new Array(H * H).fill(0) : [], ghb = hidden ? new Array(H).fill(0) : [];
  let denom = 0;
  for (let i = 0; i < n; i++) denom += o.loss === 'ce' ? (o.cw?.[y[i]] ?? 1) : 1;
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const f = feats[i];
    const z = new Array(C).fill(0).map((_, c) => { let s = p.b[c]; for (let j = 0; j < H; j++) s += p.w[c * H + j] * f[j]; return s; });
    const dz = new Array(C).fill(0);
    if (o.loss === 'mse') { const d = z[0] - y[i]; loss += d * d; dz[0] = (2 * d) / denom; }
    else {
      const mx = Math.max(...z); const lse = mx + Math.log(z.reduce((a, v) => a + Math.exp(v - mx), 0));
      const w = o.cw?.[y[i]] ?? 1; loss += w * (lse - z[y[i]]);
      for (let c = 0; c < C; c++) dz[c] = (w * (Math.exp(z[c] - lse) - (c === y[i] ? 1 : 0))) / denom;
    }
    for (let c = 0; c < C; c++) { gb[c] += dz[c]; for (let j = 0; j < H; j++) gw[c * H + j] += dz[c] * f[j]; }
    if (hidden) {
      for (let k = 0; k < H; k++) {
        let dd = 0; for (let c = 0; c < C; c++) dd += dz[c] * p.w[c * H + k];
        const da = dd * (1 - f[k] * f[k]);
        ghb[k] += da; for (let j = 0; j < H; j++) ghw[k * H + j] += da * pre[i][j];
      }
    }
  }
  const grads = [gw, gb, ghw, ghb];
  const norm = Math.sqrt(grads.flat().reduce((a, v) => a + v * v, 0));
  if (o.clip) { const coef = Math.min(1, o.clip / (norm + 1e-6)); for (const g of grads) for (let i = 0; i < g.length; i++) g[i] *= coef; }
  // first AdamW step from m = v = 0
  const [b1, b2] = o.betas;
  const upd = (pp: number[], g: number[]) => pp.map((v, i) => {
    const m = (1 - b1) * g[i], vv = (1 - b2) * g[i] * g[i];
    return v * (1 - o.lr * o.wd) - (o.lr / (1 - b1)) * (m / (Math.sqrt(vv) / Math.sqrt(1 - b2) + o.eps));
  });
  return {
    loss: loss / denom, norm, grads: { w: gw, b: gb, hw: ghw, hb: ghb },
    after: { w: upd(p.w, gw), b: upd(p.b, gb), hw: hidden ? upd(p.hw!, ghw) : undefined, hb: hidden ? upd(p.hb!, ghb) : undefined },
  };
}

function randomArray(rng: Rng, n: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

function makeHead(opts: Partial<HeadOptions> & { inFeatures: number; numOutputs: number; init: HeadParams }): NativeHead {
  return new Head({ loss: 'ce', optimizer: { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 }, ...opts });
}

describe('gradient clipping', () => {
  it('scales every gradient by max_norm / (norm + 1e-6) like clip_grad_norm_', () => {
    const rng = new Rng(3);
    const H = 24, C = 4, n = 40;
    const x = randomArray(rng, n * H, 1);
    const y = Int32Array.from({ length: n }, () => rng.int(C));
    const w = randomArray(rng, C * H, 0.5), b = randomArray(rng, C, 0.5);
    const cw = [1, 2, 0.5, 1.5];
    const o: RefOpts = { H, C, loss: 'ce', cw, lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, wd: 0.01, clip: 0.05 };
    const ref = refStep({ w: Array.from(w), b: Array.from(b) }, x, y, o);
    expect(ref.norm).toBeGreaterThan(0.5); // well above max_norm, so clipping is active
    const head = makeHead({ inFeatures: H, numOutputs: C, classWeights: cw, clipGradNorm: 0.05, init: { weight: w, bias: b } });
    const r = head.step({ features: x, targets: y, lr: 1e-3, returnGrads: true });
    expect(Math.abs(r.gradNorm - ref.norm) / ref.norm).toBeLessThan(1e-6);
    expect(maxAbsDiff(r.grads!.weight, ref.grads.w)).toBeLessThan(1e-8);
    expect(maxAbsDiff(r.grads!.bias, ref.grads.b)).toBeLessThan(1e-8);
    const s = head.getState();
    expect(maxAbsDiff(s.weight, ref.after.w)).toBeLessThan(1e-6);
    expect(maxAbsDiff(s.bias, ref.after.b)).toBeLessThan(1e-6);
    // clipped gradients have norm max_norm (up to the 1e-6 in the denominator)
    const clippedNorm = Math.hypot(...r.grads!.weight, ...r.grads!.bias);
    expect(Math.abs(clippedNorm - 0.05)).toBeLessThan(1e-6);
  });

  it('leaves gradients alone when the norm is below max_norm', () => {
    const rng = new Rng(4);
    const H = 8, C = 3, n = 10;
    const x = randomArray(rng, n * H, 0.1);
    const y = Int32Array.from({ length: n }, () => rng.int(C));
    const init = { weight: randomArray(rng, C * H, 0.1), bias: new Float32Array(C) };
    const a = makeHead({ inFeatures: H, numOutputs: C, init, clipGradNorm: 100 });
    const b = makeHead({ inFeatures: H, numOutputs: C, init });
    const ra = a.step({ features: x, targets: y, lr: 1e-2, returnGrads: true });
    const rb = b.step({ features: x, targets: y, lr: 1e-2, returnGrads: true });
    expect(ra.grads!.weight).toEqual(rb.grads!.weight);
    expect(a.getState().weight).toEqual(b.getState().weight);
  });
});

describe('hidden (pooler) head', () => {
  for (const loss of ['ce', 'mse'] as const) {
    it(`one ${loss} step matches a float64 reference`, () => {
      const rng = new Rng(loss === 'ce' ? 11 : 12);
      const H = 40, C = loss === 'ce' ? 5 : 1, n = 37; // H, n not multiples of the 16-wide / 6-row GEMM tiles
      const x = randomArray(rng, n * H, 1);
      const y = loss === 'ce' ? Int32Array.from({ length: n }, () => rng.int(C)) : Float32Array.from({ length: n }, () => rng.float() * 5);
      const init = { weight: randomArray(rng, C * H, 0.3), bias: randomArray(rng, C, 0.3), hiddenWeight: randomArray(rng, H * H, 0.2), hiddenBias: randomArray(rng, H, 0.2) };
      const cw = loss === 'ce' ? [1, 0.5, 2, 1.25, 0.8] : undefined;
      const o: RefOpts = { H, C, loss, cw, lr: 1e-3, betas: [0.9, 0.98], eps: 1e-8, wd: 0.05 };
      const ref = refStep({ w: Array.from(init.weight), b: Array.from(init.bias), hw: Array.from(init.hiddenWeight), hb: Array.from(init.hiddenBias) }, x, y, o);
      const head = new Head({ inFeatures: H, numOutputs: C, hidden: true, loss, classWeights: cw, init, optimizer: { betas: [0.9, 0.98], eps: 1e-8, weightDecay: 0.05 } });
      const r = head.step({ features: x, targets: y, lr: 1e-3, returnGrads: true });
      expect(Math.abs(r.loss - ref.loss)).toBeLessThan(2e-6 * Math.max(1, ref.loss));
      // float32 storage + the 3e-7 tanh approximation: compare gradients relative to their scale
      const scale = (g: number[]) => Math.max(1e-3, ...g.map(Math.abs));
      expect(maxAbsDiff(r.grads!.weight, ref.grads.w) / scale(ref.grads.w)).toBeLessThan(2e-5);
      expect(maxAbsDiff(r.grads!.bias, ref.grads.b) / scale(ref.grads.b)).toBeLessThan(2e-5);
      expect(maxAbsDiff(r.grads!.hiddenWeight!, ref.grads.hw) / scale(ref.grads.hw)).toBeLessThan(2e-5);
      expect(maxAbsDiff(r.grads!.hiddenBias!, ref.grads.hb) / scale(ref.grads.hb)).toBeLessThan(2e-5);
      const s = head.getState();
      expect(maxAbsDiff(s.weight, ref.after.w)).toBeLessThan(1e-6);
      expect(maxAbsDiff(s.hiddenWeight!, ref.after.hw!)).toBeLessThan(1e-6);
      expect(maxAbsDiff(s.hiddenBias!, ref.after.hb!)).toBeLessThan(1e-6);
      // predict == tanh-pooler forward of the updated parameters
      const logits = head.evalLoss({ features: x, targets: y });
      expect(Number.isFinite(logits)).toBe(true);
      head.dispose();
    });
  }

  it('predict matches the float64 forward', async () => {
    const rng = new Rng(13);
    const H = 33, C = 3, n = 300; // more than one 256-row predict block
    const x = randomArray(rng, n * H, 1);
    const init = { weight: randomArray(rng, C * H, 0.3), bias: randomArray(rng, C, 0.3), hiddenWeight: randomArray(rng, H * H, 0.2), hiddenBias: randomArray(rng, H, 0.2) };
    const head = makeHead({ inFeatures: H, numOutputs: C, hidden: true, init });
    const out = await head.predict(x);
    let worst = 0;
    for (let i = 0; i < n; i++) {
      const h = Array.from({ length: H }, (_, k) => { let s = init.hiddenBias[k]; for (let j = 0; j < H; j++) s += init.hiddenWeight[k * H + j] * x[i * H + j]; return Math.tanh(s); });
      for (let c = 0; c < C; c++) { let z = init.bias[c]; for (let j = 0; j < H; j++) z += init.weight[c * H + j] * h[j]; worst = Math.max(worst, Math.abs(z - out[i * C + c])); }
    }
    expect(worst).toBeLessThan(1e-5);
  });
});

describe('trainEpoch', () => {
  it('equals the same steps taken one by one through step()', async () => {
    for (const [hidden, dropout] of [[false, 0], [false, 0.2], [true, 0.1]] as const) {
      const rng = new Rng(21);
      const H = 20, C = 3, n = 50, bs = 8;
      const x = randomArray(rng, n * H, 1);
      const y = Int32Array.from({ length: n }, () => rng.int(C));
      const init: HeadParams = { weight: randomArray(rng, C * H, 0.2), bias: randomArray(rng, C, 0.2) };
      if (hidden) { init.hiddenWeight = randomArray(rng, H * H, 0.2); init.hiddenBias = randomArray(rng, H, 0.2); }
      const order = Int32Array.from({ length: 61 }, () => rng.int(n)); // repeats + a short last batch
      const steps = Math.ceil(order.length / bs);
      const lrs = Float64Array.from({ length: steps }, (_, i) => 1e-3 * (1 - i / steps));
      const opts = { inFeatures: H, numOutputs: C, hidden, dropout, seed: 5, init, clipGradNorm: 1, classWeights: [1, 2, 3] };
      const a = makeHead(opts);
      const b = makeHead(opts);
      const r = await a.trainEpoch({ features: x, targets: y, order, batchSize: bs, lrs });
      let lossSum = 0;
      let last = 0;
      for (let s = 0; s < steps; s++) {
        const st = b.step({ features: x, targets: y, lr: lrs[s], indices: order.subarray(s * bs, (s + 1) * bs) });
        lossSum += st.loss;
        last = st.gradNorm;
      }
      expect(r.steps).toBe(steps);
      expect(r.meanLoss).toBe(lossSum / steps);
      expect(r.lastGradNorm).toBe(last);
      expect(a.getState()).toEqual(b.getState());
    }
  });

  it('rejects bad requests with messages that say what to fix', async () => {
    const head = makeHead({ inFeatures: 4, numOutputs: 3, init: { weight: new Float32Array(12), bias: new Float32Array(3) } });
    const features = new Float32Array(8);
    const targets = new Int32Array([0, 2]);
    await expect(head.trainEpoch({ features, targets, order: new Int32Array([0, 1]), batchSize: 1, lrs: new Float64Array(1) })).rejects.toThrow(/lrs has 1 entries, expected .* = 2/);
    await expect(head.trainEpoch({ features, targets, order: new Int32Array([0, 5]), batchSize: 2, lrs: new Float64Array(1) })).rejects.toThrow(/sample index 5/);
    await expect(head.trainEpoch({ features, targets: new Int32Array([0, 3]), order: new Int32Array([1]), batchSize: 2, lrs: new Float64Array(1) })).rejects.toThrow(/target 3 of row 1/);
    await expect(head.trainEpoch({ features, targets, order: new Int32Array([1]), batchSize: 2, lrs: new Float64Array([NaN]) })).rejects.toThrow(/learning rate/);
    expect(() => head.step({ features: new Float32Array(7), targets, lr: 1 })).toThrow(/not a multiple of inFeatures/);
    expect(() => head.step({ features, targets: new Float32Array(2), lr: 1 })).toThrow(/Int32Array/);
    expect(() => new Head({ inFeatures: 4, numOutputs: 3, loss: 'mse', init: { weight: new Float32Array(12), bias: new Float32Array(3) }, optimizer: {} })).toThrow(/numOutputs = 1/);
    expect(() => makeHead({ inFeatures: 4, numOutputs: 3, init: { weight: new Float32Array(11), bias: new Float32Array(3) } })).toThrow(/weight has 11 elements, expected 12/);
    expect(() => makeHead({ inFeatures: 4, numOutputs: 3, classWeights: [1, 0, 1], init: { weight: new Float32Array(12), bias: new Float32Array(3) } })).toThrow(/positive/);
    // one call at a time
    const p = head.trainEpoch({ features, targets, order: new Int32Array([0, 1]), batchSize: 1, lrs: new Float64Array(2) });
    expect(() => head.getState()).toThrow(/still running/);
    await p;
    head.dispose();
    expect(() => head.getState()).toThrow(/disposed/);
  });
});

describe('dropout', () => {
  const H = 16, C = 3, n = 24;
  const rng = new Rng(31);
  const x = randomArray(rng, n * H, 1);
  const y = Int32Array.from({ length: n }, () => rng.int(C));
  const init = { weight: randomArray(rng, C * H, 0.3), bias: randomArray(rng, C, 0.3) };
  const train = (dropout: number, seed: number) => {
    const h = makeHead({ inFeatures: H, numOutputs: C, dropout, seed, init });
    const losses = [0, 1, 2].map(() => h.step({ features: x, targets: y, lr: 1e-2 }).loss);
    return { h, losses };
  };

  it('p = 0 is the identity (same as no dropout, any seed)', () => {
    const a = train(0, 1), b = train(0, 99);
    expect(a.losses).toEqual(b.losses);
    expect(a.h.getState()).toEqual(b.h.getState());
  });

  it('same seed gives the same run; another seed or p > 0 changes training', () => {
    const a = train(0.3, 7), b = train(0.3, 7), c = train(0.3, 8), d = train(0, 7);
    expect(a.h.getState()).toEqual(b.h.getState());
    expect(a.h.getState().weight).not.toEqual(c.h.getState().weight);
    expect(a.losses[0]).not.toBe(d.losses[0]);
  });

  it('is off in eval mode: predict and evalLoss are deterministic and independent of p', async () => {
    const a = makeHead({ inFeatures: H, numOutputs: C, dropout: 0.5, seed: 1, init });
    const b = makeHead({ inFeatures: H, numOutputs: C, dropout: 0, init });
    expect(await a.predict(x)).toEqual(await b.predict(x));
    expect(await a.predict(x)).toEqual(await a.predict(x));
    expect(a.evalLoss({ features: x, targets: y })).toBe(b.evalLoss({ features: x, targets: y }));
  });

  it('zeroes a fraction p of inputs and scales the rest by 1/(1-p)', () => {
    // One MSE sample: grad_W[j] = dz * x_j * mask_j and grad_b = dz, so grad_W[j] / (x_j * grad_b) = mask_j.
    const Hb = 8192, p = 0.3;
    const r = new Rng(41);
    const xs = Float32Array.from({ length: Hb }, () => 1 + r.float());
    const head = new Head({ inFeatures: Hb, numOutputs: 1, loss: 'mse', dropout: p, seed: 3, init: { weight: new Float32Array(Hb), bias: new Float32Array([0]) }, optimizer: {} });
    const g = head.step({ features: xs, targets: new Float32Array([1]), lr: 0, returnGrads: true }).grads!;
    let zeros = 0;
    for (let j = 0; j < Hb; j++) {
      const m = g.weight[j] / (xs[j] * g.bias[0]);
      if (m === 0) zeros++;
      else expect(Math.abs(m - 1 / (1 - p))).toBeLessThan(1e-5);
    }
    expect(Math.abs(zeros / Hb - p)).toBeLessThan(0.02);
  });
});

describe('state', () => {
  it('getState/setState round-trips parameters, moments and t', () => {
    const rng = new Rng(51);
    const H = 12, C = 2, n = 9;
    const x = randomArray(rng, n * H, 1);
    const y = Int32Array.from({ length: n }, () => rng.int(C));
    const init = { weight: randomArray(rng, C * H, 0.3), bias: randomArray(rng, C, 0.3), hiddenWeight: randomArray(rng, H * H, 0.3), hiddenBias: randomArray(rng, H, 0.3) };
    const a = makeHead({ inFeatures: H, numOutputs: C, hidden: true, dropout: 0.1, init });
    a.step({ features: x, targets: y, lr: 1e-2 });
    const saved = a.getState();
    a.step({ features: x, targets: y, lr: 1e-2 });
    const after = a.getState();
    const b = makeHead({ inFeatures: H, numOutputs: C, hidden: true, dropout: 0.1, init });
    b.setState(saved);
    b.step({ features: x, targets: y, lr: 1e-2 });
    expect(b.getState()).toEqual(after);
    expect(() => b.setState({ ...saved, weight: new Float32Array(3) })).toThrow(/weight/);
  });
});

// ---- the TS epoch loop over the native head (src/train/head-trainer.ts)

function blobs(seed: number, n: number, h: number, c: number, centers?: Float32Array) {
  const rng = new Rng(seed);
  const mu = centers ?? randomArray(new Rng(999), c * h, 1);
  const features = new Float32Array(n * h);
  const targets = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const y = rng.int(c);
    targets[i] = y;
    for (let j = 0; j < h; j++) features[i * h + j] = mu[y * h + j] + 0.7 * rng.normal();
  }
  return { features, targets, mu };
}

describe('HeadTrainer', () => {
  it('learns a separable 5-class problem (macro F1 > 0.9) with a weighted sampler and warmup', async () => {
    const H = 32, C = 5;
    const tr = blobs(1, 3000, H, C);
    const va = blobs(2, 600, H, C, tr.mu);
    const t = new HeadTrainer({ task: 'classification', inFeatures: H, numClasses: C, epochs: 6, batchSize: 64, lr: 5e-3, schedule: 'linear', warmupRatio: 0.1, weightDecay: 0.01, dropout: 0.1, seed: 3, sampler: 'weighted', earlyStopping: { metric: 'macro_f1', patience: 3 } });
    const r = await t.train(tr, va);
    expect(r.history.length).toBeGreaterThan(0);
    expect(r.bestMetrics!.macro_f1).toBeGreaterThan(0.9);
    expect(r.history[0].trainLoss).toBeGreaterThan(r.history[r.history.length - 1].trainLoss);
    // the head holds the best state afterwards
    expect(t.nativeHead.getState()).toEqual(r.bestState);
    t.dispose();
  });

  it('learns a regression target with the hidden (pooler) head', async () => {
    const H = 16, n = 2000;
    const rng = new Rng(5);
    const w = randomArray(rng, H, 0.5);
    const mk = (m: number): HeadTrainData => {
      const features = randomArray(rng, m * H, 1);
      const targets = new Float32Array(m);
      for (let i = 0; i < m; i++) { let s = 0; for (let j = 0; j < H; j++) s += w[j] * features[i * H + j]; targets[i] = Math.min(5, Math.max(0, 2.5 + s)); }
      return { features, targets };
    };
    const t = new HeadTrainer({ task: 'regression', inFeatures: H, hidden: true, epochs: 8, batchSize: 32, lr: 3e-3, seed: 1, earlyStopping: { metric: 'mse', patience: 'off' } });
    const r = await t.train(mk(n), mk(400));
    expect(r.bestMetrics!.pearson).toBeGreaterThan(0.9);
    expect(r.bestMetrics!.mse).toBeLessThan(0.3);
    t.dispose();
  });

  it('stops early on a scripted metric and restores the best epoch', async () => {
    const H = 8, C = 3;
    const tr = blobs(7, 200, H, C);
    const script = [0.5, 0.7, 0.6, 0.65, 0.9, 0.95];
    const states: ReturnType<NativeHead['getState']>[] = [];
    const t: HeadTrainer = new HeadTrainer(
      { task: 'classification', inFeatures: H, numClasses: C, epochs: 6, batchSize: 50, lr: 1e-2, earlyStopping: { metric: 'macro_f1', patience: 2 } },
      { evaluate: ({ epoch }) => { states.push(t.nativeHead.getState()); return { macro_f1: script[epoch] }; } },
    );
    const r = await t.train(tr, tr);
    expect(r.history.map((h) => h.val!.macro_f1)).toEqual([0.5, 0.7, 0.6, 0.65]);
    expect(r.history.map((h) => h.improved)).toEqual([true, true, false, false]);
    expect(r.stoppedEarly).toBe(true);
    expect(r.bestEpoch).toBe(1);
    expect(r.bestState).toEqual(states[1]);
    expect(t.nativeHead.getState()).toEqual(states[1]);
    expect(r.history[0].steps).toBe(4);
    t.dispose();
  });

  it('validates its configuration', () => {
    expect(() => new HeadTrainer({ task: 'classification', inFeatures: 4, numClasses: 1, epochs: 1, batchSize: 1, lr: 1 })).toThrow(/numClasses/);
    expect(() => new HeadTrainer({ task: 'classification', inFeatures: 4, numClasses: 2, epochs: 1, batchSize: 1, lr: 1, earlyStopping: { metric: 'f2', patience: 1 } })).toThrow(/known: macro_f1/);
  });
});

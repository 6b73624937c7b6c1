/**
 * Conformance of full fine-tuning (FineTuner, kernels/cpu/finetune.cpp) with the PyTorch references in
 * ../shared/golden/backward (README there), on every CPU code path this machine can run:
 *
 * - the loss (loss_atol_hint = 1e-5 x max(|loss|, max|logits or scores|)) and the head outputs
 *   (atol_hint_per_output);
 * - every parameter's gradient, per tensor: max|grad - ref| <= grad_atol_hint_per_tensor[name]
 *   (1e-5 x max|ref grad of that tensor|). Per tensor because the scales differ by ~5 orders of
 *   magnitude (query/key weights ~1e-4, embeddings/head ~1): one global tolerance would let the small
 *   tensors be anything. The exact-zero key biases (zero_exact_gradient_tensors) use their group's
 *   hint; params_without_grad must be exactly 0 and untrainable. Elements whose reference gradient is
 *   exactly 0 (unused embedding rows, positions of pads) must be exactly 0 here too: nothing may flow
 *   through padded positions;
 * - the global gradient norm and clip_coef (relative 1e-5);
 * - *-meanpool-ce: one clipped AdamW step end to end against after_step.safetensors
 *   (after_step_atol_hint_per_tensor = 2 ulp(max|p|) + 0.05 lr), the pooler bit-identical, and the loss
 *   after the step (loss_atol_hint).
 * A float64 evaluation of the same model stays within 0.073x the gradient hints (README), so the
 * worst ratio here is logged too.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseModelConfig } from '../src/model/config.js';
import { readSafetensors } from '../src/model/safetensors.js';
import { loadAddon } from '../src/native/addon.js';
import { loadFineTuneAddon, type NativeFineTuneConfig, type NativeTrainBatch } from '../src/native/finetune-types.js';
import { sharedPath } from './helpers/shared.js';

const CASES = ['bert-meanpool-ce', 'roberta-meanpool-ce', 'bert-seqcls-regression-mse', 'bert-mnrl'] as const;
type Case = (typeof CASES)[number];

function supportedIsas(): ('scalar' | 'avx2' | 'avx512')[] {
  const info = loadAddon().cpuInfo();
  const isas: ('scalar' | 'avx2' | 'avx512')[] = ['scalar'];
  if (info.avx2 && info.fma) isas.push('avx2');
  if (info.avx512f) isas.push('avx512');
  return isas;
}

const canonical = (name: string): string => (name.startsWith('bert.') ? name.slice('bert.'.length) : name);
const flat = (x: unknown): number[] => (Array.isArray(x) ? x.flatMap(flat) : [x as number]);
const i32 = (x: unknown): Int32Array => Int32Array.from(flat(x));

interface Fixture {
  expected: any;
  config: NativeFineTuneConfig;
  weights: Record<string, Float32Array>;
  grads: Map<string, Float32Array>;
  after: Map<string, Float32Array> | null;
  batch: NativeTrainBatch;
}

async function readTensors(file: string): Promise<Map<string, Float32Array>> {
  const m = await readSafetensors(file);
  return new Map([...m].map(([k, t]) => [canonical(k), t.data]));
}

async function loadFixture(name: Case): Promise<Fixture> {
  const dir = sharedPath('golden', 'backward', name);
  const raw = JSON.parse(readFileSync(`${dir}/config.json`, 'utf8'));
  const c = parseModelConfig(raw, `${dir}/config.json`).config;
  const expected = JSON.parse(readFileSync(`${dir}/expected.json`, 'utf8'));
  const inputs = JSON.parse(readFileSync(`${dir}/inputs.json`, 'utf8'));
  const encoder = {
    vocabSize: c.vocabSize, hiddenSize: c.hiddenSize, embeddingSize: c.embeddingSize, numLayers: c.numLayers,
    numHeads: c.numHeads, intermediateSize: c.intermediateSize, maxPositions: c.maxPositions,
    typeVocabSize: c.typeVocabSize, layerNormEps: c.layerNormEps, padTokenId: c.padTokenId,
    positionStyle: c.positionStyle, hasPooler: true,
  };
  let config: NativeFineTuneConfig;
  let batch: NativeTrainBatch;
  const seq = (prefix: string) => {
    const ids = inputs[`${prefix}input_ids`] as number[][];
    return {
      inputIds: i32(ids), attentionMask: i32(inputs[`${prefix}attention_mask`]),
      tokenTypeIds: i32(inputs[`${prefix}token_type_ids`]), batch: ids.length, seqLen: ids[0].length,
    };
  };
  if (expected.kind === 'meanpool-ce') {
    config = { encoder, head: 'linear', pooling: 'mean', numOutputs: expected.num_classes, loss: 'cross-entropy',
      classWeights: Float32Array.from(expected.class_weights) };
    batch = { ...seq(''), labels: Int32Array.from(inputs.labels) };
  } else if (expected.kind === 'seqcls-mse') {
    config = { encoder, head: 'bert', numOutputs: 1, loss: 'mse' };
    batch = { ...seq(''), targets: Float32Array.from(inputs.labels) };
  } else {
    config = { encoder, head: 'none', pooling: 'mean', loss: 'mnrl', mnrlScale: expected.mnrl_scale };
    batch = { ...seq('anchor_'), positive: seq('positive_') };
  }
  const weights = Object.fromEntries(await readTensors(`${dir}/model.safetensors`));
  const grads = await readTensors(`${dir}/grads.safetensors`);
  const after = expected.kind === 'meanpool-ce' ? await readTensors(`${dir}/after_step.safetensors`) : null;
  return { expected, config, weights, grads, after, batch };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Per-tensor tolerance following the README's rules. */
function gradTolerance(expected: any, name: string): number {
  const withPrefix = (n: string) => [n, `bert.${n}`];
  const pick = (table: Record<string, number>) => withPrefix(name).map((n) => table[n]).find((v) => v !== undefined);
  if (withPrefix(name).some((n) => expected.params_without_grad.includes(n))) return 0;
  if (withPrefix(name).some((n) => expected.zero_exact_gradient_tensors.includes(n))) {
    const group = name.split('.').slice(0, 3).join('.');
    return expected.grad_atol_hint_per_group[group];
  }
  const t = pick(expected.grad_atol_hint_per_tensor);
  expect(t, `tolerance for ${name}`).toBeTypeOf('number');
  return t!;
}

const fixtures = new Map<Case, Promise<Fixture>>();
const fixture = (name: Case) => {
  if (!fixtures.has(name)) fixtures.set(name, loadFixture(name));
  return fixtures.get(name)!;
};

describe.each(supportedIsas())('full fine-tuning matches ../shared/golden/backward (ISA %s)', (isa) => {
  it.each(CASES)('%s: loss, every gradient, norm (and one clipped AdamW step)', async (name) => {
    const f = await fixture(name);
    const e = f.expected;
    const { FineTuner } = loadFineTuneAddon();
    const ft = new FineTuner(f.config, f.weights, { isa, threads: 2 });
    try {
      expect(ft.isa).toBe(isa);
      const r = await ft.accumulate(f.batch);
      expect(Math.abs(r.loss - e.loss), `loss ${r.loss} vs ${e.loss}`).toBeLessThanOrEqual(e.loss_atol_hint);
      // Head outputs: logits (CE, MSE) or the scaled cosine matrix (MNRL).
      const outKey = e.kind === 'mnrl' ? 'scores' : 'logits';
      expect([r.rows, r.cols]).toEqual(e.shapes[outKey]);
      expect(maxAbsDiff(r.outputs, flat(e[outKey]))).toBeLessThanOrEqual(e.atol_hint_per_output[outKey]);

      const grads = await ft.getGradients();
      const trainable = new Map(ft.params.map((p) => [p.name, p.trainable]));
      expect(new Set(Object.keys(grads))).toEqual(new Set(f.grads.keys()));
      let worst = 0;
      let worstName = '';
      const report: string[] = [];
      for (const [pname, ref] of f.grads) {
        const got = grads[pname];
        const tol = gradTolerance(e, pname);
        const err = maxAbsDiff(got, ref);
        if (tol === 0) {
          expect(err, `${pname} has no gradient`).toBe(0);
          expect(got.every((v) => v === 0), `${pname} is exactly zero`).toBe(true);
          expect(trainable.get(pname)).toBe(false);
          continue;
        }
        expect(trainable.get(pname)).toBe(true);
        expect(err, `${name} ${pname}: max |grad - ref| ${err} vs tolerance ${tol}`).toBeLessThanOrEqual(tol);
        if (!e.zero_exact_gradient_tensors.includes(pname) && !e.zero_exact_gradient_tensors.includes(`bert.${pname}`)) {
          let leaked = 0;
          for (let i = 0; i < ref.length; i++) if (ref[i] === 0 && got[i] !== 0) leaked++;
          expect(leaked, `${pname}: elements with an exactly-zero reference gradient must be exactly 0`).toBe(0);
        }
        if (err / tol > worst) {
          worst = err / tol;
          worstName = pname;
        }
        report.push(`${pname} ${(err / tol).toFixed(3)}`);
      }
      console.log(`[backward-golden ${isa}] ${name}: loss diff ${(r.loss - e.loss).toExponential(2)} ` +
        `(tol ${e.loss_atol_hint.toExponential(2)}); worst gradient ${worstName} at ${worst.toFixed(4)} x tolerance`);
      expect(worst).toBeLessThan(1);

      const norm = await ft.gradNorm();
      expect(Math.abs(norm - e.grad_global_norm), `grad norm ${norm} vs ${e.grad_global_norm}`)
        .toBeLessThanOrEqual(1e-5 * e.grad_global_norm);

      if (f.after) {
        const lr = e.optimizer.lr;
        expect(e.optimizer.weight_decay).toBe(0.01);
        const s = await ft.applyStep(lr);
        expect(s.step).toBe(1);
        expect(ft.stepCount).toBe(1);
        expect(Math.abs(s.gradNorm - e.grad_global_norm)).toBeLessThanOrEqual(1e-5 * e.grad_global_norm);
        expect(Math.abs(s.clipCoef - e.grad_clipping.clip_coef), `clip ${s.clipCoef}`)
          .toBeLessThanOrEqual(1e-5 * e.grad_clipping.clip_coef);
        const w = await ft.getWeights();
        let worstStep = 0;
        for (const [pname, ref] of f.after) {
          const err = maxAbsDiff(w[pname], ref);
          if (e.params_without_grad.includes(pname)) {
            expect(err, `${pname} is skipped by the optimizer (bit-identical)`).toBe(0);
            expect(maxAbsDiff(w[pname], f.weights[pname])).toBe(0);
            continue;
          }
          const tol = e.after_step_atol_hint_per_tensor[pname];
          expect(err, `${name} after step ${pname}: ${err} vs ${tol}`).toBeLessThanOrEqual(tol);
          worstStep = Math.max(worstStep, err / tol);
        }
        // The gradients were zeroed by the step; the loss at the new parameters:
        expect(await ft.gradNorm()).toBe(0);
        const r2 = await ft.accumulate(f.batch);
        expect(Math.abs(r2.loss - e.loss_after_step), `loss after step ${r2.loss} vs ${e.loss_after_step}`)
          .toBeLessThanOrEqual(e.loss_atol_hint);
        console.log(`[backward-golden ${isa}] ${name}: after one AdamW step worst ${worstStep.toFixed(4)} x tolerance; ` +
          `loss after step diff ${(r2.loss - e.loss_after_step).toExponential(2)}`);
      }
    } finally {
      ft.dispose();
    }
  });
});

describe('full fine-tuning: batching invariances (bert-meanpool-ce)', () => {
  it('extra pad columns change nothing (no gradient through padded positions)', async () => {
    const f = await fixture('bert-meanpool-ce');
    const { FineTuner } = loadFineTuneAddon();
    const b = f.batch;
    const extra = 5;
    const L2 = b.seqLen + extra;
    const widen = (x: Int32Array, fill: number) => {
      const out = new Int32Array(b.batch * L2).fill(fill);
      for (let r = 0; r < b.batch; r++) out.set(x.subarray(r * b.seqLen, (r + 1) * b.seqLen), r * L2);
      return out;
    };
    const wide: NativeTrainBatch = { ...b, seqLen: L2, inputIds: widen(b.inputIds, 0),
      attentionMask: widen(b.attentionMask, 0), tokenTypeIds: widen(b.tokenTypeIds!, 0) };
    const ft = new FineTuner(f.config, f.weights, { threads: 2 });
    try {
      const r = await ft.accumulate(wide);
      expect(Math.abs(r.loss - f.expected.loss)).toBeLessThanOrEqual(f.expected.loss_atol_hint);
      const g = await ft.getGradients();
      for (const [pname, ref] of f.grads) {
        expect(maxAbsDiff(g[pname], ref), pname).toBeLessThanOrEqual(gradTolerance(f.expected, pname));
      }
      // BERT position rows >= the true lengths' maximum (16) get exactly 0.
      const H = f.config.encoder.hiddenSize;
      expect(g['embeddings.position_embeddings.weight'].subarray(16 * H).every((v) => v === 0)).toBe(true);
    } finally {
      ft.dispose();
    }
  });

  it('micro-batches with the whole batch\'s normaliser add up to the whole batch', async () => {
    const f = await fixture('bert-meanpool-ce');
    const { FineTuner } = loadFineTuneAddon();
    const b = f.batch;
    const cw = f.config.classWeights!;
    const normalizer = [...b.labels!].reduce((s, y) => s + cw[y], 0);
    const rows = (r0: number, r1: number): NativeTrainBatch => ({
      inputIds: b.inputIds.slice(r0 * b.seqLen, r1 * b.seqLen),
      attentionMask: b.attentionMask.slice(r0 * b.seqLen, r1 * b.seqLen),
      tokenTypeIds: b.tokenTypeIds!.slice(r0 * b.seqLen, r1 * b.seqLen),
      batch: r1 - r0, seqLen: b.seqLen, labels: b.labels!.slice(r0, r1), normalizer,
    });
    const ft = new FineTuner(f.config, f.weights, { threads: 1 });
    try {
      const l1 = (await ft.accumulate(rows(0, 1))).loss;
      const l2 = (await ft.accumulate(rows(1, 4))).loss;
      expect(Math.abs(l1 + l2 - f.expected.loss)).toBeLessThanOrEqual(f.expected.loss_atol_hint);
      const g = await ft.getGradients();
      for (const [pname, ref] of f.grads) {
        expect(maxAbsDiff(g[pname], ref), pname).toBeLessThanOrEqual(gradTolerance(f.expected, pname));
      }
      expect(Math.abs((await ft.gradNorm()) - f.expected.grad_global_norm)).toBeLessThanOrEqual(1e-5 * f.expected.grad_global_norm);
      const s = await ft.applyStep(2e-5);
      expect(Math.abs(s.clipCoef - f.expected.grad_clipping.clip_coef)).toBeLessThanOrEqual(1e-5);
      const w = await ft.getWeights();
      for (const [pname, ref] of f.after!) {
        const tol = f.expected.after_step_atol_hint_per_tensor[pname] ?? 0;
        expect(maxAbsDiff(w[pname], ref), pname).toBeLessThanOrEqual(tol);
      }
    } finally {
      ft.dispose();
    }
  });
});

// ------------------------------------------------------------------------------------------------
// Finite differences: the backward kernels against central differences of an independent float64
// forward written here, on tiny shapes. f(x) = sum(dy * forward(x)); d f / d x_i ~ (f(x+h e_i) - f(x-h e_i)) / 2h.
// The kernels run in float32, so the tolerance is relative to the largest derivative: 1e-4 x max|fd| + 1e-7.

/** A deterministic stream of floats in [lo, hi), rounded to float32. */
function floats(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = lo + ((s >>> 8) / (1 << 24)) * (hi - lo);
  }
  return out;
}

/** erf in float64 (Maclaurin series; |x| <= 4 is all the tests use, accurate to ~1e-13). */
function erf64(x: number): number {
  if (Math.abs(x) > 4) return Math.sign(x) * (1 - 1.5e-8);
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

function fdCheck(label: string, x: Float64Array, f: (x: Float64Array) => number, got: ArrayLike<number>, h = 1e-5): number {
  const fd = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const keep = x[i];
    x[i] = keep + h;
    const up = f(x);
    x[i] = keep - h;
    const down = f(x);
    x[i] = keep;
    fd[i] = (up - down) / (2 * h);
  }
  let scale = 0;
  for (const v of fd) scale = Math.max(scale, Math.abs(v));
  const err = maxAbsDiff(got, fd);
  expect(scale, `${label}: derivative scale`).toBeGreaterThan(0);
  expect(err, `${label}: max |backward - finite difference| ${err} vs scale ${scale}`).toBeLessThanOrEqual(1e-4 * scale + 1e-7);
  return err / scale;
}

describe('backward kernels vs float64 finite differences', () => {
  const k = () => loadFineTuneAddon().fineTuneKernels;

  it('LayerNorm: d/dx, d/dgamma, d/dbeta (eps 1e-12 and 1e-5)', () => {
    for (const eps of [1e-12, 1e-5]) {
      const rows = 3, cols = 7;
      const x = floats(rows * cols, 1, -2, 2), g = floats(cols, 2, 0.5, 1.5), b = floats(cols, 3), dy = floats(rows * cols, 4);
      const r = k().layerNorm(x, g, b, rows, cols, eps, dy);
      const fwd = (xv: Float64Array, gv: Float64Array, bv: Float64Array): number => {
        let s = 0;
        for (let i = 0; i < rows; i++) {
          let mean = 0;
          for (let j = 0; j < cols; j++) mean += xv[i * cols + j];
          mean /= cols;
          let v = 0;
          for (let j = 0; j < cols; j++) v += (xv[i * cols + j] - mean) ** 2;
          const rstd = 1 / Math.sqrt(v / cols + eps);
          for (let j = 0; j < cols; j++) s += dy[i * cols + j] * ((xv[i * cols + j] - mean) * rstd * gv[j] + bv[j]);
        }
        return s;
      };
      const X = Float64Array.from(x), G = Float64Array.from(g), Bv = Float64Array.from(b);
      expect(r.y.length).toBe(rows * cols);
      const ratios = [
        fdCheck('layerNorm dx', X, (v) => fwd(v, G, Bv), r.dx),
        fdCheck('layerNorm dgamma', G, (v) => fwd(X, v, Bv), r.dgamma),
        fdCheck('layerNorm dbeta', Bv, (v) => fwd(X, G, v), r.dbeta),
      ];
      console.log(`[fd] LayerNorm eps ${eps}: worst relative error ${Math.max(...ratios).toExponential(2)}`);
    }
  });

  it('GELU (exact erf): du', () => {
    const u = floats(64, 5, -4, 4);
    const dy = floats(64, 6);
    const r = k().gelu(u, dy);
    const gelu = (v: number) => 0.5 * v * (1 + erf64(v / Math.SQRT2));
    const ratio = fdCheck('gelu du', Float64Array.from(u), (v) => v.reduce((s, x, i) => s + dy[i] * gelu(x), 0), r.du);
    // tanh-approximated GELU would be caught: its derivative differs by far more than the tolerance.
    const tanhGrad = (v: number) => {
      const c = Math.sqrt(2 / Math.PI), t = Math.tanh(c * (v + 0.044715 * v ** 3));
      return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * 0.044715 * v * v);
    };
    const tanhDu = Array.from(u, (v, i) => dy[i] * tanhGrad(v));
    expect(maxAbsDiff(tanhDu, r.du)).toBeGreaterThan(1e-4);
    console.log(`[fd] GELU: worst relative error ${ratio.toExponential(2)}`);
  });

  it('masked multi-head attention: d(q, k, v); padded keys get exactly 0', () => {
    const B = 2, L = 5, nh = 2, D = 3, H = nh * D;
    const mask = Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
    const qkv = floats(B * L * 3 * H, 7, -1.5, 1.5);
    const dout = floats(B * L * H, 8);
    const fwd = (x: Float64Array): { out: Float64Array; f: number } => {
      const out = new Float64Array(B * L * H);
      const scale = 1 / Math.sqrt(D);
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < nh; h++) {
          for (let i = 0; i < L; i++) {
            const q = (b * L + i) * 3 * H + h * D;
            const s: number[] = [];
            for (let j = 0; j < L; j++) {
              if (mask[b * L + j] === 0) { s.push(-Infinity); continue; }
              const kk = (b * L + j) * 3 * H + H + h * D;
              let d = 0;
              for (let t = 0; t < D; t++) d += x[q + t] * x[kk + t];
              s.push(d * scale);
            }
            const mx = Math.max(...s);
            const e = s.map((v) => (v === -Infinity ? 0 : Math.exp(v - mx)));
            const z = e.reduce((a, c) => a + c, 0);
            for (let j = 0; j < L; j++) {
              const vv = (b * L + j) * 3 * H + 2 * H + h * D;
              for (let t = 0; t < D; t++) out[(b * L + i) * H + h * D + t] += (e[j] / z) * x[vv + t];
            }
          }
        }
      }
      let f = 0;
      for (let i = 0; i < out.length; i++) f += dout[i] * out[i];
      return { out, f };
    };
    for (const isa of supportedIsas()) {
      const r = k().attention(qkv, mask, B, L, nh, D, dout, { isa });
      const X = Float64Array.from(qkv);
      expect(maxAbsDiff(r.out, fwd(X).out)).toBeLessThanOrEqual(1e-5);
      const ratio = fdCheck(`attention dqkv (${isa})`, X, (v) => fwd(v).f, r.dqkv);
      // Keys 3 and 4 of sequence 1 are padding: their key and value rows get exactly 0.
      for (const t of [1 * L + 3, 1 * L + 4]) {
        expect(r.dqkv.subarray(t * 3 * H + H, (t + 1) * 3 * H).every((v) => v === 0)).toBe(true);
      }
      console.log(`[fd] attention (${isa}): worst relative error ${ratio.toExponential(2)}`);
    }
  });

  it('whole model: gradients agree with finite-difference-check.json (float64 central differences)', async () => {
    const fdJson = JSON.parse(readFileSync(sharedPath('golden', 'backward', 'finite-difference-check.json'), 'utf8'));
    const f = await fixture('bert-meanpool-ce');
    const { FineTuner } = loadFineTuneAddon();
    const ft = new FineTuner(f.config, f.weights, { threads: 2 });
    try {
      await ft.accumulate(f.batch);
      const g = await ft.getGradients();
      const shapes = new Map(ft.params.map((p) => [p.name, p.shape]));
      for (const entry of fdJson.entries) {
        const shape = shapes.get(entry.parameter)!;
        const flatIndex = entry.index.length === 2 ? entry.index[0] * shape[1] + entry.index[1] : entry.index[0];
        const got = g[entry.parameter][flatIndex];
        const rel = Math.abs(got - entry.finite_difference) / Math.abs(entry.finite_difference);
        expect(rel, `${entry.parameter}${JSON.stringify(entry.index)}: ${got} vs FD ${entry.finite_difference}`).toBeLessThan(1e-5);
      }
    } finally {
      ft.dispose();
    }
  });
});

/**
 * The CPU bf16 path (issue 10, part 3): kernels, encoder and CLI.
 *
 * Numerics under test (kernels/include/edu_bf16.h): linear-layer weights rounded once to bf16 (round to
 * nearest even), GEMM activations rounded to bf16, bf16 x bf16 products (exact in fp32), fp32
 * accumulation; everything else fp32.
 *
 * Tolerances, with eps32 = 2^-23 and mag = |A| |W|^T + |bias| (computed by the reference):
 *  - GEMM vs tfjs-core matMul on the SAME bf16-rounded inputs: both sum K exact products in fp32, only
 *    in different orders, so they differ by rounding of the sums: 4 sqrt(K) eps32 mag (the bound of
 *    test/kernels.test.ts for fp32; the rigorous worst case is (K + 1) eps32 mag).
 *  - GEMM vs the unrounded fp32 product: bf16 has 8 significant bits, unit roundoff u = 2^-8, so each
 *    product a w is off by at most (1 + u)^2 - 1 = 2^-7 + 2^-16 of |a w| (one rounding of each factor):
 *    |c - exact| <= (2^-7 + 2^-16 + (K+1) eps32) mag; and it must differ from fp32 somewhere (the
 *    rounding really happens).
 *  - Encoder outputs vs fp32 (../shared/golden references, and fp32 runs of a BERT-base-shaped model):
 *    the target, cosine >= 0.999 for every pooled row (mean, CLS, pooler); and every output
 *    within 2^-6 = 4 bf16 unit roundoffs (4 x 2^-8) of its scale (max |reference|; for logits at least 1):
 *    LayerNorm after every block renormalises, so errors stay a few bf16 roundings of the output scale
 *    (measured: 1.3e-4 .. 3.6e-3 of it, the latter on bert-tiny-large-weights, 4e-3 on BERT-base).
 *
 * Paths: every bf16 path this CPU runs (cpuInfo().bf16Isas) gets the kernel and golden suites; the
 * others must be refused with the reason. The avx512 (VDPBF16PS) and amx (tile) kernels cannot run on
 * the AVX2-only development / CI machines: `edu_bf16_check` runs their code over emulated instructions.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEncoder, type ForwardOutputs } from '../src/encoder.js';
import { openTable } from '../src/data/table.js';
import { generateModelFolder } from '../src/model/generate.js';
import type { CpuIsa } from '../src/native/addon-types.js';
import { loadAddon } from '../src/native/addon.js';
import { embeddingCacheKey, embeddingNumerics } from '../src/train/embedding-cache.js';
import { runAsync, runCli } from './helpers/cli.js';
import { GOLDEN_CASES, readSharedJson, repoRoot, sharedPath } from './helpers/shared.js';
import { withoutSanitizerRuntime } from './helpers/native-env.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-bf16-');
const addon = loadAddon();
const k = addon.kernels;
const info = addon.cpuInfo();
type Path = Exclude<CpuIsa, 'auto'>;
const ALL_BF16: Path[] = ['amx', 'avx512', 'avx2', 'scalar'];
const SUPPORTED = info.bf16Isas;
const UNSUPPORTED = ALL_BF16.filter((p) => !SUPPORTED.includes(p));
const EPS32 = 2 ** -23;
const ENC_TOL = 2 ** -6;

// ---------------------------------------------------------------- helpers
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}
function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => scale * Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()));
}

/** Round to nearest even bf16, written from the format's definition (shares no code with the addon). */
function bf16RoundJs(x: Float32Array): Float32Array {
  const bits = new Uint32Array(Float32Array.from(x).buffer);
  for (let i = 0; i < bits.length; i++) {
    const u = bits[i];
    if ((u & 0x7fffffff) >>> 0 > 0x7f800000) bits[i] = ((u | 0x00400000) & 0xffff0000) >>> 0; // NaN: quiet
    else bits[i] = ((u + 0x7fff + ((u >>> 16) & 1)) & 0xffff0000) >>> 0;
  }
  return new Float32Array(bits.buffer);
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na === 0 && nb === 0 ? 1 : d / Math.sqrt(na * nb);
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Row-wise cosine of [rows, width] matrices: the worst row. */
function minRowCosine(a: ArrayLike<number>, b: ArrayLike<number>, width: number): number {
  let worst = 1;
  for (let r = 0; r * width < a.length; r++) {
    worst = Math.min(worst, cosine(Array.prototype.slice.call(a, r * width, (r + 1) * width), Array.prototype.slice.call(b, r * width, (r + 1) * width)));
  }
  return worst;
}

function flatten(x: unknown): number[] {
  return Array.isArray(x) ? x.flatMap(flatten) : [x as number];
}

// tfjs-core with its CPU backend: the independent GEMM reference (as in test/kernels.test.ts).
type Tf = typeof import('@tensorflow/tfjs-core');
let tf: Tf;
beforeAll(async () => {
  tf = await import('@tensorflow/tfjs-core');
  await import('@tensorflow/tfjs-backend-cpu');
  if (!(await tf.setBackend('cpu'))) throw new Error('tfjs: the cpu backend did not initialise');
  await tf.ready();
});

function tfGemm(a: Float32Array, w: Float32Array, bias: Float32Array | null, m: number, n: number, kk: number) {
  return tf.tidy(() => {
    const A = tf.tensor2d(a, [m, kk]);
    const W = tf.tensor2d(w, [n, kk]);
    let c = tf.matMul(A, W, false, true);
    let mag = tf.matMul(tf.abs(A), tf.abs(W), false, true);
    if (bias) {
      c = tf.add(c, tf.tensor1d(bias));
      mag = tf.add(mag, tf.abs(tf.tensor1d(bias)));
    }
    return { c: c.dataSync() as Float32Array, mag: mag.dataSync() as Float32Array };
  });
}

// ---------------------------------------------------------------- rounding
describe('bf16 rounding', () => {
  it('bf16Round is round-to-nearest-even on ties, specials and random values', () => {
    const f = (u: number) => new Float32Array(new Uint32Array([u]).buffer)[0];
    const special = new Float32Array([
      0, -0, 1, -1, Infinity, -Infinity, NaN, 3.4028234663852886e38, -3.4028234663852886e38, 1e-40, -1e-45,
      f(0x3f808000), // 1 + 2^-8: a tie, even neighbour is 1
      f(0x3f818000), // 1 + 3 * 2^-8: a tie, even neighbour is 1 + 2^-6
      f(0x3f808001), // just above the tie: rounds up
      f(0x7f7f8000), // tie just below FLT_MAX: rounds to infinity (even), as RNE must
    ]);
    const x = Float32Array.from([...special, ...randn(10000, 3, 5)]);
    const got = k.bf16Round(x);
    const want = bf16RoundJs(x);
    for (let i = 0; i < x.length; i++) {
      if (Number.isNaN(want[i])) expect(Number.isNaN(got[i]), `NaN at ${i}`).toBe(true);
      else expect(Object.is(got[i], want[i]), `bf16Round(${x[i]}) = ${got[i]}, expected ${want[i]}`).toBe(true);
    }
    expect(got[11]).toBe(1);
    expect(got[12]).toBe(1 + 2 ** -6);
    expect(got[13]).toBe(1 + 2 ** -7);
    expect(got[14]).toBe(Infinity);
  });
});

// ---------------------------------------------------------------- GEMM kernels
describe('bf16 GEMM paths', () => {
  it('cpuInfo lists the bf16 paths; scalar always, avx2 with AVX2 + FMA', () => {
    expect(SUPPORTED).toContain('scalar');
    expect(SUPPORTED.includes('avx2')).toBe(info.avx2 && info.fma);
    expect(SUPPORTED.includes('avx512')).toBe(info.avx512bf16);
    expect(SUPPORTED).toContain(info.bf16Isa);
    expect(info.bf16Isa).toBe(SUPPORTED[0]); // the best one
  });

  const shapes: [number, number, number][] = [[1, 1, 1], [3, 5, 7], [33, 65, 97], [14, 33, 257], [200, 530, 300], [128, 768, 768]];
  describe.each(SUPPORTED)('path %s', (isa) => {
    it.each(shapes)('%i x %i x %i against tfjs-core matMul on bf16-rounded inputs, with/without bias, 1 and 2 threads', (m, n, kk) => {
      const a = randn(m * kk, m * 7 + kk);
      const w = randn(n * kk, n * 13 + kk, 0.05);
      const bias = randn(n, n + 1);
      for (const b of [null, bias]) {
        const ref = tfGemm(bf16RoundJs(a), bf16RoundJs(w), b, m, n, kk);
        const exact = tfGemm(a, w, b, m, n, kk); // the unrounded product (fp32 inputs)
        const one = k.gemmBf16(a, w, b, m, n, kk, { isa, threads: 1 });
        const two = k.gemmBf16(a, w, b, m, n, kk, { isa, threads: 2 });
        expect(sameBits(one, two), 'the thread count must not change the result').toBe(true);
        let worst = 0, worstVsFp32 = 0, differs = false, first = '';
        for (let i = 0; i < m * n; i++) {
          const tol = 4 * Math.sqrt(kk) * EPS32 * ref.mag[i] + 1e-30;
          const err = Math.abs(one[i] - ref.c[i]);
          worst = Math.max(worst, err / tol);
          if (err > tol && !first) first = `c[${i}] = ${one[i]}, tfjs ${ref.c[i]} (tol ${tol})`;
          const bfTol = (2 ** -7 + 2 ** -16 + (kk + 1) * EPS32) * exact.mag[i] + 1e-30;
          worstVsFp32 = Math.max(worstVsFp32, Math.abs(one[i] - exact.c[i]) / bfTol);
          if (Math.abs(one[i] - exact.c[i]) > 16 * Math.sqrt(kk) * EPS32 * exact.mag[i]) differs = true;
        }
        expect(worst, `${isa} ${m}x${n}x${kk} bias=${!!b}: ${first}`).toBeLessThanOrEqual(1);
        expect(worstVsFp32, 'further than (2^-7 + 2^-16 + (K+1) eps32) mag from the fp32 product').toBeLessThanOrEqual(1);
        if (m * n * kk > 1000) expect(differs, 'bf16 results equal to fp32 ones: no rounding happened').toBe(true);
      }
    });

    it('every register-tile path gives the scalar reference bit for bit (same packed layout, same summation order)', () => {
      if (isa === 'amx') return; // TDPBF16PS sums in its own order: checked against the tolerance above
      for (const [m, n, kk] of shapes) {
        const a = randn(m * kk, 5 + m), w = randn(n * kk, 6 + n, 0.05), b = randn(n, 7);
        expect(sameBits(k.gemmBf16(a, w, b, m, n, kk, { isa }), k.gemmBf16(a, w, b, m, n, kk, { isa: 'scalar' })), `${m}x${n}x${kk}`).toBe(true);
      }
    });

    it('fused epilogues: GELU = the fp32 GELU kernel of the helper path, tanh = Math.tanh, applied to the GEMM', () => {
      const [m, n, kk] = [9, 70, 130];
      const a = randn(m * kk, 1), w = randn(n * kk, 2, 0.1), b = randn(n, 3);
      const plain = k.gemmBf16(a, w, b, m, n, kk, { isa });
      // The helper path's GELU (its erf is within 1e-7 of erff; row tails go through std::erf), so a few
      // ulp of |x|, not bit for bit against a call on the whole array.
      const helper = isa === 'scalar' ? 'scalar' : isa === 'avx2' ? 'avx2' : 'avx512';
      const g = k.gemmBf16(a, w, b, m, n, kk, { isa, epilogue: 'gelu' });
      const ref = k.gelu(plain, { isa: helper });
      for (let i = 0; i < g.length; i++) expect(Math.abs(g[i] - ref[i])).toBeLessThanOrEqual(4e-7 * Math.max(1, Math.abs(plain[i])));
      const t = k.gemmBf16(a, w, b, m, n, kk, { isa, epilogue: 'tanh' });
      for (let i = 0; i < t.length; i++) expect(Math.abs(t[i] - Math.tanh(plain[i]))).toBeLessThanOrEqual(2 * EPS32);
    });
  });

  it('paths this CPU cannot run are refused with the reason; amx is not an fp32 path', () => {
    const a = randn(6, 1), w = randn(6, 2);
    for (const isa of UNSUPPORTED) {
      expect(() => k.gemmBf16(a, w, null, 2, 2, 3, { isa })).toThrow(new RegExp(`'${isa}' bf16 code path, but this CPU/OS cannot run it \\(.+; bf16 paths supported here: ${SUPPORTED.join(', ')}\\)`));
    }
    expect(() => k.gemm(a, w, null, 2, 2, 3, { isa: 'amx' })).toThrow(/'amx', which is a bf16-only code path/);
    expect(() => k.gemmBf16(a, w, null, 2, 2, 3, { isa: 'sse' as Path })).toThrow(/expected one of 'auto', 'amx', 'avx512', 'avx2', 'scalar'/);
    expect(() => k.gemmBf16(a, w, null, 2, 3, 3)).toThrow(/w has length 6, expected n \* k = 9/);
    expect(() => k.gemmBf16(a, new Float64Array(6) as unknown as Float32Array, null, 2, 2, 3)).toThrow(TypeError);
    expect(() => k.gemmBf16(a, w, null, 2, 2, 3, { epilogue: 'relu' as 'gelu' })).toThrow(/options.epilogue must be 'none', 'gelu' or 'tanh'/);
  });

  it('the avx512 (VDPBF16PS) and amx (tile) kernels over emulated instructions, avx2 vs scalar, with guard pages (edu_bf16_check)', async () => {
    // Plain build tools and a plain binary: no sanitizer runtimes preloaded (npm test's ASan pass sets them).
    const env = withoutSanitizerRuntime();
    const build = await runAsync('cmake', ['--build', 'build', '--target', 'edu_bf16_check'], { env, timeoutMs: 300_000 });
    expect(build.code, build.stdout + build.stderr).toBe(0);
    const run = await runAsync(join(repoRoot, 'build', 'edu_bf16_check'), [], { env, timeoutMs: 120_000 });
    expect(run.stdout).toMatch(/avx512 \(emulated VDPBF16PS\) vs scalar: bit-identical required/);
    expect(run.stdout).toMatch(/amx \(emulated tiles\)/);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/bf16 checks OK \(0 failures\)/);
  }, 420_000);
});

// ---------------------------------------------------------------- encoder vs the fp32 golden references
const OUTPUTS = ['last_hidden_state', 'mean_pooled', 'cls', 'pooler_output', 'logits'] as const;
const POOLED = new Set(['mean_pooled', 'cls', 'pooler_output']);

describe.each(SUPPORTED)('edu-train forward --dtype bf16 vs ../shared/golden (fp32 references), path %s', (isa) => {
  const work = tmp.make();
  it.each(GOLDEN_CASES)('%s: pooled cosine >= 0.999, every output within 2^-6 of its scale', async (name) => {
    const dir = sharedPath('golden', name);
    const out = join(work, `${name}.json`);
    const r = await runCli(['forward', '--dtype', 'bf16', '--model-dir', dir, '--inputs', join(dir, 'inputs.json'), '--output', out], {
      EDU_TRAIN_CPU_ISA: isa,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const got = JSON.parse(readFileSync(out, 'utf8'));
    const expected = readSharedJson('golden', name, 'expected.json');
    const hidden = expected.shapes.last_hidden_state[2] as number;
    for (const key of OUTPUTS.filter((o) => o in expected)) {
      expect(got.shapes[key], key).toEqual(expected.shapes[key]);
      const a = flatten(got[key]), b = flatten(expected[key]);
      const scale = key === 'logits' ? Math.max(1, maxAbs(b)) : maxAbs(b);
      const err = maxAbsDiff(a, b);
      expect(err, `${name} ${key}: max abs error ${err} vs ${ENC_TOL} x ${scale}`).toBeLessThanOrEqual(ENC_TOL * scale);
      if (POOLED.has(key)) expect(minRowCosine(a, b, hidden), `${name} ${key} cosine`).toBeGreaterThanOrEqual(0.999);
      // The bf16 arithmetic is really in use: the fp32 tolerance of the golden suite is exceeded.
      if (key === 'last_hidden_state') expect(err).toBeGreaterThan(expected.atol_hint_per_output[key]);
    }
  });
});

// ---------------------------------------------------------------- BERT-base shape
describe('BERT-base-shaped encoder (hidden 768, 12 layers, 12 heads, FFN 3072), bf16 vs fp32', () => {
  let dir: string;
  const lens = [128, 57, 9];
  const L = 128;
  let fp32: ForwardOutputs, bf16: ForwardOutputs;
  let bf16Isa = '';
  beforeAll(async () => {
    dir = join(tmp.make(), 'bert-base');
    // A small vocabulary keeps the folder small: the embedding table is a gather, not a GEMM.
    generateModelFolder(dir, { preset: 'bert-base', vocabSize: 2000, seed: 3, head: 'seqcls', numLabels: 3 });
    const r = rng(11);
    const input_ids = lens.map((n) => Array.from({ length: L }, (_, i) => (i < n ? 1 + Math.floor(r() * 1999) : 0)));
    const attention_mask = lens.map((n) => Array.from({ length: L }, (_, i) => (i < n ? 1 : 0)));
    for (const dtype of ['fp32', 'bf16'] as const) {
      const e = await loadEncoder(dir, { dtype, withoutTokenizer: true });
      try {
        expect(e.dtype).toBe(dtype);
        expect(e.numerics).toBe(dtype === 'bf16' ? 'cpu-bf16' : 'fp32');
        if (dtype === 'bf16') bf16Isa = e.isa;
        const out = await e.forward({ input_ids, attention_mask });
        if (dtype === 'fp32') fp32 = out; else bf16 = out;
      } finally {
        e.dispose();
      }
    }
  });

  it('uses the best bf16 path of this CPU', () => {
    expect(bf16Isa).toBe(info.bf16Isa);
  });

  it.each(['mean_pooled', 'cls', 'pooler_output'] as const)('%s: cosine >= 0.999 for every sequence (128, 57 and 9 tokens)', (key) => {
    const a = fp32[key]!, b = bf16[key]!;
    for (let s = 0; s < lens.length; s++) {
      const c = cosine(a.subarray(s * 768, (s + 1) * 768), b.subarray(s * 768, (s + 1) * 768));
      expect(c, `${key} sequence ${s}`).toBeGreaterThanOrEqual(0.999);
    }
  });

  it('hidden states of real tokens within 2^-6 of their scale; logits within 2^-6', () => {
    const H = 768;
    let err = 0, scale = 0;
    lens.forEach((n, s) => {
      for (let i = s * L * H; i < (s * L + n) * H; i++) {
        err = Math.max(err, Math.abs(fp32.last_hidden_state[i] - bf16.last_hidden_state[i]));
        scale = Math.max(scale, Math.abs(fp32.last_hidden_state[i]));
      }
    });
    expect(err).toBeLessThanOrEqual(ENC_TOL * scale);
    expect(err).toBeGreaterThan(0);
    expect(maxAbsDiff(fp32.logits!, bf16.logits!)).toBeLessThanOrEqual(ENC_TOL * Math.max(1, maxAbs(fp32.logits!)));
  });
});

// ---------------------------------------------------------------- library options, CLI, cache
describe('dtype option and CLI', () => {
  let tinyBert: string;
  let roberta: string;
  beforeAll(() => {
    tinyBert = join(tmp.make(), 'bert');
    generateModelFolder(tinyBert, { preset: 'tiny', seed: 5, tokenizerDir: join(repoRoot, 'assets', 'tokenizers', 'all-minilm-l6-v2') });
    roberta = join(tmp.make(), 'roberta');
    generateModelFolder(roberta, {
      modelType: 'roberta', preset: 'tiny', seed: 7, tokenizerDir: sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer'),
    });
  });

  it('loadEncoder validates dtype in TypeScript, refuses bf16 on a GPU and unsupported paths with a reason', async () => {
    await expect(loadEncoder(tinyBert, { dtype: 'fp16' as 'bf16' })).rejects.toThrow(/dtype must be 'fp32' or 'bf16', got 'fp16'/);
    await expect(loadEncoder(tinyBert, { dtype: 'bf16', device: 'cuda' })).rejects.toThrow(/--dtype bf16 selects the CPU's bf16 arithmetic, but the encoder runs on cuda; on a GPU use --precision/);
    for (const isa of UNSUPPORTED) {
      await expect(loadEncoder(tinyBert, { dtype: 'bf16', isa })).rejects.toThrow(new RegExp(`'${isa}' bf16 code path, but this CPU/OS cannot run it`));
    }
    await expect(loadEncoder(tinyBert, { isa: 'amx' })).rejects.toThrow(/'amx', which is a bf16-only code path/);
    const e = await loadEncoder(tinyBert, { dtype: 'bf16', isa: 'scalar' });
    expect([e.dtype, e.isa, e.numerics]).toEqual(['bf16', 'scalar', 'cpu-bf16']);
    e.dispose();
  });

  it('the native constructor checks options.dtype too', () => {
    const c = { vocabSize: 4, hiddenSize: 4, embeddingSize: 4, numLayers: 1, numHeads: 1, intermediateSize: 4, maxPositions: 4,
      typeVocabSize: 1, layerNormEps: 1e-12, padTokenId: 0, positionStyle: 'absolute' as const, hasPooler: false, head: 'none' as const, numLabels: 0 };
    expect(() => new addon.Encoder(c, {}, { dtype: 'int8' as 'bf16' })).toThrow(/dtype is 'int8', expected 'fp32' or 'bf16'/);
    expect(() => new addon.Encoder(c, {}, { dtype: 16 as unknown as 'bf16' })).toThrow(TypeError);
  });

  it('bench --dtype bf16 --json: edu-train bf16 against ONNX Runtime fp32, pooled cosine >= 0.999', async () => {
    const r = await runCli(['bench', '--model-dir', tinyBert, '--dtype', 'bf16', '--batch-size', '3', '--seq-len', '24', '--threads', '1',
      '--warmup', '0', '--iters', '2', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.dtype).toBe('bf16');
    expect(SUPPORTED).toContain(j.machine.isa);
    expect(j.pooled.cosineMin).toBeGreaterThanOrEqual(0.999);
    expect(j.pooled.cosineMin).toBeLessThan(1 - 1e-9); // not fp32 in disguise
    expect(j.pooled.maxAbsDiff).toBeGreaterThan(1e-5);
    expect(j.pooled.maxAbsDiff).toBeLessThan(0.05);
    expect(Number.isFinite(j.ratio) && j.ratio > 0).toBe(true);
    const human = await runCli(['bench', '--model-dir', tinyBert, '--dtype', 'bf16', '--batch-size', '2', '--seq-len', '8', '--iters', '1', '--warmup', '0']);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/run {6}edu-train bf16 vs onnxruntime fp32/);
  });

  it('embed --dtype bf16 writes embeddings close to the fp32 ones (cosine >= 0.999) and says bf16', async () => {
    const dir = tmp.make();
    const input = join(dir, 'texts.jsonl');
    const texts = ['짧다.', '이번 정책은 내년 상반기부터 시행될 것으로 예상된다.', 'English words 한국어 문장', '', '비가 오면 경기는 취소될 것이다.'];
    writeFileSync(input, texts.map((t, i) => JSON.stringify({ id: `t${i}`, text: t })).join('\n') + '\n');
    const outs: Record<string, number[][]> = {};
    for (const dtype of ['fp32', 'bf16']) {
      const output = join(dir, `${dtype}.jsonl`);
      const r = await runCli(['embed', '--model-dir', roberta, '--input', input, '--output', output, '--dtype', dtype, '--batch-size', '2', '--quiet']);
      expect(r.code, r.stderr).toBe(0);
      if (dtype === 'bf16') expect(r.stderr).toMatch(/\[cpu, \w+ bf16, \d+ threads\]/);
      else expect(r.stderr).not.toMatch(/ bf16,/);
      const rows = readFileSync(output, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(rows.map((x) => x.id)).toEqual(texts.map((_, i) => `t${i}`));
      outs[dtype] = rows.map((x) => x.embedding);
    }
    for (let i = 0; i < texts.length; i++) {
      expect(outs.bf16[i]).toHaveLength(64);
      expect(cosine(outs.fp32[i], outs.bf16[i]), `text ${i}`).toBeGreaterThanOrEqual(0.999);
    }
    expect(outs.bf16.flat()).not.toEqual(outs.fp32.flat());
  });

  it('forward: --dtype bf16 with --device cuda is a usage error; EDU_TRAIN_CPU_ISA=amx is refused for fp32 and, without AMX, for bf16', async () => {
    const inputs = join(tmp.make(), 'inputs.json');
    writeFileSync(inputs, JSON.stringify({ input_ids: [[1, 5, 9, 2]] }));
    const cuda = await runCli(['forward', '--model-dir', tinyBert, '--inputs', inputs, '--dtype', 'bf16', '--device', 'cuda']);
    expect(cuda.code).toBe(2);
    expect(cuda.stderr).toMatch(/--dtype bf16 selects the CPU's bf16 arithmetic/);
    const amx32 = await runCli(['forward', '--model-dir', tinyBert, '--inputs', inputs], { EDU_TRAIN_CPU_ISA: 'amx' });
    expect(amx32.code).not.toBe(0);
    expect(amx32.stderr).toMatch(/'amx', which is a bf16-only code path/);
    for (const isa of UNSUPPORTED) {
      const r = await runCli(['forward', '--model-dir', tinyBert, '--inputs', inputs, '--dtype', 'bf16'], { EDU_TRAIN_CPU_ISA: isa });
      expect(r.code, isa).not.toBe(0);
      expect(r.stderr).toMatch(new RegExp(`'${isa}' bf16 code path, but this CPU/OS cannot run it \\(`));
    }
    const bad = await runCli(['forward', '--model-dir', tinyBert, '--inputs', inputs, '--dtype', 'fp16']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--dtype <dtype>' argument 'fp16' is invalid/);
  });

  it('the embedding cache never serves bf16 vectors to an fp32 run (key and train --dtype)', async () => {
    const id = { weightsSha256: 'a'.repeat(64), tokenizerSha256: 'b'.repeat(64), configSha256: 'c'.repeat(64), maxLength: 64 };
    expect(embeddingNumerics('cpu', undefined, 'bf16')).toBe('cpu-bf16');
    expect(embeddingNumerics('cpu', 'bf16', 'fp32')).toBe('fp32');
    expect(embeddingNumerics('cpu', undefined)).toBe('fp32');
    expect(embeddingCacheKey(id, 'mean', ['x'], 'cpu-bf16')).not.toBe(embeddingCacheKey(id, 'mean', ['x'], 'fp32'));
    const cache = tmp.make();
    const train = async (dtype: string) => {
      const r = await runCli(['train', '--model-dir', tinyBert, '--train', join(repoRoot, 'assets', 'demo', 'sentence-types.jsonl'),
        '--task', 'classification', '--epochs', '1', '--output', join(tmp.make(), 'run'), '--cache-dir', cache, '--dtype', dtype,
        '--quiet', '--json']);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout).embeddings as { cache: string }[]).map((e) => e.cache);
    };
    const first = await train('bf16');
    expect(first.length).toBeGreaterThan(0);
    expect(first.every((s) => s === 'miss')).toBe(true);
    expect(await train('fp32')).toEqual(first); // all misses: the bf16 entries are not served
    expect((await train('fp32')).every((s) => s === 'hit')).toBe(true);
    expect((await train('bf16')).every((s) => s === 'hit')).toBe(true);
  });
});

describe('--dtype on the commands that apply a trained head (predict, eval, annotate)', () => {
  it('runs the encoder in bf16: probabilities within 2e-2 of fp32 and not identical to them', async () => {
    const tinyBert = join(tmp.make(), 'bert');
    generateModelFolder(tinyBert, { preset: 'tiny', seed: 5, tokenizerDir: join(repoRoot, 'assets', 'tokenizers', 'all-minilm-l6-v2') });
    const demo = join(repoRoot, 'assets', 'demo', 'sentence-types.jsonl');
    const run = join(tmp.make(), 'run');
    const t = await runCli(['train', '--model-dir', tinyBert, '--train', demo, '--task', 'classification', '--epochs', '2', '--output', run, '--no-cache', '--quiet']);
    expect(t.code, t.stderr).toBe(0);
    const probs = async (file: string) => {
      const tab = await openTable(file);
      const b = await tab.readAll();
      await tab.close();
      return b.columns.probs.map((p) => Array.from(p as ArrayLike<number>));
    };
    const maxDiff = (a: number[][], b: number[][]) => Math.max(...a.flatMap((row, i) => row.map((v, j) => Math.abs(v - b[i][j]))));
    const out = tmp.make();
    const predicted: Record<string, number[][]> = {};
    for (const dtype of ['fp32', 'bf16']) {
      const r = await runCli(['predict', '--run', run, '--input', demo, '--output', join(out, `${dtype}.jsonl`), '--dtype', dtype, '--quiet']);
      expect(r.code, r.stderr).toBe(0);
      predicted[dtype] = await probs(join(out, `${dtype}.jsonl`));
    }
    expect(predicted.bf16).toHaveLength(200);
    const d = maxDiff(predicted.bf16, predicted.fp32);
    expect(d).toBeGreaterThan(0);
    expect(d).toBeLessThan(2e-2);

    const ev = await runCli(['eval', '--run', run, '--data', demo, '--dtype', 'bf16', '--no-cache', '--json', '--quiet']);
    expect(ev.code, ev.stderr).toBe(0);
    expect(JSON.parse(ev.stdout).accuracy).toBeGreaterThan(0);

    const scored = join(out, 'annotated');
    const a = await runCli(['annotate', '--run', run, '--input', demo, '--output', scored, '--dtype', 'bf16', '--threads', '1']);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stderr).toMatch(/tokens\/s \[cpu, \w+ bf16, 1 threads\]/);
    const parts = readdirSync(scored).filter((n) => n.endsWith('.parquet')).sort();
    const annotated = (await Promise.all(parts.map((f) => probs(join(scored, f))))).flat();
    // Annotate batches documents differently from predict, so compare with the fp32 predictions at the same tolerance.
    expect(maxDiff(annotated, predicted.fp32)).toBeLessThan(2e-2);
  });
});

afterAll(() => {
  tf?.disposeVariables();
});

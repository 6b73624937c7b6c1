/**
 * The N-API boundary of the native Encoder: bad input is a clear Error (never a crash), dispose and
 * concurrency behave, and the architecture variants the golden fixtures do not cover (RoBERTa/ELECTRA
 * heads, ELECTRA's embeddings_project) match a float64 JavaScript forward pass.
 */
import { describe, expect, it } from 'vitest';

import { loadAddon } from '../src/native/addon.js';
import type {
  NativeEncoder, NativeEncoderConfig, NativeForwardRequest, NativeForwardResult, NativeWeights,
} from '../src/native/addon-types.js';

const addon = loadAddon();
const info = addon.cpuInfo();
const isas: ('scalar' | 'avx2' | 'avx512')[] = ['scalar'];
if (info.avx2 && info.fma) isas.push('avx2');
if (info.avx512f) isas.push('avx512');

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}
function randn(n: number, r: () => number, scale: number, offset = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = offset + scale * Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  return a;
}

function tinyConfig(over: Partial<NativeEncoderConfig> = {}): NativeEncoderConfig {
  return {
    vocabSize: 50, hiddenSize: 32, embeddingSize: 32, numLayers: 2, numHeads: 4, intermediateSize: 64,
    maxPositions: 20, typeVocabSize: 2, layerNormEps: 1e-12, padTokenId: 0, positionStyle: 'absolute',
    hasPooler: true, head: 'none', numLabels: 0, ...over,
  };
}

function tinyWeights(c: NativeEncoderConfig, seed = 1, scale = 0.2): NativeWeights {
  const r = rng(seed);
  const H = c.hiddenSize, E = c.embeddingSize, I = c.intermediateSize;
  const w: NativeWeights = {};
  const lin = (name: string, out: number, inp: number) => {
    w[`${name}.weight`] = randn(out * inp, r, scale);
    w[`${name}.bias`] = randn(out, r, 0.1);
  };
  const ln = (name: string, n: number) => {
    w[`${name}.weight`] = randn(n, r, 0.2, 1);
    w[`${name}.bias`] = randn(n, r, 0.1);
  };
  w['embeddings.word_embeddings.weight'] = randn(c.vocabSize * E, r, 1);
  w['embeddings.position_embeddings.weight'] = randn(c.maxPositions * E, r, 1);
  w['embeddings.token_type_embeddings.weight'] = randn(c.typeVocabSize * E, r, 1);
  ln('embeddings.LayerNorm', E);
  if (E !== H) lin('embeddings_project', H, E);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `encoder.layer.${l}.`;
    for (const n of ['query', 'key', 'value']) lin(`${p}attention.self.${n}`, H, H);
    lin(`${p}attention.output.dense`, H, H);
    ln(`${p}attention.output.LayerNorm`, H);
    lin(`${p}intermediate.dense`, I, H);
    lin(`${p}output.dense`, H, I);
    ln(`${p}output.LayerNorm`, H);
  }
  if (c.hasPooler) lin('pooler.dense', H, H);
  if (c.head === 'bert') lin('classifier', c.numLabels, H);
  if (c.head === 'roberta' || c.head === 'electra') {
    lin('classifier.dense', H, H);
    lin('classifier.out_proj', c.numLabels, H);
  }
  return w;
}

function batchOf(c: NativeEncoderConfig, B: number, L: number, lens: number[], seed = 3): NativeForwardRequest {
  const r = rng(seed);
  const inputIds = new Int32Array(B * L), attentionMask = new Int32Array(B * L), tokenTypeIds = new Int32Array(B * L);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      const real = t < lens[b % lens.length];
      inputIds[b * L + t] = real ? 2 + Math.floor(r() * (c.vocabSize - 2)) : c.padTokenId;
      attentionMask[b * L + t] = real ? 1 : 0;
      tokenTypeIds[b * L + t] = real && t > L / 2 && c.typeVocabSize > 1 ? 1 : 0;
    }
  }
  return {
    inputIds, attentionMask, tokenTypeIds, batch: B, seqLen: L,
    outputs: { lastHiddenState: true, meanPooled: true, cls: true, pooler: c.hasPooler, logits: c.head !== 'none' },
  };
}

// ---------- float64 reference forward (Hugging Face semantics) ----------
function erf64(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = ax, sum = ax;
    for (let n = 1; n < 200; n++) {
      term *= -ax * ax / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    }
    const v = (2 / Math.sqrt(Math.PI)) * sum;
    return x < 0 ? -v : v;
  }
  let f = ax;
  for (let n = 80; n >= 1; n--) f = ax + (n / 2) / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return x < 0 ? erfc - 1 : 1 - erfc;
}
const gelu = (x: number) => 0.5 * x * (1 + erf64(x / Math.SQRT2));

function refForward(c: NativeEncoderConfig, w: NativeWeights, req: NativeForwardRequest): Required<NativeForwardResult> {
  const { batch: B, seqLen: L } = req, T = B * L, H = c.hiddenSize, E = c.embeddingSize, I = c.intermediateSize;
  const linear = (x: Float64Array, rows: number, name: string, out: number, inp: number, rowStride = inp) => {
    const W = w[`${name}.weight`], b = w[`${name}.bias`], y = new Float64Array(rows * out);
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < out; j++) {
        let s = b[j];
        for (let p = 0; p < inp; p++) s += x[i * rowStride + p] * W[j * inp + p];
        y[i * out + j] = s;
      }
    return y;
  };
  const layerNorm = (x: Float64Array, n: number, name: string) => {
    const g = w[`${name}.weight`], b = w[`${name}.bias`], y = new Float64Array(x.length);
    for (let r = 0; r < x.length / n; r++) {
      let mean = 0, v = 0;
      for (let j = 0; j < n; j++) mean += x[r * n + j];
      mean /= n;
      for (let j = 0; j < n; j++) v += (x[r * n + j] - mean) ** 2;
      const rstd = 1 / Math.sqrt(v / n + c.layerNormEps);
      for (let j = 0; j < n; j++) y[r * n + j] = (x[r * n + j] - mean) * rstd * g[j] + b[j];
    }
    return y;
  };
  // Embeddings with position ids per style.
  const emb = new Float64Array(T * E);
  for (let b = 0; b < B; b++) {
    let count = 0;
    for (let t = 0; t < L; t++) {
      const id = req.inputIds[b * L + t];
      let pos = t;
      if (c.positionStyle === 'roberta') pos = id !== c.padTokenId ? c.padTokenId + ++count : c.padTokenId;
      const tt = req.tokenTypeIds ? req.tokenTypeIds[b * L + t] : 0;
      for (let j = 0; j < E; j++)
        emb[(b * L + t) * E + j] = w['embeddings.word_embeddings.weight'][id * E + j] +
          w['embeddings.token_type_embeddings.weight'][tt * E + j] + w['embeddings.position_embeddings.weight'][pos * E + j];
    }
  }
  let x = layerNorm(emb, E, 'embeddings.LayerNorm');
  if (E !== H) x = linear(x, T, 'embeddings_project', H, E);
  const heads = c.numHeads, D = H / heads;
  for (let l = 0; l < c.numLayers; l++) {
    const p = `encoder.layer.${l}.`;
    const q = linear(x, T, `${p}attention.self.query`, H, H);
    const k = linear(x, T, `${p}attention.self.key`, H, H);
    const v = linear(x, T, `${p}attention.self.value`, H, H);
    const ctx = new Float64Array(T * H);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < heads; h++)
        for (let i = 0; i < L; i++) {
          const z: number[] = [];
          for (let j = 0; j < L; j++) {
            let s = 0;
            for (let d = 0; d < D; d++) s += q[(b * L + i) * H + h * D + d] * k[(b * L + j) * H + h * D + d];
            s /= Math.sqrt(D);
            z.push(req.attentionMask[b * L + j] ? s : Math.fround(s - 3.4028234663852886e38));
          }
          const mx = Math.max(...z), e = z.map((s) => Math.exp(s - mx)), sum = e.reduce((a, b2) => a + b2, 0);
          for (let j = 0; j < L; j++)
            for (let d = 0; d < D; d++) ctx[(b * L + i) * H + h * D + d] += (e[j] / sum) * v[(b * L + j) * H + h * D + d];
        }
    const a = linear(ctx, T, `${p}attention.output.dense`, H, H);
    for (let i = 0; i < a.length; i++) a[i] += x[i];
    const x1 = layerNorm(a, H, `${p}attention.output.LayerNorm`);
    const f = linear(x1, T, `${p}intermediate.dense`, I, H).map(gelu);
    const o = linear(f, T, `${p}output.dense`, H, I);
    for (let i = 0; i < o.length; i++) o[i] += x1[i];
    x = layerNorm(o, H, `${p}output.LayerNorm`);
  }
  const cls = new Float64Array(B * H), mean = new Float64Array(B * H);
  for (let b = 0; b < B; b++) {
    let n = 0;
    for (let t = 0; t < L; t++) n += req.attentionMask[b * L + t];
    for (let j = 0; j < H; j++) {
      cls[b * H + j] = x[b * L * H + j];
      let s = 0;
      for (let t = 0; t < L; t++) if (req.attentionMask[b * L + t]) s += x[(b * L + t) * H + j];
      mean[b * H + j] = s / Math.max(n, 1e-9);
    }
  }
  const pooler = c.hasPooler ? linear(cls, B, 'pooler.dense', H, H).map(Math.tanh) : new Float64Array(0);
  let logits = new Float64Array(0);
  if (c.head === 'bert') logits = linear(pooler, B, 'classifier', c.numLabels, H);
  if (c.head === 'roberta' || c.head === 'electra') {
    const d = linear(cls, B, 'classifier.dense', H, H).map(c.head === 'roberta' ? Math.tanh : gelu);
    logits = linear(d, B, 'classifier.out_proj', c.numLabels, H);
  }
  const f32 = (a: Float64Array) => Float32Array.from(a);
  return { lastHiddenState: f32(x), meanPooled: f32(mean), cls: f32(cls), poolerOutput: f32(pooler), logits: f32(logits) };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
const maxAbs = (a: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
};

describe('Encoder matches a float64 forward for every architecture variant', () => {
  const variants: [string, Partial<NativeEncoderConfig>][] = [
    ['bert + pooler + bert head', { head: 'bert', numLabels: 3 }],
    ['roberta positions + roberta head', {
      positionStyle: 'roberta', padTokenId: 1, typeVocabSize: 1, maxPositions: 22, head: 'roberta', numLabels: 2,
      layerNormEps: 1e-5, hasPooler: false,
    }],
    ['electra: embeddingSize != hiddenSize (embeddings_project) + electra head', {
      embeddingSize: 16, head: 'electra', numLabels: 4, hasPooler: false,
    }],
  ];
  for (const [name, over] of variants) {
    for (const isa of isas) {
      it(`${name} [${isa}]`, async () => {
        const c = tinyConfig(over);
        const w = tinyWeights(c, 7);
        const req = batchOf(c, 4, 19, [19, 11, 3, 1]);
        const enc = new addon.Encoder(c, w, { isa, threads: 2 });
        expect(enc.isa).toBe(isa);
        const got = await enc.forward(req);
        const want = refForward(c, w, req);
        for (const key of ['lastHiddenState', 'meanPooled', 'cls', 'poolerOutput', 'logits'] as const) {
          if (want[key].length === 0) {
            expect(got[key]).toBeUndefined();
            continue;
          }
          // Same scale as the golden fixtures' atol_hint_per_output: 1e-5 * max|value| (x2 for margin).
          const d = maxAbsDiff(got[key]!, want[key]);
          expect(d, `${key}`).toBeLessThanOrEqual(2e-5 * Math.max(maxAbs(want[key]), 1e-3));
        }
        enc.dispose();
      });
    }
  }
});

describe('Encoder boundary', () => {
  const c = tinyConfig({ head: 'bert', numLabels: 2 });
  const w = tinyWeights(c);
  const good = () => batchOf(c, 3, 8, [8, 5, 2]);
  const make = (opts = {}) => new addon.Encoder(c, w, { threads: 2, ...opts });

  it('reports isa, threads and weightBytes; omitted tokenTypeIds = zeros', async () => {
    const enc = make();
    expect(enc.isa).toBe(info.isa);
    expect(enc.threads).toBe(2);
    expect(enc.weightBytes).toBeGreaterThan(4 * 50 * 32);
    const req = good();
    req.tokenTypeIds!.fill(0);
    const a = await enc.forward(req);
    const b = await enc.forward({ ...req, tokenTypeIds: undefined });
    expect(b.lastHiddenState).toEqual(a.lastHiddenState);
    expect(a.lastHiddenState!.length).toBe(3 * 8 * 32);
    expect(a.logits!.length).toBe(3 * 2);
    const only = await enc.forward({ ...req, outputs: { meanPooled: true } });
    expect(Object.keys(only)).toEqual(['meanPooled']);
    enc.dispose();
  });

  it('rejects bad requests with Errors that name the argument', async () => {
    const enc = make();
    const r = good();
    const cases: [Partial<NativeForwardRequest>, RegExp][] = [
      [{ inputIds: r.inputIds.slice(1) }, /inputIds has length 23, expected batch \* seqLen = 3 \* 8 = 24/],
      [{ attentionMask: new Int32Array(25) }, /attentionMask has length 25/],
      [{ tokenTypeIds: new Int32Array(2) }, /tokenTypeIds has length 2/],
      [{ inputIds: r.inputIds.map((v, i) => (i === 5 ? 50 : v)) }, /inputIds\[5\] = 50 is out of range \[0, vocabSize = 50\)/],
      [{ inputIds: r.inputIds.map((v, i) => (i === 0 ? -1 : v)) }, /inputIds\[0\] = -1 is out of range/],
      [{ tokenTypeIds: new Int32Array(24).fill(2) }, /tokenTypeIds\[0\] = 2 is out of range \[0, typeVocabSize = 2\)/],
      [{ attentionMask: new Int32Array(24).fill(2) }, /attentionMask\[0\] = 2, expected 0 or 1/],
      [{ batch: 0 }, /request.batch must be in \[1/],
      [{ seqLen: -3 }, /request.seqLen must be in \[1/],
      [{ batch: 1.5 }, /request.batch must be an integer/],
      [{ inputIds: Array.from(r.inputIds) as unknown as Int32Array }, /request.inputIds must be an Int32Array, got Array/],
      [{ attentionMask: new Float32Array(24) as unknown as Int32Array }, /request.attentionMask must be an Int32Array, got Float32Array/],
      [{ batch: '3' as unknown as number }, /request.batch must be an integer number, got string/],
      [{ outputs: undefined as unknown as NativeForwardRequest['outputs'] }, /request.outputs must be an object/],
      [{ outputs: { pooler: 1 as unknown as boolean } }, /request.outputs.pooler must be a boolean/],
    ];
    for (const [patch, msg] of cases) await expect(enc.forward({ ...r, ...patch })).rejects.toThrow(msg);
    await expect(enc.forward(undefined as unknown as NativeForwardRequest)).rejects.toThrow(/request must be an object/);
    const noHead = new addon.Encoder(tinyConfig({ hasPooler: false }), tinyWeights(tinyConfig({ hasPooler: false })));
    await expect(noHead.forward({ ...r, outputs: { pooler: true } })).rejects.toThrow(/has no pooler/);
    await expect(noHead.forward({ ...r, outputs: { logits: true } })).rejects.toThrow(/no classification head/);
    // Still usable after all that.
    expect((await enc.forward(r)).cls!.length).toBe(3 * 32);
    enc.dispose();
    noHead.dispose();
  });

  it('rejects sequences longer than the position table (absolute and roberta offsets)', async () => {
    const enc = make();
    const L = 21;
    const ids = new Int32Array(L).fill(5), mask = new Int32Array(L).fill(1);
    await expect(enc.forward({ inputIds: ids, attentionMask: mask, batch: 1, seqLen: L, outputs: { cls: true } }))
      .rejects.toThrow('sequence length 21 needs position ids up to 20 but the model has max_position_embeddings 20');
    const rc = tinyConfig({ positionStyle: 'roberta', padTokenId: 1, maxPositions: 20 });
    const rob = new addon.Encoder(rc, tinyWeights(rc));
    // RoBERTa: 18 real tokens need positions up to 1 + 18 = 19 < 20: fine; 19 real tokens need 20: too long.
    const ok = new Int32Array(18).fill(5);
    await expect(rob.forward({ inputIds: ok, attentionMask: new Int32Array(18).fill(1), batch: 1, seqLen: 18, outputs: { cls: true } }))
      .resolves.toBeDefined();
    await expect(rob.forward({ inputIds: new Int32Array(19).fill(5), attentionMask: new Int32Array(19).fill(1), batch: 1, seqLen: 19, outputs: { cls: true } }))
      .rejects.toThrow('sequence length 19 needs position ids up to 20 but the model has max_position_embeddings 20');
    // Padding does not consume positions in RoBERTa: 18 real + 4 pads is fine.
    const padded = new Int32Array(22).fill(1);
    padded.fill(5, 0, 18);
    await expect(rob.forward({ inputIds: padded, attentionMask: padded.map((v) => (v === 1 ? 0 : 1)), batch: 1, seqLen: 22, outputs: { cls: true } }))
      .resolves.toBeDefined();
    enc.dispose();
    rob.dispose();
  });

  it('rejects missing weights, wrong sizes, wrong types and bad configs at construction', () => {
    const without = { ...w };
    delete without['encoder.layer.1.output.dense.bias'];
    expect(() => new addon.Encoder(c, without)).toThrow("missing weight 'encoder.layer.1.output.dense.bias'");
    expect(() => new addon.Encoder(c, { ...w, 'encoder.layer.0.intermediate.dense.weight': new Float32Array(10) }))
      .toThrow("weight 'encoder.layer.0.intermediate.dense.weight' has 10 elements, expected [64, 32] = 2048");
    expect(() => new addon.Encoder(c, { ...w, 'pooler.dense.bias': new Float64Array(32) as unknown as Float32Array }))
      .toThrow("weights['pooler.dense.bias'] must be a Float32Array, got Float64Array");
    expect(() => new addon.Encoder(c, { ...w, 'classifier.weight': new Float32Array(32) }))
      .toThrow("weight 'classifier.weight' has 32 elements, expected [2, 32] = 64");
    expect(() => new addon.Encoder({ ...c, numHeads: 5 }, w)).toThrow(/hiddenSize \(32\) must be a multiple of config.numHeads \(5\)/);
    const { vocabSize: _v, ...noVocab } = c;
    expect(() => new addon.Encoder(noVocab as NativeEncoderConfig, w)).toThrow(/config.vocabSize is missing/);
    expect(() => new addon.Encoder({ ...c, positionStyle: 'alibi' as 'absolute' }, w)).toThrow(/positionStyle must be 'absolute' or 'roberta'/);
    expect(() => new addon.Encoder({ ...c, head: 'bert', hasPooler: false }, w)).toThrow(/hasPooler must be true/);
    expect(() => new addon.Encoder(c, null as unknown as NativeWeights)).toThrow(/weights must be an object/);
    expect(() => new addon.Encoder(c, w, { threads: 0 })).toThrow(/options.threads must be in \[1, 1024\]/);
    expect(() => new addon.Encoder(c, w, { isa: 'mmx' as 'avx2' })).toThrow(/expected one of 'auto', 'avx512', 'avx2', 'scalar'/);
    if (!info.avx512f) expect(() => new addon.Encoder(c, w, { isa: 'avx512' })).toThrow(/does not support it \(supported: /);
    // Extra tensors (e.g. an integer position_ids buffer converted to float) are ignored.
    expect(() => new addon.Encoder(c, { ...w, 'embeddings.position_ids': new Float32Array(20) }).dispose()).not.toThrow();
  });

  it('dispose is idempotent; forward after dispose rejects; a forward in flight finishes', async () => {
    const enc = make();
    const reference = await enc.forward(good());
    const inFlight = enc.forward(good());
    enc.dispose();
    enc.dispose();
    expect(enc.weightBytes).toBe(0);
    const done = await inFlight;
    expect(done.lastHiddenState).toEqual(reference.lastHiddenState);
    await expect(enc.forward(good())).rejects.toThrow('Encoder has been disposed');
  });

  it('concurrent forwards on one encoder all resolve and equal a sequential run', async () => {
    const enc = make();
    const reqs = Array.from({ length: 8 }, (_, i) => batchOf(c, 1 + (i % 3), 5 + i, [5 + i, 3, 1], 100 + i));
    const sequential: NativeForwardResult[] = [];
    for (const r of reqs) sequential.push(await enc.forward(r));
    const parallel = await Promise.all(reqs.map((r) => enc.forward(r)));
    // A second encoder running at the same time (its own pool) does not disturb the first.
    const other = make({ threads: 1 });
    const mixed = await Promise.all([...reqs.map((r) => enc.forward(r)), ...reqs.map((r) => other.forward(r))]);
    for (let i = 0; i < reqs.length; i++) {
      expect(parallel[i].lastHiddenState).toEqual(sequential[i].lastHiddenState);
      expect(parallel[i].logits).toEqual(sequential[i].logits);
      expect(mixed[i].lastHiddenState).toEqual(sequential[i].lastHiddenState);
      expect(maxAbsDiff(mixed[reqs.length + i].lastHiddenState!, sequential[i].lastHiddenState!)).toBeLessThan(1e-5);
    }
    enc.dispose();
    other.dispose();
  });

  it('EDU_TRAIN_CPU_ISA forces the path of isa "auto"; an unsupported one is a clear Error', () => {
    const saved = process.env.EDU_TRAIN_CPU_ISA;
    try {
      process.env.EDU_TRAIN_CPU_ISA = 'scalar';
      expect(addon.cpuInfo().isa).toBe('scalar');
      const enc = make();
      expect(enc.isa).toBe('scalar');
      enc.dispose();
      expect(make({ isa: info.isa }).isa).toBe(info.isa);  // an explicit option wins over the variable
      process.env.EDU_TRAIN_CPU_ISA = 'avx9000';
      expect(() => make()).toThrow(/EDU_TRAIN_CPU_ISA is 'avx9000', expected one of/);
      if (!info.avx512f) {
        process.env.EDU_TRAIN_CPU_ISA = 'avx512';
        expect(() => addon.cpuInfo()).toThrow(/EDU_TRAIN_CPU_ISA asks for the 'avx512' code path, but this CPU\/OS does not support it/);
      }
    } finally {
      if (saved === undefined) delete process.env.EDU_TRAIN_CPU_ISA;
      else process.env.EDU_TRAIN_CPU_ISA = saved;
    }
    expect(addon.cpuInfo().isa).toBe(info.isa);
  });

  it('queued forwards occupy one libuv thread: other async I/O is not starved', async () => {
    const big = tinyConfig({ hiddenSize: 128, intermediateSize: 512, numLayers: 4, maxPositions: 128 });
    const enc = new addon.Encoder(big, tinyWeights(big, 6, 0.05), { threads: 2 });
    const req = batchOf(big, 16, 128, [128, 90]);
    let settled = 0;
    const calls = Array.from({ length: 8 }, () => enc.forward(req).then((r) => { settled++; return r; }));
    // More calls than libuv has threads (4): with a mutex per call they would all block the pool.
    const { readFile } = await import('node:fs/promises');
    await readFile(new URL(import.meta.url));
    expect(settled).toBeLessThan(8);
    const results = await Promise.all(calls);
    for (const r of results) expect(r.cls).toEqual(results[0].cls);
    enc.dispose();
  });

  it('forward runs off the event loop', async () => {
    const big = tinyConfig({ hiddenSize: 128, intermediateSize: 512, numLayers: 4, maxPositions: 128 });
    const enc: NativeEncoder = new addon.Encoder(big, tinyWeights(big, 5, 0.05), { threads: 2 });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    await enc.forward(batchOf(big, 32, 128, [128, 100, 50]));
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(0);
    enc.dispose();
  });
});

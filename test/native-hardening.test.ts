/**
 * The N-API boundary under abuse (issue 8), for the Encoder and the trainable Head: errors thrown inside
 * async workers, dispose twice / use after dispose, concurrent calls, absurd sizes (int32 / size_t
 * overflow, more memory than the machine has), typed arrays of the wrong type, views with offsets,
 * SharedArrayBuffers and detached ArrayBuffers. Every case must be a clear Error (or a correct result),
 * never a crash or a giant allocation. scripts/hardening/asan-test.sh runs this file under ASan + UBSan.
 */
import { totalmem } from 'node:os';
import { describe, expect, it } from 'vitest';

import { loadAddon } from '../src/native/addon.js';
import type { NativeEncoderConfig, NativeForwardRequest, NativeWeights } from '../src/native/addon-types.js';
import type { HeadAddon, HeadOptions, NativeHead } from '../src/native/head-types.js';

const addon = loadAddon();
const { Head } = addon as unknown as HeadAddon;

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

function config(over: Partial<NativeEncoderConfig> = {}): NativeEncoderConfig {
  return {
    vocabSize: 50, hiddenSize: 32, embeddingSize: 32, numLayers: 2, numHeads: 4, intermediateSize: 64,
    maxPositions: 20, typeVocabSize: 2, layerNormEps: 1e-12, padTokenId: 0, positionStyle: 'absolute',
    hasPooler: true, head: 'bert', numLabels: 3, ...over,
  };
}

/** Weights named as the Encoder expects; `fill` makes big models cheap (no randomness needed). */
function weights(c: NativeEncoderConfig, seed = 1, fill?: number): NativeWeights {
  const r = rng(seed);
  const t = (n: number, scale: number, offset = 0) => {
    const a = new Float32Array(n);
    if (fill !== undefined) return a.fill(fill + offset);
    for (let i = 0; i < n; i++) a[i] = offset + scale * (2 * r() - 1);
    return a;
  };
  const H = c.hiddenSize, E = c.embeddingSize, I = c.intermediateSize;
  const w: NativeWeights = {};
  const lin = (name: string, out: number, inp: number) => {
    w[`${name}.weight`] = t(out * inp, 0.3);
    w[`${name}.bias`] = t(out, 0.1);
  };
  const ln = (name: string, n: number) => {
    w[`${name}.weight`] = t(n, 0.1, 1);
    w[`${name}.bias`] = t(n, 0.1);
  };
  w['embeddings.word_embeddings.weight'] = t(c.vocabSize * E, 1);
  w['embeddings.position_embeddings.weight'] = t(c.maxPositions * E, 1);
  w['embeddings.token_type_embeddings.weight'] = t(c.typeVocabSize * E, 1);
  ln('embeddings.LayerNorm', E);
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
  return w;
}

function request(c: NativeEncoderConfig, B: number, L: number, seed = 3): NativeForwardRequest {
  const r = rng(seed);
  const inputIds = new Int32Array(B * L), attentionMask = new Int32Array(B * L);
  for (let b = 0; b < B; b++) {
    const len = 1 + Math.floor(r() * L);
    for (let t = 0; t < len; t++) {
      inputIds[b * L + t] = 1 + Math.floor(r() * (c.vocabSize - 1));
      attentionMask[b * L + t] = 1;
    }
  }
  return { inputIds, attentionMask, batch: B, seqLen: L, outputs: { lastHiddenState: true, meanPooled: true, cls: true, pooler: true, logits: true } };
}

const c = config();
const w = weights(c);
const make = () => new addon.Encoder(c, w, { threads: 2 });

describe('Encoder: errors inside async workers and the call queue', () => {
  it('failing calls (rejected in the worker) interleaved with good ones: every promise settles, results are right', async () => {
    const enc = make();
    const good = Array.from({ length: 6 }, (_, i) => request(c, 1 + (i % 3), 4 + i, 10 + i));
    const ref = [];
    for (const g of good) ref.push(await enc.forward(g));
    const bad = (i: number): NativeForwardRequest => ({ ...good[i], inputIds: good[i].inputIds.map((v, k) => (k === 0 ? 10_000 : v)) });
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < good.length; i++) calls.push(enc.forward(good[i]), enc.forward(bad(i)));
    const settled = await Promise.allSettled(calls);
    for (let i = 0; i < good.length; i++) {
      const ok = settled[2 * i], ko = settled[2 * i + 1];
      expect(ok.status).toBe('fulfilled');
      expect((ok as PromiseFulfilledResult<typeof ref[0]>).value.lastHiddenState).toEqual(ref[i].lastHiddenState);
      expect(ko.status).toBe('rejected');
      expect(String((ko as PromiseRejectedResult).reason)).toMatch(/inputIds\[0\] = 10000 is out of range/);
    }
    enc.dispose();
  });

  it('a synchronous argument error is a rejection, not a throw, and does not block the queue', async () => {
    const enc = make();
    const p = enc.forward(request(c, 2, 5));
    const bad = enc.forward(42 as unknown as NativeForwardRequest);
    await expect(bad).rejects.toThrow(/request must be an object, got number/);
    await expect(p).resolves.toBeDefined();
    enc.dispose();
  });
});

describe('Encoder: dispose', () => {
  it('dispose twice is fine; every later call rejects clearly; queued calls still finish', async () => {
    const enc = make();
    const req = request(c, 3, 8);
    const ref = await enc.forward(req);
    const queued = Array.from({ length: 5 }, () => enc.forward(req));
    enc.dispose();
    enc.dispose();
    for (const q of await Promise.all(queued)) expect(q.lastHiddenState).toEqual(ref.lastHiddenState);
    await expect(enc.forward(req)).rejects.toThrow('Encoder has been disposed');
    await expect(enc.forward(undefined as unknown as NativeForwardRequest)).rejects.toThrow('Encoder has been disposed');
    expect(enc.weightBytes).toBe(0);
    expect(enc.isa).toBeTypeOf('string');
    enc.dispose();
  });

  it('the weights arrays may be dropped or overwritten after construction (the encoder owns a copy)', async () => {
    const own = weights(c, 7);
    const enc = new addon.Encoder(c, own, { threads: 1 });
    const req = request(c, 2, 6);
    const before = await enc.forward(req);
    for (const a of Object.values(own)) a.fill(123);
    expect((await enc.forward(req)).lastHiddenState).toEqual(before.lastHiddenState);
    enc.dispose();
  });
});

describe('Encoder: concurrency', () => {
  it('32 concurrent forwards of different shapes on one encoder equal a sequential run (serialised)', async () => {
    const enc = make();
    const reqs = Array.from({ length: 32 }, (_, i) => request(c, 1 + (i % 5), 1 + (i % 20), 100 + i));
    const seq = [];
    for (const r of reqs) seq.push(await enc.forward(r));
    const par = await Promise.all(reqs.map((r) => enc.forward(r)));
    for (let i = 0; i < reqs.length; i++) {
      expect(par[i].lastHiddenState).toEqual(seq[i].lastHiddenState);
      expect(par[i].logits).toEqual(seq[i].logits);
    }
    enc.dispose();
  });

  it('mutating a request array right after forward() does not change the result (it was copied)', async () => {
    const enc = make();
    const req = request(c, 2, 8);
    const ref = await enc.forward({ ...req, inputIds: req.inputIds.slice(), attentionMask: req.attentionMask.slice() });
    const p = enc.forward(req);
    req.inputIds.fill(10_000); // would be out of range if the worker read it
    req.attentionMask.fill(7);
    expect((await p).lastHiddenState).toEqual(ref.lastHiddenState);
    enc.dispose();
  });
});

describe('Encoder: absurd sizes', () => {
  it('batch * seqLen overflowing int32 / size_t is a clear Error, before any allocation', async () => {
    const enc = make();
    const small = request(c, 1, 4);
    const cases: [Partial<NativeForwardRequest>, RegExp][] = [
      [{ batch: 2 ** 31, seqLen: 4 }, /request.batch must be in \[1, 2147483647\]/],
      [{ batch: 2 ** 30, seqLen: 2 ** 30 }, /batch \* seqLen is too large|has length 4, expected/],
      [{ batch: 65_536, seqLen: 65_536 }, /batch \* seqLen is too large|has length 4, expected/],
      [{ batch: 2 ** 31 - 1, seqLen: 2 ** 31 - 1 }, /batch \* seqLen is too large|has length 4, expected/],
      [{ batch: 1e300 }, /request.batch must be in/],
      [{ batch: Number.NaN }, /request.batch must be an integer/],
      [{ seqLen: Infinity }, /request.seqLen must be an integer/],
      [{ batch: -0.5 }, /request.batch must be an integer/],
    ];
    for (const [patch, msg] of cases) await expect(enc.forward({ ...small, ...patch })).rejects.toThrow(msg);
    enc.dispose();
  });

  it('a request needing more working memory than allowed is refused up front (EDU_TRAIN_MAX_FORWARD_BYTES)', async () => {
    const enc = make();
    const saved = process.env.EDU_TRAIN_MAX_FORWARD_BYTES;
    try {
      process.env.EDU_TRAIN_MAX_FORWARD_BYTES = String(1 << 20); // 1 MiB
      await expect(enc.forward(request(c, 64, 20))).rejects.toThrow(
        /forward\(request\): batch 64 x seqLen 20 \(hidden 32\) needs about [\d.]+ GiB of working memory, more than the 0\.0 GiB available to it .*split it into smaller batches/,
      );
      await expect(enc.forward(request(c, 1, 4))).resolves.toBeDefined(); // small ones still run
    } finally {
      if (saved === undefined) delete process.env.EDU_TRAIN_MAX_FORWARD_BYTES;
      else process.env.EDU_TRAIN_MAX_FORWARD_BYTES = saved;
    }
    enc.dispose();
  });

  it.skipIf(totalmem() > 512 * 2 ** 30)('a batch needing about twice the RAM is a clear Error, not an OOM kill', async () => {
    // Wide but cheap model: hidden 1024 makes every token cost ~28 KB of activations.
    const wc = config({ vocabSize: 8, hiddenSize: 1024, embeddingSize: 1024, intermediateSize: 1024, numHeads: 8, numLayers: 1, maxPositions: 16, hasPooler: false, head: 'none', numLabels: 0 });
    const enc = new addon.Encoder(wc, weights(wc, 1, 0.01), { threads: 1 });
    const L = 16;
    const B = Math.ceil((2 * totalmem()) / (28 * 1024 * L));
    const ids = new Int32Array(B * L).fill(1), mask = new Int32Array(B * L).fill(1);
    const rss = process.memoryUsage().rss;
    await expect(enc.forward({ inputIds: ids, attentionMask: mask, batch: B, seqLen: L, outputs: { meanPooled: true } }))
      .rejects.toThrow(/needs about [\d.]+ GiB of working memory.*split it into smaller batches/);
    expect(process.memoryUsage().rss - rss).toBeLessThan(2 * 8 * B * L + 512 * 2 ** 20); // the request copies at most
    enc.dispose();
  });
});

describe('Encoder: typed arrays', () => {
  it('wrong element types are TypeErrors naming the argument', async () => {
    const enc = make();
    const r = request(c, 2, 4);
    const n = 8;
    const wrong: [unknown, string][] = [
      [new Uint32Array(n), 'Uint32Array'], [new Int16Array(n), 'Int16Array'], [new Float64Array(n), 'Float64Array'],
      [new BigInt64Array(n), 'BigInt64Array'], [new Uint8Array(n * 4), 'Uint8Array'], [new DataView(new ArrayBuffer(n * 4)), 'object'],
      [new ArrayBuffer(n * 4), 'object'], ['1,2,3', 'string'], [null, 'null'],
    ];
    for (const [v, name] of wrong) {
      await expect(enc.forward({ ...r, inputIds: v as Int32Array })).rejects.toThrow(new RegExp(`request.inputIds must be an Int32Array, got ${name}`));
    }
    await expect(enc.forward({ ...r, tokenTypeIds: new Float32Array(8) as unknown as Int32Array })).rejects.toThrow(/request.tokenTypeIds must be an Int32Array, got Float32Array/);
    enc.dispose();
  });

  it('views with a byteOffset and SharedArrayBuffer-backed arrays read exactly their elements', async () => {
    const enc = make();
    const r = request(c, 2, 6);
    const ref = await enc.forward(r);
    const bigIds = new Int32Array(100).fill(10_000); // out-of-range sentinels around the view
    bigIds.set(r.inputIds, 37);
    const bigMask = new Int32Array(100).fill(5);
    bigMask.set(r.attentionMask, 51);
    const viewed = await enc.forward({ ...r, inputIds: bigIds.subarray(37, 37 + 12), attentionMask: bigMask.subarray(51, 51 + 12) });
    expect(viewed.lastHiddenState).toEqual(ref.lastHiddenState);
    const sab = new Int32Array(new SharedArrayBuffer(12 * 4));
    sab.set(r.inputIds);
    expect((await enc.forward({ ...r, inputIds: sab })).lastHiddenState).toEqual(ref.lastHiddenState);
    enc.dispose();
  });

  it('detached ArrayBuffers are TypeErrors (request and weights), not reads of freed memory', async () => {
    const enc = make();
    const r = request(c, 2, 4);
    const ids = r.inputIds.slice();
    structuredClone(ids.buffer, { transfer: [ids.buffer] });
    expect(ids.length).toBe(0);
    await expect(enc.forward({ ...r, inputIds: ids })).rejects.toThrow(/request.inputIds's ArrayBuffer is detached/);
    const ww = { ...w, 'pooler.dense.bias': w['pooler.dense.bias'].slice() };
    structuredClone(ww['pooler.dense.bias'].buffer, { transfer: [ww['pooler.dense.bias'].buffer] });
    expect(() => new addon.Encoder(c, ww)).toThrow(/weights\['pooler.dense.bias'\]'s ArrayBuffer is detached/);
    enc.dispose();
  });
});

// ---------------------------------------------------------------- Head

function headOptions(over: Partial<HeadOptions> = {}): HeadOptions {
  const H = 8, C = 3;
  const r = rng(5);
  const weight = new Float32Array(C * H).map(() => r() - 0.5);
  return { inFeatures: H, numOutputs: C, loss: 'ce', init: { weight, bias: new Float32Array(C) }, optimizer: {}, threads: 2, ...over };
}
function data(n: number, H = 8, C = 3) {
  const r = rng(9);
  return { features: new Float32Array(n * H).map(() => r() - 0.5), targets: Int32Array.from({ length: n }, (_, i) => i % C) };
}
function epoch(n: number, batchSize = 4) {
  const d = data(n);
  const order = Int32Array.from({ length: n }, (_, i) => i);
  return { ...d, order, batchSize, lrs: new Float64Array(Math.ceil(n / batchSize)).fill(1e-2) };
}

describe('Head: errors inside async workers', () => {
  it('trainEpoch with an out-of-range sample index or class id rejects; the head stays usable and unchanged', async () => {
    const h: NativeHead = new Head(headOptions());
    const before = h.getState();
    const e = epoch(16);
    await expect(h.trainEpoch({ ...e, order: e.order.map((v, i) => (i === 9 ? 16 : v)) })).rejects.toThrow(/sample index 16 at position 9 is outside \[0, 16\)/);
    await expect(h.trainEpoch({ ...e, order: e.order.map((v, i) => (i === 2 ? -1 : v)) })).rejects.toThrow(/sample index -1/);
    await expect(h.trainEpoch({ ...e, targets: e.targets.map((v, i) => (i === 3 ? 3 : v)) })).rejects.toThrow(/class|target|label/i);
    await expect(h.trainEpoch({ ...e, targets: e.targets.map((v, i) => (i === 3 ? -7 : v)) })).rejects.toThrow(/class|target|label/i);
    expect(h.busy).toBe(false);
    expect(h.getState().weight).toEqual(before.weight);
    await expect(h.trainEpoch(e)).resolves.toMatchObject({ steps: 4 });
    h.dispose();
  });
});

describe('Head: dispose and concurrency', () => {
  it('dispose twice is fine; use after dispose throws / rejects clearly', async () => {
    const h: NativeHead = new Head(headOptions());
    h.dispose();
    h.dispose();
    await expect(h.predict(data(2).features)).rejects.toThrow(/Head.predict: the head was disposed/);
    await expect(h.trainEpoch(epoch(4))).rejects.toThrow(/Head.trainEpoch: the head was disposed/);
    expect(() => h.step({ ...data(2), lr: 0.1 })).toThrow(/Head.step: the head was disposed/);
    expect(() => h.getState()).toThrow(/the head was disposed/);
    expect(() => h.inFeatures).toThrow(/the head was disposed/);
  });

  it('a second call while one runs is refused clearly; dispose while running throws; all fine after it settles', async () => {
    const h: NativeHead = new Head(headOptions());
    const big = data(20_000).features;
    const p = h.predict(big);
    expect(h.busy).toBe(true);
    await expect(h.predict(big)).rejects.toThrow(/still running on this head; await it first/);
    await expect(h.trainEpoch(epoch(8))).rejects.toThrow(/still running/);
    expect(() => h.step({ ...data(2), lr: 0.1 })).toThrow(/still running/);
    expect(() => h.dispose()).toThrow(/Head.dispose: a trainEpoch\/predict call is still running; await it first/);
    const out = await p;
    expect(out.length).toBe(20_000 * 3);
    expect(h.busy).toBe(false);
    expect((await h.predict(big))).toEqual(out);
    h.dispose();
  });
});

describe('Head: absurd sizes and wrong arrays', () => {
  it('huge or inconsistent shapes at construction are clear Errors, not giant allocations', () => {
    const rss = process.memoryUsage().rss;
    expect(() => new Head(headOptions({ inFeatures: 2 ** 40 }))).toThrow(/Head/);
    expect(() => new Head(headOptions({ inFeatures: 2 ** 53 + 2 }))).toThrow(/inFeatures must be an integer/);
    expect(() => new Head(headOptions({ numOutputs: 2 ** 31 }))).toThrow(/Head/);
    expect(() => new Head(headOptions({ inFeatures: 2 ** 32, numOutputs: 2 ** 32 }))).toThrow(/Head/);
    expect(() => new Head(headOptions({ inFeatures: 0 }))).toThrow(/inFeatures must be an integer >= 1/);
    expect(() => new Head(headOptions({ threads: -1 }))).toThrow(/threads must be an integer >= 0/);
    expect(() => new Head(headOptions({ dropout: Number.NaN }))).toThrow(/dropout must be finite/);
    expect(process.memoryUsage().rss - rss).toBeLessThan(256 * 2 ** 20);
  });

  it('wrong element types and detached arrays are TypeErrors naming the argument', async () => {
    const h: NativeHead = new Head(headOptions());
    const e = epoch(8);
    await expect(h.predict(new Float64Array(16) as unknown as Float32Array)).rejects.toThrow(/predict.features must be a Float32Array/);
    await expect(h.predict(new Float32Array(7))).rejects.toThrow(/7 elements, not a multiple of inFeatures = 8/);
    await expect(h.trainEpoch({ ...e, targets: new Float32Array(8) })).rejects.toThrow(/targets \(class ids for loss 'ce'\) must be a Int32Array/);
    await expect(h.trainEpoch({ ...e, order: new Uint32Array(8) as unknown as Int32Array })).rejects.toThrow(/order must be a Int32Array/);
    await expect(h.trainEpoch({ ...e, lrs: new Float32Array(2) as unknown as Float64Array })).rejects.toThrow(/lrs must be a Float64Array/);
    await expect(h.trainEpoch({ ...e, lrs: new Float64Array(3) })).rejects.toThrow(/lrs has 3 entries, expected ceil\(order.length \/ batchSize\) = 2/);
    await expect(h.trainEpoch({ ...e, batchSize: 0 })).rejects.toThrow(/batchSize must be an integer >= 1/);
    const f = data(2).features;
    structuredClone(f.buffer, { transfer: [f.buffer] });
    await expect(h.predict(f)).rejects.toThrow(/predict.features's ArrayBuffer is detached/);
    const t = e.targets.slice();
    structuredClone(t.buffer, { transfer: [t.buffer] });
    expect(() => h.step({ features: e.features, targets: t, lr: 0.1 })).toThrow(/targets.*ArrayBuffer is detached/);
    expect(h.busy).toBe(false);
    await expect(h.predict(data(2).features)).resolves.toHaveLength(6);
    h.dispose();
  });
});

/**
 * The CUDA backend on a machine WITHOUT a GPU (CI: nvcc installed, no driver): the addon loads,
 * cudaInfo() explains why there is no device, constructing a CudaEncoder is a JS Error (never an
 * abort), `--device cuda` exits 2 with the runtime's reason, `--device auto` falls back to the CPU
 * and says so. And the host-side logic the GPU path depends on (packed variable-length layout,
 * validation, bf16 rounding, workspace sizing) checked against independent JS references.
 *
 * On a machine WITH a usable GPU the no-GPU expectations are skipped (device-cuda-golden.test.ts
 * covers the GPU itself).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { readModelSpec } from '../src/model/config.js';
import { loadWeights } from '../src/model/load.js';
import type { NativeEncoderConfig, NativeForwardRequest } from '../src/native/addon-types.js';
import { loadAddon } from '../src/native/addon.js';
import { generateModelFolder } from '../src/model/generate.js';
import { runCli } from './helpers/cli.js';
import { sharedPath } from './helpers/shared.js';

const addon = loadAddon();
const info = addon.cudaInfo!();
const gpu = info.compiled && info.error === undefined && info.devices.some((d) => d.usable);
const work = mkdtempSync(join(tmpdir(), 'edu-cuda-build-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function goldenNative(name: string) {
  const spec = await readModelSpec(sharedPath('golden', name));
  const weights = await loadWeights(spec);
  const c = spec.config;
  const config: NativeEncoderConfig = {
    vocabSize: c.vocabSize, hiddenSize: c.hiddenSize, embeddingSize: c.embeddingSize, numLayers: c.numLayers,
    numHeads: c.numHeads, intermediateSize: c.intermediateSize, maxPositions: c.maxPositions,
    typeVocabSize: c.typeVocabSize, layerNormEps: c.layerNormEps, padTokenId: c.padTokenId,
    positionStyle: c.positionStyle, hasPooler: spec.hasPooler, head: spec.head.kind,
    numLabels: spec.head.kind === 'none' ? 0 : spec.head.numLabels,
  };
  return { config, tensors: Object.fromEntries(weights.tensors) };
}

describe('CUDA backend in this build', () => {
  it('the addon exports cudaInfo, CudaEncoder and cudaDebug', () => {
    expect(typeof addon.cudaInfo).toBe('function');
    expect(typeof addon.CudaEncoder).toBe('function');
    expect(typeof addon.cudaDebug?.planPacking).toBe('function');
    expect(info.devices.length).toBe(info.deviceCount);
    if (info.compiled) expect(info.runtimeVersion).toBeGreaterThanOrEqual(12000);
  });

  it.skipIf(gpu)('without a GPU, cudaInfo() says why (and does not throw)', () => {
    expect(info.deviceCount).toBe(0);
    if (info.compiled) expect(info.error).toMatch(/^cudaGetDeviceCount: cudaError\w+: \S/);
    else expect(info.error).toMatch(/no CUDA backend/);
  });

  it.skipIf(gpu)('new CudaEncoder() without a GPU is a JS Error naming the CUDA call, never an abort', async () => {
    const { config, tensors } = await goldenNative('bert-tiny');
    const make = () => new addon.CudaEncoder!(config, tensors, { precision: 'fp32' });
    expect(make).toThrow(info.compiled ? /cudaGetDeviceCount\(&count\) failed: cudaError\w+: / : /no CUDA backend/);
    // The addon is still usable afterwards.
    expect(addon.cudaInfo!().deviceCount).toBe(0);
  });

  it('bad options and bad configs are errors before any device work', async () => {
    const { config, tensors } = await goldenNative('bert-tiny');
    if (info.compiled) {
      expect(() => new addon.CudaEncoder!(config, tensors, { precision: 'fp16' as 'bf16' })).toThrow(/options.precision must be 'fp32' or 'bf16', got 'fp16'/);
      expect(() => new addon.CudaEncoder!(config, {}, {})).toThrow(/missing weight 'embeddings.word_embeddings.weight'/);
    }
    expect(() => addon.cudaDebug!.workspaceBytesPerToken({ ...config, hiddenSize: 60, numHeads: 4 }, 'bf16'))
      .toThrow(/bf16 on CUDA needs config.hiddenSize to be a multiple of 8, got 60/);
    expect(() => addon.cudaDebug!.workspaceBytesPerToken({ ...config, hiddenSize: 512, numHeads: 2 }, 'fp32'))
      .toThrow(/head dims up to 128, got 256/);
  });

  it.skipIf(gpu)('edu-train embed --device cuda exits 2 with the runtime reason; auto falls back and says so', async () => {
    const model = join(work, 'bert');
    generateModelFolder(model, { modelType: 'bert', preset: 'tiny', tokenizerDir: sharedPath('models', 'tokenizer-only', 'all-minilm-l6-v2'), seed: 3 });
    const input = join(work, 'texts.jsonl');
    writeFileSync(input, ['a short text', 'another, slightly longer text here'].map((t) => JSON.stringify({ text: t })).join('\n') + '\n');
    const r = await runCli(['embed', '--model-dir', model, '--input', input, '--output', join(work, 'o.jsonl'), '--device', 'cuda', '--quiet']);
    expect(r.code).toBe(2);
    if (info.compiled) expect(r.stderr).toMatch(/--device cuda: no usable NVIDIA GPU \(cudaGetDeviceCount: cudaError\w+: [^)]+\)/);
    expect(r.stderr).toMatch(/no CUDA backend/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // a usage error: no stack trace
    const r1 = await runCli(['embed', '--model-dir', model, '--input', input, '--output', join(work, 'o.jsonl'), '--device', 'cuda:1', '--quiet']);
    expect(r1.code).toBe(2);
    expect(r1.stderr).toMatch(/--device cuda:1: /);
    const auto = await runCli(['embed', '--model-dir', model, '--input', input, '--output', join(work, 'o2.jsonl'), '--device', 'auto', '--quiet']);
    expect(auto.code).toBe(0);
    expect(auto.stderr).toMatch(/\[edu-train\] --device auto: using the CPU \((no usable NVIDIA GPU|this build).*kernels: cpu \w+ x \d+ threads/);
  });
});

// ---------------------------------------------------------------- packed layout vs a JS reference

const tinyConfig = (style: 'absolute' | 'roberta', pad: number): NativeEncoderConfig => ({
  vocabSize: 50, hiddenSize: 16, embeddingSize: 16, numLayers: 1, numHeads: 2, intermediateSize: 32, maxPositions: 80,
  typeVocabSize: 2, layerNormEps: 1e-12, padTokenId: pad, positionStyle: style, hasPooler: true, head: 'bert', numLabels: 1,
});

function refPositions(style: string, ids: Int32Array, B: number, L: number, pad: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < B; b++) {
    let count = 0;
    for (let t = 0; t < L; t++) {
      const id = ids[b * L + t];
      if (style === 'absolute') out.push(t);
      else if (id !== pad) out.push(pad + ++count);
      else out.push(pad);
    }
  }
  return out;
}

describe('cudaDebug.planPacking: the packed variable-length layout', () => {
  it('property: rows, keys, cu_seqlens, positions, cls rows and tiles match a JS reference', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 40 }), fc.constantFrom('absolute', 'roberta'),
      fc.record({ lastHiddenState: fc.boolean(), meanPooled: fc.boolean(), cls: fc.boolean(), pooler: fc.boolean(), logits: fc.boolean() }),
      fc.integer({ min: 1, max: 70 }), fc.integer(), (B, L, style, outputs, tileQ, seed) => {
        let s = seed >>> 0;
        const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
        const pad = style === 'roberta' ? 1 : 0;
        const n = B * L;
        const ids = new Int32Array(n), mask = new Int32Array(n), types = new Int32Array(n);
        for (let b = 0; b < B; b++) {
          const kind = rnd();  // right padding, left padding, random holes, all masked
          const len = Math.floor(rnd() * (L + 1));
          for (let t = 0; t < L; t++) {
            const i = b * L + t;
            const m = kind < 0.4 ? t < len : kind < 0.6 ? t >= L - len : kind < 0.9 ? rnd() < 0.6 : false;
            mask[i] = m ? 1 : 0;
            ids[i] = m ? 2 + Math.floor(rnd() * 48) : pad;
            types[i] = rnd() < 0.3 ? 1 : 0;
          }
        }
        const cfg = tinyConfig(style as 'absolute' | 'roberta', pad);
        const req: NativeForwardRequest = { inputIds: ids, attentionMask: mask, tokenTypeIds: types, batch: B, seqLen: L, outputs };
        const p = addon.cudaDebug!.planPacking(cfg, req, tileQ);
        const pos = refPositions(style, ids, B, L, pad);
        const needCls = outputs.cls || outputs.pooler || outputs.logits;
        const rows: number[] = [];
        const tiles: number[][] = [];
        let all = true;
        for (let b = 0; b < B; b++) {
          expect(p.seqStart[b]).toBe(rows.length);
          const vis = [...Array(L).keys()].filter((t) => mask[b * L + t] === 1);
          expect(p.seqVisible[b]).toBe(vis.length);
          const uniform = vis.length === 0;
          expect(p.seqUniform[b]).toBe(uniform ? 1 : 0);
          const seqRows = uniform ? [...Array(L).keys()]
            : [...vis, ...[...Array(L).keys()].filter((t) => mask[b * L + t] === 0 && (outputs.lastHiddenState || (t === 0 && needCls)))];
          if (seqRows.length < L) all = false;
          expect(p.seqKeys[b]).toBe(uniform ? L : vis.length);
          const start = rows.length;
          for (const t of seqRows) {
            const r = rows.length;
            expect(p.rowOf[b * L + t]).toBe(r);
            expect(p.ids[r]).toBe(ids[b * L + t]);
            expect(p.types[r]).toBe(types[b * L + t]);
            expect(p.pos[r]).toBe(pos[b * L + t]);
            rows.push(b * L + t);
          }
          expect(p.clsRow[b]).toBe(p.rowOf[b * L]);
          if (needCls) expect(p.clsRow[b]).toBeGreaterThanOrEqual(0);
          for (let q = start; q < rows.length; q += tileQ) tiles.push([q, Math.min(tileQ, rows.length - q), start, uniform ? L : vis.length, uniform ? 1 : 0]);
        }
        expect(p.tokens).toBe(rows.length);
        expect(p.seqStart[B]).toBe(rows.length);
        expect(p.allPositions).toBe(all);
        if (outputs.lastHiddenState) expect(p.tokens).toBe(n);
        expect([...p.rowOf].filter((r) => r >= 0).length).toBe(rows.length);
        // Tiles: the same set, longest key range first (stable).
        const got: number[][] = [];
        for (let i = 0; i < p.tiles.length; i += 5) got.push([...p.tiles.subarray(i, i + 5)]);
        for (let i = 1; i < got.length; i++) expect(got[i - 1][3]).toBeGreaterThanOrEqual(got[i][3]);
        const key = (t: number[]) => t.join(',');
        expect(got.map(key).sort()).toEqual(tiles.map(key).sort());
      }), { numRuns: 300 });
  });

  it('rejects bad requests with the CPU encoder\'s messages', async () => {
    const { config, tensors } = await goldenNative('bert-tiny');
    const cpu = new addon.Encoder(config, tensors, { threads: 1 });
    const ok = { inputIds: Int32Array.from([101, 5, 102, 0]), attentionMask: Int32Array.from([1, 1, 1, 0]), batch: 1, seqLen: 4, outputs: { meanPooled: true } };
    const bads: NativeForwardRequest[] = [
      { ...ok, inputIds: Int32Array.from([101, 5, 102]) },
      { ...ok, inputIds: Int32Array.from([101, 5, 100000, 0]) },
      { ...ok, attentionMask: Int32Array.from([1, 2, 1, 0]) },
      { ...ok, tokenTypeIds: Int32Array.from([0, 0, 7, 0]) },
      { ...ok, outputs: { logits: true } },
      { ...ok, batch: 1, seqLen: 200, inputIds: new Int32Array(200).fill(5), attentionMask: new Int32Array(200).fill(1) },
    ];
    for (const bad of bads) {
      const cpuMsg = await cpu.forward(bad).then(() => 'resolved', (e: Error) => e.message);
      expect(cpuMsg).not.toBe('resolved');
      expect(() => addon.cudaDebug!.planPacking(config, bad)).toThrow(cpuMsg);
    }
    cpu.dispose();
  });
});

describe('bf16 rounding and workspace sizing', () => {
  function refBf16(x: number): number {
    const f = new Float32Array([x]);
    const u = new Uint32Array(f.buffer);
    if (Number.isNaN(x)) return NaN;
    const lsb = (u[0] >>> 16) & 1;
    u[0] = ((u[0] + 0x7fff + lsb) >>> 16) << 16;
    return f[0];
  }
  it('round to nearest even, like __float2bfloat16_rn', () => {
    fc.assert(fc.property(fc.float({ noDefaultInfinity: false }), (x) => {
      const got = addon.cudaDebug!.bf16Round(Float32Array.from([x]))[0];
      const want = refBf16(Math.fround(x));
      expect(Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want))).toBe(true);
    }), { numRuns: 2000 });
    expect([...addon.cudaDebug!.bf16Round(Float32Array.from([1.00390625, 1.01171875, 3.4e38, -0]))]).toEqual([1, 1.015625, Infinity, -0]);
  });

  it('activation bytes per token (BERT-base): bf16 ~20 KB, fp32 ~25 KB; weights', () => {
    const base: NativeEncoderConfig = {
      vocabSize: 30522, hiddenSize: 768, embeddingSize: 768, numLayers: 12, numHeads: 12, intermediateSize: 3072,
      maxPositions: 512, typeVocabSize: 2, layerNormEps: 1e-12, padTokenId: 0, positionStyle: 'absolute',
      hasPooler: true, head: 'none', numLabels: 0,
    };
    const b = addon.cudaDebug!.workspaceBytesPerToken(base, 'bf16');
    const f = addon.cudaDebug!.workspaceBytesPerToken(base, 'fp32');
    // bf16: fp32 x, x1, tmp (3 x 768 x 4) + bf16 xb, x1b, att (3 x 768 x 2) + bf16 [3072 wide] + 16 B ids.
    expect(b.perToken).toBe(3 * 768 * 4 + 2 * (768 + 2 * 768 + 3072) + 16);
    expect(f.perToken).toBe(4 * (4 * 768 + 3072) + 16);
    // 12 x (4 H^2 + 2 H I) GEMM weights in bf16 vs fp32; embeddings, biases, LN, pooler in fp32.
    const gemm = 12 * (4 * 768 * 768 + 2 * 768 * 3072);
    expect(f.weights - b.weights).toBe(2 * gemm);
  });
});

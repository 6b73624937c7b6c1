/**
 * The golden conformance suite on a CUDA GPU. Run with `npm run test:gpu` on a machine with an NVIDIA
 * GPU (sm_80+); it is not part of `npm test`, and without a usable GPU it fails (see cuda-build.test.ts
 * for the no-GPU behaviour, which `npm test` covers). Tolerances (also in scripts/gpu/README.md):
 *   - fp32 (SIMT reference path): max abs error <= atol_hint_per_output, like the CPU.
 *   - bf16 (tensor cores, bf16 weights and GEMM inputs, fp32 accumulation / residual / LayerNorm):
 *     per output, ||got - ref||_2 / ||ref||_2 <= 3e-2 and max abs error <= 0.1 x max|ref|.
 * Plus CUDA fp32 vs the CPU encoder on shapes the golden cases do not have: left padding, holes in
 * the mask, an all-masked row, ELECTRA's embedding projection, RoBERTa positions, seqcls heads.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEncoder, type ForwardOutputs } from '../../src/encoder.js';
import { generateModelFolder } from '../../src/model/generate.js';
import { loadAddon } from '../../src/native/addon.js';
import { GOLDEN_CASES, readSharedJson, sharedPath } from '../helpers/shared.js';
import { useTmpDirs } from '../helpers/tmp.js';

const info = loadAddon().cudaInfo?.();
const gpu = info !== undefined && info.compiled && info.error === undefined && info.devices.some((d) => d.usable);
if (!gpu) {
  throw new Error(`npm run test:gpu needs a usable NVIDIA GPU and a CUDA build of the addon: ${info?.error ?? 'cudaInfo() is missing (built without nvcc?)'}`);
}
const tmp = useTmpDirs('edu-cuda-golden-');

const KEYS = ['last_hidden_state', 'mean_pooled', 'mean_pooled_normalized', 'cls', 'pooler_output', 'logits'] as const;

function flatten(x: unknown): number[] {
  return Array.isArray(x) ? x.flatMap(flatten) : [x as number];
}

function errors(a: ArrayLike<number>, b: ArrayLike<number>) {
  let maxErr = 0, num = 0, den = 0, maxRef = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    if (Number.isNaN(d)) return { maxErr: Infinity, rel: Infinity, maxRef: 0 };
    maxErr = Math.max(maxErr, Math.abs(d));
    num += d * d;
    den += b[i] * b[i];
    maxRef = Math.max(maxRef, Math.abs(b[i]));
  }
  return { maxErr, rel: Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30), maxRef };
}

describe('golden suite on CUDA', () => {
  describe.each(['fp32', 'bf16'] as const)('precision %s', (precision) => {
    it.each(GOLDEN_CASES)('%s', async (name) => {
      const dir = sharedPath('golden', name);
      const inputs = JSON.parse(readFileSync(join(dir, 'inputs.json'), 'utf8'));
      const expected = readSharedJson('golden', name, 'expected.json');
      const enc = await loadEncoder(dir, { device: 'cuda', precision, withoutTokenizer: true });
      expect(enc.device).toBe('cuda');
      const got = await enc.forward(inputs);
      enc.dispose();
      for (const key of KEYS.filter((k) => k in expected)) {
        const a = (got as unknown as Record<string, Float32Array>)[key];
        const b = flatten(expected[key]);
        expect(a.length, key).toBe(b.length);
        const e = errors(a, b);
        const atol = expected.atol_hint_per_output[key];
        if (precision === 'fp32') {
          expect(e.maxErr, `${name} ${key}: max abs error ${e.maxErr} vs atol ${atol}`).toBeLessThanOrEqual(atol);
        } else {
          expect(e.rel, `${name} ${key}: relative L2 error ${e.rel}`).toBeLessThanOrEqual(3e-2);
          expect(e.maxErr, `${name} ${key}: max abs error ${e.maxErr} vs 0.1 x ${e.maxRef}`).toBeLessThanOrEqual(0.1 * e.maxRef);
        }
      }
    });
  });
});

describe('CUDA fp32 vs the CPU encoder on irregular masks', () => {
  const cases = [
    { modelType: 'bert' as const, extra: {} },
    { modelType: 'roberta' as const, extra: {} },
    { modelType: 'electra' as const, extra: { embeddingSize: 32 } },
  ];
  it.each(cases)('$modelType', async ({ modelType, extra }) => {
    const dir = join(tmp.make(), modelType);
    generateModelFolder(dir, { modelType, preset: 'tiny', seed: 11, ...extra });
    const cpu = await loadEncoder(dir, { device: 'cpu', withoutTokenizer: true });
    const gpuEnc = await loadEncoder(dir, { device: 'cuda', precision: 'fp32', withoutTokenizer: true });
    const pad = cpu.spec.config.padTokenId;
    const B = 7, L = 37;
    let s = 12345;
    const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const ids: number[][] = [], mask: number[][] = [];
    for (let b = 0; b < B; b++) {
      const len = 1 + Math.floor(rnd() * L);
      const row: number[] = [], m: number[] = [];
      for (let t = 0; t < L; t++) {
        const vis = b === 0 ? true : b === 1 ? t >= L - len : b === 2 ? false : b === 3 ? rnd() < 0.5 : t < len;
        m.push(vis ? 1 : 0);
        row.push(vis ? 5 + Math.floor(rnd() * (cpu.spec.config.vocabSize - 5)) : pad);
      }
      ids.push(row);
      mask.push(m);
    }
    const a = await cpu.forward({ input_ids: ids, attention_mask: mask });
    const g = await gpuEnc.forward({ input_ids: ids, attention_mask: mask });
    for (const key of ['last_hidden_state', 'mean_pooled', 'cls', 'pooler_output', 'logits'] as const) {
      const x = (a as ForwardOutputs)[key];
      const y = (g as ForwardOutputs)[key];
      if (x === undefined) {
        expect(y, key).toBeUndefined();
        continue;
      }
      const e = errors(y!, x);
      expect(e.maxErr, `${modelType} ${key}: ${e.maxErr} vs 1e-4 x ${e.maxRef}`).toBeLessThanOrEqual(1e-4 * Math.max(e.maxRef, 1));
    }
    cpu.dispose();
    gpuEnc.dispose();
  });
});

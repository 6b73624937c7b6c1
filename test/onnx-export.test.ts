/**
 * ONNX export: onnxruntime-node running the exported graph must reproduce
 *  (a) the golden PyTorch references (../shared/golden) within atol_hint_per_output, for every case
 *      and every pooling, and
 *  (b) edu-train's own forward() on the same inputs. Both are float32 with different summation
 *      orders (ORT's MLAS GEMM and fused kernels vs ours), so the tolerance is relative:
 *      |ort - edu| <= 1e-5 x max|edu output| (the same form as the golden atol_hint).
 * Architectures without a golden case (ELECTRA with embeddings_project and its GELU head, RoBERTa's
 * tanh head) are checked against (b) on generated models.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadEncoder, type ForwardOutputs } from '../src/encoder.js';
import { generateModelFolder } from '../src/model/generate.js';
import { exportOnnx } from '../src/onnx/export.js';
import { concatEncoded, ProtoWriter } from '../src/onnx/protobuf.js';
import { createOrtSession, ortFeeds, runOrt } from '../src/onnx/session.js';
import { UsageError } from '../src/util/errors.js';
import { GOLDEN_CASES, readSharedJson, sharedPath } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-onnx-');
const REL_TOL_VS_EDU = 1e-5;

interface Inputs { input_ids: number[][]; attention_mask: number[][]; token_type_ids: number[][] }

const flat = (x: unknown): number[] => (Array.isArray(x) ? x.flatMap(flat) : [x as number]);
const maxAbs = (a: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
};
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Exports `dir` with `pooling` and runs ORT on `inputs`; returns every graph output. */
async function runExported(dir: string, pooling: 'none' | 'mean' | 'cls' | 'pooler', inputs: Inputs) {
  const path = join(tmp.make(), 'model.onnx');
  await exportOnnx(dir, path, { pooling });
  const session = await createOrtSession(path, { threads: 1 });
  try {
    const i32 = (rows: number[][]) => Int32Array.from(rows.flat());
    const feeds = await ortFeeds({
      inputIds: i32(inputs.input_ids), attentionMask: i32(inputs.attention_mask), tokenTypeIds: i32(inputs.token_type_ids),
      batch: inputs.input_ids.length, seqLen: inputs.input_ids[0].length,
    });
    return { names: session.outputNames, out: await runOrt(session, feeds, session.outputNames) };
  } finally {
    await session.release();
  }
}

const EDU_KEY: Record<string, keyof ForwardOutputs> = {
  last_hidden_state: 'last_hidden_state', mean_pooled: 'mean_pooled', cls: 'cls', pooler_output: 'pooler_output', logits: 'logits',
};

async function eduForward(dir: string, inputs: Inputs): Promise<ForwardOutputs> {
  const enc = await loadEncoder(dir, { withoutTokenizer: true, threads: 1 });
  try {
    return await enc.forward(inputs);
  } finally {
    enc.dispose();
  }
}

function expectCloseToEdu(label: string, got: Float32Array, edu: Float32Array): void {
  const err = maxAbsDiff(got, edu);
  const tol = REL_TOL_VS_EDU * maxAbs(edu);
  expect(err, `${label}: ORT vs edu-train max abs diff ${err} > ${tol}`).toBeLessThanOrEqual(tol);
}

describe.each(GOLDEN_CASES)('exported %s', (name) => {
  const dir = sharedPath('golden', name);
  const inputs = readSharedJson<Inputs>('golden', name, 'inputs.json');
  const expected = readSharedJson('golden', name, 'expected.json');
  let edu: ForwardOutputs;
  beforeAll(async () => {
    edu = await eduForward(dir, inputs);
  });

  it.each(['none', 'mean', 'cls', 'pooler'] as const)('pooling %s matches the golden reference and edu-train', async (pooling) => {
    const { names, out } = await runExported(dir, pooling, inputs);
    const wantNames = ['last_hidden_state', ...(pooling === 'none' ? [] : [{ mean: 'mean_pooled', cls: 'cls', pooler: 'pooler_output' }[pooling]]),
      ...('logits' in expected ? ['logits'] : [])];
    expect([...names]).toEqual(wantNames);
    for (const key of names) {
      const err = maxAbsDiff(out[key], flat(expected[key]));
      const atol = expected.atol_hint_per_output[key];
      expect(err, `${name} ${key}: max abs error ${err} vs atol ${atol}`).toBeLessThanOrEqual(atol);
      expectCloseToEdu(`${name} ${key}`, out[key], edu[EDU_KEY[key]] as Float32Array);
    }
  });
});

describe('architectures without a golden case (against edu-train forward)', () => {
  // Rows of different true lengths; padding carries the pad id, as a tokenizer writes it.
  function inputsFor(pad: number, typeIds: boolean): Inputs {
    const lengths = [9, 6, 3];
    const S = 9;
    const ids = lengths.map((n, r) => Array.from({ length: S }, (_, t) => (t < n ? 5 + ((r * 37 + t * 11) % 900) : pad)));
    const mask = lengths.map((n) => Array.from({ length: S }, (_, t) => (t < n ? 1 : 0)));
    const types = lengths.map((n) => Array.from({ length: S }, (_, t) => (typeIds && t >= 4 && t < n ? 1 : 0)));
    return { input_ids: ids, attention_mask: mask, token_type_ids: types };
  }

  it.each([
    ['electra (embedding 32 -> hidden 64, seqcls GELU head)', { modelType: 'electra', embeddingSize: 32, head: 'seqcls', numLabels: 3 }, 0, true],
    ['roberta (seqcls tanh head, 2 labels)', { modelType: 'roberta', head: 'seqcls', numLabels: 2 }, 1, false],
    ['xlm-roberta (no head)', { modelType: 'xlm-roberta' }, 1, false],
    ['bert (seqcls, 4 labels)', { modelType: 'bert', head: 'seqcls', numLabels: 4 }, 0, true],
  ] as const)('%s', async (_label, options, pad, typeIds) => {
    const dir = join(tmp.make(), 'model');
    generateModelFolder(dir, { preset: 'tiny', seed: 11, ...options });
    const inputs = inputsFor(pad, typeIds);
    const edu = await eduForward(dir, inputs);
    for (const pooling of ['mean', 'cls'] as const) {
      const { names, out } = await runExported(dir, pooling, inputs);
      for (const key of names) expectCloseToEdu(`${options.modelType} ${key}`, out[key], edu[EDU_KEY[key]] as Float32Array);
      expect(names.includes('logits')).toBe('head' in options);
    }
  });
});

describe('export mechanics', () => {
  let dir: string;
  beforeAll(() => {
    dir = join(tmp.make(), 'tiny');
    generateModelFolder(dir, { preset: 'tiny', seed: 3 });
  });

  it('has dynamic batch and sequence axes: one session runs several shapes', async () => {
    const path = join(tmp.make(), 'm.onnx');
    await exportOnnx(dir, path, { pooling: 'mean' });
    const session = await createOrtSession(path, { threads: 1 });
    try {
      for (const [B, S] of [[1, 5], [3, 17], [2, 128]]) {
        const n = B * S;
        const feeds = await ortFeeds({
          inputIds: Int32Array.from({ length: n }, (_, i) => 100 + (i % 700)), attentionMask: new Int32Array(n).fill(1),
          tokenTypeIds: new Int32Array(n), batch: B, seqLen: S,
        });
        const out = await runOrt(session, feeds, ['last_hidden_state', 'mean_pooled']);
        expect(out.last_hidden_state.length).toBe(n * 64);
        expect(out.mean_pooled.length).toBe(B * 64);
      }
    } finally {
      await session.release();
    }
  });

  it('writes atomically: no temp file is left, and a failed write leaves nothing at the target', async () => {
    const out = tmp.make();
    await exportOnnx(dir, join(out, 'a.onnx'));
    expect(readdirSync(out)).toEqual(['a.onnx']);
    const bytes = readFileSync(join(out, 'a.onnx'));
    expect(bytes.length).toBeGreaterThan(4 * 64 * 64); // the weights are in there
    await expect(exportOnnx(dir, join(out, 'missing-dir', 'b.onnx'))).rejects.toThrow();
    expect(existsSync(join(out, 'missing-dir'))).toBe(false);
  });

  it('rejects options it cannot honour with a usage error', async () => {
    const out = join(tmp.make(), 'x.onnx');
    await expect(exportOnnx(dir, out, { opset: 13 })).rejects.toThrow(UsageError);
    await expect(exportOnnx(dir, out, { pooling: 'max' as never })).rejects.toThrow(/pooling/);
    const noPooler = join(tmp.make(), 'electra');
    generateModelFolder(noPooler, { modelType: 'electra', preset: 'tiny' });
    await expect(exportOnnx(noPooler, out, { pooling: 'pooler' })).rejects.toThrow(/pooler/);
    expect(existsSync(out)).toBe(false);
  });

  it('protobuf writer: varints, negative int64 and nested lengths follow the wire format', () => {
    const inner = new ProtoWriter().int(1, 300).finish();
    const bytes = concatEncoded(new ProtoWriter().int(2, -1).message(3, inner).finish());
    expect(Array.from(bytes)).toEqual([
      0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, // field 2 varint -1 (10 bytes)
      0x1a, 0x03, 0x08, 0xac, 0x02, // field 3 length 3: field 1 varint 300
    ]);
  });
});

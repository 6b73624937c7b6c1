/**
 * `edu-train bench` on tiny generated models: the report's fields are present and consistent with
 * each other, the two engines agree on the pooled outputs, and unsupported requests are refused.
 * No timing assertions: the machine is shared, so only the arithmetic between fields is checked.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateModelFolder } from '../src/model/generate.js';
import { runCli } from './helpers/cli.js';
import { sharedPath } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-bench-');

function expectConsistentEngine(e: any, realTokens: number, batches: number, iters: number): void {
  expect(e.iterationMs).toHaveLength(iters);
  for (const ms of e.iterationMs) expect(ms).toBeGreaterThan(0);
  const sorted = [...e.iterationMs].sort((a: number, b: number) => a - b);
  expect(e.msPerBatchMin).toBeCloseTo(sorted[0] / batches, 6);
  expect(e.msPerBatchMin).toBeLessThanOrEqual(e.msPerBatchMedian);
  expect(e.tokensPerSecond).toBeCloseTo(realTokens / ((e.msPerBatchMedian * batches) / 1000), 3);
  expect(e.tokensPerSecondBest).toBeGreaterThanOrEqual(e.tokensPerSecond);
}

describe('edu-train bench', () => {
  let bertDir: string;
  beforeAll(() => {
    bertDir = join(tmp.make(), 'bert');
    generateModelFolder(bertDir, { preset: 'tiny', seed: 5 });
  });

  it('--json: random B x S inputs, fields present and consistent, outputs agree', async () => {
    const r = await runCli(['bench', '--model-dir', bertDir, '--batch-size', '3', '--seq-len', '24', '--threads', '1',
      '--warmup', '1', '--iters', '3', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.model).toMatchObject({ architecture: 'BertModel', hidden: 64, layers: 2, heads: 4, intermediate: 256 });
    expect(j.input).toMatchObject({ kind: 'random', rows: 3, batches: 1, batchSize: 3, seqLen: 24, realTokens: 72, paddedTokens: 72 });
    expect(j).toMatchObject({ dtype: 'fp32', threads: 1, warmup: 1, iters: 3 });
    expect(typeof j.machine.cpuModel).toBe('string');
    expect(j.machine.logicalCpus).toBeGreaterThanOrEqual(1);
    expect(['avx512', 'avx2', 'scalar']).toContain(j.machine.isa);
    expect(j.onnxRuntimeVersion).toMatch(/^\d+\.\d+/);
    expectConsistentEngine(j.eduTrain, 72, 1, 3);
    expectConsistentEngine(j.onnxRuntime, 72, 1, 3);
    expect(Number.isFinite(j.ratio) && j.ratio > 0).toBe(true);
    expect(j.ratio).toBeCloseTo(j.eduTrain.tokensPerSecond / j.onnxRuntime.tokensPerSecond, 6);
    expect(j.ratioBest).toBeCloseTo(j.eduTrain.tokensPerSecondBest / j.onnxRuntime.tokensPerSecondBest, 6);
    expect(j.pooled.maxAbsDiff).toBeLessThan(1e-4);
    expect(j.pooled.cosineMin).toBeGreaterThan(0.99999);
    expect(j.pooled.cosineMean).toBeGreaterThanOrEqual(j.pooled.cosineMin);
  });

  it('--input texts: length-bucketed batches, padding counted, human report printed', async () => {
    const dir = join(tmp.make(), 'roberta');
    generateModelFolder(dir, {
      modelType: 'roberta', preset: 'tiny', seed: 2,
      tokenizerDir: sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer'),
    });
    const input = join(tmp.make(), 'texts.jsonl');
    const texts = ['짧다.', '이번 정책은 내년 상반기부터 시행될 것으로 예상된다.', 'English words 한국어 문장', '비가 오면 경기는 취소될 것이다.', '그는 물었다.'];
    writeFileSync(input, texts.map((t, i) => JSON.stringify({ id: i, body: t })).join('\n') + '\n');
    const json = await runCli(['bench', '--model-dir', dir, '--input', input, '--text-column', 'body', '--batch-size', '2',
      '--threads', '1', '--warmup', '0', '--iters', '2', '--json']);
    expect(json.code, json.stderr).toBe(0);
    const j = JSON.parse(json.stdout);
    expect(j.input).toMatchObject({ kind: 'texts', source: input, rows: 5, batches: 3, batchSize: 2 });
    expect(j.input.paddedTokens).toBeGreaterThanOrEqual(j.input.realTokens);
    expectConsistentEngine(j.eduTrain, j.input.realTokens, 3, 2);
    expect(j.pooled.maxAbsDiff).toBeLessThan(1e-4);

    const human = await runCli(['bench', '--model-dir', dir, '--input', input, '--text-column', 'body', '--threads', '1', '--iters', '1']);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/5 texts from .*texts\.jsonl, 1 length-bucketed batches/);
    expect(human.stdout).toMatch(/edu-train\s+[\d,]+\s+[\d,]+\s+[\d.]+\s+[\d.]+/);
    expect(human.stdout).toMatch(/onnxruntime \d/);
    expect(human.stdout).toMatch(/ratio edu-train \/ onnxruntime: \d+\.\d+x/);
    expect(human.stdout).toMatch(/max abs diff \d\.\d+e-\d+, cosine min/);
    expect(human.stderr).toMatch(/iteration 1: onnxruntime/);
  });

  it('refuses contradictory input flags (--dtype bf16 runs: test/bf16.test.ts)', async () => {
    const both = await runCli(['bench', '--model-dir', bertDir, '--input', 'x.jsonl', '--seq-len', '8']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--seq-len is for random inputs/);
    const tooLong = await runCli(['bench', '--model-dir', bertDir, '--seq-len', '4096']);
    expect(tooLong.code).toBe(2);
    expect(tooLong.stderr).toMatch(/longer than the model allows/);
  });
});

/**
 * GPU memory policy (src/device/batching.ts): token-budget batches sized from free memory, and
 * halving + retry on out-of-memory, exercised with a fake encoder that throws a CUDA OOM error
 * above a token size. Also checks Encoder-level behaviour stays the fixed-batch CPU behaviour when
 * no budget is set.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  defaultMaxBatchTokens, isOutOfMemory, nextBatchEnd, planTokenBatches, runBatches, type OomEvent,
} from '../src/device/batching.js';

function cudaOom(): Error {
  const e = new Error('CUDA out of memory: encoder.cu:123: cudaMalloc(&p_, want) failed: cudaErrorMemoryAllocation: out of memory');
  (e as Error & { code: string }).code = 'EDU_CUDA_OOM';
  return e;
}

/** A fake encoder: forward over rows [start, end) of `lengths` throws OOM above `limit` padded tokens. */
function fakeEncoder(lengths: number[], limit: number) {
  const seen: Array<[number, number]> = [];
  const done = new Array<number>(lengths.length).fill(0);
  const run = async (start: number, end: number) => {
    const tokens = (end - start) * Math.max(...lengths.slice(start, end));
    if (tokens > limit) throw cudaOom();
    seen.push([start, end]);
    for (let i = start; i < end; i++) done[i]++;
  };
  return { run, seen, done };
}

describe('token budget', () => {
  it('defaultMaxBatchTokens = free x 0.8 / bytesPerToken, multiple of 256, clamped', () => {
    // 80 GB free, 20 KB/token (BERT-base bf16) -> 3.2M tokens, clamped to 1M.
    expect(defaultMaxBatchTokens({ freeBytes: 80e9, bytesPerToken: 20_000 })).toBe(1 << 20);
    expect(defaultMaxBatchTokens({ freeBytes: 1e9, bytesPerToken: 20_000 })).toBe(39936); // floor(40000/256)*256
    expect(defaultMaxBatchTokens({ freeBytes: 1e6, bytesPerToken: 20_000 })).toBe(256);
    expect(defaultMaxBatchTokens({ freeBytes: 1e9, bytesPerToken: 0 })).toBe(256);
    expect(defaultMaxBatchTokens({ freeBytes: 1e9, bytesPerToken: 1000, safety: 0.5, max: 1e6 })).toBe(499968);
  });

  it('batches respect rows x longest <= budget and the row cap, longest first', () => {
    const lengths = [512, 500, 300, 300, 128, 64, 64, 32, 32, 32];
    expect(planTokenBatches(lengths, 1024)).toEqual([[0, 2], [2, 5], [5, 10]]);
    expect(planTokenBatches(lengths, 1024, 2)).toEqual([[0, 2], [2, 4], [4, 6], [6, 8], [8, 10]]);
    // A row longer than the budget still runs (alone).
    expect(planTokenBatches([600, 10], 512)).toEqual([[0, 1], [1, 2]]);
    expect(nextBatchEnd([5], 0, 1, 1)).toBe(1);
  });

  it('property: batches cover every row once, in order, within budget unless a single row', () => {
    fc.assert(fc.property(
      fc.array(fc.integer({ min: 1, max: 512 }), { minLength: 1, maxLength: 200 }),
      fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 64 }),
      (raw, budget, maxRows) => {
        const lengths = [...raw].sort((a, b) => b - a);
        const batches = planTokenBatches(lengths, budget, maxRows);
        let next = 0;
        for (const [s, e] of batches) {
          expect(s).toBe(next);
          expect(e).toBeGreaterThan(s);
          expect(e - s).toBeLessThanOrEqual(maxRows);
          if (e - s > 1) expect((e - s) * lengths[s]).toBeLessThanOrEqual(budget);
          next = e;
        }
        expect(next).toBe(lengths.length);
      }));
  });
});

describe('out-of-memory: halve, retry, report', () => {
  it('a fake encoder that OOMs above 1000 tokens: every row is done exactly once, budget halves', async () => {
    const lengths = new Array(64).fill(128); // 8192 padded tokens in one batch of 64
    const enc = fakeEncoder(lengths, 1000);
    const events: OomEvent[] = [];
    const stats = await runBatches({ lengths, maxTokens: 8192, maxRows: 256, onOom: (e) => events.push(e) }, enc.run);
    expect(enc.done.every((d) => d === 1)).toBe(true);
    // 64 rows (8192) -> 32 (4096) -> 16 (2048) -> 8 (1024) -> 4 rows (512 tokens) fit.
    expect(events.map((e) => e.rows)).toEqual([64, 32, 16, 8]);
    expect(events.map((e) => e.newMaxTokens)).toEqual([4096, 2048, 1024, 512]);
    expect(events[0].message).toMatch(/out of memory on a batch of 64 sequences \(8192 padded tokens\); halving to 32 sequences \/ 4096 tokens/);
    expect(stats.oomRetries).toBe(4);
    expect(stats.finalMaxTokens).toBe(512);
    // Later batches use the reduced budget directly: no further OOMs.
    expect(enc.seen.every(([s, e]) => (e - s) * 128 <= 1000)).toBe(true);
    expect(stats.batches).toBe(16);
  });

  it('mixed lengths: retries only where needed, output order preserved', async () => {
    const lengths = [512, 512, 256, 256, 256, 256, 64, 64, 64, 64, 64, 64, 64, 64];
    const enc = fakeEncoder(lengths, 600);
    const events: OomEvent[] = [];
    await runBatches({ lengths, maxTokens: 2048, maxRows: 32, onOom: (e) => events.push(e) }, enc.run);
    expect(enc.done.every((d) => d === 1)).toBe(true);
    expect(events.length).toBeGreaterThan(0);
    let next = 0;
    for (const [s, e] of enc.seen) {
      expect(s).toBe(next);
      next = e;
    }
  });

  it('a single sequence that does not fit is an error naming its size', async () => {
    const enc = fakeEncoder([2048, 16], 1000);
    await expect(runBatches({ lengths: [2048, 16], maxTokens: 4096, maxRows: 8 }, enc.run))
      .rejects.toThrow(/out of memory even for a single sequence of 2048 tokens: CUDA out of memory/);
  });

  it('other errors propagate untouched (no retry)', async () => {
    let calls = 0;
    const err = new Error('inputIds[3] = 99999 is out of range');
    await expect(runBatches({ lengths: [4, 4, 4], maxTokens: 100, maxRows: 8 }, async () => {
      calls++;
      throw err;
    })).rejects.toBe(err);
    expect(calls).toBe(1);
  });

  it('without a token budget: fixed batches of maxRows (the CPU behaviour)', async () => {
    const seen: Array<[number, number]> = [];
    const stats = await runBatches({ lengths: new Array(70).fill(512), maxRows: 32 }, async (s, e) => { seen.push([s, e]); });
    expect(seen).toEqual([[0, 32], [32, 64], [64, 70]]);
    expect(stats.finalMaxTokens).toBeUndefined();
  });

  it('isOutOfMemory: code EDU_CUDA_OOM or an out-of-memory message', () => {
    expect(isOutOfMemory(cudaOom())).toBe(true);
    expect(isOutOfMemory(new Error('out of memory in Encoder.forward (batch 4 x seqLen 8)'))).toBe(true);
    expect(isOutOfMemory(new Error('cudaErrorIllegalAddress'))).toBe(false);
    expect(isOutOfMemory('out of memory')).toBe(false);
    expect(isOutOfMemory(null)).toBe(false);
  });

  it('rejects bad options', async () => {
    await expect(runBatches({ lengths: [1], maxRows: 0 }, async () => {})).rejects.toThrow(RangeError);
    await expect(runBatches({ lengths: [1], maxRows: 1, maxTokens: 0 }, async () => {})).rejects.toThrow(RangeError);
  });
});

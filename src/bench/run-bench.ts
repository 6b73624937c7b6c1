/**
 * `edu-train bench`: edu-train's encoder against ONNX Runtime on the same weights (exported by
 * src/onnx/export.ts) and the same batches. Iterations alternate between the engines, so slow
 * phases of a shared machine hit both rather than one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEncoder, type Encoder } from '../encoder.js';
import type { CpuDtype, CpuIsa } from '../native/addon-types.js';
import { exportOnnx } from '../onnx/export.js';
import { createOrtSession } from '../onnx/session.js';
import type { Encoded } from '../tokenize/tokenizer.js';
import { UsageError } from '../util/errors.js';
import { eduEngine, ortEngine, type Engine } from './engines.js';
import { bucketBatches, randomRows, type BenchBatch } from './inputs.js';
import { machineInfo, type MachineInfo } from './machine.js';
import { agreement, summarize, type Agreement } from './stats.js';

export type BenchInput =
  | { kind: 'random'; batchSize: number; seqLen: number }
  | { kind: 'texts'; texts: readonly string[]; batchSize: number; maxLength?: number; source: string };

/** Pause before each timed pass; not counted. */
const SETTLE_MS = 250;

export interface BenchOptions {
  modelDir: string;
  input: BenchInput;
  threads?: number;
  isa?: CpuIsa;
  /** edu-train's CPU arithmetic (default fp32); ONNX Runtime always runs the fp32 graph. */
  dtype?: CpuDtype;
  warmup: number;
  iters: number;
}

export interface EngineResult {
  /** Real (unpadded) tokens per second, from the median / the fastest iteration. */
  tokensPerSecond: number;
  tokensPerSecondBest: number;
  msPerBatchMedian: number;
  msPerBatchMin: number;
  /** Wall time of each timed iteration (all batches once), ms. */
  iterationMs: number[];
  /**
   * CPU time of this process during each iteration (user + system, all threads), ms. Less disturbed
   * than wall time by other work on a shared machine; includes thread-pool spinning.
   */
  iterationCpuMs: number[];
}

export interface BenchResult {
  model: { dir: string; architecture: string; hidden: number; layers: number; heads: number; intermediate: number };
  input: { kind: 'random' | 'texts'; source?: string; rows: number; batches: number; batchSize: number; seqLen?: number;
    realTokens: number; paddedTokens: number };
  /** edu-train's arithmetic; ONNX Runtime is always fp32, so `pooled` is bf16-vs-fp32 when this is bf16. */
  dtype: CpuDtype;
  threads: number;
  warmup: number;
  iters: number;
  machine: MachineInfo & { isa: string };
  onnxRuntimeVersion: string;
  eduTrain: EngineResult;
  onnxRuntime: EngineResult;
  /** edu-train tokens/s divided by ONNX Runtime tokens/s (median iterations; > 1 = edu-train faster). */
  ratio: number;
  ratioBest: number;
  /** Mean-pooled outputs of the two engines on the same batches. */
  pooled: Agreement;
}

function rowsFor(input: BenchInput, encoder: Encoder): Promise<Encoded[]> | Encoded[] {
  const c = encoder.spec.config;
  if (input.kind === 'random') {
    const limit = c.maxPositions - c.positionOffset;
    if (input.seqLen > limit) throw new UsageError(`--seq-len ${input.seqLen} is longer than the model allows (${limit} tokens)`);
    return randomRows(input.batchSize, input.seqLen, c.vocabSize, c.padTokenId);
  }
  if (!encoder.tokenizer) throw new UsageError(`--input needs a tokenizer (tokenizer.json) in ${encoder.spec.dir}`);
  if (input.texts.length === 0) throw new UsageError(`${input.source} has no texts`);
  return encoder.tokenizer.encode(input.texts);
}

/** Runs every batch once; returns the wall time and the pooled rows (concatenated in batch order). */
async function pass(engine: Engine, batches: readonly BenchBatch[], hidden: number): Promise<{ ms: number; cpuMs: number; pooled: Float32Array }> {
  const pooled = new Float32Array(batches.reduce((n, b) => n + b.batch, 0) * hidden);
  let off = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < batches.length; i++) {
    const out = await engine.run(i);
    pooled.set(out, off);
    off += out.length;
  }
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { ms, cpuMs: (c.user + c.system) / 1000, pooled };
}

function engineResult(ms: number[], cpuMs: number[], realTokens: number, nBatches: number): EngineResult {
  const s = summarize(ms);
  return {
    tokensPerSecond: realTokens / (s.medianMs / 1000),
    tokensPerSecondBest: realTokens / (s.minMs / 1000),
    msPerBatchMedian: s.medianMs / nBatches,
    msPerBatchMin: s.minMs / nBatches,
    iterationMs: ms,
    iterationCpuMs: cpuMs,
  };
}

export async function runBench(o: BenchOptions, log: (line: string) => void = () => {}): Promise<BenchResult> {
  const encoder = await loadEncoder(o.modelDir, {
    threads: o.threads, isa: o.isa, dtype: o.dtype, withoutTokenizer: o.input.kind === 'random',
    maxLength: o.input.kind === 'texts' ? o.input.maxLength : undefined,
  });
  const work = mkdtempSync(join(tmpdir(), 'edu-bench-'));
  let session: Awaited<ReturnType<typeof createOrtSession>> | null = null;
  try {
    const spec = encoder.spec;
    const hidden = encoder.hiddenSize;
    const batches = bucketBatches(await rowsFor(o.input, encoder), o.input.batchSize, spec.config.padTokenId);
    log(`exporting ${spec.dir} to ONNX (mean pooling in the graph) ...`);
    const onnxPath = join(work, 'model.onnx');
    await exportOnnx(spec.dir, onnxPath, { pooling: 'mean' });
    session = await createOrtSession(onnxPath, { threads: encoder.threads });
    rmSync(work, { recursive: true, force: true }); // ORT holds the model in memory now
    const engines = [eduEngine(encoder, batches), await ortEngine(session, batches)];

    const first: Float32Array[] = [];
    const times: number[][] = [[], []];
    const cpuTimes: number[][] = [[], []];
    for (let it = 0; it < o.warmup + o.iters; it++) {
      const timed = it >= o.warmup;
      for (let e = 0; e < engines.length; e++) {
        // Both engines' thread pools spin for a while after a run (ORT's by default): let them go idle so
        // neither engine's timed pass shares the cores with the other's leftover spinning.
        await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
        const r = await pass(engines[e], batches, hidden);
        if (it === 0) first[e] = r.pooled;
        if (timed) {
          times[e].push(r.ms);
          cpuTimes[e].push(r.cpuMs);
        }
        log(`${timed ? 'iteration' : 'warm-up'} ${timed ? it - o.warmup + 1 : it + 1}: ${engines[e].name} ${r.ms.toFixed(1)} ms (cpu ${r.cpuMs.toFixed(0)} ms)`);
      }
    }

    const realTokens = batches.reduce((n, b) => n + b.realTokens, 0);
    const paddedTokens = batches.reduce((n, b) => n + b.batch * b.seqLen, 0);
    const edu = engineResult(times[0], cpuTimes[0], realTokens, batches.length);
    const ort = engineResult(times[1], cpuTimes[1], realTokens, batches.length);
    const c = spec.config;
    return {
      model: { dir: spec.dir, architecture: spec.architecture, hidden, layers: c.numLayers, heads: c.numHeads, intermediate: c.intermediateSize },
      input: {
        kind: o.input.kind, source: o.input.kind === 'texts' ? o.input.source : undefined,
        rows: batches.reduce((n, b) => n + b.batch, 0), batches: batches.length, batchSize: o.input.batchSize,
        seqLen: o.input.kind === 'random' ? o.input.seqLen : undefined, realTokens, paddedTokens,
      },
      dtype: encoder.dtype ?? 'fp32',
      threads: encoder.threads,
      warmup: o.warmup,
      iters: o.iters,
      machine: { ...machineInfo(), isa: encoder.isa },
      onnxRuntimeVersion: (await import('onnxruntime-node')).env.versions.common ?? 'unknown',
      eduTrain: edu,
      onnxRuntime: ort,
      ratio: edu.tokensPerSecond / ort.tokensPerSecond,
      ratioBest: edu.tokensPerSecondBest / ort.tokensPerSecondBest,
      pooled: agreement(first[0], first[1], hidden),
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
    await session?.release();
    encoder.dispose();
  }
}

/** The human-readable form of a BenchResult. */
import type { BenchResult, EngineResult } from './run-bench.js';
import { summarize } from './stats.js';

const n0 = (x: number): string => Math.round(x).toLocaleString('en-US');
const ms = (x: number): string => x.toFixed(x < 10 ? 2 : 1);

export function formatBench(r: BenchResult): string {
  const i = r.input;
  const shape = i.kind === 'random'
    ? `random ids, ${i.batchSize} x ${i.seqLen} tokens, full attention masks`
    : `${i.rows} texts from ${i.source}, ${i.batches} length-bucketed batches of <= ${i.batchSize} ` +
      `(${n0(i.realTokens)} tokens, ${((100 * (i.paddedTokens - i.realTokens)) / i.paddedTokens).toFixed(1)}% padding)`;
  const row = (name: string, e: EngineResult): string =>
    `  ${name.padEnd(18)} ${n0(e.tokensPerSecond).padStart(10)} ${n0(e.tokensPerSecondBest).padStart(10)}` +
    ` ${ms(e.msPerBatchMedian).padStart(10)} ${ms(e.msPerBatchMin).padStart(10)}` +
    ` ${ms(summarize(e.iterationCpuMs).medianMs / r.input.batches).padStart(12)}`;
  return [
    `model    ${r.model.architecture} (hidden ${r.model.hidden}, ${r.model.layers} layers, ${r.model.heads} heads, FFN ${r.model.intermediate}) from ${r.model.dir}`,
    `input    ${shape}`,
    `machine  ${r.machine.cpuModel}, ${r.machine.logicalCpus} logical CPUs, isa ${r.machine.isa}, load average ${r.machine.loadAverage1m.toFixed(2)}`,
    `run      edu-train ${r.dtype} vs onnxruntime fp32, ${r.threads} threads each, ${r.warmup} warm-up + ${r.iters} timed iterations (engines alternate)`,
    '',
    `  ${'engine'.padEnd(18)} ${'tokens/s'.padStart(10)} ${'best'.padStart(10)} ${'ms/batch'.padStart(10)} ${'min ms'.padStart(10)} ${'cpu ms/batch'.padStart(12)}`,
    row('edu-train', r.eduTrain),
    row(`onnxruntime ${r.onnxRuntimeVersion}`, r.onnxRuntime),
    '',
    `ratio edu-train / onnxruntime: ${r.ratio.toFixed(2)}x (median), ${r.ratioBest.toFixed(2)}x (best)`,
    `(tokens/s and ms from the median iteration, best = fastest; cpu ms = process CPU time, all threads, median)`,
    `pooled (mean) outputs: max abs diff ${r.pooled.maxAbsDiff.toExponential(2)}, cosine min ${r.pooled.cosineMin.toFixed(7)}, mean ${r.pooled.cosineMean.toFixed(7)}`,
    '',
  ].join('\n');
}

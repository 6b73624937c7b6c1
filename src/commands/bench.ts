/**
 * `edu-train bench`: is edu-train faster than ONNX Runtime on this machine, and is it still right?
 * Runs both on the same weights and inputs and prints throughput, latency, their ratio and how far
 * the pooled outputs are apart (src/bench/run-bench.ts does the work).
 */
import { Option, type Command } from 'commander';
import { formatBench } from '../bench/report.js';
import { runBench, type BenchInput } from '../bench/run-bench.js';
import { openTable } from '../data/table.js';
import { parseCpuDtype } from '../encoder.js';
import { UsageError } from '../util/errors.js';
import { isaFromEnv, parseNonNegativeInt, parsePositiveInt } from './common.js';

interface BenchCliOptions {
  modelDir: string;
  batchSize?: number;
  seqLen?: number;
  input?: string;
  textColumn: string;
  maxLength?: number;
  threads?: number;
  dtype: string;
  against: string;
  warmup: number;
  iters: number;
  json: boolean;
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('Time the encoder against ONNX Runtime on the same weights and inputs; report tokens/s, ms per batch, the ratio and the output difference')
    .requiredOption('--model-dir <dir>', 'Hugging Face model folder')
    .option('--batch-size <n>', 'rows per batch (default 32)', parsePositiveInt('--batch-size'))
    .option('--seq-len <n>', 'tokens per row for random inputs (default 128)', parsePositiveInt('--seq-len'))
    .option('--input <file>', 'time tokenized texts from this table instead of random ids (.parquet, .arrow, .jsonl, .csv)')
    .option('--text-column <name>', 'column of --input holding the text', 'text')
    .option('--max-length <n>', 'with --input: tokens per text (default: the model limit, at most 512)', parsePositiveInt('--max-length'))
    .option('--threads <n>', 'threads for both engines (default: all available cores)', parsePositiveInt('--threads'))
    .addOption(new Option('--dtype <dtype>', "edu-train's CPU arithmetic: fp32, or bf16 (linear layers in bf16 with fp32 accumulation; ONNX Runtime stays fp32, the reference the pooled outputs are compared with)").choices(['fp32', 'bf16']).default('fp32'))
    .addOption(new Option('--against <engine>', 'the engine to compare with').choices(['onnx']).default('onnx'))
    .option('--warmup <n>', 'untimed iterations per engine', parseNonNegativeInt('--warmup'), 1)
    .option('--iters <n>', 'timed iterations per engine', parsePositiveInt('--iters'), 5)
    .option('--json', 'print one JSON object instead of the table', false)
    .action(async (opts: BenchCliOptions) => {
      const input = await benchInput(opts);
      const log = opts.json ? undefined : (line: string) => process.stderr.write(`${line}\n`);
      const result = await runBench(
        { modelDir: opts.modelDir, input, threads: opts.threads, isa: isaFromEnv(), dtype: parseCpuDtype(opts.dtype), warmup: opts.warmup, iters: opts.iters },
        log,
      );
      process.stdout.write(opts.json ? `${JSON.stringify(result)}\n` : formatBench(result));
    });
}

async function benchInput(opts: BenchCliOptions): Promise<BenchInput> {
  const batchSize = opts.batchSize ?? 32;
  if (!opts.input) return { kind: 'random', batchSize, seqLen: opts.seqLen ?? 128 };
  if (opts.seqLen !== undefined) throw new UsageError('--seq-len is for random inputs; with --input the texts decide the lengths (see --max-length)');
  const reader = await openTable(opts.input);
  try {
    if (!reader.schema.some((c) => c.name === opts.textColumn)) {
      throw new UsageError(`--text-column ${opts.textColumn}: no such column; ${opts.input} has ${reader.schema.map((c) => c.name).join(', ')}`);
    }
    const values = (await reader.readAll()).columns[opts.textColumn];
    const texts = values.map((v, i) => {
      if (typeof v !== 'string') throw new UsageError(`row ${i} of ${opts.input}: column ${opts.textColumn} holds ${v === null ? 'null' : typeof v}, not text`);
      return v;
    });
    return { kind: 'texts', texts, batchSize, maxLength: opts.maxLength, source: opts.input };
  } finally {
    await reader.close();
  }
}

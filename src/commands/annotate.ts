/**
 * `edu-train annotate`: score whole corpora (Parquet by row group, JSONL by line, CSV/Arrow too) with a
 * trained run or a sequence-classification model, sharded over ranks, resumable. See src/annotate/.
 */
import { existsSync, statSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { UsageError } from '../util/errors.js';
import { annotate } from '../annotate/run.js';
import { resolveModelSource } from '../annotate/scorer.js';
import { expandInputs } from '../annotate/glob.js';
import {
  addDeviceOptions,
  BACKBONE_HELP,
  checkOutputDir,
  MAX_BATCH_SIZE,
  parseList,
  parseNonNegativeInt,
  parsePositiveInt,
  runtimeOptions,
  type DeviceCliOptions,
} from './common.js';

/** The options `annotate` shares with `launch slurm` (which forwards them to every array task). */
export interface AnnotateCliShared {
  run?: string;
  modelDir?: string;
  backbone?: string;
  input: string[];
  output: string;
  textColumn: string;
  idColumn?: string;
  keepColumns?: string[];
  chunking: 'truncate' | 'chunks';
  chunkAgg: 'mean' | 'max';
  batchSize: number;
  maxLength?: number;
  chunkRows?: number;
  unitRows: number;
  rowsPerCheckpoint: number;
}

interface AnnotateCli extends AnnotateCliShared, DeviceCliOptions {
  rank?: number;
  worldSize?: number;
  threads?: number;
  device: string;
  quiet: boolean;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function addAnnotateOptions(cmd: Command): Command {
  return cmd
    .option('--run <dir>', 'run folder written by `edu-train train` (its encoder + trained head)')
    .option('--model-dir <dir>', 'a ready-made classifier folder (*ForSequenceClassification, or an `export` folder) scored with its own head; with --run: the run\'s encoder, if it moved')
    .option('--backbone <name>', `${BACKBONE_HELP}; without --run: a ready-made classifier such as fineweb-edu-classifier, with --run: the run's encoder`)
    .requiredOption('--input <glob>', 'input files: a file, a folder or a quoted glob (*, ?, **); repeat for more', collect)
    .requiredOption('--output <dir>', 'output folder: part-<rank>-<seq>.parquet files, manifest.json, checkpoints/, completions/')
    .option('--text-column <name>', 'column holding the text', 'text')
    .option('--id-column <name>', 'column copied first to identify rows (default id; without one, `file` and `row` are written)')
    .option('--keep-columns <a,b>', 'more input columns to copy to the output', parseList)
    .addOption(new Option('--chunking <mode>', 'long documents: truncate to --max-length, or score overlapping windows and aggregate').choices(['truncate', 'chunks']).default('truncate'))
    .addOption(new Option('--chunk-agg <how>', 'with --chunking chunks: aggregate window scores / probabilities by').choices(['mean', 'max']).default('mean'))
    .option('--batch-size <n>', 'texts per encoder forward pass', parsePositiveInt('--batch-size', MAX_BATCH_SIZE), 32)
    .option('--max-length <n>', "tokens per text or window, special tokens included (default: the run's / the model's)", parsePositiveInt('--max-length'))
    .option('--chunk-rows <n>', 'rows read, tokenized and scored together (default max(16 x batch size, 512)); same value = bit-identical scores', parsePositiveInt('--chunk-rows'))
    .option('--unit-rows <n>', 'Parquet row groups are shared out between ranks in runs of about this many rows', parsePositiveInt('--unit-rows'), 100_000)
    .option('--rows-per-checkpoint <n>', 'commit a part file and a checkpoint every this many rows', parsePositiveInt('--rows-per-checkpoint'), 10_000);
}

export function registerAnnotate(program: Command): void {
  const cmd = program
    .command('annotate')
    .description(
      'Score a corpus with a trained run (--run) or a classification model (--model-dir), in bounded memory.\n' +
        'Regression adds `score` and `int_score`; classification adds `label`, `label_id` and `probs`.\n' +
        'Sharded with --rank/--world-size (or EDU_RANK/EDU_WORLD_SIZE, a Slurm array, JOB_COMPLETION_INDEX);\n' +
        'a rerun skips finished ranks and resumes interrupted ones from their last checkpoint.',
    );
  addDeviceOptions(addAnnotateOptions(cmd))
    .option('--rank <r>', 'this process\'s shard (default: from the environment, else 0)', parseNonNegativeInt('--rank'))
    .option('--world-size <w>', 'number of shards (default: from the environment, else 1)', parsePositiveInt('--world-size'))
    .option('--quiet', 'no progress bar', false)
    .action(async (opts: AnnotateCli) => {
      // Before any model work: the output folder must be creatable and hold none of the inputs (a rerun would read its parts).
      for (const pattern of opts.input) {
        const rel = relative(resolve(pattern), resolve(opts.output));
        if (existsSync(pattern) && statSync(pattern).isDirectory() && (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel)))) {
          throw new UsageError(`--output ${opts.output} is inside the --input folder ${pattern}; its part files would become inputs of a rerun`);
        }
      }
      checkOutputDir(opts.output, '--output', [
        ...expandInputs(opts.input).map((path) => ({ path, flag: '--input' })),
        ...(opts.run ? [{ path: opts.run, flag: '--run folder' }] : []),
        ...(opts.modelDir ? [{ path: opts.modelDir, flag: '--model-dir folder' }] : []),
      ]);
      await annotate({
        source: await resolveModelSource(opts),
        inputs: opts.input,
        output: opts.output,
        textColumn: opts.textColumn,
        idColumn: opts.idColumn ?? 'id',
        idColumnExplicit: opts.idColumn !== undefined,
        keepColumns: opts.keepColumns ?? [],
        chunking: opts.chunking,
        chunkAgg: opts.chunkAgg,
        batchSize: opts.batchSize,
        maxLength: opts.maxLength,
        chunkRows: opts.chunkRows,
        unitRows: opts.unitRows,
        rowsPerCheckpoint: opts.rowsPerCheckpoint,
        rank: opts.rank,
        worldSize: opts.worldSize,
        ...runtimeOptions(opts),
        quiet: opts.quiet,
      });
    });
}

/** The shared options as annotate arguments (for `launch slurm`), absolute where they are paths. */
export function annotateArgs(o: AnnotateCliShared, abs: (p: string) => string): string[] {
  const a: string[] = [];
  if (o.run) a.push('--run', abs(o.run));
  if (o.modelDir) a.push('--model-dir', abs(o.modelDir));
  if (o.backbone) a.push('--backbone', o.backbone);
  for (const i of o.input) a.push('--input', abs(i));
  a.push('--output', abs(o.output), '--text-column', o.textColumn);
  if (o.idColumn !== undefined) a.push('--id-column', o.idColumn);
  if (o.keepColumns?.length) a.push('--keep-columns', o.keepColumns.join(','));
  a.push('--chunking', o.chunking, '--chunk-agg', o.chunkAgg, '--batch-size', String(o.batchSize));
  if (o.maxLength !== undefined) a.push('--max-length', String(o.maxLength));
  if (o.chunkRows !== undefined) a.push('--chunk-rows', String(o.chunkRows));
  a.push('--unit-rows', String(o.unitRows), '--rows-per-checkpoint', String(o.rowsPerCheckpoint));
  return a;
}

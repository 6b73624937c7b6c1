/**
 * `edu-train train`: a classifier or regression head on a frozen encoder's (cached) embeddings.
 * Parsing only; the work is in src/train/pipeline.ts.
 */
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { SCHEDULE_KINDS } from '../train/schedule.js';
import { runTraining, TRAIN_DEFAULTS, type TrainOptions } from '../train/pipeline.js';
import { RUN_FILES } from '../train/run-dir.js';
import { removeOnInterrupt } from '../util/interrupt.js';
import {
  addEncoderOptions,
  checkOutputDir,
  MAX_BATCH_SIZE,
  parseBetas,
  parseList,
  parseNumber,
  parsePatience,
  parsePositiveInt,
  runtimeOptions,
  type EncoderCliOptions,
} from './common.js';

/** The parsed flags: TrainOptions (what run.json records) with the encoder flags as the CLI spells them, plus --json. */
interface TrainCli extends EncoderCliOptions, Omit<TrainOptions, keyof EncoderCliOptions | 'isa'> {
  json: boolean;
}

export function registerTrain(program: Command): void {
  const d = TRAIN_DEFAULTS;
  const cmd = program
    .command('train')
    .description(
      'Train a classification or regression head on frozen encoder embeddings (computed once, cached on disk).\n' +
        'Writes a run folder: head.safetensors, run.json, label_mapping.json, metrics.jsonl, best.json, report.txt/json.',
    );
  addEncoderOptions(cmd)
    .requiredOption('--train <file>', 'training table: .parquet, .arrow, .jsonl, .csv or .tsv')
    .option('--val <file>', 'validation table (default: split --val-split off the training table)')
    .option('--val-split <fraction>', `stratified, seeded validation fraction of --train (default ${d.valSplit} when no --val)`, parseNumber('--val-split'))
    .option('--text-column <name>', 'column holding the text', 'text')
    .option('--label-column <name>', 'column holding the label (classification) or score (regression)', 'label')
    .addOption(new Option('--task <task>', 'what the head predicts').choices(['classification', 'regression']).makeOptionMandatory())
    .option('--labels <a,b,c>', 'classification label order (default: sorted unique labels); data labels outside it are an error', parseList)
    .addOption(new Option('--head <kind>', 'linear: dropout + Linear on the pooled embedding; pooler: the FineWeb-Edu recipe, BERT pooler (dense+tanh, from the checkpoint) on the CLS vector, then dropout + Linear').choices(['linear', 'pooler']).default('linear'))
    .addOption(new Option('--pooling <mode>', 'embedding pooling (default: mean for --head linear; --head pooler needs cls)').choices(['mean', 'cls', 'pooler']))
    .option('--dropout <p>', 'dropout before the output layer', parseNumber('--dropout'), d.dropout)
    .option('--epochs <n>', 'maximum epochs', parsePositiveInt('--epochs'), d.epochs)
    .option('--batch-size <n>', 'rows per optimizer step', parsePositiveInt('--batch-size'), d.batchSize)
    .option('--lr <x>', 'peak learning rate (AdamW)', parseNumber('--lr'), d.lr)
    .option('--weight-decay <x>', 'AdamW decoupled weight decay', parseNumber('--weight-decay'), d.weightDecay)
    .addOption(new Option('--betas <b1,b2>', 'AdamW betas').argParser(parseBetas).default(d.betas, d.betas.join(',')))
    .option('--eps <x>', 'AdamW epsilon', parseNumber('--eps'), d.eps)
    .addOption(new Option('--schedule <kind>', 'LR schedule after warmup').choices([...SCHEDULE_KINDS]).default(d.schedule))
    .option('--warmup-ratio <x>', 'fraction of all steps spent warming up linearly from 0', parseNumber('--warmup-ratio'), d.warmupRatio)
    .option('--clip-grad-norm <x>', 'clip the global gradient norm (0 = off)', parseNumber('--clip-grad-norm'), d.clipGradNorm)
    .option('--class-weights <mode>', 'cross-entropy class weights: none, balanced (n/(k*count)), sqrt (of balanced) or a JSON file', d.classWeights)
    .addOption(new Option('--sampler <kind>', 'epoch order: shuffle, or weighted (WeightedRandomSampler, 1/count(class), with replacement)').choices(['shuffle', 'weighted']).default(d.sampler))
    .option('--early-stop <metric>', 'validation metric that picks the best epoch: macro_f1, weighted_f1, accuracy, loss; regression also mse, pearson, spearman, binary_f1 (macro_f1 of regression = on round-half-to-even(clip(score, 0, 5)))', d.earlyStop)
    .option('--patience <n>', "stop after n epochs without improvement ('off': run all epochs, still keep the best)", parsePatience, d.patience)
    .option('--folds <k>', 'stratified k-fold cross-validation: one run per fold in fold-<k>/, mean ± std summary', parsePositiveInt('--folds'))
    .option('--seed <n>', 'seed of the split, folds, init, sampler and dropout', parseNumber('--seed'), d.seed)
    .option('--threshold <x>', 'regression: binary metrics count int_score >= x as positive', parseNumber('--threshold'), d.threshold)
    .requiredOption('--output <dir>', 'run folder to create')
    .option('--overwrite', 'replace an existing run folder (only once the new run has finished)', false)
    .option('--max-length <n>', 'tokens per text, special tokens included (default: the model limit, at most 512)', parsePositiveInt('--max-length'))
    .option('--embed-batch-size <n>', 'texts per encoder forward pass', parsePositiveInt('--embed-batch-size', MAX_BATCH_SIZE), d.embedBatchSize)
    .option('--cache-dir <dir>', 'embedding cache (default: $EDU_TRAIN_CACHE or ~/.cache/edu-train/embeddings)')
    .option('--no-cache', 'always run the encoder; read and write no cache')
    .option('--quiet', 'no progress bars or per-epoch lines', false)
    .option('--json', 'print the summary (run folder, files, validation or cross-validation metrics) as one JSON object', false)
    .action(async (opts: TrainCli) => {
      const o: TrainOptions = {
        modelDir: opts.modelDir,
        train: opts.train,
        val: opts.val,
        valSplit: opts.valSplit,
        textColumn: opts.textColumn,
        labelColumn: opts.labelColumn,
        task: opts.task,
        labels: opts.labels,
        head: opts.head,
        pooling: opts.pooling,
        dropout: opts.dropout,
        epochs: opts.epochs,
        batchSize: opts.batchSize,
        lr: opts.lr,
        weightDecay: opts.weightDecay,
        betas: opts.betas,
        eps: opts.eps,
        schedule: opts.schedule,
        warmupRatio: opts.warmupRatio,
        clipGradNorm: opts.clipGradNorm,
        classWeights: opts.classWeights,
        sampler: opts.sampler,
        earlyStop: opts.earlyStop,
        patience: opts.patience,
        folds: opts.folds,
        seed: opts.seed,
        threshold: opts.threshold,
        output: opts.output,
        overwrite: opts.overwrite,
        ...runtimeOptions(opts),
        maxLength: opts.maxLength,
        embedBatchSize: opts.embedBatchSize,
        cacheDir: opts.cacheDir,
        cache: opts.cache,
        quiet: opts.quiet,
      };
      checkOutputDir(opts.output, '--output', [
        { path: opts.train, flag: '--train' },
        ...(opts.val ? [{ path: opts.val, flag: '--val' }] : []),
        { path: opts.modelDir, flag: '--model-dir folder' },
      ]);
      // An interrupted run leaves nothing: the staging folder (src/train/run-dir.ts) goes too.
      removeOnInterrupt(`${resolve(opts.output)}.tmp-${process.pid}`);
      const r = await runTraining(o);
      if (opts.json) {
        const { runDir, files, evaluation, cv, embeddings } = r;
        process.stdout.write(JSON.stringify({ runDir, files, evaluation, cv, embeddings }) + '\n');
        return;
      }
      const lines = [`run folder: ${r.runDir}`];
      if (r.cv) {
        lines.push(`  ${RUN_FILES.cvSummary}, ${RUN_FILES.cvReport}: mean ± std over ${r.cv.folds} folds`);
        lines.push(`  fold-0 .. fold-${r.cv.folds - 1}: one complete run per fold (use one with eval --run / predict --run)`);
        const m = r.cv.metrics;
        lines.push(`  macro F1 ${m.macro_f1.mean.toFixed(4)} ± ${m.macro_f1.std.toFixed(4)}, accuracy ${m.accuracy.mean.toFixed(4)} ± ${m.accuracy.std.toFixed(4)}`);
      } else {
        lines.push(`  ${RUN_FILES.head} (head weights), ${RUN_FILES.run} (config), ${RUN_FILES.labels}`);
        lines.push(`  ${RUN_FILES.metrics} (per epoch), ${RUN_FILES.best} (best epoch), ${RUN_FILES.reportText} / ${RUN_FILES.reportJson} (validation report)`);
        const e = r.evaluation!;
        lines.push(`  validation: macro F1 ${e.macro_f1.toFixed(4)}, accuracy ${e.accuracy.toFixed(4)}${e.task === 'regression' ? `, binary F1 (>= ${e.threshold}) ${e.binary_f1.toFixed(4)}` : ''}`);
      }
      process.stdout.write(lines.join('\n') + '\n');
    });
}

/**
 * `edu-train finetune`: train the whole encoder with a sequence-classification head (CPU, fp32), the
 * Korean sentence-type recipe as defaults; and `edu-train finetune-embeddings` (MultipleNegativesRankingLoss, the
 * KLUE-STS recipe). Parsing only; the work is in src/finetune/pipeline.ts and src/finetune/contrastive.ts.
 */
import { resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { CONTRASTIVE_DEFAULTS, runContrastive, type ContrastiveOptions } from '../finetune/contrastive.js';
import { FINETUNE_DEFAULTS, runFineTune, type FineTuneOptions, type FineTuneTask } from '../finetune/pipeline.js';
import { SCHEDULE_KINDS } from '../train/schedule.js';
import { removeOnInterrupt } from '../util/interrupt.js';
import { resolveModelDir } from '../hub/resolve.js';
import {
  BACKBONE_HELP,
  checkOutputDir,
  MAX_BATCH_SIZE,
  MAX_THREADS,
  parseBetas,
  parseList,
  parseNonNegativeInt,
  parseNumber,
  parsePatience,
  parsePositiveInt,
} from './common.js';

/** The parsed flags: FineTuneOptions, with --max-length optional (it defaults from the model) and --device. */
interface FineTuneCli extends Omit<FineTuneOptions, 'maxLength'> {
  device: string;
  maxLength?: number;
}

function parseDropout(value: string): 'config' | number {
  if (value === 'config') return 'config';
  const p = Number(value);
  if (value.trim() === '' || !(p >= 0 && p < 1)) throw new InvalidArgumentError("--dropout must be 'config' or a probability in [0, 1).");
  return p;
}

/** Registers `finetune` and `finetune-embeddings`. */
export function registerFineTune(program: Command): void {
  const d = FINETUNE_DEFAULTS;
  const cmd = program
    .command('finetune')
    .description(
      'Fine-tune the whole encoder with a classification or regression head (the *ForSequenceClassification head of the ' +
        'model type), on the CPU in fp32 with exact gradients; defaults: the Korean sentence-type recipe. Writes a complete ' +
        'Hugging Face model folder of the best epoch (config.json, model.safetensors, tokenizer files) plus metrics.jsonl, ' +
        'best.json, report.txt/json, val_predictions.jsonl and finetune.json.',
    );
  // --model-dir / --backbone resolve before the action, as for every encoder command.
  cmd.hook('preAction', async (_self, action) => {
    const o = action.opts() as { modelDir?: string; backbone?: string; quiet?: boolean };
    action.setOptionValue('modelDir', await resolveModelDir({ modelDir: o.modelDir, backbone: o.backbone, quiet: o.quiet }));
  });
  cmd
    .option('--model-dir <dir>', 'Hugging Face model folder to start from (config.json, tokenizer.json, model.safetensors or pytorch_model.bin); required unless --backbone')
    .option('--backbone <name>', BACKBONE_HELP)
    .addOption(new Option('--device <device>', 'where training runs (only the CPU for now)').choices(['cpu']).default('cpu'))
    .option('--threads <n>', 'CPU threads for the kernels (default: all available cores)', parsePositiveInt('--threads', MAX_THREADS))
    .requiredOption('--train <file>', 'training table: .parquet, .arrow, .jsonl, .csv or .tsv')
    .option('--val <file>', 'validation table (default: split --val-split off the training table)')
    .option('--val-split <fraction>', `stratified, seeded validation fraction of --train (default ${d.valSplit} when no --val)`, parseNumber('--val-split'))
    .option('--text-column <name>', 'column holding the text', 'text')
    .option('--label-column <name>', 'column holding the label (classification) or score (regression)', 'label')
    .addOption(new Option('--task <task>', 'what the head predicts').choices(['classification', 'regression']).makeOptionMandatory())
    .option('--labels <a,b,c>', 'classification label order (default: sorted unique labels)', parseList)
    .option('--epochs <n>', 'maximum epochs', parsePositiveInt('--epochs'), d.epochs)
    .option('--batch-size <n>', 'rows per optimizer step (split into micro-batches as memory requires; same gradients)', parsePositiveInt('--batch-size'), d.batchSize)
    .option('--lr <x>', 'peak learning rate (AdamW)', parseNumber('--lr'), d.lr)
    .option('--weight-decay <x>', 'AdamW decoupled weight decay', parseNumber('--weight-decay'), d.weightDecay)
    .option('--no-decay-bias-norm', 'exclude biases and LayerNorm weights from weight decay (the Hugging Face Trainer grouping; default: decay every parameter, torch.optim.AdamW(model.parameters()))')
    .addOption(new Option('--betas <b1,b2>', 'AdamW betas').argParser(parseBetas).default(d.betas, d.betas.join(',')))
    .option('--eps <x>', 'AdamW epsilon', parseNumber('--eps'), d.eps)
    .addOption(new Option('--schedule <kind>', 'LR schedule after warmup').choices([...SCHEDULE_KINDS]).default(d.schedule))
    .option('--warmup-ratio <x>', 'fraction of all steps spent warming up linearly from 0', parseNumber('--warmup-ratio'), d.warmupRatio)
    .option('--clip-grad-norm <x>', 'clip the global gradient norm (0 = off)', parseNumber('--clip-grad-norm'), d.clipGradNorm)
    .option('--class-weights <mode>', 'cross-entropy class weights: none, balanced (n/(k*count)), sqrt (of balanced) or a JSON file', d.classWeights)
    .addOption(new Option('--sampler <kind>', 'epoch order: weighted (WeightedRandomSampler, 1/count(class), with replacement) or shuffle').choices(['shuffle', 'weighted']).default(d.sampler))
    .option('--early-stop <metric>', 'validation metric that picks the best epoch: macro_f1, weighted_f1, accuracy, loss; regression also mse, pearson, spearman, binary_f1', d.earlyStop)
    .option('--patience <n>', "stop after n epochs without improvement ('off': run all epochs, still keep the best)", parsePatience, d.patience)
    .option('--seed <n>', 'seed of the split, head init and sampler', parseNumber('--seed'), d.seed)
    .option('--threshold <x>', 'regression: binary metrics count int_score >= x as positive', parseNumber('--threshold'), d.threshold)
    .option('--max-activation-memory <MiB>', 'activation memory per micro-batch', parsePositiveInt('--max-activation-memory'), d.maxActivationMemory)
    .option('--micro-batch-size <n>', 'fixed rows per micro-batch (default: as many as fit --max-activation-memory)', parsePositiveInt('--micro-batch-size', MAX_BATCH_SIZE))
    .option('--eval-batch-size <n>', 'texts per forward pass when evaluating', parsePositiveInt('--eval-batch-size', MAX_BATCH_SIZE), d.evalBatchSize)
    .option('--max-steps <n>', 'stop after n optimizer steps in total (the schedule still spans --epochs; default: no limit)', parsePositiveInt('--max-steps'))
    .option('--dropout <p>', "training dropout: 'config' = the model's hidden_dropout_prob / attention_probs_dropout_prob / classifier_dropout (transformers' train mode), or one probability for all (0 = off)", parseDropout, d.dropout)
    .requiredOption('--output <dir>', 'model folder to create')
    .option('--overwrite', 'replace an existing output folder (only once the new one is finished)', false)
    .option('--max-length <n>', 'tokens per text, special tokens included', parsePositiveInt('--max-length'), d.maxLength)
    .option('--quiet', 'no per-step or per-epoch lines', false)
    .action(async (opts: FineTuneCli & { decayBiasNorm?: boolean }) => {
      const o: FineTuneOptions = {
        modelDir: opts.modelDir,
        train: opts.train,
        val: opts.val,
        valSplit: opts.valSplit,
        textColumn: opts.textColumn,
        labelColumn: opts.labelColumn,
        task: opts.task,
        labels: opts.labels,
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
        seed: opts.seed,
        threshold: opts.threshold,
        maxLength: opts.maxLength ?? d.maxLength,
        maxActivationMemory: opts.maxActivationMemory,
        microBatchSize: opts.microBatchSize,
        evalBatchSize: opts.evalBatchSize,
        maxSteps: opts.maxSteps,
        noDecayBiasNorm: opts.decayBiasNorm === false,
        dropout: opts.dropout,
        output: opts.output,
        overwrite: opts.overwrite,
        threads: opts.threads,
        quiet: opts.quiet,
      };
      checkOutputDir(opts.output, '--output', [
        { path: opts.train, flag: '--train' },
        ...(opts.val ? [{ path: opts.val, flag: '--val' }] : []),
        { path: opts.modelDir, flag: '--model-dir folder' },
      ]);
      removeOnInterrupt(`${resolve(opts.output)}.tmp-${process.pid}`);
      const r = await runFineTune(o);
      const e = r.evaluation;
      process.stdout.write([
        `model folder: ${r.outputDir}`,
        '  config.json, model.safetensors, tokenizer files: a *ForSequenceClassification folder (best epoch)',
        `  metrics.jsonl, best.json (epoch ${r.bestEpoch + 1}), report.txt / report.json, val_predictions.jsonl, finetune.json`,
        `  validation: macro F1 ${e.macro_f1.toFixed(4)}, accuracy ${e.accuracy.toFixed(4)}`,
      ].join('\n') + '\n');
    });
  registerFineTuneEmbeddings(program);
}

/** The parsed flags of finetune-embeddings: exactly ContrastiveOptions. */
type ContrastiveCli = ContrastiveOptions;

/** `edu-train finetune-embeddings`: MultipleNegativesRankingLoss on (anchor, positive) pairs + STS evaluation. */
export function registerFineTuneEmbeddings(program: Command): void {
  const d = CONTRASTIVE_DEFAULTS;
  const cmd = program
    .command('finetune-embeddings')
    .description(
      'Contrastive fine-tuning of a sentence-embedding model with MultipleNegativesRankingLoss (cosine similarity x scale, ' +
        'in-batch negatives) on (anchor, positive) pairs, on the CPU in fp32; defaults: the KLUE-STS sentence-transformers recipe. ' +
        'With --sts, Pearson and Spearman of the cosine similarity against gold scores before training and after each epoch ' +
        '(the best epoch is kept). Writes a sentence-transformers folder plus metrics.jsonl, sts_eval.json and finetune.json.',
    );
  cmd.hook('preAction', async (_self, action) => {
    const o = action.opts() as { modelDir?: string; backbone?: string; quiet?: boolean };
    action.setOptionValue('modelDir', await resolveModelDir({ modelDir: o.modelDir, backbone: o.backbone, quiet: o.quiet }));
  });
  cmd
    .option('--model-dir <dir>', 'Hugging Face (or sentence-transformers) model folder to start from; required unless --backbone')
    .option('--backbone <name>', BACKBONE_HELP)
    .option('--threads <n>', 'CPU threads for the kernels (default: all available cores)', parsePositiveInt('--threads', MAX_THREADS))
    .requiredOption('--train <file>', 'table of (anchor, positive) pairs: .parquet, .arrow, .jsonl, .csv or .tsv')
    .option('--anchor-column <name>', 'column holding the anchors', d.anchorColumn)
    .option('--positive-column <name>', 'column holding the positives (also the second sentence of --sts)', d.positiveColumn)
    .option('--score-column <name>', 'with --min-score: a similarity column of --train; only pairs scoring >= --min-score are positives')
    .option('--min-score <x>', 'see --score-column (e.g. 3 for KLUE-STS similarities 0..5)', parseNumber('--min-score'))
    .option('--sts <file>', 'STS evaluation table (anchor and positive columns plus --sts-score-column)')
    .option('--sts-score-column <name>', 'gold similarity column of --sts', d.stsScoreColumn)
    .addOption(new Option('--pooling <mode>', 'sentence embedding pooling').choices(['mean', 'cls']).default(d.pooling))
    .option('--scale <x>', 'MNRL similarity scale (inverse temperature)', parseNumber('--scale'), d.scale)
    .option('--epochs <n>', 'epochs', parsePositiveInt('--epochs'), d.epochs)
    .option('--batch-size <n>', 'pairs per step (each pair\'s negatives are the batch\'s other positives)', parsePositiveInt('--batch-size'), d.batchSize)
    .option('--lr <x>', 'peak learning rate (AdamW)', parseNumber('--lr'), d.lr)
    .option('--warmup-steps <n>', 'linear warmup steps', parseNonNegativeInt('--warmup-steps'), d.warmupSteps)
    .addOption(new Option('--schedule <kind>', 'LR schedule after warmup').choices([...SCHEDULE_KINDS]).default(d.schedule))
    .option('--weight-decay <x>', 'AdamW decoupled weight decay (not on biases and LayerNorm weights, as sentence-transformers does)', parseNumber('--weight-decay'), d.weightDecay)
    .option('--clip-grad-norm <x>', 'clip the global gradient norm (0 = off)', parseNumber('--clip-grad-norm'), d.clipGradNorm)
    .option('--max-length <n>', 'tokens per sentence, special tokens included', parsePositiveInt('--max-length'), d.maxLength)
    .option('--seed <n>', 'seed of the pair order', parseNumber('--seed'), d.seed)
    .option('--max-steps <n>', 'stop after n optimizer steps (the schedule still spans --epochs; default: no limit)', parsePositiveInt('--max-steps'))
    .option('--eval-batch-size <n>', 'sentences per forward pass when evaluating', parsePositiveInt('--eval-batch-size', MAX_BATCH_SIZE), d.evalBatchSize)
    .option('--mini-batch-size <n>', 'GradCache (CachedMultipleNegativesRankingLoss): embed and backpropagate each batch in mini-batches of n ' +
      'sentences, so a large --batch-size fits in memory with the same gradients (activation memory of n sentences instead of ' +
      '2 x batch size; about one extra forward per step); n >= --batch-size is one mini-batch (default: off, the whole batch at once)',
    parsePositiveInt('--mini-batch-size', MAX_BATCH_SIZE))
    .option('--dropout <p>', "training dropout: 'config' = the model's hidden_dropout_prob / attention_probs_dropout_prob (train mode, as sentence-transformers fits), or one probability for all (0 = off)", parseDropout, d.dropout)
    .requiredOption('--output <dir>', 'model folder to create')
    .option('--overwrite', 'replace an existing output folder (only once the new one is finished)', false)
    .option('--quiet', 'no per-step or per-epoch lines', false)
    .action(async (opts: ContrastiveCli) => {
      const o: ContrastiveOptions = { ...opts };
      checkOutputDir(opts.output, '--output', [
        { path: opts.train, flag: '--train' },
        ...(opts.sts ? [{ path: opts.sts, flag: '--sts' }] : []),
        { path: opts.modelDir, flag: '--model-dir folder' },
      ]);
      removeOnInterrupt(`${resolve(opts.output)}.tmp-${process.pid}`);
      const r = await runContrastive(o);
      const lines = [`model folder: ${r.outputDir}`, `  ${r.pairs} training pairs, ${r.steps} steps; a sentence-transformers folder (modules.json, 1_Pooling)`];
      if (r.before && r.after) {
        lines.push(`  STS Pearson ${r.before.pearson.toFixed(4)} -> ${r.after.pearson.toFixed(4)}, Spearman ${r.before.spearman.toFixed(4)} -> ${r.after.spearman.toFixed(4)}`);
      }
      process.stdout.write(lines.join('\n') + '\n');
    });
}

/**
 * `edu-train demo`: the whole pipeline on the bundled sample, offline — generate an encoder (unless
 * --model-dir is given), embed + train a class-weighted head with early stopping, evaluate, score.
 * It runs the real commands in-process, so what it shows is exactly what a user would type.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { generateModelFolder } from '../model/generate.js';
import { packageRoot } from '../util/package-info.js';

interface DemoCliOptions {
  output: string;
  modelDir?: string;
  data?: string;
  textColumn: string;
  labelColumn: string;
  threads?: number;
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'Run the whole pipeline offline on the bundled sample: generate a small random-weight encoder with a real\n' +
        'tokenizer (or use --model-dir), train a class-weighted head with early stopping, evaluate it and score the\n' +
        'sample. A random-weight encoder gives meaningless accuracy; pass --model-dir for a real one.',
    )
    .option('--output <dir>', 'folder for the demo model, run, report and predictions', 'edu-train-demo')
    .option('--model-dir <dir>', 'a real Hugging Face model folder instead of the generated encoder')
    .option('--data <file>', 'labelled table to use instead of the bundled sample')
    .option('--text-column <name>', 'text column of --data', 'text')
    .option('--label-column <name>', 'label column of --data', 'label')
    .option('--threads <n>', 'CPU threads (default: all)')
    .action(async (opts: DemoCliOptions) => runDemo(opts));
}

async function runDemo(opts: DemoCliOptions): Promise<void> {
  const out = resolve(opts.output);
  mkdirSync(out, { recursive: true });
  const data = opts.data ? resolve(opts.data) : join(packageRoot, 'assets', 'demo', 'sentence-types.jsonl');
  const say = (s: string) => process.stderr.write(`\n== ${s}\n`);

  let modelDir = opts.modelDir ? resolve(opts.modelDir) : join(out, 'model');
  if (!opts.modelDir) {
    if (!existsSync(join(modelDir, 'config.json'))) {
      say('1/4 generating a small random-weight BERT encoder with the all-MiniLM-L6-v2 tokenizer');
      generateModelFolder(modelDir, {
        modelType: 'bert',
        hidden: 128,
        layers: 2,
        heads: 4,
        intermediate: 512,
        maxPositions: 128,
        tokenizerDir: join(packageRoot, 'assets', 'tokenizers', 'all-minilm-l6-v2'),
        seed: 1,
      });
    } else {
      say(`1/4 reusing the generated encoder in ${modelDir}`);
    }
  } else {
    say(`1/4 using the encoder in ${modelDir}`);
    modelDir = resolve(modelDir);
  }

  const threads = opts.threads ? ['--threads', String(opts.threads)] : [];
  const run = join(out, 'run');
  say('2/4 embedding the sample and training a head (balanced class weights, early stopping on macro F1)');
  await edu([
    'train', '--model-dir', modelDir, '--train', data, '--text-column', opts.textColumn, '--label-column', opts.labelColumn,
    '--task', 'classification', '--val-split', '0.25', '--class-weights', 'balanced', '--epochs', '40',
    '--batch-size', '16', '--lr', '2e-3', '--early-stop', 'macro_f1', '--patience', '5', '--seed', '7',
    '--cache-dir', join(out, 'cache'), '--output', run, '--overwrite', '--quiet', ...threads,
  ]);
  say('3/4 evaluating the best head on the whole sample');
  await edu(['eval', '--run', run, '--data', data, '--output', join(out, 'eval.json'), '--cache-dir', join(out, 'cache'), ...threads]);
  say('4/4 scoring the sample');
  const predictions = join(out, 'predictions.jsonl');
  await edu(['predict', '--run', run, '--input', data, '--output', predictions, ...threads]);

  process.stderr.write(
    `\nDone. Report: ${join(run, 'report.html')} (open it in a browser)\n` +
      `Run folder: ${run} (report.txt, report.json, metrics.jsonl, head.safetensors, run.json)\n` +
      `Evaluation: ${join(out, 'eval.html')}, ${join(out, 'eval.json')}   Predictions: ${predictions}\n` +
      (opts.modelDir
        ? ''
        : '\nThe encoder above has RANDOM weights, so these numbers mean nothing about real accuracy.\n' +
          'For a real classifier, point edu-train at a pretrained model folder, for example:\n' +
          '  edu-train train --model-dir /models/ko-sroberta-multitask --train train.csv --text-column 문장 \\\n' +
          '    --label-column 유형 --task classification --class-weights balanced --output runs/sentence-type\n'),
  );
}

/** Runs one edu-train command in this process; its errors propagate as they would from the CLI. */
async function edu(args: string[]): Promise<void> {
  // Imported lazily: program.ts registers this command, so a static import would be circular.
  const { buildProgram } = await import('../program.js');
  await buildProgram().parseAsync(['node', 'edu-train', ...args]);
}

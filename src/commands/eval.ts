/**
 * `edu-train eval`: the sklearn-style report (text, or --json) for
 *  - a trained run on a labelled table (--run RUN_DIR --data FILE; embeddings come from the cache), or
 *  - a predictions file (--predictions FILE --true-column C --pred-column C), e.g. from `predict`.
 */
import { Option, type Command } from 'commander';
import { loadEncoder } from '../encoder.js';
import { evaluateClassification, evaluateRegression, evaluationText, type Evaluation } from '../eval/evaluate.js';
import { argmaxRows } from '../eval/metrics.js';
import { cachedEmbeddings, computeEmbeddings, EmbeddingCache } from '../train/embedding-cache.js';
import { encodeRegressionTargets, LabelMap, type Label } from '../train/label-map.js';
import { encodeWithMap, normalizeLabels, rawLabels, readColumns, textsOf } from '../train/pipeline.js';
import { openRunHead, readRun, runModelIdentity, writeJson } from '../train/run-dir.js';
import { UsageError, messageOf } from '../util/errors.js';
import { isaFromEnv, parsePositiveInt } from './common.js';
import { parseList, parseNumber } from './train.js';

interface EvalCli {
  run?: string;
  data?: string;
  textColumn?: string;
  labelColumn?: string;
  modelDir?: string;
  predictions?: string;
  trueColumn?: string;
  predColumn?: string;
  task: 'classification' | 'regression';
  threshold?: number;
  labels?: string[];
  json: boolean;
  output?: string;
  threads?: number;
  embedBatchSize: number;
  cacheDir?: string;
  cache: boolean;
  quiet: boolean;
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description(
      'Evaluation report: per-class precision/recall/F1/support, accuracy, macro and weighted averages, confusion matrix;\n' +
        'regression adds MSE, Pearson, Spearman and binary P/R/F1 at int_score >= --threshold.\n' +
        '  eval --run RUN_DIR --data FILE               a trained run on a labelled table\n' +
        '  eval --predictions FILE --true-column C --pred-column C   an existing predictions table',
    )
    .option('--run <dir>', 'run folder written by `edu-train train`')
    .option('--data <file>', 'with --run: labelled table to evaluate on')
    .option('--text-column <name>', "with --run: text column (default: the run's)")
    .option('--label-column <name>', "with --run: label column (default: the run's)")
    .option('--model-dir <dir>', "with --run: the run's encoder, if it moved (its hashes must match run.json)")
    .option('--predictions <file>', 'table with true and predicted values')
    .option('--true-column <name>', 'with --predictions: true labels / scores')
    .option('--pred-column <name>', 'with --predictions: predicted labels / scores')
    .addOption(new Option('--task <task>', 'with --predictions: how to compare the columns').choices(['classification', 'regression']).default('classification'))
    .option('--threshold <x>', "regression: int_score >= x is the positive class of the binary metrics (default: the run's, else 3)", parseNumber('--threshold'))
    .option('--labels <a,b,c>', 'with --predictions: label order (default: sorted union of true and predicted labels)', parseList)
    .option('--json', 'print the JSON report instead of the text', false)
    .option('--output <file>', 'also write the JSON report to this file')
    .option('--threads <n>', 'CPU threads (default: all available cores)', parsePositiveInt('--threads'))
    .option('--embed-batch-size <n>', 'texts per encoder forward pass', parsePositiveInt('--embed-batch-size'), 32)
    .option('--cache-dir <dir>', 'embedding cache (default: $EDU_TRAIN_CACHE or ~/.cache/edu-train/embeddings)')
    .option('--no-cache', 'always run the encoder; read and write no cache')
    .option('--quiet', 'no progress bar', false)
    .action(async (opts: EvalCli) => {
      const e = opts.run ? await evalRun(opts) : await evalPredictions(opts);
      process.stdout.write(opts.json ? `${JSON.stringify(e, null, 2)}\n` : evaluationText(e));
      if (opts.output) writeJson(opts.output, e);
    });
}

function need(value: string | undefined, flag: string, mode: string): string {
  if (value === undefined) throw new UsageError(`${mode} needs ${flag}`);
  return value;
}

async function evalRun(opts: EvalCli): Promise<Evaluation> {
  if (opts.predictions) throw new UsageError('--run and --predictions are exclusive: evaluate a run on --data, or a predictions file');
  const data = need(opts.data, '--data FILE', 'eval --run');
  const run = readRun(opts.run!);
  const c = run.config;
  const identity = await runModelIdentity(run, opts.modelDir);
  const textColumn = opts.textColumn ?? c.options.text_column;
  const labelColumn = opts.labelColumn ?? c.options.label_column;
  const cols = await readColumns(data, [{ name: textColumn, flag: '--text-column' }, { name: labelColumn, flag: '--label-column' }]);
  const texts = textsOf(cols[textColumn], textColumn, data);
  // Labels first: a bad label fails before the encoder runs.
  let yTrue: Int32Array | Float32Array;
  if (run.labelMap) yTrue = encodeWithMap(run.labelMap, rawLabels(cols[labelColumn], labelColumn, data), data, "the run's labels");
  else {
    try {
      yTrue = encodeRegressionTargets(cols[labelColumn]);
    } catch (e) {
      throw new UsageError(`${data}: ${messageOf(e)}`);
    }
  }
  const pooling = c.encoder.pooling;
  const { embeddings } = await cachedEmbeddings({
    cache: opts.cache ? new EmbeddingCache(opts.cacheDir) : null,
    identity,
    pooling,
    texts,
    what: 'eval',
    log: (l) => (opts.quiet ? undefined : process.stderr.write(`${l}\n`)),
    compute: async () => {
      const encoder = await loadEncoder(identity.dir, { threads: opts.threads, isa: isaFromEnv(), maxLength: identity.maxLength });
      try {
        return await computeEmbeddings(encoder, texts, { pooling, batchSize: opts.embedBatchSize, quiet: opts.quiet, label: 'embed eval' });
      } finally {
        encoder.dispose();
      }
    },
  });
  const head = await openRunHead(run, opts.threads);
  try {
    const outputs = await head.predict(embeddings);
    if (run.labelMap) return evaluateClassification(yTrue, argmaxRows(outputs, run.labelMap.size), run.labelMap.labels.map(String));
    return evaluateRegression(yTrue, outputs, opts.threshold ?? c.options.threshold);
  } finally {
    head.dispose();
  }
}

async function evalPredictions(opts: EvalCli): Promise<Evaluation> {
  const file = need(opts.predictions, '--run DIR or --predictions FILE', 'eval');
  if (opts.data) throw new UsageError('--data goes with --run; a predictions file is given with --predictions');
  const trueCol = need(opts.trueColumn, '--true-column', 'eval --predictions');
  const predCol = need(opts.predColumn, '--pred-column', 'eval --predictions');
  const cols = await readColumns(file, [{ name: trueCol, flag: '--true-column' }, { name: predCol, flag: '--pred-column' }]);
  if (opts.task === 'regression') {
    if (opts.labels) throw new UsageError('--labels applies to classification');
    const num = (col: string): Float32Array | Float64Array => {
      const v = cols[col].map((x, i) => {
        const n = typeof x === 'number' ? x : typeof x === 'string' && x.trim() !== '' ? Number(x) : NaN;
        if (!Number.isFinite(n)) throw new UsageError(`${file}: row ${i}: ${col} is ${JSON.stringify(x)}, not a finite number`);
        return n;
      });
      return Float64Array.from(v);
    };
    return evaluateRegression(num(trueCol), num(predCol), opts.threshold ?? 3);
  }
  const t = normalizeLabels(rawLabels(cols[trueCol], trueCol, file));
  const p = normalizeLabels(rawLabels(cols[predCol], predCol, file));
  let map: LabelMap;
  try {
    if (opts.labels) {
      const numeric = typeof t[0] === 'number';
      map = new LabelMap(opts.labels.map((l): Label => (numeric && /^[+-]?\d+$/.test(l) ? Number(l) : l)));
    } else {
      map = LabelMap.fromValues([...t, ...p]);
    }
  } catch (e) {
    throw new UsageError(messageOf(e));
  }
  const flag = opts.labels ? '--labels' : 'the labels';
  return evaluateClassification(encodeWithMap(map, t, file, flag), encodeWithMap(map, p, file, flag), map.labels.map(String));
}

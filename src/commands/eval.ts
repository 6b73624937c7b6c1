/**
 * `edu-train eval`: the sklearn-style report (text, or --json) for
 *  - a trained run on a labelled table (--run RUN_DIR --data FILE; embeddings come from the cache), or
 *  - a predictions file (--predictions FILE --true-column C --pred-column C), e.g. from `predict`.
 */
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { loadEncoder } from '../encoder.js';
import { evaluateClassification, evaluateRegression, evaluationText, type Evaluation } from '../eval/evaluate.js';
import { argmaxRows } from '../eval/metrics.js';
import { cachedEmbeddings, computeEmbeddings, EmbeddingCache, embeddingNumerics } from '../train/embedding-cache.js';
import { encodeRegressionTargets, LabelMap, type Label } from '../train/label-map.js';
import { encodeWithMap, normalizeLabels, rawLabels, readColumns, textsOf } from '../train/pipeline.js';
import { openRunHead, readRun, runModelIdentity, writeJson } from '../train/run-dir.js';
import { htmlBeside, writeEvalReport } from '../report/eval-report.js';
import { UsageError, messageOf } from '../util/errors.js';
import { resolveModelDir } from '../hub/resolve.js';
import { join } from 'node:path';
import { RUN_FILES } from '../train/run-dir.js';
import {
  addDeviceOptions, BACKBONE_HELP, checkOutputFile, MAX_BATCH_SIZE, parseList, parseNumber, parsePositiveInt, runtimeOptions, type DeviceCliOptions, type InputPath,
} from './common.js';

interface EvalCli extends DeviceCliOptions {
  run?: string;
  data?: string;
  textColumn?: string;
  labelColumn?: string;
  modelDir?: string;
  backbone?: string;
  predictions?: string;
  trueColumn?: string;
  predColumn?: string;
  task: 'classification' | 'regression';
  threshold?: number;
  labels?: string[];
  json: boolean;
  output?: string;
  /** --html FILE, or false from --no-html. */
  html?: string | false;
  threads?: number;
  embedBatchSize: number;
  cacheDir?: string;
  cache: boolean;
  quiet: boolean;
}

export function registerEval(program: Command): void {
  const cmd = program
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
    .option('--backbone <name>', `with --run: the run's encoder by name (${BACKBONE_HELP})`)
    .option('--predictions <file>', 'table with true and predicted values')
    .option('--true-column <name>', 'with --predictions: true labels / scores')
    .option('--pred-column <name>', 'with --predictions: predicted labels / scores')
    .addOption(new Option('--task <task>', 'with --predictions: how to compare the columns').choices(['classification', 'regression']).default('classification'))
    .option('--threshold <x>', "regression: int_score >= x is the positive class of the binary metrics (default: the run's, else 3)", parseNumber('--threshold'))
    .option('--labels <a,b,c>', 'with --predictions: label order (default: sorted union of true and predicted labels)', parseList)
    .option('--json', 'print the JSON report instead of the text', false)
    .option('--output <file>', 'also write the JSON report to this file (default: none, print only)')
    .option('--html <file>', 'HTML report with charts, SVGs in <name>-charts/ (default: beside --output, e.g. eval.json -> eval.html; none without --output)')
    .option('--no-html', 'write no HTML report')
    .option('--embed-batch-size <n>', 'texts per encoder forward pass', parsePositiveInt('--embed-batch-size', MAX_BATCH_SIZE), 32)
    .option('--cache-dir <dir>', 'embedding cache (default: $EDU_TRAIN_CACHE or ~/.cache/edu-train/embeddings)')
    .option('--no-cache', 'always run the encoder; read and write no cache')
    .option('--quiet', 'no progress bar', false);
  addDeviceOptions(cmd).action(async (opts: EvalCli) => {
      const html = opts.html === false ? undefined : (opts.html ?? (opts.output ? htmlBeside(opts.output) : undefined));
      checkEvalOutputs(opts, html);
      const { evaluation: e, scores } = opts.run ? await evalRun(opts) : await evalPredictions(opts);
      process.stdout.write(opts.json ? `${JSON.stringify(e, null, 2)}\n` : evaluationText(e));
      if (opts.output) writeJson(opts.output, e);
      if (html) {
        const source: [string, string][] = opts.run ? [['run', resolve(opts.run)], ['data', resolve(opts.data!)]] : [['predictions', resolve(opts.predictions!)]];
        await writeEvalReport(html, { evaluation: e, scores, meta: source });
        if (!opts.quiet) process.stderr.write(`wrote ${html}\n`);
      }
    });
}

/** --output and the HTML report: writable, and none of the files eval reads (before any work). */
function checkEvalOutputs(opts: EvalCli, html: string | undefined): void {
  const inputs: InputPath[] = [];
  if (opts.data) inputs.push({ path: opts.data, flag: '--data' });
  if (opts.predictions) inputs.push({ path: opts.predictions, flag: '--predictions' });
  if (opts.run) for (const f of Object.values(RUN_FILES)) inputs.push({ path: join(opts.run, f), flag: `--run folder's ${f}` });
  if (opts.output) checkOutputFile(opts.output, '--output', { inputs });
  if (html) checkOutputFile(html, opts.html ? '--html' : 'the HTML report (beside --output)', { inputs: [...inputs, ...(opts.output ? [{ path: opts.output, flag: '--output' }] : [])] });
}

function need(value: string | undefined, flag: string, mode: string): string {
  if (value === undefined) throw new UsageError(`${mode} needs ${flag}`);
  return value;
}

/** The report, plus the raw true / predicted scores of a regression (for the report's scatter and histogram). */
interface Evaluated {
  evaluation: Evaluation;
  scores?: { truth: ArrayLike<number>; pred: ArrayLike<number> };
}

async function evalRun(opts: EvalCli): Promise<Evaluated> {
  if (opts.predictions) throw new UsageError('--run and --predictions are exclusive: evaluate a run on --data, or a predictions file');
  const data = need(opts.data, '--data FILE', 'eval --run');
  const run = readRun(opts.run!);
  const c = run.config;
  const modelDir = opts.backbone ? await resolveModelDir({ modelDir: opts.modelDir, backbone: opts.backbone, quiet: opts.quiet }) : opts.modelDir;
  const identity = await runModelIdentity(run, modelDir);
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
    numerics: embeddingNumerics(opts.device, opts.precision, opts.dtype),
    what: 'eval',
    log: (l) => (opts.quiet ? undefined : process.stderr.write(`${l}\n`)),
    compute: async () => {
      const encoder = await loadEncoder(identity.dir, { ...runtimeOptions(opts), maxLength: identity.maxLength });
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
    if (run.labelMap) return { evaluation: evaluateClassification(yTrue, argmaxRows(outputs, run.labelMap.size), run.labelMap.labels.map(String)) };
    return { evaluation: evaluateRegression(yTrue, outputs, opts.threshold ?? c.options.threshold), scores: { truth: yTrue, pred: outputs } };
  } finally {
    head.dispose();
  }
}

async function evalPredictions(opts: EvalCli): Promise<Evaluated> {
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
    const [truth, pred] = [num(trueCol), num(predCol)];
    return { evaluation: evaluateRegression(truth, pred, opts.threshold ?? 3), scores: { truth, pred } };
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
  return { evaluation: evaluateClassification(encodeWithMap(map, t, file, flag), encodeWithMap(map, p, file, flag), map.labels.map(String)) };
}

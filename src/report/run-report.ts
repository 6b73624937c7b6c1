/**
 * The HTML reports `train` writes into the run folder: report.html (+ charts/) for a run or a fold, and
 * for --folds a summary page with the spread of every metric over the folds and links to each fold's page.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Evaluation } from '../eval/evaluate.js';
import type { TrainOptions } from '../train/pipeline.js';
import { escapeHtml } from './html.js';
import { f4, foldCurvesSpec, foldSpreadSpec, type EpochRow, type SpreadGroup } from './charts.js';
import { evaluationCards, evaluationSections, type TrainingHistory } from './evaluation-sections.js';
import { htmlTable, type Cell } from './tables.js';
import { REPORT_FILES, writeReport } from './write.js';

export interface RunReportInput {
  /** 'train' or 'fold 2/5'. */
  name: string;
  options: TrainOptions;
  evaluation: Evaluation;
  /** Validation targets and head outputs (regression: the scatter and histogram). */
  scores?: { truth: ArrayLike<number>; pred: ArrayLike<number> };
  epochs: EpochRow[];
  best: TrainingHistory['best'];
}

function optionsMeta(o: TrainOptions): [string, string][] {
  return [
    ['model', resolve(o.modelDir)],
    ['training data', resolve(o.train)],
    ['validation', o.val ? resolve(o.val) : o.folds ? `held-out fold of ${o.folds}` : `${o.valSplit ?? 0.1} of the training data (stratified, seed ${o.seed})`],
    ['head', `${o.head}, pooling ${o.pooling ?? (o.head === 'pooler' ? 'cls' : 'mean')}`],
    ['optimiser', `AdamW lr ${o.lr}, ${o.schedule} schedule, batch ${o.batchSize}`],
    ['class weights / sampler', `${o.classWeights} / ${o.sampler}`],
    ['early stopping', `${o.earlyStop}, patience ${o.patience}`],
  ];
}

/** report.html + charts/ in a run (or fold) folder. */
export async function writeRunReport(dir: string, r: RunReportInput): Promise<void> {
  const training: TrainingHistory = { epochs: r.epochs, best: r.best, patience: r.options.patience };
  const kind = r.options.task === 'regression' ? 'regression' : `${r.evaluation.task === 'classification' ? r.evaluation.labels.length : 0}-class classification`;
  await writeReport(join(dir, REPORT_FILES.html), join(dir, REPORT_FILES.charts), {
    title: `edu-train: ${r.name === 'train' ? 'training run' : r.name}`,
    subtitle: `${kind}, validation report of the best epoch's head (${r.evaluation.n} rows)`,
    meta: optionsMeta(r.options),
    cards: evaluationCards(r.evaluation, training),
    sections: evaluationSections({ evaluation: r.evaluation, scores: r.scores, training }),
    footer: `Written by edu-train train on ${new Date().toISOString()}. The same numbers are in report.json, report.txt, metrics.jsonl and best.json.`,
  });
}

export interface CvLike {
  folds: number;
  task: string;
  metrics: Record<string, { mean: number; std: number; values: number[] }>;
  f1_per_label: Record<string, { mean: number; std: number; values: number[] }>;
}

const groups = (m: CvLike['metrics'], skip: string[] = []): SpreadGroup[] =>
  Object.entries(m).filter(([k]) => !skip.includes(k)).map(([name, v]) => ({ name, ...v }));

/** The --folds summary page in the run folder; fold-<k>/ must already hold its metrics.jsonl and best.json. */
export async function writeCvReport(dir: string, cv: CvLike, options: TrainOptions, foldDirs: string[]): Promise<void> {
  const readJson = (f: string) => JSON.parse(readFileSync(f, 'utf8'));
  const folds = foldDirs.map((sub, k) => ({
    name: `fold ${k}`,
    sub,
    rows: readFileSync(join(dir, sub, 'metrics.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as EpochRow),
    best: readJson(join(dir, sub, 'best.json')) as TrainingHistory['best'],
  }));
  const metric = options.earlyStop === 'loss' ? 'macro_f1' : options.earlyStop;
  const tableRows: Cell[][] = [...Object.entries(cv.metrics), ...Object.entries(cv.f1_per_label).map(([k, v]) => [`F1 ${k}`, v] as const)].map(([k, v]) => [
    k, `${f4(v.mean)} ± ${f4(v.std)}`, ...v.values,
  ]);
  const links = folds
    .map((f) => {
      const href = `${f.sub}/${REPORT_FILES.html}`;
      return `<li><a href="${escapeHtml(href)}">${escapeHtml(f.name)}</a>: best epoch ${f.best.best_epoch} of ${f.best.epochs_run}${f.best.stopped_early ? ' (stopped early)' : ''}</li>`;
    })
    .join('');
  const m = cv.metrics;
  const cards: [string, string][] = (cv.task === 'regression' ? ['mse', 'pearson', 'binary_f1', 'macro_f1'] : ['accuracy', 'macro_f1', 'weighted_f1'])
    .filter((k) => m[k])
    .map((k) => [k.replace('_', ' '), `${f4(m[k].mean)} ± ${f4(m[k].std)}`]);
  cards.push(['folds', String(cv.folds)]);
  await writeReport(join(dir, REPORT_FILES.html), join(dir, REPORT_FILES.charts), {
    title: `edu-train: ${cv.folds}-fold cross-validation`,
    subtitle: `${cv.task}, every fold validated on its held-out part; mean ± std over folds (std with ddof = 0)`,
    meta: optionsMeta(options),
    cards,
    sections: [
      {
        title: 'Spread over folds',
        note: 'Each point is one fold; the black tick is the mean and the grey bar mean ± std. MSE is in the table (its scale differs).',
        charts: [
          { name: 'cv-metrics', spec: foldSpreadSpec(groups(cv.metrics, ['mse']), 'Validation metrics per fold') },
          { name: 'cv-f1-per-label', spec: foldSpreadSpec(groups(cv.f1_per_label), cv.task === 'regression' ? 'F1 per int score, per fold' : 'F1 per class, per fold') },
        ],
        tables: [htmlTable('Mean ± std and per-fold values', ['metric', 'mean ± std', ...folds.map((f) => f.name)], tableRows)],
      },
      {
        title: 'Learning curves',
        note: `Validation ${metric} after each epoch of every fold. Each fold has its own page with its confusion matrix and curves:`,
        charts: [{ name: 'cv-learning', spec: foldCurvesSpec(folds.map((f) => ({ name: f.name, rows: f.rows })), `val_${metric}`, metric) }],
        tables: [],
        html: `<ul class="links">${links}</ul>`,
      },
    ],
    footer: `Written by edu-train train on ${new Date().toISOString()}. The same numbers are in cv_summary.json and cv_report.txt.`,
  });
}

/**
 * An evaluation (report.json) -> the report's cards and chart sections: confusion matrices, per-class
 * scores, for regression the predicted-vs-true plot and score histogram, and the learning curves when
 * the evaluation comes from training.
 */
import type { Evaluation } from '../eval/evaluate.js';
import type { SklearnReportDict, SklearnScores } from '../eval/metrics.js';
import {
  confusionSpec, f4, learningCurveSpec, perClassSpec, predVsTrueSpec, scoreHistogramSpec,
  type BestEpoch, type ClassScoresRow, type EpochRow,
} from './charts.js';
import { classReportTable, confusionTable, htmlTable, type Cell } from './tables.js';
import type { ChartSection } from './write.js';

export interface TrainingHistory {
  /** metrics.jsonl rows. */
  epochs: EpochRow[];
  /** best.json. */
  best: BestEpoch & { value: number | null };
  patience: number | 'off';
}

export interface EvaluationReport {
  evaluation: Evaluation;
  /** Raw true / predicted scores (regression) for the scatter and the histogram. */
  scores?: { truth: ArrayLike<number>; pred: ArrayLike<number> };
  training?: TrainingHistory;
}

function classRows(dict: SklearnReportDict, keys: string[], names: string[] = keys): ClassScoresRow[] {
  return keys.map((k, i) => {
    const s = dict[k] as SklearnScores;
    return { label: names[i], precision: s.precision, recall: s.recall, f1: s['f1-score'], support: s.support };
  });
}

export function evaluationCards(e: Evaluation, training?: TrainingHistory): [string, string][] {
  const cards: [string, string][] =
    e.task === 'classification'
      ? [['accuracy', f4(e.accuracy)], ['macro F1', f4(e.macro_f1)], ['weighted F1', f4(e.weighted_f1)]]
      : [['MSE', f4(e.mse)], ['Pearson', f4(e.pearson)], ['Spearman', f4(e.spearman)], [`binary F1 (≥ ${e.threshold})`, f4(e.binary_f1)], ['int-score macro F1', f4(e.macro_f1)]];
  cards.push(['rows', String(e.n)]);
  if (training) cards.push(['best epoch', `${training.best.best_epoch} / ${training.best.epochs_run}`]);
  return cards;
}

function matrixSection(title: string, note: string, matrix: number[][], names: string[], prefix: string): ChartSection {
  return {
    title,
    note,
    charts: [
      { name: `${prefix}confusion-counts`, spec: confusionSpec(matrix, names, 'counts') },
      { name: `${prefix}confusion-normalised`, spec: confusionSpec(matrix, names, 'normalised') },
    ],
    tables: [confusionTable('Counts', matrix, names)],
  };
}

function classificationSections(e: Extract<Evaluation, { task: 'classification' }>): ChartSection[] {
  return [
    matrixSection('Confusion matrix', 'Rows are the true classes, columns the predictions. The right-hand matrix divides each row by its total, so its diagonal is the recall of each class.', e.confusion_matrix, e.labels, ''),
    {
      title: 'Per-class scores',
      charts: [{ name: 'per-class', spec: perClassSpec(classRows(e.report, e.labels)) }],
      tables: [classReportTable('Classification report', e.report, e.labels)],
    },
  ];
}

function regressionSections(e: Extract<Evaluation, { task: 'regression' }>, scores?: EvaluationReport['scores']): ChartSection[] {
  const ints = ['0', '1', '2', '3', '4', '5'];
  const bin = [`< ${e.threshold}`, `≥ ${e.threshold}`];
  const out: ChartSection[] = [];
  const summary = htmlTable('Regression', ['metric', 'value'], [
    ['rows', String(e.n)], ['MSE', e.mse], ['Pearson', e.pearson], ['Spearman', e.spearman],
    ['threshold (int_score ≥)', String(e.threshold)], ['binary precision', e.binary_precision], ['binary recall', e.binary_recall], ['binary F1', e.binary_f1],
  ] as Cell[][]);
  out.push({
    title: 'Scores',
    note: `The dashed red line is the threshold: int_score = round-half-to-even(clip(score, 0, 5)) ≥ ${e.threshold}, i.e. a raw score above about ${e.threshold - 0.5}.`,
    charts: scores
      ? [
          { name: 'pred-vs-true', spec: predVsTrueSpec(scores.truth, scores.pred, e.threshold) },
          { name: 'score-histogram', spec: scoreHistogramSpec(scores.truth, scores.pred, e.threshold) },
        ]
      : [],
    tables: [summary],
  });
  out.push(matrixSection('Int scores (0–5): confusion matrix', 'Rows are the true int scores, columns the predicted ones.', e.int_confusion_matrix, ints, 'int-'));
  out.push({
    title: 'Int scores (0–5): per-class scores',
    charts: [{ name: 'int-per-class', spec: perClassSpec(classRows(e.int_report, ints), 'Precision, recall and F1 per int score') }],
    tables: [classReportTable('Int-score report', e.int_report, ints)],
  });
  out.push({
    title: `Binary: int_score ≥ ${e.threshold}`,
    charts: [{ name: 'binary-confusion-counts', spec: confusionSpec(e.binary_confusion_matrix, bin, 'counts') }],
    tables: [classReportTable('Binary report', e.binary_report, ['0', '1'], bin)],
  });
  return out;
}

function learningSection(t: TrainingHistory, task: Evaluation['task']): ChartSection {
  const metric = t.best.metric;
  const lossName = task === 'regression' ? 'MSE loss' : 'cross-entropy loss';
  // The loss panel already shows `loss`; a loss-based early stop plots macro F1 in the second panel.
  const shown = metric === 'loss' ? 'macro_f1' : metric;
  const stop = t.best.stopped_early
    ? `Training stopped early after epoch ${t.best.epochs_run} (no better validation ${metric} for ${t.patience} epochs).`
    : `Ran all ${t.best.epochs_run} epochs${t.patience === 'off' ? ' (early stopping off)' : ''}.`;
  const rows: Cell[][] = t.epochs.map((r) => [String(r.epoch), r.train_loss, r.val_loss as number, r[`val_${shown}`] as number, r.lr as number]);
  return {
    title: 'Learning curves',
    note: `The head kept is the one from the best epoch, ${t.best.best_epoch}, by validation ${metric} (${f4(t.best.value)}). ${stop}`,
    charts: [
      { name: 'learning-loss', spec: learningCurveSpec(t.epochs, [{ name: 'train loss', key: 'train_loss' }, { name: 'validation loss', key: 'val_loss' }], t.best, `Loss per epoch (${lossName})`, 'loss') },
      { name: 'learning-metric', spec: learningCurveSpec(t.epochs, [{ name: `validation ${shown}`, key: `val_${shown}` }], t.best, `Validation ${shown} per epoch`, shown) },
    ],
    tables: [
      htmlTable('Per epoch', ['epoch', 'train loss', 'val loss', `val ${shown}`, 'lr'], rows.map((r) => [r[0], r[1], r[2], r[3], typeof r[4] === 'number' ? r[4].toExponential(2) : r[4]]), (i) =>
        t.epochs[i].epoch === t.best.best_epoch ? 'best' : '',
      ),
    ],
  };
}

export function evaluationSections(r: EvaluationReport): ChartSection[] {
  const e = r.evaluation;
  const sections = e.task === 'classification' ? classificationSections(e) : regressionSections(e, r.scores);
  if (r.training) sections.push(learningSection(r.training, e.task));
  return sections;
}

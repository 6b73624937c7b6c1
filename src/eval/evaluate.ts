/**
 * Predictions -> the evaluation report, as JSON (sklearn's output_dict layout, keyed by label name) and as
 * text (classification_report + confusion matrix). Shared by `train` (validation report of the best head),
 * `eval --run`, `eval --predictions` and the cross-validation summary.
 */
import {
  classificationReport,
  confusionMatrix,
  regressionMetrics,
  reportToSklearnDict,
  type ClassificationReport,
  type SklearnReportDict,
} from './metrics.js';
import { classificationReportText, confusionMatrixText } from './report-text.js';

export interface ClassificationEvaluation {
  task: 'classification';
  n: number;
  /** Label names, in class-id order. */
  labels: string[];
  accuracy: number;
  macro_f1: number;
  weighted_f1: number;
  /** sklearn classification_report(output_dict=True) with the label names as keys. */
  report: SklearnReportDict;
  /** Rows true, columns predicted, in `labels` order. */
  confusion_matrix: number[][];
}

export interface RegressionEvaluation {
  task: 'regression';
  n: number;
  mse: number;
  /** null in JSON when either side is constant (scipy gives NaN). */
  pearson: number;
  spearman: number;
  threshold: number;
  /** int_score = round-half-to-even(clip(score, 0, 5)); these three are over int scores 0..5. */
  accuracy: number;
  macro_f1: number;
  weighted_f1: number;
  int_report: SklearnReportDict;
  int_confusion_matrix: number[][];
  /** F1 of int_score >= threshold. */
  binary_f1: number;
  binary_precision: number;
  binary_recall: number;
  binary_report: SklearnReportDict;
  binary_confusion_matrix: number[][];
}

export type Evaluation = ClassificationEvaluation | RegressionEvaluation;

function renameKeys(dict: SklearnReportDict, ids: readonly number[], names: readonly string[]): SklearnReportDict {
  const out: SklearnReportDict = {};
  for (const [k, v] of Object.entries(dict)) {
    const i = ids.findIndex((id) => String(id) === k);
    out[i >= 0 ? names[i] : k] = v;
  }
  return out;
}

/** yTrue/yPred are class ids 0..names.length-1. */
export function evaluateClassification(yTrue: ArrayLike<number>, yPred: ArrayLike<number>, names: readonly string[]): ClassificationEvaluation {
  const ids = names.map((_, i) => i);
  const r: ClassificationReport = classificationReport(yTrue, yPred, ids);
  return {
    task: 'classification',
    n: yTrue.length,
    labels: [...names],
    accuracy: r.accuracy,
    macro_f1: r.macroAvg.f1,
    weighted_f1: r.weightedAvg.f1,
    report: renameKeys(reportToSklearnDict(r), ids, names),
    confusion_matrix: confusionMatrix(yTrue, yPred, ids),
  };
}

export function evaluateRegression(yTrue: ArrayLike<number>, yPred: ArrayLike<number>, threshold = 3): RegressionEvaluation {
  const m = regressionMetrics(yTrue, yPred, threshold);
  const pos = m.binaryReport.perClass[1];
  return {
    task: 'regression',
    n: yTrue.length,
    mse: m.mse,
    pearson: m.pearson,
    spearman: m.spearman,
    threshold,
    accuracy: m.intReport.accuracy,
    macro_f1: m.intReport.macroAvg.f1,
    weighted_f1: m.intReport.weightedAvg.f1,
    int_report: reportToSklearnDict(m.intReport),
    int_confusion_matrix: m.intConfusionMatrix,
    binary_f1: m.binaryF1,
    binary_precision: pos.precision,
    binary_recall: pos.recall,
    binary_report: reportToSklearnDict(m.binaryReport),
    binary_confusion_matrix: confusionMatrix(m.binaryTrue, m.binaryPred, [0, 1]),
  };
}

/** Per-label F1 (label name -> F1): for regression, over the int scores 0..5. */
export function perLabelF1(e: Evaluation): Record<string, number> {
  const dict = e.task === 'classification' ? e.report : e.int_report;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(dict)) if (typeof v === 'object' && k !== 'macro avg' && k !== 'weighted avg') out[k] = v['f1-score'];
  return out;
}

/** Rebuilds the metrics object classificationReportText wants from an sklearn dict. */
function fromDict(dict: SklearnReportDict, keys: readonly string[]): ClassificationReport {
  const s = (k: string) => {
    const v = dict[k] as { precision: number; recall: number; 'f1-score': number; support: number };
    return { precision: v.precision, recall: v.recall, f1: v['f1-score'], support: v.support };
  };
  return {
    labels: keys.map((_, i) => i),
    perClass: keys.map(s),
    accuracy: dict.accuracy as number,
    macroAvg: s('macro avg'),
    weightedAvg: s('weighted avg'),
  };
}

const fmt = (x: number): string => (Number.isFinite(x) ? x.toFixed(4) : 'nan');

/** The human report: sklearn-style table(s) plus confusion matrices. */
export function evaluationText(e: Evaluation, digits = 4): string {
  if (e.task === 'classification') {
    return (
      classificationReportText(fromDict(e.report, e.labels), { targetNames: e.labels, digits }) +
      '\nconfusion matrix (rows: true, columns: predicted)\n' +
      confusionMatrixText(e.confusion_matrix, e.labels)
    );
  }
  const ints = ['0', '1', '2', '3', '4', '5'];
  const bin = [`< ${e.threshold}`, `>= ${e.threshold}`];
  return (
    `regression on ${e.n} rows: MSE ${fmt(e.mse)}  Pearson ${fmt(e.pearson)}  Spearman ${fmt(e.spearman)}\n\n` +
    'int_score = round-half-to-even(clip(score, 0, 5))\n' +
    classificationReportText(fromDict(e.int_report, ints), { targetNames: ints, digits }) +
    '\nconfusion matrix of int scores (rows: true, columns: predicted)\n' +
    confusionMatrixText(e.int_confusion_matrix, ints) +
    `\nbinary: int_score >= ${e.threshold}\n` +
    classificationReportText(fromDict(e.binary_report, ['0', '1']), { targetNames: bin, digits }) +
    `\nbinary F1 (int_score >= ${e.threshold}): ${fmt(e.binary_f1)}\n` +
    confusionMatrixText(e.binary_confusion_matrix, bin)
  );
}

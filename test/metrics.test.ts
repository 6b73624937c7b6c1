import { describe, expect, it } from 'vitest';
import { readSharedJson } from './helpers/shared.js';
import {
  classificationReport,
  confusionMatrix,
  f1Macro,
  intScore,
  regressionMetrics,
  reportToSklearnDict,
  roundHalfEven,
  spearman,
  averageRanks,
} from '../src/eval/metrics.js';
import { classificationReportText, confusionMatrixText, displayWidth, formatFixed } from '../src/eval/report-text.js';

const golden = readSharedJson('golden', 'training', 'metrics.json');

/** Relative 1e-12 (absolute near 0): the references are float64 sklearn/scipy values. */
function close(actual: number, expected: number, what: string): void {
  const tol = 1e-12 * Math.max(1, Math.abs(expected));
  if (!(Math.abs(actual - expected) <= tol)) throw new Error(`${what}: ${actual} != ${expected}`);
}

function compareReport(actual: Record<string, any>, expected: Record<string, any>, what: string): void {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  for (const [k, v] of Object.entries(expected)) {
    if (typeof v === 'number') close(actual[k], v, `${what}.${k}`);
    else for (const f of ['precision', 'recall', 'f1-score', 'support']) close(actual[k][f], v[f], `${what}.${k}.${f}`);
  }
}

describe('classification metrics vs sklearn (metrics.json)', () => {
  for (const c of golden.classification) {
    it(c.name, () => {
      const r = classificationReport(c.y_true, c.y_pred, c.labels);
      compareReport(reportToSklearnDict(r), c.classification_report, c.name);
      expect(confusionMatrix(c.y_true, c.y_pred, c.labels)).toEqual(c.confusion_matrix);
      close(f1Macro(c.y_true, c.y_pred, c.labels), c.f1_macro, 'f1_macro');
      close(r.accuracy, c.accuracy, 'accuracy');
      for (const l of c.never_predicted) expect(r.perClass[c.labels.indexOf(l)].precision).toBe(0);
    });
  }
});

describe('regression metrics vs sklearn/scipy (metrics.json)', () => {
  for (const c of golden.regression) {
    it(c.name, () => {
      const m = regressionMetrics(c.y_true, c.y_pred, 3);
      expect(Array.from(m.intTrue)).toEqual(c.int_true);
      expect(Array.from(m.intPred)).toEqual(c.int_pred);
      expect(Array.from(m.binaryTrue)).toEqual(c.binary_true.map(Number));
      expect(Array.from(m.binaryPred)).toEqual(c.binary_pred.map(Number));
      close(m.binaryF1, c.binary_f1, 'binary_f1');
      compareReport(reportToSklearnDict(m.binaryReport), c.binary_classification_report, 'binary');
      compareReport(reportToSklearnDict(m.intReport), c.int_classification_report, 'int');
      expect(m.intConfusionMatrix).toEqual(c.int_confusion_matrix);
      close(m.intF1Macro, c.int_f1_macro, 'int_f1_macro');
      close(m.pearson, c.pearson, 'pearson');
      close(m.spearman, c.spearman, 'spearman');
      close(m.mse, c.mse, 'mse');
    });
  }
  it('covers every field of each regression case', () => {
    const checked = new Set(['name', 'y_true', 'y_pred', 'int_score_rule', 'int_true', 'int_pred', 'binary_rule', 'binary_true',
      'binary_pred', 'binary_f1', 'binary_classification_report', 'int_classification_report', 'int_confusion_matrix',
      'int_f1_macro', 'pearson', 'spearman', 'correlation_note', 'mse']);
    for (const c of golden.regression) for (const k of Object.keys(c)) expect(checked.has(k), k).toBe(true);
    const checkedCls = new Set(['name', 'n_classes', 'labels', 'never_predicted', 'y_true', 'y_pred', 'classification_report',
      'confusion_matrix', 'f1_macro', 'accuracy']);
    for (const c of golden.classification) for (const k of Object.keys(c)) expect(checkedCls.has(k), k).toBe(true);
  });
});

describe('int score rounding', () => {
  it('rounds half to even like Python round()', () => {
    const cases: [number, number][] = [[2.5, 2], [3.5, 4], [0.5, 0], [4.5, 4], [1.5, 2], [2.4999, 2], [2.5001, 3], [-0.5, 0],
      [-0.7, 0], [5.8, 5], [5.0, 5], [3.0, 3], [0.49999999999999994, 0]];
    for (const [x, want] of cases) expect(intScore(x), String(x)).toBe(want);
    expect(roundHalfEven(-2.5)).toBe(-2);
    expect(roundHalfEven(-1.5)).toBe(-2);
  });
});

describe('ranks', () => {
  it('gives tied values the mean rank', () => {
    expect(Array.from(averageRanks([10, 20, 20, 5, 20]))).toEqual([2, 4, 4, 1, 4]);
    expect(spearman([1, 2, 3, 4], [10, 20, 30, 40])).toBeCloseTo(1, 15);
  });
});

describe('text report', () => {
  it('matches sklearn classification_report(digits=4) layout', () => {
    const c = golden.classification[0];
    const text = classificationReportText(classificationReport(c.y_true, c.y_pred, c.labels), { digits: 4 });
    // sklearn's own format strings (head_fmt / row_fmt / row_fmt_accuracy of classification_report) run in
    // Python over this case's golden report dict, digits=4.
    const want = [
      '              precision    recall  f1-score   support',
      '',
      '           0     0.6818    0.7895    0.7317        19',
      '           1     0.7500    0.7059    0.7273        17',
      '           2     0.8125    0.8667    0.8387        15',
      '           3     0.6667    0.5714    0.6154         7',
      '           4     0.0000    0.0000    0.0000         2',
      '',
      '    accuracy                         0.7333        60',
      '   macro avg     0.5822    0.5867    0.5826        60',
      'weighted avg     0.7093    0.7333    0.7192        60',
      '',
    ].join('\n');
    expect(text).toBe(want);
  });

  it('aligns Korean label names by display width', () => {
    const names = ['사실형', '추론형', '대화형'];
    const r = classificationReport([0, 1, 2, 2], [0, 1, 2, 1], [0, 1, 2]);
    const lines = classificationReportText(r, { targetNames: names }).split('\n').filter((l) => l.length > 0);
    const widths = lines.map(displayWidth);
    expect(new Set(widths).size).toBe(1);
    const cm = confusionMatrixText(confusionMatrix([0, 1, 2, 2], [0, 1, 2, 1], [0, 1, 2]), names).trimEnd().split('\n');
    expect(new Set(cm.map(displayWidth)).size).toBe(1);
    expect(cm[0]).toBe('true \\ pred  사실형  추론형  대화형');
    expect(cm[3]).toBe('대화형            0       1       1');
    expect(displayWidth('사실형')).toBe(6);
  });

  it('formats like Python: exact ties round half to even', () => {
    expect(formatFixed(0.03125, 4)).toBe('0.0312');
    expect(formatFixed(0.03135, 4)).toBe((0.03135).toFixed(4)); // not an exact binary tie
    expect(formatFixed(0.5, 0)).toBe('0');
    expect(formatFixed(1.5, 0)).toBe('2');
    expect(formatFixed(-0.03125, 4)).toBe('-0.0312');
    expect(formatFixed(2.675, 2)).toBe('2.67'); // 2.675 is below the tie in binary
  });
});

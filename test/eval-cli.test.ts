/**
 * `edu-train eval --predictions` against the golden scikit-learn / scipy numbers of
 * ../shared/golden/training/metrics.json (the independent reference), through the built CLI, plus the
 * text layout of the report.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';
import { readSharedJson } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const golden = readSharedJson('golden', 'training', 'metrics.json');
const tmp = useTmpDirs('edu-eval-');

/** Relative 1e-12: the references are float64 values from sklearn/scipy. */
function close(actual: number, expected: number, what: string): void {
  const tol = 1e-12 * Math.max(1, Math.abs(expected));
  if (!(Math.abs(actual - expected) <= tol)) throw new Error(`${what}: ${actual} != ${expected}`);
}

function compareReport(actual: Record<string, any>, expected: Record<string, any>, what: string): void {
  expect(Object.keys(actual).sort(), what).toEqual(Object.keys(expected).sort());
  for (const [k, v] of Object.entries(expected)) {
    if (typeof v === 'number') close(actual[k], v, `${what}.${k}`);
    else for (const f of ['precision', 'recall', 'f1-score', 'support']) close(actual[k][f], v[f], `${what}.${k}.${f}`);
  }
}

function writeJsonl(rows: Record<string, unknown>[]): string {
  const f = join(tmp.make(), 'pred.jsonl');
  writeFileSync(f, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return f;
}

function writeCsv(header: string[], rows: unknown[][]): string {
  const f = join(tmp.make(), 'pred.csv');
  writeFileSync(f, [header.join(','), ...rows.map((r) => r.join(','))].join('\n') + '\n');
  return f;
}

async function evalJson(args: string[]): Promise<any> {
  const r = await runCli(['eval', ...args, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

describe('eval --predictions: classification vs sklearn', () => {
  for (const c of golden.classification) {
    it(`${c.name} (JSONL with integers and CSV with text)`, async () => {
      const jsonl = writeJsonl(c.y_true.map((t: number, i: number) => ({ y: t, p: c.y_pred[i] })));
      const csv = writeCsv(['y', 'p'], c.y_true.map((t: number, i: number) => [t, c.y_pred[i]]));
      for (const file of [jsonl, csv]) {
        const e = await evalJson(['--predictions', file, '--true-column', 'y', '--pred-column', 'p', '--labels', c.labels.join(',')]);
        expect(e.task).toBe('classification');
        expect(e.labels).toEqual(c.labels.map(String));
        compareReport(e.report, c.classification_report, c.name);
        expect(e.confusion_matrix).toEqual(c.confusion_matrix);
        close(e.macro_f1, c.f1_macro, 'macro_f1');
        close(e.accuracy, c.accuracy, 'accuracy');
        close(e.weighted_f1, c.classification_report['weighted avg']['f1-score'], 'weighted_f1');
        expect(e.n).toBe(c.y_true.length);
      }
      // without --labels: the sorted union of the labels present (every label occurs in y_true here)
      const e = await evalJson(['--predictions', csv, '--true-column', 'y', '--pred-column', 'p']);
      expect(e.labels).toEqual(c.labels.map(String));
      expect(e.confusion_matrix).toEqual(c.confusion_matrix);
    });
  }

  it('string labels keep their names as report keys; a predicted label outside --labels is an error', async () => {
    const f = writeJsonl([{ y: '사실형', p: '사실형' }, { y: '추론형', p: '사실형' }, { y: '추론형', p: '추론형' }]);
    const e = await evalJson(['--predictions', f, '--true-column', 'y', '--pred-column', 'p']);
    expect(Object.keys(e.report)).toEqual(['사실형', '추론형', 'accuracy', 'macro avg', 'weighted avg']);
    close(e.accuracy, 2 / 3, 'accuracy');
    const bad = await runCli(['eval', '--predictions', f, '--true-column', 'y', '--pred-column', 'p', '--labels', '사실형']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/추론형.*not one of --labels/);
  });
});

describe('eval --predictions: regression vs sklearn/scipy', () => {
  for (const c of golden.regression) {
    it(c.name, async () => {
      const f = writeJsonl(c.y_true.map((t: number, i: number) => ({ score: t, pred: c.y_pred[i] })));
      const out = join(tmp.make(), 'report.json');
      const e = await evalJson(['--predictions', f, '--true-column', 'score', '--pred-column', 'pred', '--task', 'regression', '--threshold', '3', '--output', out]);
      close(e.mse, c.mse, 'mse');
      close(e.pearson, c.pearson, 'pearson');
      close(e.spearman, c.spearman, 'spearman');
      close(e.binary_f1, c.binary_f1, 'binary_f1');
      close(e.binary_precision, c.binary_classification_report['1'].precision, 'binary_precision');
      close(e.binary_recall, c.binary_classification_report['1'].recall, 'binary_recall');
      compareReport(e.binary_report, c.binary_classification_report, 'binary');
      compareReport(e.int_report, c.int_classification_report, 'int');
      expect(e.int_confusion_matrix).toEqual(c.int_confusion_matrix);
      close(e.macro_f1, c.int_f1_macro, 'int_f1_macro');
      expect(e.threshold).toBe(3);
      // --output writes the same JSON
      expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(e);
    });
  }
});

describe('text report', () => {
  it('is laid out like sklearn classification_report(digits=4), then the confusion matrix', async () => {
    const c = golden.classification[0];
    const f = writeJsonl(c.y_true.map((t: number, i: number) => ({ y: t, p: c.y_pred[i] })));
    const r = await runCli(['eval', '--predictions', f, '--true-column', 'y', '--pred-column', 'p']);
    expect(r.code, r.stderr).toBe(0);
    // sklearn: '{:>{width}s} ' + ' {:>9.4f}' * 3 + ' {:>9}' with width = len('weighted avg')
    const expected = [
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
      'confusion matrix (rows: true, columns: predicted)',
      'true \\ pred   0   1   2  3  4',
      '0            15   2   1  1  0',
    ];
    expect(r.stdout.split('\n').slice(0, expected.length)).toEqual(expected);
  });

  it('regression text shows MSE / correlations, the int report and the binary report', async () => {
    const c = golden.regression[0];
    const f = writeJsonl(c.y_true.map((t: number, i: number) => ({ s: t, p: c.y_pred[i] })));
    const r = await runCli(['eval', '--predictions', f, '--true-column', 's', '--pred-column', 'p', '--task', 'regression']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^regression on 40 rows: MSE 2\.5537 {2}Pearson 0\.4048 {2}Spearman 0\.4498/);
    expect(r.stdout).toContain('binary F1 (int_score >= 3): 0.4545');
    expect(r.stdout).toMatch(/\n {11}5 {5}0\.0000 {4}0\.0000 {4}0\.0000 {9}0\n/);
  });

  it('usage errors exit 2', async () => {
    expect((await runCli(['eval', '--predictions', writeJsonl([{ y: 1, p: 1 }])])).code).toBe(2); // no columns
    const none = await runCli(['eval']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--run DIR or --predictions FILE/);
    const miss = await runCli(['eval', '--predictions', writeJsonl([{ y: 1, p: 1 }]), '--true-column', 'y', '--pred-column', 'q']);
    expect(miss.code).toBe(2);
    expect(miss.stderr).toMatch(/--pred-column q/);
  });
});

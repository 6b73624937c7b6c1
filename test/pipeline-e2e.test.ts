/**
 * End to end on real labelled data with generated (random-weight) encoders: train -> eval --run -> predict,
 * then the report's numbers are recomputed from the predictions file with src/eval/metrics.ts and must agree.
 * Random encoders give meaningless accuracy, so this checks consistency, not quality.
 *  - dacon-sentence-type: 4 imbalanced classes (stratified, seeded 1,500-row sample), balanced class
 *    weights, weighted sampler, early stopping; then 3-fold CV on the same rows.
 *  - fineweb-edu-teacher150: 0-5 regression with the FineWeb-Edu pooler head, int_score and binary F1 at 3.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openTable, openTableWriter } from '../src/data/table.js';
import { classificationReport, confusionMatrix, intScores, regressionMetrics, roundHalfEven } from '../src/eval/metrics.js';
import { generateModelFolder } from '../src/model/generate.js';
import { readSafetensors } from '../src/model/safetensors.js';
import { LabelMap } from '../src/train/label-map.js';
import { stratifiedSplit } from '../src/train/split.js';
import { runCli } from './helpers/cli.js';
import { sharedPath } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-e2e-');
const COMMON = ['--max-length', '64', '--threads', '2', '--quiet'];

async function cli(args: string[]): Promise<string> {
  const r = await runCli(args);
  if (r.code !== 0) throw new Error(`edu-train ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return r.stdout;
}

function readJsonl(file: string): any[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

const json = (file: string) => JSON.parse(readFileSync(file, 'utf8'));

/** Writes the given rows of a column-major table to CSV. */
async function writeRows(file: string, cols: Record<string, unknown[]>, names: string[], rows: Int32Array): Promise<void> {
  const w = await openTableWriter(file, names.map((name) => ({ name, type: 'string' as const })));
  await w.write({ numRows: rows.length, columns: Object.fromEntries(names.map((n) => [n, Array.from(rows, (r) => String(cols[n][r]))])) });
  await w.close();
}

describe('classification: dacon sentence type (4 imbalanced classes)', () => {
  let dir: string;
  let model: string;
  let trainCsv: string;
  let heldCsv: string;
  let cache: string;
  let trainRows: number;
  let heldRows: number;

  beforeAll(async () => {
    dir = tmp.make();
    cache = join(dir, 'cache');
    model = join(dir, 'roberta');
    generateModelFolder(model, { modelType: 'roberta', tokenizerDir: sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer'), seed: 21 });
    const t = await openTable(sharedPath('data', 'dacon-sentence-type', 'train.csv'), { columns: ['ID', '문장', '유형'] });
    const all = await t.readAll();
    await t.close();
    const strata = LabelMap.fromValues(all.columns['유형'] as string[]).encode(all.columns['유형'] as string[]);
    // a stratified, seeded 1,500-row sample, then 1,200 to train on and 300 held out
    const sample = stratifiedSplit(strata, 1500 / all.numRows, 7).validation;
    const inner = stratifiedSplit(Int32Array.from(sample, (r) => strata[r]), 0.2, 7);
    trainRows = inner.train.length; // about 1,200 and 300: per-class rounding moves a row or two
    heldRows = inner.validation.length;
    expect(Math.abs(trainRows - 1200)).toBeLessThanOrEqual(4);
    trainCsv = join(dir, 'train.csv');
    heldCsv = join(dir, 'heldout.csv');
    await writeRows(trainCsv, all.columns, ['ID', '문장', '유형'], Int32Array.from(inner.train, (i) => sample[i]));
    await writeRows(heldCsv, all.columns, ['ID', '문장', '유형'], Int32Array.from(inner.validation, (i) => sample[i]));
  });

  it('train -> eval --run -> predict: the report is recomputed from the predictions file', async () => {
    const run = join(dir, 'run');
    await cli(['train', '--model-dir', model, '--train', trainCsv, '--text-column', '문장', '--label-column', '유형', '--task', 'classification',
      '--class-weights', 'balanced', '--sampler', 'weighted', '--early-stop', 'macro_f1', '--patience', '2', '--epochs', '12',
      '--output', run, '--cache-dir', cache, ...COMMON]);
    const runJson = json(join(run, 'run.json'));
    expect(runJson.labels).toEqual(['대화형', '사실형', '예측형', '추론형']); // code-point order, as sklearn's LabelEncoder
    expect(runJson.data.train.rows).toBe(trainRows);
    const best = json(join(run, 'best.json'));
    const epochs = readJsonl(join(run, 'metrics.jsonl'));
    expect(best.epochs_run).toBe(epochs.length);
    if (best.stopped_early) expect(epochs.length - best.best_epoch).toBe(2); // patience 2
    expect(json(join(run, 'report.json')).macro_f1).toBe(best.metrics.macro_f1);

    const evalOut = join(dir, 'eval.json');
    const e = JSON.parse(await cli(['eval', '--run', run, '--data', heldCsv, '--json', '--output', evalOut, '--cache-dir', cache, '--quiet']));
    expect(json(evalOut)).toEqual(e);
    expect(e.n).toBe(heldRows);

    const predFile = join(dir, 'pred.jsonl');
    await cli(['predict', '--run', run, '--input', heldCsv, '--output', predFile, '--id-column', 'ID', '--keep-columns', '유형', '--quiet']);
    const rows = readJsonl(predFile);
    expect(rows).toHaveLength(heldRows);
    const map = LabelMap.fromJSON(json(join(run, 'label_mapping.json')));
    const yTrue = map.encode(rows.map((r) => r['유형']));
    const yPred = map.encode(rows.map((r) => r.label));
    expect(Array.from(yPred)).toEqual(rows.map((r) => r.label_id));
    for (const r of rows) expect(r.probs.indexOf(Math.max(...r.probs))).toBe(r.label_id);
    const ids = [0, 1, 2, 3];
    const rep = classificationReport(yTrue, yPred, ids);
    expect(e.accuracy).toBe(rep.accuracy);
    expect(e.macro_f1).toBe(rep.macroAvg.f1);
    expect(e.weighted_f1).toBe(rep.weightedAvg.f1);
    map.labels.forEach((l, i) => {
      expect(e.report[l as string]).toEqual({ precision: rep.perClass[i].precision, recall: rep.perClass[i].recall, 'f1-score': rep.perClass[i].f1, support: rep.perClass[i].support });
    });
    expect(e.confusion_matrix).toEqual(confusionMatrix(yTrue, yPred, ids));
    // and eval --predictions on that file gives the same report
    const e2 = JSON.parse(await cli(['eval', '--predictions', predFile, '--true-column', '유형', '--pred-column', 'label', '--labels', map.labels.join(','), '--json']));
    expect(e2).toEqual(e);
  });

  it('--folds 3: fold-0..2 and a mean ± std summary of the per-fold reports', async () => {
    const run = join(dir, 'cv');
    await cli(['train', '--model-dir', model, '--train', trainCsv, '--text-column', '문장', '--label-column', '유형', '--task', 'classification',
      '--class-weights', 'balanced', '--epochs', '4', '--patience', '2', '--folds', '3', '--output', run, '--cache-dir', cache, ...COMMON]);
    expect(readdirSync(run).sort()).toEqual(['charts', 'cv_report.txt', 'cv_summary.json', 'fold-0', 'fold-1', 'fold-2', 'label_mapping.json', 'report.html', 'run.json']);
    expect(json(join(run, 'run.json')).embeddings[0].cache).toBe('hit'); // same texts as the first run
    const reports = [0, 1, 2].map((k) => json(join(run, `fold-${k}`, 'report.json')));
    expect(reports.map((r) => r.n).reduce((a, b) => a + b)).toBe(trainRows); // every row validated exactly once
    for (let k = 0; k < 3; k++) expect(existsSync(join(run, `fold-${k}`, 'head.safetensors'))).toBe(true);
    const cv = json(join(run, 'cv_summary.json'));
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    const std = (v: number[]) => Math.sqrt(mean(v.map((x) => (x - mean(v)) ** 2)));
    for (const k of ['accuracy', 'macro_f1', 'weighted_f1']) {
      const v = reports.map((r) => r[k]);
      expect(cv.metrics[k].values).toEqual(v);
      expect(cv.metrics[k].mean).toBeCloseTo(mean(v), 14);
      expect(cv.metrics[k].std).toBeCloseTo(std(v), 14);
    }
    for (const l of ['대화형', '사실형', '예측형', '추론형']) {
      expect(cv.f1_per_label[l].mean).toBeCloseTo(mean(reports.map((r) => r.report[l]['f1-score'])), 14);
    }
    expect(readFileSync(join(run, 'cv_report.txt'), 'utf8')).toMatch(/^3-fold cross-validation/);
    // one fold is a complete run: predict works on it
    const out = join(dir, 'fold-pred.csv');
    await cli(['predict', '--run', join(run, 'fold-1'), '--input', heldCsv, '--output', out, '--quiet']);
    expect(readFileSync(out, 'utf8').split('\n')[0]).toBe('row,label,label_id,probs');
  });
});

describe('regression: fineweb-edu teacher scores with the pooler head', () => {
  it('int_score = round-half-to-even(clip(score)) and binary F1 at 3 agree with a recomputation', async () => {
    const dir = tmp.make();
    const model = join(dir, 'bert');
    generateModelFolder(model, { modelType: 'bert', tokenizerDir: sharedPath('models', 'tokenizer-only', 'all-minilm-l6-v2'), seed: 4 });
    const t = await openTable(sharedPath('data', 'fineweb-edu-teacher150', 'training_data.csv'), { columns: ['text', 'score'] });
    const all = await t.readAll();
    await t.close();
    const split = stratifiedSplit(Int32Array.from(all.columns.score, Number), 0.2, 3);
    const trainCsv = join(dir, 'train.csv');
    const valCsv = join(dir, 'val.csv');
    await writeRows(trainCsv, all.columns, ['text', 'score'], split.train);
    await writeRows(valCsv, all.columns, ['text', 'score'], split.validation);
    const run = join(dir, 'run');
    await cli(['train', '--model-dir', model, '--train', trainCsv, '--val', valCsv, '--label-column', 'score', '--task', 'regression',
      '--head', 'pooler', '--epochs', '6', '--lr', '1e-3', '--output', run, '--cache-dir', join(dir, 'cache'), ...COMMON]);
    const runJson = json(join(run, 'run.json'));
    expect(runJson.encoder.pooling).toBe('cls');
    expect(runJson.head).toEqual({ kind: 'pooler', in_features: 64, num_outputs: 1, hidden: true });
    const head = await readSafetensors(join(run, 'head.safetensors'));
    expect([...head.keys()].sort()).toEqual(['bias', 'hidden.bias', 'hidden.weight', 'weight']);
    expect(head.get('hidden.weight')!.shape).toEqual([64, 64]);

    const e = JSON.parse(await cli(['eval', '--run', run, '--data', valCsv, '--json', '--cache-dir', join(dir, 'cache'), '--quiet']));
    const predFile = join(dir, 'pred.parquet');
    await cli(['predict', '--run', run, '--input', valCsv, '--output', predFile, '--keep-columns', 'text', '--quiet']);
    const p = await openTable(predFile);
    const got = await p.readAll();
    await p.close();
    const score = got.columns.score as number[];
    const intScore = got.columns.int_score as number[];
    score.forEach((s, i) => expect(intScore[i]).toBe(roundHalfEven(Math.min(5, Math.max(0, s)))));
    const truth = Array.from(split.validation, (r) => Number(all.columns.score[r]));
    expect(got.columns.text).toEqual(Array.from(split.validation, (r) => all.columns.text[r]));
    const m = regressionMetrics(truth, score, 3);
    expect(e.binary_f1).toBe(m.binaryF1);
    expect(e.mse).toBe(m.mse);
    expect(e.pearson).toBe(m.pearson);
    expect(e.int_confusion_matrix).toEqual(m.intConfusionMatrix);
    // binary F1 by hand from the file's int_score column
    const yt = intScores(truth).map((v) => (v >= 3 ? 1 : 0));
    const yp = Int32Array.from(intScore, (v) => (v >= 3 ? 1 : 0));
    let tp = 0, fp = 0, fn = 0;
    for (let i = 0; i < yt.length; i++) {
      if (yt[i] && yp[i]) tp++;
      else if (yp[i]) fp++;
      else if (yt[i]) fn++;
    }
    const f1 = tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
    expect(e.binary_f1).toBeCloseTo(f1, 12);
  });
});

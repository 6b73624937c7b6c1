/**
 * The HTML reports of `train` and `eval`, rendered in headless Chromium: the page stands alone (no scripts,
 * no network), every chart is laid out, nothing overflows a 1200 px window, and the charts carry the
 * numbers of report.json / metrics.jsonl / cv_summary.json (read from the marks' aria labels and texts).
 * Uses a generated random-weight encoder with the bundled tokenizer, so the numbers are meaningless but real.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { formatFixed } from '../src/eval/report-text.js';
import { generateModelFolder } from '../src/model/generate.js';
import { chromiumPath, pngSize, probeReport, screenshot, type Probe } from './helpers/chromium.js';
import { runCli } from './helpers/cli.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-report-');
const SAMPLE = join(process.cwd(), 'assets', 'demo', 'sentence-types.jsonl');
const f4 = (x: number) => formatFixed(x, 4);
const json = (f: string) => JSON.parse(readFileSync(f, 'utf8'));
const jsonl = (f: string): any[] => readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

let root: string;
let model: string;
let cache: string;

async function cli(args: string[]): Promise<string> {
  const r = await runCli(args);
  if (r.code !== 0) throw new Error(`edu-train ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return r.stderr;
}

async function train(output: string, args: string[]): Promise<void> {
  await cli(['train', '--model-dir', model, '--max-length', '32', '--threads', '2', '--cache-dir', cache, '--batch-size', '16', '--lr', '2e-3', '--output', output, '--quiet', ...args]);
}

const labelsOf = (p: Probe, chart: string, role?: string) => {
  expect(p.charts[chart], `chart ${chart} in the page`).toBeDefined();
  return p.charts[chart].marks.filter((m) => !role || m.role === role).map((m) => m.label);
};

/** Every chart has a real size, and the page fits the window. */
function expectLaidOut(p: Probe, charts: string[]): void {
  expect(p.scripts).toBe(0);
  expect(Object.keys(p.charts).sort()).toEqual([...charts].sort());
  for (const [name, c] of Object.entries(p.charts)) {
    expect(c.width, name).toBeGreaterThan(150);
    expect(c.height, name).toBeGreaterThan(100);
    expect(c.right, `${name} sticks out of the window`).toBeLessThanOrEqual(p.innerWidth);
  }
  expect(p.scrollWidth, 'horizontal overflow').toBeLessThanOrEqual(p.innerWidth);
}

beforeAll(() => {
  chromiumPath(); // fail fast, with the fix, when the browser is missing
  root = tmp.make();
  model = join(root, 'model');
  cache = join(root, 'cache');
  generateModelFolder(model, {
    modelType: 'bert', hidden: 64, layers: 1, heads: 2, intermediate: 128, maxPositions: 64,
    tokenizerDir: join(process.cwd(), 'assets', 'tokenizers', 'all-minilm-l6-v2'), seed: 3,
  });
});

describe('train: classification report', () => {
  let run: string;
  let probe: Probe;
  beforeAll(async () => {
    run = join(root, 'cls');
    await train(run, ['--train', SAMPLE, '--task', 'classification', '--class-weights', 'balanced', '--epochs', '15', '--patience', '2', '--val-split', '0.25']);
    probe = await probeReport(join(run, 'report.html'));
  });

  it('is one self-contained page plus one SVG per chart', () => {
    const html = readFileSync(join(run, 'report.html'), 'utf8');
    expect(html).not.toMatch(/<script|<link|<img|<iframe|@import/i);
    expect(html.replace(/xmlns(:xlink)?="http:\/\/www\.w3\.org\/[^"]+"/g, '')).not.toMatch(/https?:\/\//);
    expect(readdirSync(join(run, 'charts')).sort()).toEqual(['confusion-counts.svg', 'confusion-normalised.svg', 'learning-loss.svg', 'learning-metric.svg', 'per-class.svg']);
    for (const f of readdirSync(join(run, 'charts'))) expect(readFileSync(join(run, 'charts', f), 'utf8')).toMatch(/^<\?xml[^]*<svg[^]*<\/svg>\s*$/);
  });

  it('renders in Chromium: every chart laid out, no horizontal overflow at 1200 px', () => {
    expectLaidOut(probe, ['confusion-counts', 'confusion-normalised', 'per-class', 'learning-loss', 'learning-metric']);
    // text marks were measured by the browser (a broken SVG would give zero-width text)
    expect(probe.charts['confusion-counts'].marks.filter((m) => m.text !== null).every((m) => m.w > 0)).toBe(true);
  });

  it('the confusion matrices hold report.json counts (cells and their printed numbers)', () => {
    const report = json(join(run, 'report.json'));
    const cm: number[][] = report.confusion_matrix;
    const labels: string[] = report.labels;
    const counts = probe.charts['confusion-counts'].marks.filter((m) => m.role === 'text mark' && m.text !== null);
    for (let i = 0; i < labels.length; i++) {
      for (let j = 0; j < labels.length; j++) {
        const prefix = `true ${labels[i]}, predicted ${labels[j]}: ${cm[i][j]} (`;
        const cell = counts.find((m) => m.label.startsWith(prefix));
        expect(cell, prefix).toBeDefined();
        expect(cell!.text).toBe(String(cm[i][j]));
        const total = cm[i].reduce((a, b) => a + b, 0);
        const share = total ? cm[i][j] / total : 0;
        expect(labelsOf(probe, 'confusion-normalised', 'text mark')).toContain(`${prefix.slice(0, -2)} (${f4(share)} of the row)`);
      }
    }
    expect(counts).toHaveLength(labels.length ** 2);
  });

  it('the per-class bars hold the precision, recall and F1 of report.json', () => {
    const report = json(join(run, 'report.json'));
    const bars = labelsOf(probe, 'per-class', 'bar');
    for (const l of report.labels) {
      const s = report.report[l];
      expect(bars).toContain(`${l} precision ${f4(s.precision)} (support ${s.support})`);
      expect(bars).toContain(`${l} recall ${f4(s.recall)} (support ${s.support})`);
      expect(bars).toContain(`${l} F1 ${f4(s['f1-score'])} (support ${s.support})`);
    }
    expect(bars).toHaveLength(3 * report.labels.length);
  });

  it('the learning curves have one point per epoch of metrics.jsonl, and mark the best epoch and the early stop', () => {
    const epochs = jsonl(join(run, 'metrics.jsonl'));
    const best = json(join(run, 'best.json'));
    const points = labelsOf(probe, 'learning-metric', 'point');
    expect(points).toEqual(epochs.map((e) => `epoch ${e.epoch} validation macro_f1 ${f4(e.val_macro_f1)}`));
    const loss = labelsOf(probe, 'learning-loss', 'point');
    expect(loss).toEqual([
      ...epochs.map((e) => `epoch ${e.epoch} train loss ${f4(e.train_loss)}`),
      ...epochs.map((e) => `epoch ${e.epoch} validation loss ${f4(e.val_loss)}`),
    ]);
    const rules = labelsOf(probe, 'learning-metric', 'rule mark');
    expect(rules).toContain(`best epoch ${best.best_epoch} (by validation macro_f1)`);
    if (best.stopped_early) expect(rules).toContain(`early stop after epoch ${best.epochs_run}`);
    else expect(rules.some((r) => r.startsWith('early stop'))).toBe(false);
    const html = readFileSync(join(run, 'report.html'), 'utf8');
    expect(html).toContain(`best epoch, ${best.best_epoch}, by validation macro_f1 (${f4(best.value)})`);
  });

  it('takes a screenshot of the whole page', async () => {
    const png = join(root, 'cls.png');
    await screenshot(join(run, 'report.html'), png, 1200, Math.ceil(probe.scrollHeight));
    expect(pngSize(png)).toEqual({ width: 1200, height: Math.ceil(probe.scrollHeight) });
    expect(readFileSync(png).length).toBeGreaterThan(50_000); // not a blank page
  });
});

describe('train: regression report', () => {
  let run: string;
  let probe: Probe;
  beforeAll(async () => {
    // scores 0..5 from the sample's classes, with a deterministic spread
    const scoreOf: Record<string, number> = { conversation: 0.5, fact: 4.2, inference: 2.6, prediction: 1.4 };
    const rows = jsonl(SAMPLE).map((r, i) => JSON.stringify({ text: r.text, score: Math.min(5, scoreOf[r.label] + ((i * 37) % 10) / 10) }));
    const data = join(root, 'scores.jsonl');
    writeFileSync(data, rows.join('\n') + '\n');
    run = join(root, 'reg');
    await train(run, ['--train', data, '--label-column', 'score', '--task', 'regression', '--epochs', '4', '--patience', 'off', '--early-stop', 'mse']);
    probe = await probeReport(join(run, 'report.html'));
  });

  it('renders the scatter, the histogram with its threshold, and the int / binary matrices', () => {
    expectLaidOut(probe, ['pred-vs-true', 'score-histogram', 'int-confusion-counts', 'int-confusion-normalised', 'int-per-class', 'binary-confusion-counts', 'learning-loss', 'learning-metric']);
    const report = json(join(run, 'report.json'));
    const run_ = json(join(run, 'run.json'));
    const dots = labelsOf(probe, 'pred-vs-true', 'circle');
    expect(dots).toHaveLength(run_.data.validation.rows);
    expect(dots.every((d) => /^true \d\.\d{4}, predicted -?\d+\.\d{4}$/.test(d))).toBe(true);
    expect(labelsOf(probe, 'pred-vs-true')).toContain('threshold: int_score ≥ 3 (score > 2.5)');
    expect(labelsOf(probe, 'score-histogram')).toContain('threshold: int_score ≥ 3 (score > 2.5)');
    const cells = labelsOf(probe, 'int-confusion-counts', 'text mark');
    report.int_confusion_matrix.forEach((row: number[], i: number) =>
      row.forEach((c, j) => expect(cells.some((l) => l.startsWith(`true ${i}, predicted ${j}: ${c} (`))).toBe(true)),
    );
    const bin = labelsOf(probe, 'binary-confusion-counts', 'text mark');
    expect(bin.some((l) => l.startsWith(`true ≥ 3, predicted ≥ 3: ${report.binary_confusion_matrix[1][1]} (`))).toBe(true);
    // --patience off: no early-stop marker; the second curve is the early-stop metric
    expect(labelsOf(probe, 'learning-metric', 'point')).toHaveLength(4);
    expect(labelsOf(probe, 'learning-metric', 'rule mark').some((r) => r.startsWith('early stop'))).toBe(false);
  });
});

describe('train --folds: the cross-validation page', () => {
  let run: string;
  let probe: Probe;
  beforeAll(async () => {
    run = join(root, 'cv');
    await train(run, ['--train', SAMPLE, '--task', 'classification', '--folds', '3', '--epochs', '3']);
    probe = await probeReport(join(run, 'report.html'));
  });

  it('shows every fold value of cv_summary.json and links to each fold report', () => {
    expectLaidOut(probe, ['cv-metrics', 'cv-f1-per-label', 'cv-learning']);
    const cv = json(join(run, 'cv_summary.json'));
    const points = labelsOf(probe, 'cv-metrics', 'point');
    for (const [k, v] of Object.entries<{ values: number[]; mean: number; std: number }>(cv.metrics)) {
      v.values.forEach((x, fold) => expect(points).toContain(`${k} fold ${fold}: ${f4(x)}`));
      expect(labelsOf(probe, 'cv-metrics', 'tick')).toContain(`${k} mean ${f4(v.mean)} ± ${f4(v.std)}`);
    }
    const perLabel = labelsOf(probe, 'cv-f1-per-label', 'point');
    for (const [k, v] of Object.entries<{ values: number[] }>(cv.f1_per_label)) v.values.forEach((x, fold) => expect(perLabel).toContain(`${k} fold ${fold}: ${f4(x)}`));
    expect(labelsOf(probe, 'cv-learning', 'point')).toHaveLength(3 * 3);
    const html = readFileSync(join(run, 'report.html'), 'utf8');
    for (let k = 0; k < 3; k++) {
      expect(html).toContain(`href="fold-${k}/report.html"`);
      expect(existsSync(join(run, `fold-${k}`, 'report.html'))).toBe(true);
    }
  });
});

describe('eval: HTML beside the JSON report', () => {
  it('eval --output x.json writes x.html and x-charts/; --no-html writes none', async () => {
    const dir = tmp.make();
    const preds = join(dir, 'preds.jsonl');
    writeFileSync(preds, Array.from({ length: 60 }, (_, i) => JSON.stringify({ y: ['a', 'b', 'c'][i % 3], p: ['a', 'b', 'c'][(i * 7) % 5 % 3] })).join('\n') + '\n');
    await cli(['eval', '--predictions', preds, '--true-column', 'y', '--pred-column', 'p', '--output', join(dir, 'ev.json')]);
    expect(readdirSync(dir).sort()).toEqual(['ev-charts', 'ev.html', 'ev.json', 'preds.jsonl']);
    const report = json(join(dir, 'ev.json'));
    const p = await probeReport(join(dir, 'ev.html'));
    expectLaidOut(p, ['confusion-counts', 'confusion-normalised', 'per-class']);
    expect(labelsOf(p, 'per-class', 'bar')).toContain(`b F1 ${f4(report.report.b['f1-score'])} (support ${report.report.b.support})`);
    const dir2 = tmp.make();
    await cli(['eval', '--predictions', preds, '--true-column', 'y', '--pred-column', 'p', '--output', join(dir2, 'ev.json'), '--no-html']);
    expect(readdirSync(dir2)).toEqual(['ev.json']);
  });
});

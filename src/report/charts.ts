/**
 * Vega-Lite specs of the report's charts, one builder per chart. Every mark carries a `description`
 * (SVG aria-label) that states its numbers, so the rendered page can be checked against report.json and
 * read by a screen reader. Numbers use the report's formatting (4 decimals, half-to-even).
 */
import type { TopLevelSpec } from 'vega-lite';
import { formatFixed } from '../eval/report-text.js';

export const f4 = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : formatFixed(x, 4));
const f2 = (x: number): string => formatFixed(x, 2);

const INK = '#111827';
const MUTED = '#6b7280';
const BEST = '#059669';
const STOP = '#dc2626';
const METRIC_COLORS = ['#93c5fd', '#3b82f6', '#1e3a8a'];
const SERIES_COLORS = ['#2563eb', '#f59e0b', '#10b981', '#ef4444', '#8b5cf6', '#0891b2', '#db2777', '#65a30d', '#9333ea', '#ea580c'];

// ---- confusion matrix

export type MatrixMode = 'counts' | 'normalised';

/** Heatmap of a confusion matrix (rows true, columns predicted); 'normalised' divides each row by its total. */
export function confusionSpec(matrix: number[][], labels: string[], mode: MatrixMode): TopLevelSpec {
  const max = Math.max(1, ...matrix.flat());
  const values = matrix.flatMap((row, i) => {
    const total = row.reduce((a, b) => a + b, 0);
    return row.map((count, j) => {
      const share = total ? count / total : 0;
      return {
        t: labels[i], p: labels[j], count, share,
        v: mode === 'counts' ? count / max : share,
        text: mode === 'counts' ? String(count) : f2(share),
        desc: `true ${labels[i]}, predicted ${labels[j]}: ${count} (${f4(share)} of the row)`,
      };
    });
  });
  const cell = labels.length > 12 ? 26 : 46;
  // Tilt the column labels when the longest would not fit in its cell.
  const tilt = Math.max(...labels.map((l) => [...l].length)) * 7 > cell;
  return {
    title: mode === 'counts' ? 'Counts' : 'Row-normalised (recall per true class)',
    data: { values },
    width: { step: cell },
    height: { step: cell },
    encoding: {
      x: { field: 'p', type: 'nominal', sort: labels, title: 'predicted', axis: { orient: 'top', labelAngle: tilt ? -40 : 0, labelAlign: tilt ? 'left' : 'center', labelLimit: 120 } },
      y: { field: 't', type: 'nominal', sort: labels, title: 'true', axis: { labelLimit: 140 } },
    },
    layer: [
      {
        mark: { type: 'rect', stroke: 'white', strokeWidth: 1 },
        encoding: {
          color: { field: 'v', type: 'quantitative', scale: { scheme: mode === 'counts' ? 'blues' : 'greens', domain: [0, 1] }, legend: null },
          description: { field: 'desc' },
        },
      },
      {
        mark: { type: 'text', fontSize: labels.length > 12 ? 9 : 12 },
        encoding: {
          text: { field: 'text' },
          color: { condition: { test: 'datum.v > 0.55', value: 'white' }, value: INK },
          description: { field: 'desc' },
        },
      },
    ],
  } as TopLevelSpec;
}

// ---- per-class precision / recall / F1

export interface ClassScoresRow {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

export function perClassSpec(rows: ClassScoresRow[], title = 'Precision, recall and F1 per class'): TopLevelSpec {
  const metrics = ['precision', 'recall', 'F1'];
  const values = rows.flatMap((r) =>
    ([['precision', r.precision], ['recall', r.recall], ['F1', r.f1]] as const).map(([metric, value]) => ({
      label: r.label, metric, value, text: f4(value), desc: `${r.label} ${metric} ${f4(value)} (support ${r.support})`,
    })),
  );
  return {
    title,
    data: { values },
    width: 340,
    height: { step: 13 },
    encoding: {
      y: { field: 'label', type: 'nominal', sort: rows.map((r) => r.label), title: null, axis: { labelLimit: 140 } },
      yOffset: { field: 'metric', type: 'nominal', sort: metrics },
      x: { field: 'value', type: 'quantitative', scale: { domain: [0, 1] }, title: null, axis: { format: '.1f' } },
      color: { field: 'metric', type: 'nominal', sort: metrics, scale: { domain: metrics, range: METRIC_COLORS }, title: null },
    },
    layer: [
      { mark: { type: 'bar', height: { band: 0.9 } }, encoding: { description: { field: 'desc' } } },
      {
        mark: { type: 'text', align: 'left', dx: 3, fontSize: 9, color: MUTED },
        encoding: { text: { field: 'text' }, color: { value: MUTED }, description: { field: 'desc' } },
      },
    ],
  } as TopLevelSpec;
}

// ---- learning curves

export interface EpochRow {
  epoch: number;
  train_loss: number;
  [k: string]: unknown;
}

export interface BestEpoch {
  best_epoch: number;
  metric: string;
  epochs_run: number;
  stopped_early: boolean;
}

export interface CurveSeries {
  name: string;
  /** metrics.jsonl key. */
  key: string;
}

/** Vertical markers: the best epoch, and the early stop when training stopped before --epochs. */
function epochMarkers(best: BestEpoch): Record<string, unknown>[] {
  const marks = [{ epoch: best.best_epoch, kind: 'best', text: `best epoch ${best.best_epoch}`, desc: `best epoch ${best.best_epoch} (by validation ${best.metric})` }];
  if (best.stopped_early) marks.push({ epoch: best.epochs_run, kind: 'stop', text: `early stop after epoch ${best.epochs_run}`, desc: `early stop after epoch ${best.epochs_run}` });
  return marks;
}

/** Lines with one point per epoch for each series, plus the best-epoch / early-stop rules. */
export function learningCurveSpec(rows: EpochRow[], series: CurveSeries[], best: BestEpoch, title: string, yTitle: string): TopLevelSpec {
  const values = series.flatMap((s) =>
    rows
      .filter((r) => typeof r[s.key] === 'number' && Number.isFinite(r[s.key]))
      .map((r) => ({ epoch: r.epoch, series: s.name, value: r[s.key] as number, desc: `epoch ${r.epoch} ${s.name} ${f4(r[s.key] as number)}` })),
  );
  const last = Math.max(2, ...rows.map((r) => r.epoch));
  const x = { field: 'epoch', type: 'quantitative', scale: { domain: [1, last], nice: false }, axis: { tickMinStep: 1, format: 'd' }, title: 'epoch' };
  const markers = epochMarkers(best).map((m) => ({ ...m, side: (m.epoch as number) > (1 + last) / 2 ? 'left' : 'right', ypx: m.kind === 'best' ? 8 : 22 }));
  return {
    title,
    width: 340,
    height: 220,
    layer: [
      {
        data: { values },
        encoding: {
          x,
          y: { field: 'value', type: 'quantitative', scale: { zero: false }, title: yTitle },
          color: { field: 'series', type: 'nominal', sort: series.map((s) => s.name), scale: { range: SERIES_COLORS }, title: null },
        },
        layer: [
          { mark: { type: 'line', strokeWidth: 2 } },
          { mark: { type: 'point', filled: true, size: 36 }, encoding: { description: { field: 'desc' } } },
        ],
      },
      {
        data: { values: markers },
        encoding: { x },
        layer: [
          {
            mark: { type: 'rule', strokeDash: [4, 3], strokeWidth: 1.5 },
            encoding: {
              color: { field: 'kind', type: 'nominal', scale: { domain: ['best', 'stop'], range: [BEST, STOP] }, legend: null },
              description: { field: 'desc' },
            },
          },
          // Labels sit inside the plot: right of a rule in the first half of the epochs, left of it after.
          ...(['right', 'left'] as const).map((side) => ({
            transform: [{ filter: `datum.side === '${side}'` }],
            mark: { type: 'text', align: side === 'right' ? 'left' : 'right', dx: side === 'right' ? 4 : -4, fontSize: 10, fontWeight: 600 },
            encoding: {
              y: { field: 'ypx', type: 'quantitative', scale: null },
              text: { field: 'text' },
              color: { field: 'kind', type: 'nominal', scale: { domain: ['best', 'stop'], range: [BEST, STOP] }, legend: null },
            },
          })),
        ],
      },
    ],
    resolve: { scale: { color: 'independent' } },
  } as TopLevelSpec;
}

/** Validation metric per epoch of every fold, on one chart. */
export function foldCurvesSpec(folds: { name: string; rows: EpochRow[] }[], key: string, metric: string): TopLevelSpec {
  const values = folds.flatMap((f) =>
    f.rows
      .filter((r) => typeof r[key] === 'number')
      .map((r) => ({ fold: f.name, epoch: r.epoch, value: r[key] as number, desc: `${f.name} epoch ${r.epoch} validation ${metric} ${f4(r[key] as number)}` })),
  );
  const last = Math.max(2, ...values.map((v) => v.epoch));
  return {
    title: `Validation ${metric} per epoch, each fold`,
    data: { values },
    width: 340,
    height: 220,
    encoding: {
      x: { field: 'epoch', type: 'quantitative', scale: { domain: [1, last], nice: false }, axis: { tickMinStep: 1, format: 'd' } },
      y: { field: 'value', type: 'quantitative', scale: { zero: false }, title: metric },
      color: { field: 'fold', type: 'nominal', sort: folds.map((f) => f.name), scale: { range: SERIES_COLORS }, title: null },
    },
    layer: [{ mark: { type: 'line', strokeWidth: 1.5 } }, { mark: { type: 'point', filled: true, size: 28 }, encoding: { description: { field: 'desc' } } }],
  } as TopLevelSpec;
}

// ---- regression

const MAX_POINTS = 3000;

/** Every k-th row, so a big validation set still gives a readable chart and a small SVG. */
export function strideSample(n: number, max = MAX_POINTS): number[] {
  const step = Math.max(1, Math.ceil(n / max));
  return Array.from({ length: Math.ceil(n / step) }, (_, i) => i * step);
}

/** Raw-score boundary of int_score >= t: round-half-to-even(clip(s, 0, 5)) >= t  <=>  s > t - 0.5 (about). */
const boundary = (threshold: number): number => threshold - 0.5;

export function predVsTrueSpec(truth: ArrayLike<number>, pred: ArrayLike<number>, threshold: number): TopLevelSpec {
  const rows = strideSample(truth.length);
  const values = rows.map((i) => ({ t: truth[i], p: pred[i], desc: `true ${f4(truth[i])}, predicted ${f4(pred[i])}` }));
  const all = [...rows.map((i) => truth[i]), ...rows.map((i) => pred[i])];
  const lo = Math.min(0, ...all);
  const hi = Math.max(5, ...all);
  const b = boundary(threshold);
  const shown = rows.length < truth.length ? ` (${rows.length} of ${truth.length} rows)` : '';
  return {
    title: `Predicted vs true score${shown}`,
    width: 340,
    height: 340,
    layer: [
      {
        data: { values: [{ a: lo, b: hi }] },
        mark: { type: 'rule', color: '#9ca3af', strokeDash: [2, 2] },
        encoding: { x: { field: 'a', type: 'quantitative' }, y: { field: 'a', type: 'quantitative' }, x2: { field: 'b' }, y2: { field: 'b' }, description: { value: 'perfect prediction (y = x)' } },
      },
      {
        data: { values },
        mark: { type: 'circle', size: 18, opacity: 0.45, color: '#2563eb' },
        encoding: {
          x: { field: 't', type: 'quantitative', scale: { domain: [lo, hi], nice: false }, title: 'true score' },
          y: { field: 'p', type: 'quantitative', scale: { domain: [lo, hi], nice: false }, title: 'predicted score' },
          description: { field: 'desc' },
        },
      },
      {
        data: { values: [{ b, text: `int_score ≥ ${threshold}` }] },
        layer: [
          { mark: { type: 'rule', color: STOP, strokeDash: [4, 3] }, encoding: { x: { field: 'b', type: 'quantitative' }, description: { value: `threshold: int_score ≥ ${threshold} (score > ${b})` } } },
          { mark: { type: 'rule', color: STOP, strokeDash: [4, 3] }, encoding: { y: { field: 'b', type: 'quantitative' } } },
          { mark: { type: 'text', color: STOP, align: 'left', dx: 4, fontSize: 10, fontWeight: 600 }, encoding: { x: { field: 'b', type: 'quantitative' }, y: { value: 10 }, text: { field: 'text' } } },
        ],
      },
    ],
  } as TopLevelSpec;
}

/** Histogram of predicted (and true) scores in 0.25 bins, with the threshold line. */
export function scoreHistogramSpec(truth: ArrayLike<number>, pred: ArrayLike<number>, threshold: number): TopLevelSpec {
  const values = [
    ...Array.from(pred, (s) => ({ series: 'predicted', s })),
    ...Array.from(truth, (s) => ({ series: 'true', s })),
  ];
  const b = boundary(threshold);
  return {
    title: 'Score distribution',
    width: 340,
    height: 220,
    layer: [
      {
        data: { values },
        mark: { type: 'bar', opacity: 0.6, binSpacing: 0 },
        encoding: {
          x: { field: 's', type: 'quantitative', bin: { step: 0.25 }, title: 'score' },
          y: { aggregate: 'count', type: 'quantitative', title: 'rows', stack: null },
          color: { field: 'series', type: 'nominal', scale: { domain: ['predicted', 'true'], range: ['#2563eb', '#f59e0b'] }, title: null },
          description: { value: 'score bin' },
        },
      },
      {
        data: { values: [{ b, text: `threshold: int_score ≥ ${threshold}` }] },
        layer: [
          { mark: { type: 'rule', color: STOP, strokeDash: [4, 3], strokeWidth: 1.5 }, encoding: { x: { field: 'b', type: 'quantitative' }, description: { value: `threshold: int_score ≥ ${threshold} (score > ${b})` } } },
          { mark: { type: 'text', color: STOP, align: 'left', dx: 4, fontSize: 10, fontWeight: 600 }, encoding: { x: { field: 'b', type: 'quantitative' }, y: { value: 8 }, text: { field: 'text' } } },
        ],
      },
    ],
  } as TopLevelSpec;
}

// ---- cross-validation

export interface SpreadGroup {
  name: string;
  values: number[];
  mean: number;
  std: number;
}

/** Per-fold values of each metric (points), their mean (tick) and mean ± std (bar). */
export function foldSpreadSpec(groups: SpreadGroup[], title: string): TopLevelSpec {
  const points = groups.flatMap((g) => g.values.map((value, k) => ({ group: g.name, fold: `fold ${k}`, value, desc: `${g.name} fold ${k}: ${f4(value)}` })));
  const summary = groups.map((g) => ({ group: g.name, mean: g.mean, lo: g.mean - g.std, hi: g.mean + g.std, desc: `${g.name} mean ${f4(g.mean)} ± ${f4(g.std)}` }));
  const y = { field: 'group', type: 'nominal', sort: groups.map((g) => g.name), title: null, axis: { labelLimit: 140 } };
  const folds = Math.max(0, ...groups.map((g) => g.values.length));
  return {
    title,
    width: 340,
    height: { step: 26 },
    layer: [
      {
        data: { values: summary },
        layer: [
          { mark: { type: 'rule', color: '#cbd5e1', strokeWidth: 8, strokeCap: 'round' }, encoding: { y, x: { field: 'lo', type: 'quantitative', scale: { zero: false }, title: 'value' }, x2: { field: 'hi' }, description: { field: 'desc' } } },
          { mark: { type: 'tick', color: INK, thickness: 2, size: 18 }, encoding: { y, x: { field: 'mean', type: 'quantitative' }, description: { field: 'desc' } } },
        ],
      },
      {
        data: { values: points },
        mark: { type: 'point', filled: true, size: 44, opacity: 0.9 },
        encoding: {
          y,
          x: { field: 'value', type: 'quantitative' },
          color: { field: 'fold', type: 'nominal', sort: Array.from({ length: folds }, (_, k) => `fold ${k}`), scale: { range: SERIES_COLORS }, title: null },
          description: { field: 'desc' },
        },
      },
    ],
  } as TopLevelSpec;
}

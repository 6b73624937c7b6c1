/**
 * Evaluation metrics, computed in float64 to match scikit-learn / scipy:
 *  - classification_report (zero_division = 0), confusion matrix (rows true, columns predicted), macro F1;
 *  - regression: MSE, Pearson, Spearman (Pearson of average ranks), the edu int score
 *    round-half-to-even(clip(score, 0, 5)) with its int report / confusion matrix, and the binary
 *    report at int_score >= threshold.
 */

export interface ClassScores {
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

export interface ClassificationReport {
  labels: number[];
  /** One entry per label, in `labels` order. */
  perClass: ClassScores[];
  accuracy: number;
  macroAvg: ClassScores;
  weightedAvg: ClassScores;
}

/** sklearn's output_dict shape: {"0": {...}, ..., "accuracy": x, "macro avg": {...}, "weighted avg": {...}}. */
export type SklearnScores = { precision: number; recall: number; 'f1-score': number; support: number };
export type SklearnReportDict = Record<string, SklearnScores | number>;

function div0(a: number, b: number): number {
  return b === 0 ? 0 : a / b; // zero_division = 0
}

/** Confusion matrix over `labels`: m[i][j] = #(true = labels[i], pred = labels[j]). Unknown values throw. */
export function confusionMatrix(yTrue: ArrayLike<number>, yPred: ArrayLike<number>, labels: readonly number[]): number[][] {
  if (yTrue.length !== yPred.length) throw new Error(`y_true has ${yTrue.length} values but y_pred has ${yPred.length}`);
  const index = new Map(labels.map((l, i) => [l, i]));
  if (index.size !== labels.length) throw new Error('labels must be unique');
  const m = labels.map(() => new Array<number>(labels.length).fill(0));
  for (let k = 0; k < yTrue.length; k++) {
    const i = index.get(yTrue[k]);
    const j = index.get(yPred[k]);
    if (i === undefined || j === undefined) {
      const bad = i === undefined ? `y_true ${yTrue[k]}` : `y_pred ${yPred[k]}`;
      throw new Error(`${bad} at row ${k} is not one of the labels [${labels.join(', ')}]`);
    }
    m[i][j]++;
  }
  return m;
}

export function classificationReport(
  yTrue: ArrayLike<number>,
  yPred: ArrayLike<number>,
  labels: readonly number[],
): ClassificationReport {
  const cm = confusionMatrix(yTrue, yPred, labels);
  const n = yTrue.length;
  const perClass: ClassScores[] = labels.map((_, i) => {
    const tp = cm[i][i];
    let predicted = 0;
    for (let r = 0; r < labels.length; r++) predicted += cm[r][i];
    const support = cm[i].reduce((a, b) => a + b, 0);
    const precision = div0(tp, predicted);
    const recall = div0(tp, support);
    // (1 + beta^2) * p * r / (beta^2 * p + r) with beta = 1, in this operation order: the form of the
    // scikit-learn version that wrote the golden files (last-bit equal to them; 2tp/(2tp+fp+fn) is not).
    const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
    return { precision, recall, f1, support };
  });
  let correct = 0;
  for (let i = 0; i < labels.length; i++) correct += cm[i][i];
  const total = perClass.reduce((a, c) => a + c.support, 0);
  const mean = (f: (c: ClassScores) => number): number => perClass.reduce((a, c) => a + f(c), 0) / perClass.length;
  const wmean = (f: (c: ClassScores) => number): number => div0(perClass.reduce((a, c) => a + f(c) * c.support, 0), total);
  return {
    labels: [...labels],
    perClass,
    accuracy: div0(correct, n),
    macroAvg: { precision: mean((c) => c.precision), recall: mean((c) => c.recall), f1: mean((c) => c.f1), support: total },
    weightedAvg: { precision: wmean((c) => c.precision), recall: wmean((c) => c.recall), f1: wmean((c) => c.f1), support: total },
  };
}

export function reportToSklearnDict(r: ClassificationReport): SklearnReportDict {
  const s = (c: ClassScores): SklearnScores => ({ precision: c.precision, recall: c.recall, 'f1-score': c.f1, support: c.support });
  const out: SklearnReportDict = {};
  r.labels.forEach((l, i) => (out[String(l)] = s(r.perClass[i])));
  out.accuracy = r.accuracy;
  out['macro avg'] = s(r.macroAvg);
  out['weighted avg'] = s(r.weightedAvg);
  return out;
}

/** f1_score(average='macro', zero_division=0) over `labels`. */
export function f1Macro(yTrue: ArrayLike<number>, yPred: ArrayLike<number>, labels: readonly number[]): number {
  return classificationReport(yTrue, yPred, labels).macroAvg.f1;
}

export function accuracy(yTrue: ArrayLike<number>, yPred: ArrayLike<number>): number {
  if (yTrue.length !== yPred.length) throw new Error(`y_true has ${yTrue.length} values but y_pred has ${yPred.length}`);
  let c = 0;
  for (let i = 0; i < yTrue.length; i++) if (yTrue[i] === yPred[i]) c++;
  return div0(c, yTrue.length);
}

/** Row-wise argmax of logits [n, numClasses] (first maximum wins, like numpy/torch). */
export function argmaxRows(logits: ArrayLike<number>, numClasses: number): Int32Array {
  const n = Math.floor(logits.length / numClasses);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bv = logits[i * numClasses];
    for (let c = 1; c < numClasses; c++) {
      const v = logits[i * numClasses + c];
      if (v > bv) {
        bv = v;
        best = c;
      }
    }
    out[i] = best;
  }
  return out;
}

// ---- regression

/** Python's round(): nearest integer, ties to even (2.5 -> 2, 3.5 -> 4). Math.round would give 3 for 2.5. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f; // exact for |x| < 2^52 (Sterbenz)
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** The edu int score: int(round(clip(score, lo, hi))) with half-to-even rounding. */
export function intScore(score: number, lo = 0, hi = 5): number {
  if (Number.isNaN(score)) throw new Error('score is NaN');
  return roundHalfEven(Math.min(hi, Math.max(lo, score)));
}

export function intScores(scores: ArrayLike<number>, lo = 0, hi = 5): Int32Array {
  const out = new Int32Array(scores.length);
  for (let i = 0; i < scores.length; i++) out[i] = intScore(scores[i], lo, hi);
  return out;
}

export function mse(yTrue: ArrayLike<number>, yPred: ArrayLike<number>): number {
  checkPaired(yTrue, yPred);
  let s = 0;
  for (let i = 0; i < yTrue.length; i++) {
    const d = yPred[i] - yTrue[i];
    s += d * d;
  }
  return s / yTrue.length;
}

function checkPaired(a: ArrayLike<number>, b: ArrayLike<number>): void {
  if (a.length !== b.length) throw new Error(`y_true has ${a.length} values but y_pred has ${b.length}`);
  if (a.length === 0) throw new Error('no values');
}

/** Pearson correlation (centred, in float64). NaN when either side is constant, as scipy. */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  checkPaired(x, y);
  const n = x.length;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i] - mx;
    const dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) return NaN;
  return sxy / Math.sqrt(sxx * syy);
}

/** 1-based average ranks; tied values share the mean of their ranks (scipy.stats.rankdata 'average'). */
export function averageRanks(x: ArrayLike<number>): Float64Array {
  const n = x.length;
  const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => x[a] - x[b]);
  const ranks = new Float64Array(n);
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && x[idx[j + 1]] === x[idx[i]]) j++;
    const r = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[idx[k]] = r;
    i = j + 1;
  }
  return ranks;
}

export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  checkPaired(x, y);
  return pearson(averageRanks(x), averageRanks(y));
}

export interface RegressionMetrics {
  mse: number;
  pearson: number;
  spearman: number;
  intTrue: Int32Array;
  intPred: Int32Array;
  intReport: ClassificationReport;
  intConfusionMatrix: number[][];
  intF1Macro: number;
  threshold: number;
  binaryTrue: Int32Array;
  binaryPred: Int32Array;
  binaryReport: ClassificationReport;
  /** F1 of the positive class (int_score >= threshold). */
  binaryF1: number;
}

export const INT_SCORE_LABELS: readonly number[] = [0, 1, 2, 3, 4, 5];

/** Pearson/Spearman/MSE on the raw scores; int and binary metrics on int scores over 0..5. */
export function regressionMetrics(yTrue: ArrayLike<number>, yPred: ArrayLike<number>, threshold = 3): RegressionMetrics {
  checkPaired(yTrue, yPred);
  const intTrue = intScores(yTrue);
  const intPred = intScores(yPred);
  const intReport = classificationReport(intTrue, intPred, INT_SCORE_LABELS);
  const binaryTrue = intTrue.map((v) => (v >= threshold ? 1 : 0));
  const binaryPred = intPred.map((v) => (v >= threshold ? 1 : 0));
  const binaryReport = classificationReport(binaryTrue, binaryPred, [0, 1]);
  return {
    mse: mse(yTrue, yPred),
    pearson: pearson(yTrue, yPred),
    spearman: spearman(yTrue, yPred),
    intTrue,
    intPred,
    intReport,
    intConfusionMatrix: confusionMatrix(intTrue, intPred, INT_SCORE_LABELS),
    intF1Macro: intReport.macroAvg.f1,
    threshold,
    binaryTrue,
    binaryPred,
    binaryReport,
    binaryF1: binaryReport.perClass[1].f1,
  };
}

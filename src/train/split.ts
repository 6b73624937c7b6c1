/**
 * Stratified splits over integer strata (class ids; for regression pass the rounded scores).
 */
import { Rng } from './rng.js';

function groupByClass(labels: ArrayLike<number>): Map<number, number[]> {
  const groups = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (!Number.isInteger(y)) throw new Error(`stratum ${y} at row ${i} is not an integer`);
    let g = groups.get(y);
    if (!g) groups.set(y, (g = []));
    g.push(i);
  }
  return new Map([...groups.entries()].sort((a, b) => a[0] - b[0]));
}

export interface TrainValidationSplit {
  train: Int32Array;
  validation: Int32Array;
}

/**
 * Per class: shuffle (seeded) and send round(fraction * count) rows to validation, clamped to
 * [1, count - 1] for classes with >= 2 rows so both sides see every such class; single-row classes stay in
 * train. Both outputs are sorted ascending (stable row order for caching). Per-class rounding means the
 * validation size can differ from fraction * n by up to half a row per class.
 */
export function stratifiedSplit(labels: ArrayLike<number>, validationFraction: number, seed: number): TrainValidationSplit {
  if (!(validationFraction > 0 && validationFraction < 1)) {
    throw new Error(`validation fraction must be in (0, 1), got ${validationFraction}`);
  }
  const rng = new Rng(seed, 0x5b117);
  const train: number[] = [];
  const val: number[] = [];
  for (const rows of groupByClass(labels).values()) {
    rng.shuffle(rows);
    let nVal = Math.round(validationFraction * rows.length);
    if (rows.length >= 2) nVal = Math.min(rows.length - 1, Math.max(1, nVal));
    else nVal = 0;
    for (let i = 0; i < rows.length; i++) (i < nVal ? val : train).push(rows[i]);
  }
  return {
    train: Int32Array.from(train).sort(),
    validation: Int32Array.from(val).sort(),
  };
}

export interface Fold {
  train: Int32Array;
  test: Int32Array;
}

/**
 * Like sklearn's StratifiedKFold(shuffle=True): rows sorted by class are dealt round-robin to the k folds
 * (so every class's count per fold differs by at most 1 and fold sizes by at most 1), then inside each
 * class the fold assignments are shuffled (seeded). Every row is in exactly one test fold.
 * k greater than the largest class is an Error (as in sklearn); smaller classes simply miss some folds.
 */
export function stratifiedKFold(labels: ArrayLike<number>, k: number, seed: number): Fold[] {
  const n = labels.length;
  if (!Number.isInteger(k) || k < 2) throw new Error(`k-fold needs k >= 2, got ${k}`);
  if (k > n) throw new Error(`k-fold: k = ${k} is larger than the number of rows (${n})`);
  const groups = groupByClass(labels);
  const largest = Math.max(...[...groups.values()].map((g) => g.length));
  if (k > largest) throw new Error(`k-fold: k = ${k} is larger than the largest class (${largest} rows)`);
  const rng = new Rng(seed, 0xf01d);
  const foldOf = new Int32Array(n);
  let position = 0;
  for (const rows of groups.values()) {
    const assignment = rows.map(() => position++ % k);
    rng.shuffle(assignment);
    rows.forEach((r, i) => (foldOf[r] = assignment[i]));
  }
  const folds: Fold[] = [];
  for (let f = 0; f < k; f++) {
    const test: number[] = [];
    const train: number[] = [];
    for (let i = 0; i < n; i++) (foldOf[i] === f ? test : train).push(i);
    folds.push({ train: Int32Array.from(train), test: Int32Array.from(test) });
  }
  return folds;
}

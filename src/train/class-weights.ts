/**
 * Class weights for the weighted cross-entropy.
 *  - 'none':     all 1.
 *  - 'balanced': n_samples / (n_classes * count[c]), as sklearn.utils.class_weight.compute_class_weight.
 *  - 'sqrt':     sqrt of 'balanced' (a milder re-weighting for very skewed labels).
 *  - a file:     JSON array (one weight per class id) or object {label: weight} over exactly the labels.
 */
import { readFileSync } from 'node:fs';

export type ClassWeightMode = 'none' | 'balanced' | 'sqrt';

/** Counts per class id; ids must be integers in [0, numClasses). */
export function classCounts(labels: ArrayLike<number>, numClasses: number): Int32Array {
  const counts = new Int32Array(numClasses);
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (!Number.isInteger(y) || y < 0 || y >= numClasses) {
      throw new Error(`class id ${y} at row ${i} is outside [0, ${numClasses})`);
    }
    counts[y]++;
  }
  return counts;
}

/**
 * @param labelNames names for error messages (default: the ids).
 * A class with no samples is an Error under 'balanced'/'sqrt' (its weight would be infinite).
 */
export function computeClassWeights(
  labels: ArrayLike<number>,
  numClasses: number,
  mode: ClassWeightMode,
  labelNames?: readonly (string | number)[],
): Float32Array {
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new Error(`numClasses must be a positive integer, got ${numClasses}`);
  const out = new Float32Array(numClasses);
  if (mode === 'none') return out.fill(1);
  if (mode !== 'balanced' && mode !== 'sqrt') throw new Error(`unknown class weight mode '${String(mode)}' (use none, balanced, sqrt or a file)`);
  const counts = classCounts(labels, numClasses);
  const n = labels.length;
  for (let c = 0; c < numClasses; c++) {
    if (counts[c] === 0) {
      const name = labelNames?.[c] ?? c;
      throw new Error(`class '${name}' has no training samples, so its '${mode}' weight is undefined; remove it from the label list or pick class weights 'none' or a file`);
    }
    const w = n / (numClasses * counts[c]);
    out[c] = mode === 'sqrt' ? Math.sqrt(w) : w;
  }
  return out;
}

/** Parses a class-weight file's text: a JSON array indexed by class id, or an object keyed by label. */
export function parseClassWeights(text: string, labels: readonly (string | number)[], source = 'class weights'): Float32Array {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new Error(`${source}: not valid JSON (${(e as Error).message})`);
  }
  const out = new Float32Array(labels.length);
  const check = (v: unknown, where: string): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new Error(`${source}: weight for ${where} is ${JSON.stringify(v)}; weights must be positive finite numbers`);
    }
    return v;
  };
  if (Array.isArray(data)) {
    if (data.length !== labels.length) {
      throw new Error(`${source}: has ${data.length} weights, expected one per class (${labels.length}: ${labels.join(', ')})`);
    }
    data.forEach((v, i) => (out[i] = check(v, `class '${labels[i]}'`)));
    return out;
  }
  if (data === null || typeof data !== 'object') throw new Error(`${source}: expected a JSON array or an object {label: weight}`);
  const obj = data as Record<string, unknown>;
  const known = new Map(labels.map((l, i) => [String(l), i]));
  for (const key of Object.keys(obj)) {
    if (!known.has(key)) throw new Error(`${source}: unknown label '${key}' (labels: ${labels.join(', ')})`);
  }
  labels.forEach((l, i) => {
    if (!(String(l) in obj)) throw new Error(`${source}: no weight for label '${l}'`);
    out[i] = check(obj[String(l)], `label '${l}'`);
  });
  return out;
}

export function readClassWeightsFile(path: string, labels: readonly (string | number)[]): Float32Array {
  return parseClassWeights(readFileSync(path, 'utf8'), labels, path);
}

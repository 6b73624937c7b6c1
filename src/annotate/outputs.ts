/**
 * Head outputs -> the task's output columns, shared by `predict` and `annotate`:
 *  - regression: `score` (raw) and `int_score` (round-half-to-even(clip(score, 0, 5)));
 *  - classification: `label`, `label_id` (argmax of the logits, first maximum wins like torch) and `probs`
 *    (softmax, in label order).
 * Also the aggregation of per-window outputs for `annotate --chunking chunks`.
 */
import type { ColumnInfo, WriteColumn, WriteColumnType } from '../data/types.js';
import { intScore } from '../eval/metrics.js';
import type { LabelMap } from '../train/label-map.js';
import { UsageError } from '../util/errors.js';

export type Task = 'classification' | 'regression';
export type ChunkAgg = 'mean' | 'max';

/** Output columns added for a task. */
export function resultColumns(task: Task): WriteColumn[] {
  return task === 'regression'
    ? [{ name: 'score', type: 'float64' }, { name: 'int_score', type: 'int32' }]
    : [{ name: 'label', type: 'string' }, { name: 'label_id', type: 'int32' }, { name: 'probs', type: 'list<float64>' }];
}

/** How an input column is written back out unchanged. */
export function writeTypeOf(col: ColumnInfo, command = 'predict'): WriteColumnType {
  const t: Partial<Record<ColumnInfo['type'], WriteColumnType>> = {
    int: 'int64', float: 'float64', bool: 'bool', string: 'string', 'list<float>': 'list<float32>', 'list<double>': 'list<float64>',
  };
  const w = t[col.type];
  if (!w) throw new UsageError(`column ${col.name} holds ${col.type} values, which ${command} cannot copy; leave it out of --keep-columns`);
  return w;
}

export function softmaxRow(z: ArrayLike<number>, offset: number, c: number): Float64Array {
  const p = new Float64Array(c);
  let mx = -Infinity;
  for (let k = 0; k < c; k++) mx = Math.max(mx, z[offset + k]);
  let s = 0;
  for (let k = 0; k < c; k++) s += p[k] = Math.exp(z[offset + k] - mx);
  for (let k = 0; k < c; k++) p[k] /= s;
  return p;
}

function argmax(z: ArrayLike<number>, offset: number, c: number): number {
  let best = 0;
  for (let k = 1; k < c; k++) if (z[offset + k] > z[offset + best]) best = k;
  return best;
}

/** Head outputs [n, C] -> the task's output columns. */
export function outputColumns(outputs: Float32Array, n: number, labelMap: LabelMap | null): Record<string, unknown[]> {
  if (!labelMap) {
    const score = Array.from(outputs.subarray(0, n));
    return { score, int_score: score.map((s) => intScore(s)) };
  }
  const c = labelMap.size;
  const label: string[] = [];
  const labelId: number[] = [];
  const probs: Float64Array[] = [];
  for (let i = 0; i < n; i++) {
    const best = argmax(outputs, i * c, c);
    labelId.push(best);
    label.push(String(labelMap.decode(best)));
    probs.push(softmaxRow(outputs, i * c, c));
  }
  return { label, label_id: labelId, probs };
}

/**
 * Window outputs [sum(windows), C] -> one row per document. A one-window document goes through exactly
 * the per-row path above (so a short text scores bit-identically with --chunking truncate); longer ones
 * aggregate window scores (regression) or window probabilities (classification; `max` takes the
 * per-class maximum and renormalises so probs still sum to 1), and the label is the argmax of the result.
 */
export function aggregatedColumns(outputs: Float32Array, windows: ArrayLike<number>, labelMap: LabelMap | null, agg: ChunkAgg): Record<string, unknown[]> {
  const n = windows.length;
  const c = labelMap ? labelMap.size : 1;
  const cols: Record<string, unknown[]> = labelMap ? { label: [], label_id: [], probs: [] } : { score: [], int_score: [] };
  let w0 = 0;
  for (let i = 0; i < n; i++) {
    const k = windows[i];
    if (k < 1) throw new Error(`internal: document ${i} has no window`);
    if (k === 1) {
      const one = outputColumns(outputs.subarray(w0 * c, (w0 + 1) * c), 1, labelMap);
      for (const name of Object.keys(cols)) cols[name].push(one[name][0]);
    } else if (!labelMap) {
      let s = agg === 'mean' ? 0 : -Infinity;
      for (let j = w0; j < w0 + k; j++) s = agg === 'mean' ? s + outputs[j] : Math.max(s, outputs[j]);
      const score = agg === 'mean' ? s / k : s;
      cols.score.push(score);
      cols.int_score.push(intScore(score));
    } else {
      const p = new Float64Array(c).fill(agg === 'mean' ? 0 : -Infinity);
      for (let j = w0; j < w0 + k; j++) {
        const pj = softmaxRow(outputs, j * c, c);
        for (let q = 0; q < c; q++) p[q] = agg === 'mean' ? p[q] + pj[q] : Math.max(p[q], pj[q]);
      }
      let sum = 0;
      for (let q = 0; q < c; q++) sum += p[q];
      for (let q = 0; q < c; q++) p[q] /= sum;
      const best = argmax(p, 0, c);
      cols.label.push(String(labelMap.decode(best)));
      cols.label_id.push(best);
      cols.probs.push(p);
    }
    w0 += k;
  }
  return cols;
}

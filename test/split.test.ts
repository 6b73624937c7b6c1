import { describe, expect, it } from 'vitest';
import { stratifiedKFold, stratifiedSplit } from '../src/train/split.js';

const labels: number[] = [];
for (const [c, n] of [[0, 500], [1, 120], [2, 33], [3, 2], [4, 1]] as const) for (let i = 0; i < n; i++) labels.push(c);
// interleave so classes are not contiguous
const shuffled = labels.map((l, i) => [l, (i * 7919) % 1009] as const).sort((a, b) => a[1] - b[1]).map((x) => x[0]);

function countBy(idx: Int32Array, y: number[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const i of idx) m.set(y[i], (m.get(y[i]) ?? 0) + 1);
  return m;
}

describe('stratifiedSplit', () => {
  it('keeps class proportions, covers every row once, and keeps >= 2-row classes on both sides', () => {
    const { train, validation } = stratifiedSplit(shuffled, 0.1, 7);
    expect(train.length + validation.length).toBe(shuffled.length);
    expect(new Set([...train, ...validation]).size).toBe(shuffled.length);
    const v = countBy(validation, shuffled), t = countBy(train, shuffled);
    expect(v.get(0)).toBe(50);
    expect(v.get(1)).toBe(12);
    expect(v.get(2)).toBe(3);
    expect(v.get(3)).toBe(1); // round(0.2) = 0, clamped up to 1
    expect(t.get(3)).toBe(1);
    expect(v.get(4)).toBeUndefined(); // a single row stays in train
    expect(t.get(4)).toBe(1);
  });
  it('is seeded', () => {
    expect(stratifiedSplit(shuffled, 0.2, 1)).toEqual(stratifiedSplit(shuffled, 0.2, 1));
    expect(stratifiedSplit(shuffled, 0.2, 1).validation).not.toEqual(stratifiedSplit(shuffled, 0.2, 2).validation);
    expect(() => stratifiedSplit(shuffled, 1, 1)).toThrow();
  });
});

describe('stratifiedKFold', () => {
  it('puts every row in exactly one test fold with per-class counts within 1 of each other', () => {
    const k = 5;
    const folds = stratifiedKFold(shuffled, k, 3);
    expect(folds.length).toBe(k);
    const seen = new Int32Array(shuffled.length);
    for (const f of folds) {
      for (const i of f.test) seen[i]++;
      expect(f.train.length + f.test.length).toBe(shuffled.length);
      const testSet = new Set(f.test);
      expect(f.train.some((i) => testSet.has(i))).toBe(false);
    }
    expect(seen.every((c) => c === 1)).toBe(true);
    for (const c of [0, 1, 2, 3, 4]) {
      const total = shuffled.filter((y) => y === c).length;
      const per = folds.map((f) => countBy(f.test, shuffled).get(c) ?? 0);
      expect(Math.max(...per) - Math.min(...per)).toBeLessThanOrEqual(1);
      for (const p of per) expect(Math.abs(p - total / k)).toBeLessThan(1);
    }
    const sizes = folds.map((f) => f.test.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
  });
  it('is seeded and validates k', () => {
    expect(stratifiedKFold(shuffled, 3, 1)).toEqual(stratifiedKFold(shuffled, 3, 1));
    expect(stratifiedKFold(shuffled, 3, 1)[0].test).not.toEqual(stratifiedKFold(shuffled, 3, 2)[0].test);
    expect(() => stratifiedKFold(shuffled, 1, 1)).toThrow(/k >= 2/);
    expect(() => stratifiedKFold([0, 0, 1], 3, 1)).toThrow(/largest class/);
  });
});

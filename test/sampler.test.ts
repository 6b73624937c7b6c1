import { describe, expect, it } from 'vitest';
import { Rng } from '../src/train/rng.js';
import { shuffleOrder, weightedRandomOrder } from '../src/train/sampler.js';
import { computeClassWeights, parseClassWeights } from '../src/train/class-weights.js';

describe('Rng', () => {
  it('is deterministic per (seed, streams) and differs across them', () => {
    const a = new Rng(42, 1), b = new Rng(42, 1), c = new Rng(42, 2), d = new Rng(43, 1);
    const draw = (r: Rng) => Array.from({ length: 8 }, () => r.nextUint32());
    const da = draw(a);
    expect(da).toEqual(draw(b));
    expect(da).not.toEqual(draw(c));
    expect(da).not.toEqual(draw(d));
    expect(draw(new Rng(2 ** 40))).not.toEqual(draw(new Rng(0))); // high seed bits matter
  });

  it('floats are in [0, 1) with the right mean, ints are uniform, normals are standard', () => {
    const r = new Rng(7);
    let s = 0;
    const counts = new Array(6).fill(0);
    let m = 0, m2 = 0;
    const n = 60000;
    let inRange = true;
    for (let i = 0; i < n; i++) {
      const f = r.float();
      inRange &&= f >= 0 && f < 1;
      s += f;
      counts[r.int(6)]++;
      const z = r.normal();
      m += z;
      m2 += z * z;
    }
    expect(inRange).toBe(true);
    expect(Math.abs(s / n - 0.5)).toBeLessThan(0.01);
    for (const c of counts) expect(Math.abs(c / n - 1 / 6)).toBeLessThan(0.01);
    expect(Math.abs(m / n)).toBeLessThan(0.02);
    expect(Math.abs(m2 / n - 1)).toBeLessThan(0.03);
    expect(() => r.int(0)).toThrow();
    expect(() => new Rng(-1)).toThrow(/seed/);
  });
});

describe('shuffleOrder', () => {
  it('is a seeded permutation that changes per epoch', () => {
    const a = shuffleOrder(1000, 1, 0);
    expect(Array.from(a).sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(shuffleOrder(1000, 1, 0)).toEqual(a);
    expect(shuffleOrder(1000, 1, 1)).not.toEqual(a);
    expect(shuffleOrder(1000, 2, 0)).not.toEqual(a);
    expect(shuffleOrder(0, 1, 0).length).toBe(0);
  });
});

describe('weightedRandomOrder', () => {
  it('draws with replacement and balances classes with 1/count weights', () => {
    const labels = new Int32Array(10000);
    for (let i = 0; i < labels.length; i++) labels[i] = i < 9000 ? 0 : i < 9900 ? 1 : 2; // 90% / 9% / 1%
    const order = weightedRandomOrder(labels, 3, 0);
    expect(order.length).toBe(labels.length);
    const per = [0, 0, 0];
    for (const i of order) per[labels[i]]++;
    for (const c of per) expect(Math.abs(c / order.length - 1 / 3)).toBeLessThan(0.02);
    // with replacement: the 100 rows of class 2 are drawn ~33 times each
    expect(new Set(Array.from(order).filter((i) => labels[i] === 2)).size).toBeLessThanOrEqual(100);
    expect(weightedRandomOrder(labels, 3, 0)).toEqual(order);
    expect(weightedRandomOrder(labels, 3, 1)).not.toEqual(order);
  });

  it('honours explicit weights and numSamples', () => {
    const order = weightedRandomOrder([0, 0, 0, 0], 1, 0, { weights: [0, 1, 0, 3], numSamples: 4000 });
    expect(order.length).toBe(4000);
    const c1 = order.filter((i) => i === 1).length;
    expect(order.every((i) => i === 1 || i === 3)).toBe(true);
    expect(Math.abs(c1 / 4000 - 0.25)).toBeLessThan(0.03);
    expect(() => weightedRandomOrder([0, 1], 1, 0, { weights: [1] })).toThrow(/one per sample/);
    expect(() => weightedRandomOrder([0, 1], 1, 0, { weights: [0, 0] })).toThrow(/all weights are 0/);
    expect(() => weightedRandomOrder([0, 1], 1, 0, { weights: [1, -1] })).toThrow(/sample 1/);
  });
});

describe('class weights', () => {
  const y = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2];
  it("'balanced' is n / (k * count) like sklearn, 'sqrt' its square root, 'none' ones", () => {
    const b = computeClassWeights(y, 3, 'balanced');
    expect(Array.from(b)).toEqual([12 / 12, 12 / 6, 12 / 18].map(Math.fround));
    expect(Array.from(computeClassWeights(y, 3, 'sqrt'))).toEqual([1, Math.sqrt(2), Math.sqrt(12 / 18)].map(Math.fround));
    expect(Array.from(computeClassWeights(y, 3, 'none'))).toEqual([1, 1, 1]);
  });
  it('a class with no samples is an Error that names it', () => {
    expect(() => computeClassWeights(y, 4, 'balanced', ['low', 'mid', 'high', '사실형'])).toThrow(/class '사실형' has no training samples/);
  });
  it('reads a JSON array or a label -> weight object, with checks', () => {
    const labels = ['a', 'b', 'c'];
    expect(Array.from(parseClassWeights('[1, 2, 0.5]', labels))).toEqual([1, 2, 0.5]);
    expect(Array.from(parseClassWeights('{"c": 3, "a": 1, "b": 2}', labels))).toEqual([1, 2, 3]);
    expect(() => parseClassWeights('[1, 2]', labels)).toThrow(/2 weights, expected one per class \(3/);
    expect(() => parseClassWeights('{"a": 1, "b": 2}', labels)).toThrow(/no weight for label 'c'/);
    expect(() => parseClassWeights('{"a": 1, "b": 2, "c": 1, "d": 1}', labels)).toThrow(/unknown label 'd'/);
    expect(() => parseClassWeights('[1, -2, 1]', labels)).toThrow(/positive finite/);
    expect(() => parseClassWeights('[1, "x", 1]', labels)).toThrow(/positive finite/);
    expect(() => parseClassWeights('{oops', labels)).toThrow(/not valid JSON/);
  });
});

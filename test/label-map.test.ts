import { describe, expect, it } from 'vitest';
import { LabelMap, encodeRegressionTargets } from '../src/train/label-map.js';

describe('LabelMap', () => {
  it('sorted unique like LabelEncoder: numbers numerically, strings by code point', () => {
    expect(LabelMap.fromValues([10, 2, 2, 1]).labels).toEqual([1, 2, 10]);
    expect(LabelMap.fromValues(['추론형', '사실형', 'b', 'a', '사실형']).labels).toEqual(['a', 'b', '사실형', '추론형']);
    // code point order (U+1F600 > U+FF5E), where UTF-16 code unit order would differ
    expect(LabelMap.fromValues(['\uff5e', '\u{1f600}']).labels).toEqual(['\uff5e', '\u{1f600}']);
  });

  it('an explicit label list fixes the order; unknown labels are Errors naming the row', () => {
    const m = new LabelMap(['low', 'high']);
    expect(Array.from(m.encode(['high', 'low', 'high']))).toEqual([1, 0, 1]);
    expect(() => m.encode(['low', 'mid'])).toThrow(/unknown label 'mid' at row 1 \(known: 'low', 'high'\)/);
    expect(m.decode(1)).toBe('high');
    expect(() => m.decode(2)).toThrow();
    expect(() => new LabelMap(['a', 'a'])).toThrow(/duplicate/);
    expect(() => LabelMap.fromValues([1, 'a'])).toThrow(/mixes strings and numbers/);
  });

  it('round-trips label_mapping.json', () => {
    const m = LabelMap.fromValues([3, 1, 2]);
    const json = JSON.parse(JSON.stringify(m));
    expect(json).toEqual({ labels: [1, 2, 3], task: 'classification' });
    const back = LabelMap.fromJSON(json);
    expect(back.labels).toEqual([1, 2, 3]);
    expect(back.id(3)).toBe(2);
    expect(() => LabelMap.fromJSON({ labels: [1], task: 'regression' })).toThrow(/task/);
    expect(() => LabelMap.fromJSON({ task: 'classification' })).toThrow(/labels/);
  });

  it('regression targets pass through as floats; NaN is an Error naming the row', () => {
    expect(Array.from(encodeRegressionTargets([0, 2.5, '3', 5]))).toEqual([0, 2.5, 3, 5]);
    expect(() => encodeRegressionTargets([1, NaN])).toThrow(/row 1/);
    expect(() => encodeRegressionTargets([1, 2, 'x'])).toThrow(/row 2 is 'x'/);
    expect(() => encodeRegressionTargets([Infinity])).toThrow(/row 0/);
  });
});

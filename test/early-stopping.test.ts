import { describe, expect, it } from 'vitest';
import { EarlyStopping } from '../src/train/early-stopping.js';

function run(es: EarlyStopping, values: number[]) {
  const stops: boolean[] = [];
  values.forEach((v, i) => stops.push(es.update(v, { epoch: i, step: (i + 1) * 10 }).shouldStop));
  return stops;
}

describe('EarlyStopping', () => {
  it('max mode: stops after `patience` evaluations without strict improvement', () => {
    const es = new EarlyStopping({ metric: 'macro_f1', patience: 2 });
    expect(run(es, [0.5, 0.6, 0.6, 0.55])).toEqual([false, false, false, true]);
    expect(es.bestValue).toBe(0.6);
    expect(es.bestEpoch).toBe(1);
    expect(es.bestStep).toBe(20);
  });

  it('min mode for mse/loss, and improvement resets the count', () => {
    const es = new EarlyStopping({ metric: 'mse', patience: 2 });
    expect(run(es, [1, 0.9, 0.95, 0.8, 0.85, 0.81])).toEqual([false, false, false, false, false, true]);
    expect(es.bestEpoch).toBe(3);
  });

  it("'off' never stops but tracks the best; NaN never improves; minDelta", () => {
    const es = new EarlyStopping({ metric: 'pearson', patience: 'off' });
    expect(run(es, [0.1, NaN, 0.05, 0.3, 0.2, 0.1, 0]).every((s) => !s)).toBe(true);
    expect(es.bestEpoch).toBe(3);
    const d = new EarlyStopping({ metric: 'accuracy', patience: 1, minDelta: 0.01 });
    expect(run(d, [0.5, 0.505])).toEqual([false, true]);
  });

  it('rejects unknown metrics (listing the known ones) and patience < 1', () => {
    expect(() => new EarlyStopping({ metric: 'f1', patience: 3 })).toThrow(/unknown early-stopping metric 'f1' \(known: macro_f1, weighted_f1, accuracy, pearson, spearman/);
    expect(() => new EarlyStopping({ metric: 'loss', patience: 0 })).toThrow(/>= 1 or 'off'/);
    expect(() => new EarlyStopping({ metric: 'loss', patience: 1.5 })).toThrow(/>= 1 or 'off'/);
  });
});

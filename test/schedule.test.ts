import { describe, expect, it } from 'vitest';
import { learningRates, lrMultiplier, warmupStepsFromRatio, type ScheduleSpec } from '../src/train/schedule.js';

describe('LR schedules (transformers semantics)', () => {
  it('warmup steps use ceil like TrainingArguments.get_warmup_steps', () => {
    expect(warmupStepsFromRatio(0.1, 1000)).toBe(100);
    expect(warmupStepsFromRatio(0.1, 1001)).toBe(101);
    expect(warmupStepsFromRatio(0.001, 10)).toBe(1);
    expect(warmupStepsFromRatio(0, 10)).toBe(0);
    expect(() => warmupStepsFromRatio(1.5, 10)).toThrow();
  });

  it('linear: warmup from 0, then linear decay to 0', () => {
    const s: ScheduleSpec = { kind: 'linear', totalSteps: 10, warmupSteps: 2 };
    const got = Array.from({ length: 11 }, (_, i) => lrMultiplier(s, i));
    expect(got).toEqual([0, 0.5, 1, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8, 0]);
    expect(lrMultiplier(s, 12)).toBe(0);
  });

  it('cosine (num_cycles 0.5): half a cosine from 1 to 0 after warmup', () => {
    const s: ScheduleSpec = { kind: 'cosine', totalSteps: 12, warmupSteps: 2 };
    expect(lrMultiplier(s, 1)).toBe(0.5);
    expect(lrMultiplier(s, 2)).toBe(1);
    expect(lrMultiplier(s, 7)).toBeCloseTo(0.5, 15);
    expect(lrMultiplier(s, 12)).toBeCloseTo(0, 15);
    for (let i = 2; i < 12; i++) expect(lrMultiplier(s, i + 1)).toBeLessThan(lrMultiplier(s, i));
  });

  it('constant and constant_with_warmup', () => {
    expect(lrMultiplier({ kind: 'constant', totalSteps: 5, warmupSteps: 3 }, 0)).toBe(1);
    const w: ScheduleSpec = { kind: 'constant_with_warmup', totalSteps: 5, warmupSteps: 4 };
    expect([0, 1, 2, 3, 4, 5].map((i) => lrMultiplier(w, i))).toEqual([0, 0.25, 0.5, 0.75, 1, 1]);
  });

  it('learningRates gives one epoch slice as a Float64Array', () => {
    const s: ScheduleSpec = { kind: 'linear', totalSteps: 10, warmupSteps: 0 };
    expect(Array.from(learningRates(s, 2e-3, 5, 3))).toEqual([1e-3, 0.8e-3, 0.6e-3].map((v, i) => 2e-3 * ((10 - 5 - i) / 10)));
    expect(() => learningRates({ ...s, kind: 'bogus' as never }, 1, 0, 1)).toThrow(/unknown LR schedule 'bogus'/);
    expect(() => learningRates(s, NaN, 0, 1)).toThrow(/learning rate/);
  });
});

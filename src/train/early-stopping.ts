/**
 * Early stopping on a validation metric. Patience N: stop once N consecutive evaluations brought no strict
 * improvement (by more than minDelta) over the best so far. Patience 0 is rejected because tools disagree on
 * it (stop at the first non-improvement vs never stop): use an integer >= 1, or 'off' to keep tracking the
 * best evaluation without ever stopping.
 */

export type MetricMode = 'max' | 'min';

/** Metric names the trainer reports, with the direction that counts as better. */
export const METRIC_MODES: Readonly<Record<string, MetricMode>> = {
  macro_f1: 'max',
  weighted_f1: 'max',
  accuracy: 'max',
  pearson: 'max',
  spearman: 'max',
  binary_f1: 'max',
  mse: 'min',
  loss: 'min',
};

export function metricMode(name: string): MetricMode {
  const mode = METRIC_MODES[name];
  if (!mode) throw new Error(`unknown early-stopping metric '${name}' (known: ${Object.keys(METRIC_MODES).join(', ')})`);
  return mode;
}

export interface EarlyStoppingOptions {
  metric: string;
  patience: number | 'off';
  /** An improvement must exceed this (absolute). Default 0 (any strict improvement). */
  minDelta?: number;
}

export interface EarlyStoppingUpdate {
  improved: boolean;
  shouldStop: boolean;
  /** Evaluations since the last improvement. */
  badEvaluations: number;
}

export class EarlyStopping {
  readonly metric: string;
  readonly mode: MetricMode;
  readonly patience: number | 'off';
  readonly minDelta: number;
  bestValue: number | null = null;
  bestEpoch = -1;
  bestStep = -1;
  private bad = 0;
  private stopped = false;

  constructor(options: EarlyStoppingOptions) {
    this.metric = options.metric;
    this.mode = metricMode(options.metric);
    if (options.patience !== 'off' && (!Number.isInteger(options.patience) || options.patience < 1)) {
      throw new Error(`early-stopping patience must be an integer >= 1 or 'off', got ${String(options.patience)}`);
    }
    this.patience = options.patience;
    this.minDelta = options.minDelta ?? 0;
    if (!Number.isFinite(this.minDelta) || this.minDelta < 0) throw new Error(`minDelta must be >= 0, got ${this.minDelta}`);
  }

  /** Records one evaluation. A NaN value never improves. */
  update(value: number, at: { epoch: number; step: number }): EarlyStoppingUpdate {
    const improved =
      !Number.isNaN(value) &&
      (this.bestValue === null ||
        (this.mode === 'max' ? value > this.bestValue + this.minDelta : value < this.bestValue - this.minDelta));
    if (improved) {
      this.bestValue = value;
      this.bestEpoch = at.epoch;
      this.bestStep = at.step;
      this.bad = 0;
    } else {
      this.bad++;
    }
    if (this.patience !== 'off' && this.bad >= this.patience) this.stopped = true;
    return { improved, shouldStop: this.stopped, badEvaluations: this.bad };
  }

  get shouldStop(): boolean {
    return this.stopped;
  }
}

/**
 * Learning-rate multipliers per optimizer step, as in Hugging Face transformers (optimization.py), so a
 * recipe ported from a transformers Trainer run gets the same LR curve:
 *  - constant:             1
 *  - constant_with_warmup: step / warmup during warmup, then 1
 *  - linear:               warmup, then (total - step) / (total - warmup), floored at 0
 *  - cosine:               warmup, then 0.5 * (1 + cos(pi * 2 * numCycles * progress)), numCycles = 0.5
 * `step` is the number of optimizer steps already taken (LambdaLR's counter), so the first update uses
 * multiplier(0), which is 0 whenever there is warmup, exactly like transformers.
 *
 * warmupSteps = ceil(warmupRatio * totalSteps): transformers' TrainingArguments.get_warmup_steps uses
 * math.ceil, so a tiny ratio still gives at least one warmup step.
 */

export type ScheduleKind = 'constant' | 'constant_with_warmup' | 'linear' | 'cosine';
export const SCHEDULE_KINDS: readonly ScheduleKind[] = ['constant', 'constant_with_warmup', 'linear', 'cosine'];

export interface ScheduleSpec {
  kind: ScheduleKind;
  totalSteps: number;
  warmupSteps: number;
  /** cosine only; default 0.5 (half a cosine: from 1 down to 0). */
  numCycles?: number;
}

export function warmupStepsFromRatio(warmupRatio: number, totalSteps: number): number {
  if (!Number.isFinite(warmupRatio) || warmupRatio < 0 || warmupRatio > 1) {
    throw new Error(`warmupRatio must be in [0, 1], got ${warmupRatio}`);
  }
  return Math.ceil(warmupRatio * totalSteps);
}

export function lrMultiplier(spec: ScheduleSpec, step: number): number {
  const { kind, totalSteps, warmupSteps } = spec;
  if (kind === 'constant') return 1;
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  switch (kind) {
    case 'constant_with_warmup':
      return 1;
    case 'linear':
      return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
    case 'cosine': {
      const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
      const cycles = spec.numCycles ?? 0.5;
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * cycles * 2 * progress)));
    }
    default:
      throw new Error(`unknown LR schedule '${String(kind)}' (known: ${SCHEDULE_KINDS.join(', ')})`);
  }
}

export function validateSchedule(spec: ScheduleSpec): void {
  if (!SCHEDULE_KINDS.includes(spec.kind)) throw new Error(`unknown LR schedule '${String(spec.kind)}' (known: ${SCHEDULE_KINDS.join(', ')})`);
  if (!Number.isInteger(spec.totalSteps) || spec.totalSteps < 1) throw new Error(`totalSteps must be a positive integer, got ${spec.totalSteps}`);
  if (!Number.isInteger(spec.warmupSteps) || spec.warmupSteps < 0) throw new Error(`warmupSteps must be a non-negative integer, got ${spec.warmupSteps}`);
}

/** Learning rates baseLr * multiplier for steps [fromStep, fromStep + count): one epoch's lrs for Head.trainEpoch. */
export function learningRates(spec: ScheduleSpec, baseLr: number, fromStep: number, count: number): Float64Array {
  validateSchedule(spec);
  if (!Number.isFinite(baseLr) || baseLr < 0) throw new Error(`learning rate must be finite and >= 0, got ${baseLr}`);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = baseLr * lrMultiplier(spec, fromStep + i);
  return out;
}

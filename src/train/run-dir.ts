/**
 * The run folder. `train` writes everything into `<RUN_DIR>.tmp-<pid>` and renames it onto RUN_DIR only
 * after run.json (written last) is in place, so a failed or killed run never leaves a folder that looks
 * complete. Readers (eval --run, predict) get the run config, the label mapping and the head back.
 *
 * Layout: run.json, label_mapping.json, head.safetensors, metrics.jsonl, best.json, report.txt, report.json;
 * with --folds K: fold-<k>/ (each a complete run folder) plus cv_summary.json and cv_report.txt.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Pooling } from '../encoder.js';
import type { NativeHead } from '../native/head-types.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { UsageError } from '../util/errors.js';
import { loadHead } from './head-io.js';
import { loadHeadAddon } from './head-trainer.js';
import { LabelMap, type Label } from './label-map.js';
import { modelIdentity, type ModelIdentity } from './embedding-cache.js';

export const RUN_FILES = {
  run: 'run.json',
  labels: 'label_mapping.json',
  head: 'head.safetensors',
  metrics: 'metrics.jsonl',
  best: 'best.json',
  reportText: 'report.txt',
  reportJson: 'report.json',
  cvSummary: 'cv_summary.json',
  cvReport: 'cv_report.txt',
} as const;

export function writeJson(path: string, value: unknown): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

export function writeJsonl(path: string, rows: readonly unknown[]): void {
  writeFileAtomic(path, rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
}

/** A run folder being written; commit() moves it onto the target. */
export class StagedRun {
  readonly target: string;
  readonly dir: string;
  private done = false;

  private constructor(target: string, dir: string) {
    this.target = target;
    this.dir = dir;
  }

  /** Refuses an existing non-empty target unless overwrite; call before any expensive work. */
  static checkTarget(target: string, overwrite: boolean): void {
    const t = resolve(target);
    if (existsSync(t) && !overwrite) {
      const empty = statSync(t).isDirectory() && readdirSync(t).length === 0;
      if (!empty) throw new UsageError(`--output ${target} already exists; choose another folder or pass --overwrite`);
    }
    if (existsSync(t) && !statSync(t).isDirectory()) throw new UsageError(`--output ${target} exists and is not a folder`);
  }

  static create(target: string): StagedRun {
    const t = resolve(target);
    mkdirSync(dirname(t), { recursive: true });
    const dir = `${t}.tmp-${process.pid}`;
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    return new StagedRun(t, dir);
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  /** Renames the staging folder onto the target (replacing an old run only at this point). */
  commit(): void {
    if (this.done) throw new Error('internal: run folder already committed');
    if (existsSync(this.target)) {
      const old = `${this.target}.old-${process.pid}`;
      renameSync(this.target, old);
      renameSync(this.dir, this.target);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(this.dir, this.target);
    }
    this.done = true;
  }

  /** Removes the staging folder (after a failure). Safe to call after commit. */
  discard(): void {
    if (!this.done) rmSync(this.dir, { recursive: true, force: true });
    this.done = true;
  }
}

/** What predict / eval need from run.json. */
export interface RunConfig {
  format: 'edu-train-run';
  task: 'classification' | 'regression';
  head: { kind: 'linear' | 'pooler'; in_features: number; num_outputs: number; hidden: boolean };
  encoder: { model_dir: string; architecture: string; weights_sha256: string; tokenizer_sha256: string; config_sha256: string; pooling: Pooling; max_length: number };
  options: { text_column: string; label_column: string; threshold: number; [k: string]: unknown };
  labels?: Label[];
  folds?: number;
  [k: string]: unknown;
}

export interface LoadedRun {
  dir: string;
  config: RunConfig;
  labelMap: LabelMap | null;
}

export function readRun(dir: string): LoadedRun {
  const d = resolve(dir);
  const runJson = join(d, RUN_FILES.run);
  if (!existsSync(runJson)) {
    throw new UsageError(`--run ${dir}: no ${RUN_FILES.run} there (not a finished edu-train run folder)`);
  }
  let config: RunConfig;
  try {
    config = JSON.parse(readFileSync(runJson, 'utf8')) as RunConfig;
  } catch (e) {
    throw new UsageError(`${runJson}: not valid JSON (${(e as Error).message})`);
  }
  if (config.format !== 'edu-train-run') throw new UsageError(`${runJson}: not an edu-train run config`);
  if (config.folds && !existsSync(join(d, RUN_FILES.head))) {
    throw new UsageError(`--run ${dir} is a ${config.folds}-fold cross-validation run without a single head; use one fold, e.g. --run ${join(dir, 'fold-0')}`);
  }
  let labelMap: LabelMap | null = null;
  if (config.task === 'classification') {
    const file = join(d, RUN_FILES.labels);
    try {
      labelMap = LabelMap.fromJSON(JSON.parse(readFileSync(file, 'utf8')), file);
    } catch (e) {
      throw new UsageError(`${file}: ${(e as Error).message}`);
    }
  }
  return { dir: d, config, labelMap };
}

/** A native head holding the run's trained weights, ready for predict(). */
export async function openRunHead(run: LoadedRun, threads?: number): Promise<NativeHead> {
  const h = run.config.head;
  const params = await loadHead(join(run.dir, RUN_FILES.head), { inFeatures: h.in_features, numOutputs: h.num_outputs, hidden: h.hidden });
  const { Head } = loadHeadAddon();
  return new Head({
    inFeatures: h.in_features,
    hidden: h.hidden,
    numOutputs: h.num_outputs,
    loss: run.config.task === 'classification' ? 'ce' : 'mse',
    init: params,
    optimizer: {},
    threads,
  });
}

/**
 * The encoder a run was trained on (run.json, or --model-dir when the folder moved), checked against the
 * hashes recorded at training time: a different checkpoint would silently give meaningless predictions.
 */
export async function runModelIdentity(run: LoadedRun, modelDir?: string): Promise<ModelIdentity> {
  const e = run.config.encoder;
  const dir = modelDir ?? e.model_dir;
  if (!existsSync(dir)) throw new UsageError(`the run's encoder ${dir} does not exist; pass --model-dir with the same model`);
  const { identity } = await modelIdentity(dir, e.max_length);
  const checks: [string, string, string][] = [
    ['weights', identity.weightsSha256, e.weights_sha256],
    ['tokenizer.json', identity.tokenizerSha256, e.tokenizer_sha256],
    ['config.json', identity.configSha256, e.config_sha256],
  ];
  for (const [what, now, then] of checks) {
    if (now !== then) {
      throw new UsageError(`${dir}: the ${what} differ from the ones the run was trained with (sha256 ${now.slice(0, 12)}... vs ${then.slice(0, 12)}... in run.json)`);
    }
  }
  return identity;
}

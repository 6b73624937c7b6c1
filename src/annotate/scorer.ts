/**
 * What turns token ids into scores for `annotate`: either a trained run (its encoder + head.safetensors)
 * or a ready-made classifier folder (a *ForSequenceClassification checkpoint scored with its own logits,
 * or an `edu-train export` folder with classifier_config.json). Both give head outputs [n, numOutputs] in
 * input order, plus a hash that identifies the exact model for the manifest.
 *
 * --backbone NAME is resolved to a model folder by src/hub/resolve.ts in resolveModelSource(), the one
 * place that maps the model flags to a source; from there it is the --model-dir path.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadEncoder, type Encoder, type EncoderRuntime, type Pooling } from '../encoder.js';
import { CLASSIFIER_CONFIG, CLASSIFIER_WEIGHTS, type ClassifierConfig } from '../export/hf.js';
import { openReadyClassifier } from '../hub/ready-classifier.js';
import { resolveModelDir } from '../hub/resolve.js';
import type { NativeHead } from '../native/head-types.js';
import type { Encoded } from '../tokenize/tokenizer.js';
import { modelIdentity } from '../train/embedding-cache.js';
import { LabelMap } from '../train/label-map.js';
import { openRunHead, readRun, runModelIdentity, RUN_FILES, type LoadedRun } from '../train/run-dir.js';
import { UsageError } from '../util/errors.js';
import type { Task } from './outputs.js';

export type ModelSource = { kind: 'run'; runDir: string; modelDir?: string } | { kind: 'model-dir'; modelDir: string };

/** The one place that maps the CLI's model flags (--run, --model-dir, --backbone) to a source. */
export async function resolveModelSource(o: { run?: string; modelDir?: string; backbone?: string; quiet?: boolean }): Promise<ModelSource> {
  if (o.backbone !== undefined && o.modelDir !== undefined) throw new UsageError('pass --model-dir or --backbone, not both');
  if (o.run) {
    // With a run, --model-dir / --backbone name the run's encoder if it moved (run.json's hashes are checked).
    const modelDir = o.backbone !== undefined ? await resolveModelDir({ backbone: o.backbone, quiet: o.quiet }) : o.modelDir;
    return { kind: 'run', runDir: o.run, modelDir };
  }
  if (o.modelDir !== undefined || o.backbone !== undefined) {
    return { kind: 'model-dir', modelDir: await resolveModelDir({ modelDir: o.modelDir, backbone: o.backbone, quiet: o.quiet }) };
  }
  throw new UsageError('annotate needs a model: --run RUN_DIR (a trained head), or --model-dir DIR / --backbone NAME (a ready-made classifier)');
}

/** Identity of the model without loading weights: enough to check a manifest before any heavy work. */
export interface ModelDescription {
  task: Task;
  labels: string[] | null;
  modelDir: string;
  maxLength: number;
  /** sha256 over everything that decides the outputs (encoder files, head, labels, pooling). */
  sha256: string;
  summary: string;
}

export interface Scorer {
  readonly description: ModelDescription;
  readonly labelMap: LabelMap | null;
  readonly encoder: Encoder;
  /** Head outputs [n, C] for already tokenized rows, in input order. */
  score(encoded: readonly Encoded[], batchSize: number): Promise<Float32Array>;
  dispose(): void;
}

const sha = (...parts: (string | Buffer)[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex');
};

interface Described {
  description: ModelDescription;
  run?: LoadedRun;
}

/** Hashes the model (and checks a run against its encoder) without loading the weights into the addon. */
export async function describeModel(source: ModelSource, maxLength?: number): Promise<Described> {
  if (source.kind === 'run') {
    const run = readRun(source.runDir);
    const identity = await runModelIdentity(run, source.modelDir);
    const ml = maxLength ?? identity.maxLength;
    const files = [RUN_FILES.run, RUN_FILES.head, ...(run.labelMap ? [RUN_FILES.labels] : [])].map((f) => readFileSync(join(run.dir, f)));
    // run.json records the encoder's hashes, and runModelIdentity checked the files against them.
    const description: ModelDescription = {
      task: run.config.task,
      labels: run.labelMap ? run.labelMap.labels.map(String) : null,
      modelDir: identity.dir,
      maxLength: ml,
      sha256: sha('run', ...files),
      summary: `run ${run.dir} (${run.config.task}, ${run.config.head.kind} head on ${identity.architecture})`,
    };
    return { description, run };
  }
  const dir = resolve(source.modelDir);
  if (!existsSync(dir)) throw new UsageError(`--model-dir ${source.modelDir} does not exist`);
  const ccFile = join(dir, CLASSIFIER_CONFIG);
  if (existsSync(ccFile)) {
    // An `export` folder: encoder + classifier_config.json + classifier.safetensors (the run's head).
    const cc = JSON.parse(readFileSync(ccFile, 'utf8')) as ClassifierConfig;
    if (maxLength !== undefined && maxLength !== cc.max_length) {
      throw new UsageError(`${dir} was exported for --max-length ${cc.max_length}; leave --max-length out or pass ${cc.max_length}`);
    }
    const { identity } = await modelIdentity(dir, cc.max_length);
    const description: ModelDescription = {
      task: cc.task,
      labels: cc.labels ? cc.labels.map(String) : null,
      modelDir: dir,
      maxLength: cc.max_length,
      sha256: sha('export', identity.weightsSha256, identity.tokenizerSha256, identity.configSha256, readFileSync(ccFile), readFileSync(join(dir, CLASSIFIER_WEIGHTS))),
      summary: `exported classifier ${dir} (${cc.task}, ${cc.pooling} pooling on ${identity.architecture})`,
    };
    return { description, run: undefined };
  }
  const { identity, spec } = await modelIdentity(dir, maxLength);
  if (spec.head.kind === 'none') {
    throw new UsageError(
      `--model-dir ${source.modelDir} (${spec.architecture}) has no classification head; annotate needs a *ForSequenceClassification ` +
        'model, or --run with a head trained by `edu-train train`',
    );
  }
  if (spec.head.problemType === 'multi_label_classification') throw new UsageError(`${dir}: multi-label classification heads are not supported`);
  // transformers' rule: problem_type regression, or a single label.
  const regression = spec.head.problemType === 'regression' || spec.head.numLabels === 1;
  const labels = regression ? null : Array.from({ length: spec.head.numLabels }, (_, i) => spec.head.id2label?.[i] ?? `LABEL_${i}`);
  const description: ModelDescription = {
    task: regression ? 'regression' : 'classification',
    labels,
    modelDir: dir,
    maxLength: identity.maxLength,
    sha256: sha('model-dir', identity.weightsSha256, identity.tokenizerSha256, identity.configSha256),
    summary: `model ${dir} (${spec.architecture}, ${regression ? 'regression' : `${labels!.length} labels`})`,
  };
  return { description, run: undefined };
}

export async function openScorer(source: ModelSource, described: Described, opts: EncoderRuntime): Promise<Scorer> {
  const d = described.description;
  if (source.kind === 'model-dir' && existsSync(join(d.modelDir, CLASSIFIER_CONFIG))) {
    // The exported layout is loaded by the ready-classifier code, with its recorded max length.
    const rc = await openReadyClassifier(d.modelDir, opts);
    return { description: d, labelMap: rc.labelMap, encoder: rc.encoder, score: (e, b) => rc.score(e, b), dispose: () => rc.dispose() };
  }
  const encoder = await loadEncoder(d.modelDir, { ...opts, maxLength: d.maxLength });
  const labelMap = d.labels ? new LabelMap(d.labels) : null;
  if (source.kind === 'run') {
    const run = described.run!;
    let head: NativeHead;
    try {
      head = await openRunHead(run, opts.threads);
    } catch (e) {
      encoder.dispose();
      throw e;
    }
    const pooling: Pooling = run.config.encoder.pooling;
    return {
      description: d,
      labelMap: run.labelMap,
      encoder,
      async score(encoded, batchSize) {
        const r = await encoder.embedEncoded(encoded, { pooling, batchSize });
        return head.predict(r.embeddings);
      },
      dispose() {
        head.dispose();
        encoder.dispose();
      },
    };
  }
  const c = encoder.spec.head.numLabels;
  return {
    description: d,
    labelMap,
    encoder,
    async score(encoded, batchSize) {
      const logits = await encoder.classifyEncoded(encoded, { batchSize });
      // Regression reads logits[0] of each row (fineweb-edu-classifier's score), as predict does.
      return d.task === 'regression' && c > 1 ? Float32Array.from({ length: encoded.length }, (_, i) => logits[i * c]) : logits;
    },
    dispose() {
      encoder.dispose();
    },
  };
}

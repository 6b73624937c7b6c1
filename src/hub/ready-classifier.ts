/**
 * Scoring with a model folder that carries its own head, no run folder needed:
 *  - a *ForSequenceClassification checkpoint (fineweb-edu-classifier, ko-edu-labse, an `export --format hf`
 *    folder): outputs are its logits, as AutoModelForSequenceClassification gives them;
 *  - the sentence-transformers + classifier.safetensors layout `export` writes for heads transformers
 *    cannot express: the recorded pooling, then the same native head a run uses.
 * Regression = problem_type "regression" or a single label (transformers' own rule).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadEncoder, type Encoder, type EncoderRuntime } from '../encoder.js';
import { CLASSIFIER_CONFIG, CLASSIFIER_FORMAT, CLASSIFIER_WEIGHTS, type ClassifierConfig } from '../export/hf.js';
import { readModelSpec } from '../model/config.js';
import type { CpuIsa } from '../native/addon-types.js';
import type { NativeHead } from '../native/head-types.js';
import type { Encoded } from '../tokenize/tokenizer.js';
import { loadHead } from '../train/head-io.js';
import { loadHeadAddon } from '../train/head-trainer.js';
import { LabelMap } from '../train/label-map.js';
import { UsageError } from '../util/errors.js';

export interface ReadyClassifier {
  task: 'classification' | 'regression';
  labelMap: LabelMap | null;
  encoder: Encoder;
  /** Head outputs [n, C] (regression: C = 1) in input order. */
  score(encoded: readonly Encoded[], batchSize: number): Promise<Float32Array>;
  dispose(): void;
}

export function hasOwnHead(dir: string): boolean {
  if (existsSync(join(dir, CLASSIFIER_CONFIG))) return true;
  try {
    return readModelSpec(dir).head.kind !== 'none';
  } catch {
    return false;
  }
}

/** Where and how the classifier's encoder runs (see LoadEncoderOptions). */
type Runtime = EncoderRuntime;

export async function openReadyClassifier(dir: string, o: Runtime = {}): Promise<ReadyClassifier> {
  const ccFile = join(dir, CLASSIFIER_CONFIG);
  if (existsSync(ccFile)) return openExportedClassifier(dir, ccFile, o);
  const spec = readModelSpec(dir);
  const head = spec.head;
  if (head.kind === 'none') {
    throw new UsageError(`${dir} (${spec.architecture}) has no classification head; train one (edu-train train) and pass --run RUN_DIR`);
  }
  if (head.problemType === 'multi_label_classification') {
    throw new UsageError(`${dir}: multi-label classification heads (sigmoid per label) are not supported by predict`);
  }
  const regression = head.problemType === 'regression' || head.numLabels === 1;
  const labels = Array.from({ length: head.numLabels }, (_, i) => head.id2label?.[i] ?? `LABEL_${i}`);
  const encoder = await loadEncoder(dir, o);
  return {
    task: regression ? 'regression' : 'classification',
    labelMap: regression ? null : new LabelMap(labels),
    encoder,
    score: async (encoded, batchSize) => {
      const logits = await encoder.classifyEncoded(encoded, { batchSize });
      // Regression reads logits[0] of each row (fineweb-edu's score), whatever num_labels is.
      const c = head.numLabels;
      return regression && c > 1 ? Float32Array.from({ length: encoded.length }, (_, i) => logits[i * c]) : logits;
    },
    dispose: () => encoder.dispose(),
  };
}

async function openExportedClassifier(dir: string, ccFile: string, o: Runtime): Promise<ReadyClassifier> {
  let cc: ClassifierConfig;
  try {
    cc = JSON.parse(readFileSync(ccFile, 'utf8')) as ClassifierConfig;
  } catch (e) {
    throw new UsageError(`${ccFile}: not valid JSON (${(e as Error).message})`);
  }
  if (cc.format !== CLASSIFIER_FORMAT) throw new UsageError(`${ccFile}: format ${JSON.stringify(cc.format)} is not ${CLASSIFIER_FORMAT}`);
  const params = await loadHead(join(dir, CLASSIFIER_WEIGHTS), { inFeatures: cc.in_features, numOutputs: cc.num_outputs, hidden: cc.hidden });
  const encoder = await loadEncoder(dir, { ...o, maxLength: cc.max_length });
  let head: NativeHead;
  try {
    const { Head } = loadHeadAddon();
    head = new Head({
      inFeatures: cc.in_features, hidden: cc.hidden, numOutputs: cc.num_outputs,
      loss: cc.task === 'classification' ? 'ce' : 'mse', init: params, optimizer: {}, threads: o.threads,
    });
  } catch (e) {
    encoder.dispose();
    throw e;
  }
  return {
    task: cc.task,
    labelMap: cc.task === 'classification' ? new LabelMap(cc.labels ?? []) : null,
    encoder,
    score: async (encoded, batchSize) => {
      const r = await encoder.embedEncoded(encoded, { pooling: cc.pooling, batchSize });
      return head.predict(r.embeddings);
    },
    dispose: () => {
      head.dispose();
      encoder.dispose();
    },
  };
}

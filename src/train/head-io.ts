/**
 * Head weights on disk: head.safetensors with `weight` [C, H], `bias` [C] and, for the pooler head,
 * `hidden.weight` [H, H], `hidden.bias` [H] (PyTorch Linear layout). Also reads the BERT pooler
 * (pooler.dense.*) out of a model folder to initialise the pooler head.
 */
import { renameSync, rmSync } from 'node:fs';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../model/safetensors.js';
import { readTorchBin } from '../model/torch-bin.js';
import type { ModelSpec } from '../model/types.js';
import type { HeadParams } from '../native/head-types.js';
import { tempPathFor } from '../util/atomic-write.js';
import { UsageError } from '../util/errors.js';

export interface HeadShape {
  inFeatures: number;
  numOutputs: number;
  hidden: boolean;
}

/** Writes the head atomically (temp file + rename). */
export function saveHead(path: string, params: HeadParams, shape: HeadShape, metadata: Record<string, string> = {}): void {
  const { inFeatures: h, numOutputs: c } = shape;
  const t = new Map<string, TensorToWrite>();
  t.set('weight', { dtype: 'F32', shape: [c, h], data: params.weight });
  t.set('bias', { dtype: 'F32', shape: [c], data: params.bias });
  if (shape.hidden) {
    if (!params.hiddenWeight || !params.hiddenBias) throw new Error('internal: pooler head without hidden parameters');
    t.set('hidden.weight', { dtype: 'F32', shape: [h, h], data: params.hiddenWeight });
    t.set('hidden.bias', { dtype: 'F32', shape: [h], data: params.hiddenBias });
  }
  const tmp = tempPathFor(path);
  try {
    writeSafetensors(tmp, t, { format: 'pt', ...metadata });
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Reads head.safetensors and checks every tensor's shape against the expected head. */
export async function loadHead(path: string, shape: HeadShape): Promise<HeadParams> {
  const m = await readSafetensors(path);
  const get = (name: string, dims: number[]): Float32Array => {
    const t = m.get(name);
    if (!t) throw new UsageError(`${path}: no tensor "${name}"`);
    if (t.shape.join(',') !== dims.join(',')) {
      throw new UsageError(`${path}: tensor "${name}" has shape [${t.shape.join(', ')}], expected [${dims.join(', ')}]`);
    }
    return t.data;
  };
  const { inFeatures: h, numOutputs: c } = shape;
  const p: HeadParams = { weight: get('weight', [c, h]), bias: get('bias', [c]) };
  if (shape.hidden) {
    p.hiddenWeight = get('hidden.weight', [h, h]);
    p.hiddenBias = get('hidden.bias', [h]);
  }
  return p;
}

/** pooler.dense.weight/bias of a checkpoint (any prefix, safetensors or pytorch, sharded or not). */
export async function readPoolerWeights(spec: ModelSpec): Promise<{ weight: Float32Array; bias: Float32Array }> {
  if (!spec.hasPooler) {
    throw new UsageError(
      `--head pooler needs the model's BERT pooler (pooler.dense.*), and ${spec.dir} (${spec.architecture}) has none; ` +
        'use --head linear (with --pooling mean or cls).',
    );
  }
  const names = new Set([`${spec.weightPrefix}pooler.dense.weight`, `${spec.weightPrefix}pooler.dense.bias`]);
  const found = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const file of spec.weightFiles) {
    const select = (info: { name: string }): boolean => names.has(info.name);
    const got = spec.weightFormat === 'safetensors' ? await readSafetensors(file, { select }) : await readTorchBin(file, { select });
    for (const [k, v] of got) found.set(k.slice(spec.weightPrefix.length), v);
  }
  const h = spec.config.hiddenSize;
  const w = found.get('pooler.dense.weight');
  const b = found.get('pooler.dense.bias');
  if (!w || !b || w.shape.join(',') !== `${h},${h}` || b.shape.join(',') !== `${h}`) {
    throw new UsageError(`${spec.dir}: pooler.dense.weight [${h}, ${h}] and pooler.dense.bias [${h}] not found or mis-shaped`);
  }
  return { weight: w.data, bias: b.data };
}

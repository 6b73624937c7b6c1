/**
 * ModelSpec -> LoadedWeights: reads only the tensors the encoder uses (under canonical names, as
 * float32), checks them all against the config's shapes, and fingerprints the checkpoint.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import { readModelSpec } from './config.js';
import { ModelFormatError } from './errors.js';
import { readSafetensors, type FloatTensor } from './safetensors.js';
import { readTorchBin } from './torch-bin.js';
import type { LoadedWeights, ModelSpec } from './types.js';
import { canonicalName, expectedShapes, weightProblems } from './weights.js';

/** sha256 (hex) over the files' bytes in order, streamed. */
export async function sha256Files(files: readonly string[]): Promise<string> {
  const hash = createHash('sha256');
  for (const f of files) {
    for await (const chunk of createReadStream(f, { highWaterMark: 4 << 20 })) hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

/** Loads the weights of `spec` under canonical names; every missing or mis-shaped tensor is listed in one Error. */
export async function loadWeights(spec: ModelSpec): Promise<LoadedWeights> {
  const expected = expectedShapes(spec);
  const names = new Set(expected.keys());
  const tensors = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  const origin = new Map<string, string>();
  for (const file of spec.weightFiles) {
    const select = (info: { name: string }): boolean => canonicalName(info.name, spec, names) !== null;
    const loaded: Map<string, FloatTensor> = spec.weightFormat === 'safetensors'
      ? await readSafetensors(file, { select })
      : await readTorchBin(file, { select });
    for (const [name, t] of loaded) {
      const canon = canonicalName(name, spec, names)!;
      const prev = origin.get(canon);
      if (prev !== undefined) {
        throw new ModelFormatError(file, `tensors "${prev}" and "${name}" both map to ${canon}`);
      }
      origin.set(canon, name);
      tensors.set(canon, t.data);
      shapes.set(canon, t.shape);
    }
  }
  const problems = weightProblems(expected, shapes);
  if (problems.length) {
    const where = spec.weightFiles.length === 1 ? spec.weightFiles[0] : `${spec.dir} (${spec.weightFiles.map((f) => basename(f)).join(', ')})`;
    const prefixNote = spec.weightPrefix ? ` (names in the file carry the prefix "${spec.weightPrefix}")` : '';
    throw new ModelFormatError(where, `${problems.join('; ')}${prefixNote}`);
  }
  return { tensors, shapes, sha256: await sha256Files(spec.weightFiles) };
}

/** readModelSpec + loadWeights. */
export async function loadModel(dir: string): Promise<{ spec: ModelSpec; weights: LoadedWeights }> {
  const spec = readModelSpec(dir);
  return { spec, weights: await loadWeights(spec) };
}

/**
 * Model folder -> model.onnx: the same weights (as initializers) under a standard-opset graph with
 * dynamic batch and sequence axes. `edu-train export --format onnx` and `edu-train bench` call this.
 */
import { readModelSpec } from '../model/config.js';
import { loadWeights } from '../model/load.js';
import type { ModelSpec } from '../model/types.js';
import { createAtomicFile } from '../util/atomic-write.js';
import { UsageError } from '../util/errors.js';
import { packageVersion } from '../util/package-info.js';
import { buildBertGraph, ONNX_POOLINGS, type OnnxPooling } from './bert-graph.js';
import { encodeModel, type ModelDef } from './onnx-proto.js';
import type { Encoded } from './protobuf.js';

export interface OnnxExportOptions {
  /** Pooled output computed inside the graph; default 'none' (last_hidden_state, plus logits for seqcls heads). */
  pooling?: OnnxPooling;
  /** Default-domain opset; 17..21 (LayerNormalization needs 17). Default 17. */
  opset?: number;
}

/** ONNX IR version that goes with each opset (onnx/helper.py VERSION_TABLE). */
const IR_FOR_OPSET: Record<number, number> = { 17: 8, 18: 8, 19: 9, 20: 9, 21: 10 };

/** Options with defaults applied; a UsageError for values the exporter cannot honour. */
function checkExportOptions(spec: ModelSpec, options: OnnxExportOptions): { pooling: OnnxPooling; opset: number } {
  const pooling = options.pooling ?? 'none';
  const opset = options.opset ?? 17;
  if (!ONNX_POOLINGS.includes(pooling)) throw new UsageError(`--pooling must be one of ${ONNX_POOLINGS.join(', ')}, got ${pooling}`);
  if (!(opset in IR_FOR_OPSET)) throw new UsageError(`--opset must be 17..21 (LayerNormalization needs 17), got ${opset}`);
  if (pooling === 'pooler' && !spec.hasPooler && spec.head.kind !== 'bert') {
    throw new UsageError(`--pooling pooler needs a model with a pooler (pooler.dense.*); ${spec.dir} has none. Use mean or cls.`);
  }
  return { pooling, opset };
}

/** The ModelProto for a loaded model. */
export function buildOnnxModel(spec: ModelSpec, weights: ReadonlyMap<string, Float32Array>, sha256: string,
  options: OnnxExportOptions = {}): ModelDef {
  const { pooling, opset } = checkExportOptions(spec, options);
  return {
    irVersion: IR_FOR_OPSET[opset],
    opsetImports: [{ domain: '', version: opset }],
    producerName: 'edu-train',
    producerVersion: packageVersion(),
    docString: `${spec.architecture} exported by edu-train from ${spec.dir}`,
    graph: buildBertGraph(spec, weights, pooling),
    metadata: { architecture: spec.architecture, model_type: spec.config.modelType, pooling, weights_sha256: sha256 },
  };
}

/** Writes every chunk (looping over partial writes) to a temp file, then renames it over `path`. */
async function writeEncodedAtomic(path: string, encoded: Encoded): Promise<void> {
  const file = await createAtomicFile(path);
  try {
    for (const chunk of encoded.chunks) {
      for (let off = 0; off < chunk.length;) {
        const { bytesWritten } = await file.handle.write(chunk, off, chunk.length - off);
        off += bytesWritten;
      }
    }
    await file.commit();
  } catch (err) {
    await file.abort();
    throw err;
  }
}

/** Exports the model folder `modelDir` to `outputPath` (atomically: a reader never sees a partial file). */
export async function exportOnnx(modelDir: string, outputPath: string,
  options: { pooling?: 'none' | 'mean' | 'cls' | 'pooler'; opset?: number } = {}): Promise<void> {
  const spec = readModelSpec(modelDir);
  checkExportOptions(spec, options); // fail before reading hundreds of MB of weights
  const weights = await loadWeights(spec);
  const encoded = encodeModel(buildOnnxModel(spec, weights.tensors, weights.sha256, options));
  // protobuf messages cannot exceed 2 GiB; larger models would need ONNX external data.
  if (encoded.length >= 2 ** 31) {
    throw new UsageError(`the ONNX model would be ${(encoded.length / 2 ** 30).toFixed(1)} GiB; models over 2 GiB need external data, which the exporter does not write yet`);
  }
  await writeEncodedAtomic(outputPath, encoded);
}

/**
 * ONNX Runtime (onnxruntime-node, CPU) sessions for exported models, configured the way a fair
 * benchmark needs: every graph optimisation on, a fixed intra-op thread count, one inter-op thread,
 * sequential execution. onnxruntime-node is imported lazily, so commands that never touch it do not
 * pay for loading its native library.
 */
import type { InferenceSession, Tensor } from 'onnxruntime-node';

export interface OrtSessionOptions {
  /** Intra-op threads (the caller's thread counts as one, as in ORT). */
  threads: number;
  /** Write the model after ORT's graph optimisations here (to see which fusions applied). */
  optimizedModelPath?: string;
}

/** Int32 token arrays of one right-padded batch, as the encoder takes them. */
export interface OrtBatch {
  inputIds: Int32Array;
  attentionMask: Int32Array;
  tokenTypeIds: Int32Array;
  batch: number;
  seqLen: number;
}

export async function createOrtSession(modelPath: string, options: OrtSessionOptions): Promise<InferenceSession> {
  const ort = await import('onnxruntime-node');
  return ort.InferenceSession.create(modelPath, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: options.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    // The binding rejects an explicit undefined here, so the key is only present when set.
    ...(options.optimizedModelPath ? { optimizedModelFilePath: options.optimizedModelPath } : {}),
    logSeverityLevel: 3, // errors only: ORT warns about unused initializers and such on stderr otherwise
  });
}

/** The exported graph's int64 inputs for a batch. */
export async function ortFeeds(b: OrtBatch): Promise<Record<string, Tensor>> {
  const ort = await import('onnxruntime-node');
  const dims = [b.batch, b.seqLen];
  const i64 = (a: Int32Array): Tensor => new ort.Tensor('int64', BigInt64Array.from(a, (v) => BigInt(v)), dims);
  return { input_ids: i64(b.inputIds), attention_mask: i64(b.attentionMask), token_type_ids: i64(b.tokenTypeIds) };
}

/** Runs the session on prepared feeds and returns the named float outputs. */
export async function runOrt(session: InferenceSession, feeds: Record<string, Tensor>,
  outputs: readonly string[]): Promise<Record<string, Float32Array>> {
  const r = await session.run(feeds, [...outputs]);
  const out: Record<string, Float32Array> = {};
  for (const name of outputs) {
    const t = r[name];
    if (!t || t.type !== 'float32') throw new Error(`internal: ONNX Runtime returned no float32 ${name}`);
    out[name] = t.data as Float32Array;
  }
  return out;
}

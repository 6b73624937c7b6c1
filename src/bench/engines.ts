/**
 * The two engines under test behind one interface: run a batch, return its mean-pooled vectors
 * [rows, H] in the batch's row order. Input conversion (int32 -> ORT's int64 tensors) is done once
 * up front, so the timed calls measure the engines, not the benchmark's bookkeeping.
 */
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import type { Encoder } from '../encoder.js';
import { ortFeeds, runOrt } from '../onnx/session.js';
import type { BenchBatch } from './inputs.js';

export interface Engine {
  name: string;
  /** Runs batch i of the prepared set. */
  run(i: number): Promise<Float32Array>;
}

/** edu-train through its public embedding path (Encoder.embedEncoded, mean pooling). */
export function eduEngine(encoder: Encoder, batches: readonly BenchBatch[]): Engine {
  return {
    name: 'edu-train',
    run: async (i) => {
      const rows = batches[i].rows;
      return (await encoder.embedEncoded(rows, { pooling: 'mean', batchSize: rows.length })).embeddings;
    },
  };
}

/** ONNX Runtime on the exported graph (pooling 'mean' inside the graph; only that output is fetched). */
export async function ortEngine(session: InferenceSession, batches: readonly BenchBatch[]): Promise<Engine> {
  const feeds: Record<string, Tensor>[] = [];
  for (const b of batches) feeds.push(await ortFeeds(b));
  return {
    name: 'onnxruntime',
    run: async (i) => (await runOrt(session, feeds[i], ['mean_pooled'])).mean_pooled,
  };
}

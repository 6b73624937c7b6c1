/**
 * The batches a benchmark runs, identical for edu-train and ONNX Runtime: random ids for a fixed
 * B x S shape (full attention masks), or tokenized texts length-bucketed exactly as
 * Encoder.embedEncoded does it (longest first, right-padded to each batch's longest row).
 */
import type { Encoded } from '../tokenize/tokenizer.js';
import { padEncoded, type PaddedBatch } from '../tokenize/tokenizer.js';

export interface BenchBatch extends PaddedBatch {
  /** The unpadded rows, in this batch's order (what edu-train's embedEncoded takes). */
  rows: Encoded[];
  /** Tokens excluding padding. */
  realTokens: number;
}

/** Random token ids in [1, vocab) minus the pad id, so RoBERTa position ids are those of real tokens. */
export function randomRows(rows: number, seqLen: number, vocabSize: number, padId: number, seed = 1): Encoded[] {
  let s = (seed * 0x9e3779b9) >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s;
  };
  return Array.from({ length: rows }, () => {
    const ids = new Int32Array(seqLen);
    for (let t = 0; t < seqLen; t++) {
      let id = 1 + (next() % (vocabSize - 1));
      if (id === padId) id = id + 1 < vocabSize ? id + 1 : 1;
      ids[t] = id;
    }
    return { ids, typeIds: new Int32Array(seqLen), droppedTokens: 0 };
  });
}

/** Longest first, `batchSize` rows per batch, each padded to its own longest row. */
export function bucketBatches(rows: readonly Encoded[], batchSize: number, padId: number): BenchBatch[] {
  const order = rows.map((_, i) => i).sort((a, b) => rows[b].ids.length - rows[a].ids.length);
  const batches: BenchBatch[] = [];
  for (let start = 0; start < order.length; start += batchSize) {
    const chunk = order.slice(start, start + batchSize).map((i) => rows[i]);
    const realTokens = chunk.reduce((n, r) => n + r.ids.length, 0);
    batches.push({ ...padEncoded(chunk, padId), rows: chunk, realTokens });
  }
  return batches;
}

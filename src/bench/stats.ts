/** Summaries of timings and of the agreement between two engines' pooled outputs. */

export interface TimingSummary {
  medianMs: number;
  minMs: number;
}

export function summarize(ms: readonly number[]): TimingSummary {
  const s = [...ms].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const medianMs = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { medianMs, minMs: s[0] };
}

export interface Agreement {
  maxAbsDiff: number;
  /** Cosine similarity of the two vectors of each row: the worst row and the mean over rows. */
  cosineMin: number;
  cosineMean: number;
}

/** Compares [rows, width] matrices row by row (cosine in float64). */
export function agreement(a: Float32Array, b: Float32Array, width: number): Agreement {
  if (a.length !== b.length || a.length % width) throw new Error('internal: pooled outputs differ in shape');
  let maxAbsDiff = 0;
  let cosineMin = Infinity;
  let cosineSum = 0;
  const rows = a.length / width;
  for (let r = 0; r < rows; r++) {
    let dot = 0, na = 0, nb = 0;
    for (let i = r * width; i < (r + 1) * width; i++) {
      maxAbsDiff = Math.max(maxAbsDiff, Math.abs(a[i] - b[i]));
      dot += a[i] * b[i];
      na += a[i] * a[i];
      nb += b[i] * b[i];
    }
    const cos = na === 0 && nb === 0 ? 1 : dot / Math.sqrt(na * nb);
    cosineMin = Math.min(cosineMin, cos);
    cosineSum += cos;
  }
  return { maxAbsDiff, cosineMin, cosineMean: cosineSum / rows };
}

/** Small vector helpers on row-major Float32Arrays. */

/** Returns a copy with each row of width `dim` scaled to unit L2 norm (norm floored at 1e-12, like torch's F.normalize). */
export function l2NormalizeRows(x: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / dim; r++) {
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += x[r * dim + j] * x[r * dim + j];
    const inv = 1 / Math.max(Math.sqrt(ss), 1e-12);
    for (let j = 0; j < dim; j++) out[r * dim + j] = x[r * dim + j] * inv;
  }
  return out;
}

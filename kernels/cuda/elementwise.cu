// Row-wise and element-wise kernels of the CUDA backend: embeddings gather, LayerNorm (+ residual,
// + optional bf16 copy), masked mean pooling over packed rows, row gather, fp32 -> bf16.
#include <stdexcept>
#include <string>

#include "cuda_check.h"
#include "kernels.cuh"

namespace edu {
namespace cuda {
namespace k {

namespace {

inline unsigned blocks_for(size_t n, unsigned threads) {
  size_t b = (n + threads - 1) / threads;
  if (b > 1u << 20) b = 1u << 20;  // grid-stride loops cover the rest
  return static_cast<unsigned>(b < 1 ? 1 : b);
}

__global__ void embeddings_kernel(const float* __restrict__ word, const float* __restrict__ type,
                                  const float* __restrict__ position, int E, const int32_t* __restrict__ ids,
                                  const int32_t* __restrict__ types, const int32_t* __restrict__ pos,
                                  float* __restrict__ out, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t t = i / E;
    const int j = static_cast<int>(i % E);
    // Hugging Face order: (inputs_embeds + token_type_embeddings) + position_embeddings.
    const float w = word[static_cast<size_t>(ids[t]) * E + j];
    const float ty = type[static_cast<size_t>(types[t]) * E + j];
    const float p = position[static_cast<size_t>(pos[t]) * E + j];
    out[i] = (w + ty) + p;
  }
}

// One warp per row; three passes over the row (sum, centred sum of squares, write), the row stays in L1.
template <bool RES, bool OUT16>
__global__ void __launch_bounds__(256)
    layer_norm_kernel(const float* x, const float* res, const float* __restrict__ g, const float* __restrict__ b,
                      float* out, bf16* __restrict__ out16, int rows, int cols, float eps) {
  const int row = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (row >= rows) return;
  const float* xr = x + static_cast<size_t>(row) * cols;
  const float* rr = RES ? res + static_cast<size_t>(row) * cols : nullptr;
  float sum = 0.0f;
  for (int j = lane; j < cols; j += 32) sum += RES ? xr[j] + rr[j] : xr[j];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  const float mean = sum / cols;
  float sq = 0.0f;
  for (int j = lane; j < cols; j += 32) {
    const float v = (RES ? xr[j] + rr[j] : xr[j]) - mean;
    sq = fmaf(v, v, sq);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, o);
  const float rstd = 1.0f / sqrtf(sq / cols + eps);
  float* orow = out + static_cast<size_t>(row) * cols;
  bf16* o16 = OUT16 ? out16 + static_cast<size_t>(row) * cols : nullptr;
  for (int j = lane; j < cols; j += 32) {
    const float v = ((RES ? xr[j] + rr[j] : xr[j]) - mean) * rstd * g[j] + b[j];
    orow[j] = v;  // same element read above by this lane: aliasing x or res is safe
    if (OUT16) o16[j] = __float2bfloat16_rn(v);
  }
}

__global__ void mean_pool_kernel(const float* __restrict__ x, const int32_t* __restrict__ seqStart,
                                 const int32_t* __restrict__ visible, float* __restrict__ out, int hidden) {
  const int b = blockIdx.y;
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= hidden) return;
  const int s = seqStart[b], n = visible[b];
  double acc = 0.0;  // like the CPU path: accumulate in double
  for (int r = 0; r < n; ++r) acc += x[static_cast<size_t>(s + r) * hidden + j];
  const double denom = n > 0 ? static_cast<double>(n) : 1e-9;
  out[static_cast<size_t>(b) * hidden + j] = static_cast<float>(acc / denom);
}

__global__ void gather_rows_kernel(const float* __restrict__ src, long lds, const int32_t* __restrict__ rows,
                                   float* __restrict__ out, size_t n, int cols) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t r = i / cols;
    const int j = static_cast<int>(i % cols);
    const int32_t sr = rows[r];
    out[i] = sr >= 0 ? src[static_cast<size_t>(sr) * lds + j] : 0.0f;
  }
}

__global__ void to_bf16_kernel(const float* __restrict__ x, bf16* __restrict__ y, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16_rn(x[i]);
}

}  // namespace

void embeddings(cudaStream_t s, const float* word, const float* type, const float* position, int E,
                const int32_t* ids, const int32_t* types, const int32_t* pos, float* out, int tokens) {
  const size_t n = static_cast<size_t>(tokens) * E;
  if (n == 0) return;
  embeddings_kernel<<<blocks_for(n, 256), 256, 0, s>>>(word, type, position, E, ids, types, pos, out, n);
  EDU_CUDA_LAUNCH("embeddings_kernel");
}

void layer_norm(cudaStream_t s, const float* x, const float* res, const float* g, const float* b, float* out,
                bf16* out16, int rows, int cols, float eps) {
  if (rows <= 0) return;
  const unsigned grid = static_cast<unsigned>((rows + 7) / 8);
  if (res && out16) layer_norm_kernel<true, true><<<grid, 256, 0, s>>>(x, res, g, b, out, out16, rows, cols, eps);
  else if (res) layer_norm_kernel<true, false><<<grid, 256, 0, s>>>(x, res, g, b, out, out16, rows, cols, eps);
  else if (out16) layer_norm_kernel<false, true><<<grid, 256, 0, s>>>(x, res, g, b, out, out16, rows, cols, eps);
  else layer_norm_kernel<false, false><<<grid, 256, 0, s>>>(x, res, g, b, out, out16, rows, cols, eps);
  EDU_CUDA_LAUNCH("layer_norm_kernel");
}

void mean_pool(cudaStream_t s, const float* x, const int32_t* seqStart, const int32_t* visible, float* out, int batch,
               int hidden) {
  if (batch <= 0) return;
  if (batch > 65535) throw std::invalid_argument("mean_pool: batch too large: " + std::to_string(batch));
  mean_pool_kernel<<<dim3((hidden + 127) / 128, batch), 128, 0, s>>>(x, seqStart, visible, out, hidden);
  EDU_CUDA_LAUNCH("mean_pool_kernel");
}

void gather_rows(cudaStream_t s, const float* src, long lds, const int32_t* rows, float* out, int n, int cols) {
  const size_t total = static_cast<size_t>(n) * cols;
  if (total == 0) return;
  gather_rows_kernel<<<blocks_for(total, 256), 256, 0, s>>>(src, lds, rows, out, total, cols);
  EDU_CUDA_LAUNCH("gather_rows_kernel");
}

void to_bf16(cudaStream_t s, const float* x, bf16* y, size_t n) {
  if (n == 0) return;
  to_bf16_kernel<<<blocks_for(n, 256), 256, 0, s>>>(x, y, n);
  EDU_CUDA_LAUNCH("to_bf16_kernel");
}

}  // namespace k
}  // namespace cuda
}  // namespace edu

// Launchers of the CUDA kernels (internal to kernels/cuda). All take the stream first, validate
// what the kernel relies on (alignment, sizes) and throw CudaError / std::invalid_argument.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "edu_cuda.h"
#include "edu_kernels.h"

namespace edu {
namespace cuda {
namespace k {

using bf16 = __nv_bfloat16;

/** C[M, N] = A[M, K] · W[N, K]^T + bias, epilogue; fp32 SIMT (the reference path). */
void gemm_f32(cudaStream_t s, const float* A, long lda, const float* W, const float* bias, float* C, long ldc,
              int M, int N, int K, Epilogue ep);

/**
 * Same product on bf16 tensor cores (mma.sync.m16n8k16, fp32 accumulation). Writes C32 (fp32) and/or
 * C16 (bf16) with row stride ldc; either may be null. Needs K, lda, ldw multiples of 8 and 16-byte
 * aligned A, W.
 */
void gemm_bf16(cudaStream_t s, const bf16* A, long lda, const bf16* W, const float* bias, float* C32, bf16* C16,
               long ldc, int M, int N, int K, Epilogue ep);

/** out[t] = (word[ids[t]] + type[types[t]]) + position[pos[t]] over E columns. */
void embeddings(cudaStream_t s, const float* word, const float* type, const float* position, int E,
                const int32_t* ids, const int32_t* types, const int32_t* pos, float* out, int tokens);

/** out = LayerNorm(x (+ res)) * g + b per row of `cols`; out may alias x or res; out16 optional bf16 copy. */
void layer_norm(cudaStream_t s, const float* x, const float* res, const float* g, const float* b, float* out,
                bf16* out16, int rows, int cols, float eps);

/** Packed-varlen attention; q/k/v column offsets already applied; tiles from plan_attention_tiles. */
void attention_f32(cudaStream_t s, const float* q, const float* k, const float* v, long ld, float* out, long ldo,
                   const AttnTile* tiles, int numTiles, int heads, int headDim);
void attention_simt_bf16(cudaStream_t s, const bf16* q, const bf16* k, const bf16* v, long ld, bf16* out, long ldo,
                         const AttnTile* tiles, int numTiles, int heads, int headDim);
/** Tensor-core flash attention, headDim in {32, 64, 128}; tiles of kFlashTileQ queries. */
void attention_flash_bf16(cudaStream_t s, const bf16* q, const bf16* k, const bf16* v, long ld, bf16* out, long ldo,
                          const AttnTile* tiles, int numTiles, int heads, int headDim);
bool flash_supports(int headDim);
constexpr int kFlashTileQ = 64;
constexpr int kSimtTileQ = 8;

/** out[b] = sum of rows [seqStart[b], seqStart[b] + visible[b]) / max(visible[b], 1e-9). */
void mean_pool(cudaStream_t s, const float* x, const int32_t* seqStart, const int32_t* visible, float* out, int batch,
               int hidden);
/** out[i] = src[rows[i]] (rows[i] < 0 -> zeros), `cols` floats per row. */
void gather_rows(cudaStream_t s, const float* src, long lds, const int32_t* rows, float* out, int n, int cols);
/** bf16 copy of a float array. */
void to_bf16(cudaStream_t s, const float* x, bf16* y, size_t n);

}  // namespace k
}  // namespace cuda
}  // namespace edu

// GEMMs of the CUDA backend: C[M, N] = A[M, K] · W[N, K]^T + bias, then the epilogue
// (None | exact-erf GELU | tanh). Both operands are K-contiguous ("TN"), as PyTorch stores Linear.
//   * gemm_f32: fp32 SIMT, 64x64 tiles, 4x4 outputs per thread. The reference path on the GPU.
//   * gemm_bf16: bf16 tensor cores, mma.sync.m16n8k16 with fp32 accumulation (sm_80+), 128x128x32
//     block tiles, 8 warps of 64x32, 4-stage cp.async pipeline, ldmatrix from padded shared memory.
#include <stdexcept>
#include <string>

#include "cuda_check.h"
#include "kernels.cuh"

namespace edu {
namespace cuda {
namespace k {

namespace {

template <int EP>
__device__ __forceinline__ float epilogue(float v) {
  if (EP == 1) return 0.5f * v * (1.0f + erff(v * 0.70710678118654752440f));
  if (EP == 2) return tanhf(v);
  return v;
}

// ------------------------------------------------------------------------------ fp32 SIMT GEMM

constexpr int SM = 64, SN = 64, SK = 16;

template <int EP>
__global__ void __launch_bounds__(256) gemm_f32_kernel(const float* __restrict__ A, long lda,
                                                       const float* __restrict__ W, const float* __restrict__ bias,
                                                       float* __restrict__ C, long ldc, int M, int N, int K) {
  __shared__ float As[SK][SM + 4];
  __shared__ float Ws[SK][SN + 4];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int m0 = blockIdx.y * SM, n0 = blockIdx.x * SN;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

  for (int k0 = 0; k0 < K; k0 += SK) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int idx = tid + 256 * r, row = idx / SK, kk = idx % SK;
      const int gk = k0 + kk;
      const int gm = m0 + row, gn = n0 + row;
      As[kk][row] = (gm < M && gk < K) ? A[static_cast<long>(gm) * lda + gk] : 0.0f;
      Ws[kk][row] = (gn < N && gk < K) ? W[static_cast<long>(gn) * K + gk] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < SK; ++kk) {
      float a[4], w[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) w[j] = Ws[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], w[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int n = n0 + tx + 16 * j;
      if (n < N) C[static_cast<long>(m) * ldc + n] = epilogue<EP>(acc[i][j] + (bias ? bias[n] : 0.0f));
    }
  }
}

// ------------------------------------------------------------------------------ bf16 tensor-core GEMM

constexpr int BM = 128, BN = 128, BK = 32, STAGES = 4, LDS = BK + 8;  // +8 bf16: conflict-free ldmatrix
constexpr int kGemmSmem = STAGES * (BM + BN) * LDS * 2;                 // 81920 bytes

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}

__device__ __forceinline__ void mma_bf16(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <int EP, bool OUT32, bool OUT16>
__global__ void __launch_bounds__(256, 2)
    gemm_bf16_kernel(const bf16* __restrict__ A, long lda, const bf16* __restrict__ W, long ldw,
                     const float* __restrict__ bias, float* __restrict__ C32, bf16* __restrict__ C16, long ldc, int M,
                     int N, int K) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* As = reinterpret_cast<bf16*>(smem_raw);  // [STAGES][BM][LDS]
  bf16* Bs = As + STAGES * BM * LDS;             // [STAGES][BN][LDS]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp >> 2, wn = warp & 3;  // 2 x 4 warps; warp tile 64 x 32
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int ktiles = (K + BK - 1) / BK;

  auto load_stage = [&](int stage, int kt) {
    const int k0 = kt * BK;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int c = tid + 256 * r, row = c >> 2, ch = (c & 3) * 8;
      const int gk = k0 + ch;
      {
        const int gm = m0 + row;
        const bool ok = gm < M && gk < K;
        const bf16* src = ok ? A + static_cast<long>(gm) * lda + gk : A;
        cp_async16(smem_u32(As + (stage * BM + row) * LDS + ch), src, ok ? 16 : 0);
      }
      {
        const int gn = n0 + row;
        const bool ok = gn < N && gk < K;
        const bf16* src = ok ? W + static_cast<long>(gn) * ldw + gk : W;
        cp_async16(smem_u32(Bs + (stage * BN + row) * LDS + ch), src, ok ? 16 : 0);
      }
    }
  };

  float acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < ktiles) load_stage(s, s);
    cp_async_commit();
  }

  // ldmatrix lane addressing (see the m16n8k16 fragment layouts):
  //   A x4: matrices (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15)
  //   B x4 (W rows = n): (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15)
  const int aRow = lane & 15, aCol = (lane >> 4) * 8;
  const int bRow = (lane & 7) + ((lane >> 4) << 3), bCol = ((lane >> 3) & 1) * 8;

  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();  // tile kt landed for every thread; stage (kt - 1) % STAGES is free again
    const int next = kt + STAGES - 1;
    if (next < ktiles) load_stage(next % STAGES, next);
    cp_async_commit();

    const int stage = kt % STAGES;
    const bf16* as = As + stage * BM * LDS;
    const bf16* bs = Bs + stage * BN * LDS;
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      uint32_t a[4][4], b[4][2];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
        ldmatrix_x4(smem_u32(as + (wm * 64 + mi * 16 + aRow) * LDS + kk + aCol), a[mi][0], a[mi][1], a[mi][2],
                    a[mi][3]);
#pragma unroll
      for (int p = 0; p < 2; ++p)
        ldmatrix_x4(smem_u32(bs + (wn * 32 + p * 16 + bRow) * LDS + kk + bCol), b[2 * p][0], b[2 * p][1],
                    b[2 * p + 1][0], b[2 * p + 1][1]);
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) mma_bf16(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
    }
  }
  cp_async_wait<0>();

  // Epilogue: accumulator (row g / g + 8, cols 2t, 2t + 1) of each 16x8 fragment.
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int ni = 0; ni < 4; ++ni) {
      const int col = n0 + wn * 32 + ni * 8 + 2 * t;
      if (col >= N) continue;
      const bool pair = col + 1 < N;
      const float b0 = bias ? bias[col] : 0.0f;
      const float b1 = (bias && pair) ? bias[col + 1] : 0.0f;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = m0 + wm * 64 + mi * 16 + g + 8 * h;
        if (row >= M) continue;
        const float v0 = epilogue<EP>(acc[mi][ni][2 * h] + b0);
        const float v1 = epilogue<EP>(acc[mi][ni][2 * h + 1] + b1);
        const long o = static_cast<long>(row) * ldc + col;
        if (pair && (ldc % 2 == 0)) {
          if (OUT32) *reinterpret_cast<float2*>(C32 + o) = make_float2(v0, v1);
          if (OUT16) *reinterpret_cast<__nv_bfloat162*>(C16 + o) = __floats2bfloat162_rn(v0, v1);
        } else {
          if (OUT32) {
            C32[o] = v0;
            if (pair) C32[o + 1] = v1;
          }
          if (OUT16) {
            C16[o] = __float2bfloat16_rn(v0);
            if (pair) C16[o + 1] = __float2bfloat16_rn(v1);
          }
        }
      }
    }
}

template <int EP, bool O32, bool O16>
void launch_bf16(cudaStream_t s, dim3 grid, const bf16* A, long lda, const bf16* W, const float* bias, float* C32,
                 bf16* C16, long ldc, int M, int N, int K) {
  auto kern = gemm_bf16_kernel<EP, O32, O16>;
  EDU_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, kGemmSmem));
  kern<<<grid, 256, kGemmSmem, s>>>(A, lda, W, K, bias, C32, C16, ldc, M, N, K);
  EDU_CUDA_LAUNCH("gemm_bf16_kernel");
}

}  // namespace

void gemm_f32(cudaStream_t s, const float* A, long lda, const float* W, const float* bias, float* C, long ldc, int M,
              int N, int K, Epilogue ep) {
  if (M <= 0 || N <= 0) return;
  const dim3 grid((N + SN - 1) / SN, (M + SM - 1) / SM);
  if (grid.y > 65535) throw std::invalid_argument("gemm_f32: M too large: " + std::to_string(M));
  switch (ep) {
    case Epilogue::None: gemm_f32_kernel<0><<<grid, 256, 0, s>>>(A, lda, W, bias, C, ldc, M, N, K); break;
    case Epilogue::Gelu: gemm_f32_kernel<1><<<grid, 256, 0, s>>>(A, lda, W, bias, C, ldc, M, N, K); break;
    case Epilogue::Tanh: gemm_f32_kernel<2><<<grid, 256, 0, s>>>(A, lda, W, bias, C, ldc, M, N, K); break;
  }
  EDU_CUDA_LAUNCH("gemm_f32_kernel");
}

void gemm_bf16(cudaStream_t s, const bf16* A, long lda, const bf16* W, const float* bias, float* C32, bf16* C16,
               long ldc, int M, int N, int K, Epilogue ep) {
  if (M <= 0 || N <= 0) return;
  if (K % 8 != 0 || lda % 8 != 0 || (reinterpret_cast<uintptr_t>(A) & 15) != 0 ||
      (reinterpret_cast<uintptr_t>(W) & 15) != 0)
    throw std::invalid_argument("gemm_bf16: K and lda must be multiples of 8 and A, W 16-byte aligned (K " +
                                std::to_string(K) + ", lda " + std::to_string(lda) + ")");
  if (!C32 && !C16) throw std::invalid_argument("gemm_bf16: no output");
  const dim3 grid((N + BN - 1) / BN, (M + BM - 1) / BM);
  if (grid.y > 65535) throw std::invalid_argument("gemm_bf16: M too large: " + std::to_string(M));
  // Only the combinations the encoder uses are instantiated (build time: each is compiled per arch).
  if (ep == Epilogue::None && C32 && C16) launch_bf16<0, true, true>(s, grid, A, lda, W, bias, C32, C16, ldc, M, N, K);
  else if (ep == Epilogue::None && C32) launch_bf16<0, true, false>(s, grid, A, lda, W, bias, C32, C16, ldc, M, N, K);
  else if (ep == Epilogue::None) launch_bf16<0, false, true>(s, grid, A, lda, W, bias, C32, C16, ldc, M, N, K);
  else if (ep == Epilogue::Gelu && !C32) launch_bf16<1, false, true>(s, grid, A, lda, W, bias, C32, C16, ldc, M, N, K);
  else throw std::invalid_argument("gemm_bf16: unsupported epilogue/output combination");
}

}  // namespace k
}  // namespace cuda
}  // namespace edu

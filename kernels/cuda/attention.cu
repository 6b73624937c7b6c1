// Attention over packed variable-length sequences (see edu_cuda.h: keys of a sequence are a
// contiguous run of packed rows, so no padding is ever computed). One block per (query tile, head);
// the key range is walked in tiles staged in shared memory with an online softmax (flash style).
//   * attention_f32 / attention_simt_bf16: SIMT, one warp per query, 32-key tiles; fp32 math with
//     expf, the reference path (head dim <= 128).
//   * attention_flash_bf16: tensor cores (mma.sync.m16n8k16 bf16, fp32 accumulation), 4 warps x 16
//     queries, 64-key tiles, S and O in registers, P re-used as the A operand of P·V (FlashAttention-2
//     register layout), V fragments by ldmatrix.trans. Head dims 32, 64, 128.
// A sequence whose keys are all masked (kn has kUniformFlag) gets uniform weights over its keys.
#include <cmath>
#include <stdexcept>
#include <string>

#include "cuda_check.h"
#include "kernels.cuh"

namespace edu {
namespace cuda {
namespace k {

namespace {

__device__ __forceinline__ float load_f(const float* p) { return *p; }
__device__ __forceinline__ float load_f(const bf16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store_f(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_f(bf16* p, float v) { *p = __float2bfloat16_rn(v); }

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// ------------------------------------------------------------------------------ SIMT reference

constexpr int kMaxD = 128, kKeys = 32;

template <typename T>
__global__ void __launch_bounds__(32 * kSimtTileQ)
    attention_simt_kernel(const T* __restrict__ Q, const T* __restrict__ K, const T* __restrict__ V, long ld,
                          T* __restrict__ O, long ldo, const AttnTile* __restrict__ tiles, int D, float scale) {
  __shared__ float Ks[kKeys][kMaxD + 1];
  __shared__ float Vs[kKeys][kMaxD + 1];
  __shared__ float Qs[kSimtTileQ][kMaxD];
  const AttnTile tile = tiles[blockIdx.x];
  const int h = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const bool uniform = (tile.kn & kUniformFlag) != 0;
  const int kn = tile.kn & ~kUniformFlag;
  const long hoff = static_cast<long>(h) * D;
  const bool active = warp < tile.qn;
  const int qrow = tile.q0 + (active ? warp : 0);
  for (int d = lane; d < D; d += 32) Qs[warp][d] = load_f(Q + qrow * ld + hoff + d);

  float o[kMaxD / 32];
#pragma unroll
  for (int c = 0; c < kMaxD / 32; ++c) o[c] = 0.0f;
  float m = -INFINITY, l = 0.0f;

  for (int j0 = 0; j0 < kn; j0 += kKeys) {
    __syncthreads();  // previous tile consumed (and Qs written, first time)
    for (int idx = threadIdx.x; idx < kKeys * D; idx += blockDim.x) {
      const int j = idx / D, d = idx % D;
      const bool ok = j0 + j < kn;
      const long row = static_cast<long>(tile.k0 + j0 + j);
      Ks[j][d] = ok ? load_f(K + row * ld + hoff + d) : 0.0f;
      Vs[j][d] = ok ? load_f(V + row * ld + hoff + d) : 0.0f;
    }
    __syncthreads();
    // Lane j scores key j0 + j.
    float s = 0.0f;
    for (int d = 0; d < D; ++d) s = fmaf(Qs[warp][d], Ks[lane][d], s);
    s = uniform ? 0.0f : s * scale;
    if (j0 + lane >= kn) s = -INFINITY;
    const float mNew = fmaxf(m, warp_max(s));
    const float alpha = expf(m - mNew);  // m = -inf on the first tile -> 0
    const float p = expf(s - mNew);
    l = l * alpha + warp_sum(p);
    m = mNew;
#pragma unroll
    for (int c = 0; c < kMaxD / 32; ++c) o[c] *= alpha;
    const int jn = min(kKeys, kn - j0);
    for (int j = 0; j < jn; ++j) {
      const float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
      for (int c = 0; c < kMaxD / 32; ++c) {
        const int d = lane + 32 * c;
        if (d < D) o[c] = fmaf(pj, Vs[j][d], o[c]);
      }
    }
  }
  if (!active) return;
  const float inv = 1.0f / l;
#pragma unroll
  for (int c = 0; c < kMaxD / 32; ++c) {
    const int d = lane + 32 * c;
    if (d < D) store_f(O + static_cast<long>(qrow) * ldo + hoff + d, o[c] * inv);
  }
}

template <typename T>
void launch_simt(cudaStream_t s, const T* q, const T* k, const T* v, long ld, T* out, long ldo, const AttnTile* tiles,
                 int numTiles, int heads, int headDim) {
  if (numTiles <= 0) return;
  if (headDim <= 0 || headDim > kMaxD)
    throw std::invalid_argument("attention: head dim must be in [1, 128], got " + std::to_string(headDim));
  if (heads > 65535) throw std::invalid_argument("attention: too many heads");
  const float scale = 1.0f / sqrtf(static_cast<float>(headDim));
  attention_simt_kernel<T><<<dim3(numTiles, heads), 32 * kSimtTileQ, 0, s>>>(q, k, v, ld, out, ldo, tiles, headDim,
                                                                              scale);
  EDU_CUDA_LAUNCH("attention_simt_kernel");
}

// ------------------------------------------------------------------------------ tensor-core flash

constexpr int kFlashKeys = 64;

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void mma_bf16(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

template <int D>
__global__ void __launch_bounds__(128, 2)
    attention_flash_kernel(const bf16* __restrict__ Q, const bf16* __restrict__ K, const bf16* __restrict__ V, long ld,
                           bf16* __restrict__ O, long ldo, const AttnTile* __restrict__ tiles, float scaleLog2) {
  constexpr int LD = D + 8;  // padded rows: conflict-free 32-bit reads and ldmatrix
  __shared__ __align__(16) bf16 Ks[kFlashKeys * LD];
  __shared__ __align__(16) bf16 Vs[kFlashKeys * LD];
  const AttnTile tile = tiles[blockIdx.x];
  const int h = blockIdx.y, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const bool uniform = (tile.kn & kUniformFlag) != 0;
  const int kn = tile.kn & ~kUniformFlag;
  const long hoff = static_cast<long>(h) * D;

  // Q fragments (A operand, 16 rows x D) straight from global; rows past qn are clamped (not stored).
  const int r0 = min(warp * 16 + g, tile.qn - 1), r1 = min(warp * 16 + g + 8, tile.qn - 1);
  const bf16* q0p = Q + static_cast<long>(tile.q0 + r0) * ld + hoff;
  const bf16* q1p = Q + static_cast<long>(tile.q0 + r1) * ld + hoff;
  uint32_t qa[D / 16][4];
#pragma unroll
  for (int kc = 0; kc < D / 16; ++kc) {
    qa[kc][0] = *reinterpret_cast<const uint32_t*>(q0p + kc * 16 + 2 * t);
    qa[kc][1] = *reinterpret_cast<const uint32_t*>(q1p + kc * 16 + 2 * t);
    qa[kc][2] = *reinterpret_cast<const uint32_t*>(q0p + kc * 16 + 8 + 2 * t);
    qa[kc][3] = *reinterpret_cast<const uint32_t*>(q1p + kc * 16 + 8 + 2 * t);
  }
  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[i][e] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

  for (int j0 = 0; j0 < kn; j0 += kFlashKeys) {
    __syncthreads();  // everyone is done with the previous K/V tile
    constexpr int chunks = kFlashKeys * D / 8;
    for (int c = tid; c < chunks; c += 128) {
      const int row = c / (D / 8), col = (c % (D / 8)) * 8;
      const bool ok = j0 + row < kn;
      const long grow = static_cast<long>(tile.k0 + (ok ? j0 + row : 0));
      cp_async16(smem_u32(Ks + row * LD + col), K + grow * ld + hoff + col, ok ? 16 : 0);
      cp_async16(smem_u32(Vs + row * LD + col), V + grow * ld + hoff + col, ok ? 16 : 0);
    }
    asm volatile("cp.async.commit_group;\n" ::);
    asm volatile("cp.async.wait_group 0;\n" ::);
    __syncthreads();

    // S = Q K^T for 16 queries x 64 keys: 8 fragments of 16x8.
    float s[kFlashKeys / 8][4];
#pragma unroll
    for (int nt = 0; nt < kFlashKeys / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) s[nt][e] = 0.0f;
      const bf16* krow = Ks + (nt * 8 + g) * LD;
#pragma unroll
      for (int kc = 0; kc < D / 16; ++kc) {
        const uint32_t b0 = *reinterpret_cast<const uint32_t*>(krow + kc * 16 + 2 * t);
        const uint32_t b1 = *reinterpret_cast<const uint32_t*>(krow + kc * 16 + 8 + 2 * t);
        mma_bf16(s[nt], qa[kc], b0, b1);
      }
    }
    // Scale (log2 domain), mask keys past kn, online softmax per row (rows g and g + 8).
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < kFlashKeys / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = j0 + nt * 8 + 2 * t + (e & 1);
        float v = uniform ? 0.0f : s[nt][e] * scaleLog2;
        if (key >= kn) v = -INFINITY;
        s[nt][e] = v;
        mx[e >> 1] = fmaxf(mx[e >> 1], v);
      }
    float alpha[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float mNew = fmaxf(m[r], mx[r]);  // finite: every tile has a key < kn
      alpha[r] = exp2f(m[r] - mNew);
      m[r] = mNew;
      l[r] *= alpha[r];
    }
#pragma unroll
    for (int nt = 0; nt < kFlashKeys / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float p = exp2f(s[nt][e] - m[e >> 1]);
        s[nt][e] = p;
        l[e >> 1] += p;  // per-thread partial sum; reduced over the quad at the end
      }
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      o[dt][0] *= alpha[0];
      o[dt][1] *= alpha[0];
      o[dt][2] *= alpha[1];
      o[dt][3] *= alpha[1];
    }
    // O += P V: P's accumulator layout is the A-operand layout of the next mma (16 keys per step).
#pragma unroll
    for (int kk = 0; kk < kFlashKeys / 16; ++kk) {
      uint32_t pa[4];
      pa[0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
      pa[1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
      pa[2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      pa[3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
      const int vrow = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        const int vcol = dp * 16 + (lane >> 4) * 8;
        uint32_t b0, b1, b2, b3;
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(b0), "=r"(b1), "=r"(b2), "=r"(b3)
                     : "r"(smem_u32(Vs + vrow * LD + vcol)));
        mma_bf16(o[2 * dp], pa, b0, b1);
        mma_bf16(o[2 * dp + 1], pa, b2, b3);
      }
    }
  }
  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    inv[r] = 1.0f / l[r];
  }
  const int row0 = warp * 16 + g, row1 = row0 + 8;
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) {
    const int col = dt * 8 + 2 * t;
    if (row0 < tile.qn)
      *reinterpret_cast<__nv_bfloat162*>(O + static_cast<long>(tile.q0 + row0) * ldo + hoff + col) =
          __floats2bfloat162_rn(o[dt][0] * inv[0], o[dt][1] * inv[0]);
    if (row1 < tile.qn)
      *reinterpret_cast<__nv_bfloat162*>(O + static_cast<long>(tile.q0 + row1) * ldo + hoff + col) =
          __floats2bfloat162_rn(o[dt][2] * inv[1], o[dt][3] * inv[1]);
  }
}

template <int D>
void launch_flash(cudaStream_t s, const bf16* q, const bf16* k, const bf16* v, long ld, bf16* out, long ldo,
                  const AttnTile* tiles, int numTiles, int heads) {
  const float scaleLog2 = 1.4426950408889634f / sqrtf(static_cast<float>(D));
  attention_flash_kernel<D><<<dim3(numTiles, heads), 128, 0, s>>>(q, k, v, ld, out, ldo, tiles, scaleLog2);
  EDU_CUDA_LAUNCH("attention_flash_kernel");
}

}  // namespace

void attention_f32(cudaStream_t s, const float* q, const float* k, const float* v, long ld, float* out, long ldo,
                   const AttnTile* tiles, int numTiles, int heads, int headDim) {
  launch_simt<float>(s, q, k, v, ld, out, ldo, tiles, numTiles, heads, headDim);
}

void attention_simt_bf16(cudaStream_t s, const bf16* q, const bf16* k, const bf16* v, long ld, bf16* out, long ldo,
                         const AttnTile* tiles, int numTiles, int heads, int headDim) {
  launch_simt<bf16>(s, q, k, v, ld, out, ldo, tiles, numTiles, heads, headDim);
}

bool flash_supports(int headDim) { return headDim == 32 || headDim == 64 || headDim == 128; }

void attention_flash_bf16(cudaStream_t s, const bf16* q, const bf16* k, const bf16* v, long ld, bf16* out, long ldo,
                          const AttnTile* tiles, int numTiles, int heads, int headDim) {
  if (numTiles <= 0) return;
  if (ld % 8 != 0 || ldo % 2 != 0 || heads > 65535)
    throw std::invalid_argument("attention_flash_bf16: ld must be a multiple of 8 and ldo even");
  switch (headDim) {
    case 32: launch_flash<32>(s, q, k, v, ld, out, ldo, tiles, numTiles, heads); break;
    case 64: launch_flash<64>(s, q, k, v, ld, out, ldo, tiles, numTiles, heads); break;
    case 128: launch_flash<128>(s, q, k, v, ld, out, ldo, tiles, numTiles, heads); break;
    default: throw std::invalid_argument("attention_flash_bf16: head dim " + std::to_string(headDim) + " unsupported");
  }
}

}  // namespace k
}  // namespace cuda
}  // namespace edu

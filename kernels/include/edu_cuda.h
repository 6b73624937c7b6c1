// CUDA backend of the kernel interface (see edu_kernels.h for the shared conventions).
//
// This header is host-only C++ (no CUDA headers), so the N-API layer and host-side tests include it
// whether or not the build has CUDA. Two parts:
//   * Host logic that never touches a GPU (kernels/cuda/plan.cpp, always built): request
//     validation, the packed variable-length layout (cu_seqlens), attention tile lists, workspace
//     sizing, bf16 rounding. Tested from JS through addon.cudaDebug.
//   * The device encoder (kernels/cuda/*.cu, built only when nvcc is found; EDU_HAVE_CUDA defined):
//     cuda_info() and CudaEncoder. Every CUDA error becomes a C++ exception (CudaError) naming the
//     call site and cudaGetErrorString; out-of-memory messages contain "CUDA out of memory".
//
// Packed layout: a forward computes only the tokens it needs. Token (b, t) is computed when
// mask[b, t] == 1, or when every position is needed (lastHiddenState requested, or a sequence whose
// keys are all masked), or when t == 0 and a CLS-based output is requested. Within sequence b the
// computed tokens sit in rows [seqStart[b], seqStart[b + 1]) of the packed activations, VISIBLE
// tokens FIRST (in t order), then the other computed tokens (in t order). The attention keys of
// sequence b are therefore the contiguous rows [seqStart[b], seqStart[b] + seqKeys[b]); padding is
// never computed as a key and, unless asked for, never as a query either.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "edu_encoder.h"

namespace edu {
namespace cuda {

/** Arithmetic of the encoder on the GPU. */
enum class Precision : int {
  Fp32 = 0,  // SIMT fp32 GEMMs and attention: the reference path on the GPU
  Bf16 = 1,  // bf16 tensor-core GEMMs (fp32 accumulation), bf16 flash attention; fp32 residual + LayerNorm
};

const char* precision_name(Precision p);
/** "fp32" | "bf16" (throws std::invalid_argument otherwise). */
Precision parse_precision(const std::string& s);

/** Thrown for every failed CUDA runtime call or kernel launch. */
class CudaError : public std::runtime_error {
 public:
  CudaError(const std::string& what, int code, bool outOfMemory)
      : std::runtime_error(what), code_(code), oom_(outOfMemory) {}
  int code() const { return code_; }
  bool out_of_memory() const { return oom_; }

 private:
  int code_;
  bool oom_;
};

struct DeviceInfo {
  int index = 0;
  std::string name;
  int major = 0, minor = 0;
  int multiProcessors = 0;
  size_t totalBytes = 0;
  bool usable = false;     // compute capability >= 8.0 (the kernels need sm_80+)
  std::string reason;      // why not usable
};

struct CudaInfo {
  bool compiled = false;   // built with nvcc (EDU_HAVE_CUDA)
  int runtimeVersion = 0;  // e.g. 13000
  int driverVersion = 0;   // 0 when no driver is installed
  int deviceCount = 0;
  std::string error;       // why there is no device, e.g. "cudaGetDeviceCount: cudaErrorNoDevice: ..."
  std::vector<DeviceInfo> devices;
};

/** What the runtime sees. Never throws for a missing driver/GPU: that is reported in .error. */
CudaInfo cuda_info();

// ---------------------------------------------------------------- host-side plan (plan.cpp)

/** One attention work item: query rows [q0, q0 + qn) against key rows [k0, k0 + kn) (packed rows). */
struct AttnTile {
  int32_t q0 = 0, qn = 0, k0 = 0, kn = 0;  // kn has kUniformFlag set when the keys are ALL masked
};
constexpr int32_t kUniformFlag = 0x40000000;

struct PackPlan {
  int batch = 0, seqLen = 0;
  int tokens = 0;                   // packed rows T
  std::vector<int32_t> ids, types, pos;   // [T] gathered inputs, position ids from the unpacked layout
  std::vector<int32_t> seqStart;    // [batch + 1] cu_seqlens of the computed rows
  std::vector<int32_t> seqKeys;     // [batch] keys of b: the first seqKeys[b] rows of the sequence
  std::vector<int32_t> seqVisible;  // [batch] sum of mask[b, :] (mean-pool denominator)
  std::vector<uint8_t> seqUniform;  // [batch] 1 when every key is masked (uniform attention, HF semantics)
  std::vector<int32_t> clsRow;      // [batch] packed row of (b, 0), -1 when not computed
  std::vector<int32_t> rowOf;       // [batch * seqLen] packed row of (b, t), -1 when not computed
  bool allPositions = false;        // every (b, t) computed (rowOf has no -1)
};

/**
 * Validates the request against the config (the CPU encoder's checks and messages: lengths, id
 * ranges, mask 0/1, requested outputs, position range) and builds the packed layout.
 * Throws std::invalid_argument.
 */
PackPlan plan_packing(const EncoderConfig& cfg, const ForwardRequest& r);

/** Query tiles of at most tileQ rows per sequence, longest key range first (load balance). */
std::vector<AttnTile> plan_attention_tiles(const PackPlan& plan, int tileQ);

/** Bytes of device activations per packed token for (cfg, precision), metadata included. */
size_t workspace_bytes_per_token(const EncoderConfig& cfg, Precision p);
/** Bytes of device weights the encoder uploads. */
size_t device_weight_bytes(const EncoderConfig& cfg, Precision p);

/** float -> bf16 bits, round to nearest even (NaN stays a quiet NaN). */
uint16_t float_to_bf16(float x);
float bf16_to_float(uint16_t b);

/** Checks the config is one the CUDA kernels handle (head dim <= 128, multiples of 8 ...). */
void validate_cuda_config(const EncoderConfig& cfg, Precision p);

// ---------------------------------------------------------------- device encoder (encoder.cu)

class CudaEncoder {
 public:
  /**
   * Selects the device, uploads the weights once (fp32; bf16 copies of the GEMM weights for
   * Precision::Bf16). Throws CudaError (no driver / no device / OOM) or std::invalid_argument.
   */
  CudaEncoder(const EncoderConfig& config, const WeightMap& weights, int deviceIndex, Precision precision);
  ~CudaEncoder();
  CudaEncoder(const CudaEncoder&) = delete;
  CudaEncoder& operator=(const CudaEncoder&) = delete;

  /** Thread-safe (serialised). Same outputs as edu::Encoder::forward. */
  ForwardResult forward(const ForwardRequest& request);

  const EncoderConfig& config() const;
  Precision precision() const;
  int device_index() const;
  /** "cuda:0 NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)" */
  std::string device_name() const;
  /** Which kernels run, e.g. "gemm=mma.sync.m16n8k16.bf16 attention=flash-mma.bf16.d64 ..." */
  std::string kernels() const;
  size_t weight_bytes() const;
  size_t bytes_per_token() const;
  /** cudaMemGetInfo on the encoder's device. */
  void mem_info(size_t& freeBytes, size_t& totalBytes) const;

  struct Impl;

 private:
  Impl* impl_;
};

}  // namespace cuda
}  // namespace edu

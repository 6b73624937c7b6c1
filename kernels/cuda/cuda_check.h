// CUDA error checking: every runtime call and launch goes through EDU_CUDA_CHECK / EDU_CUDA_LAUNCH,
// which throw edu::cuda::CudaError("<file>:<line>: <call>: cudaErrorX: <cudaGetErrorString>").
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "edu_cuda.h"

namespace edu {
namespace cuda {

[[noreturn]] inline void throw_cuda(cudaError_t e, const char* call, const char* file, int line) {
  (void)cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  const bool oom = e == cudaErrorMemoryAllocation;
  std::string msg;
  if (oom) msg = "CUDA out of memory: ";
  const char* base = file;
  for (const char* p = file; *p; ++p)
    if (*p == '/') base = p + 1;
  msg += std::string(base) + ":" + std::to_string(line) + ": " + call + " failed: " + cudaGetErrorName(e) + ": " +
         cudaGetErrorString(e);
  throw CudaError(msg, static_cast<int>(e), oom);
}

}  // namespace cuda
}  // namespace edu

#define EDU_CUDA_CHECK(call)                                                        \
  do {                                                                              \
    cudaError_t edu_cuda_e_ = (call);                                               \
    if (edu_cuda_e_ != cudaSuccess) ::edu::cuda::throw_cuda(edu_cuda_e_, #call, __FILE__, __LINE__); \
  } while (0)

/** After a <<<>>> launch: launch-configuration errors; `name` is a string literal naming the kernel. */
#define EDU_CUDA_LAUNCH(name)                                                                   \
  do {                                                                                          \
    cudaError_t edu_cuda_e_ = cudaGetLastError();                                               \
    if (edu_cuda_e_ != cudaSuccess) ::edu::cuda::throw_cuda(edu_cuda_e_, "launch " name, __FILE__, __LINE__); \
  } while (0)

#pragma once
#include <napi.h>

namespace edu {
namespace napi {
/** Adds `kernels` (synchronous test kernels) and `cpuInfo` to exports. */
void RegisterKernels(Napi::Env env, Napi::Object exports);
}  // namespace napi
}  // namespace edu

#pragma once
#include <napi.h>

namespace edu {
namespace napi {
/** Adds cudaInfo(), the CudaEncoder class and cudaDebug (host-side plan helpers) to exports. */
void RegisterCuda(Napi::Env env, Napi::Object exports);
}  // namespace napi
}  // namespace edu

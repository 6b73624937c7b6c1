#pragma once
#include <napi.h>

namespace edu {
namespace napi {
/** Adds the Encoder class to exports. */
void RegisterEncoder(Napi::Env env, Napi::Object exports);
}  // namespace napi
}  // namespace edu

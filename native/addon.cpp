// Module init of build/Release/edu_train.node (contract: src/native/addon-types.ts).
#include <napi.h>

#include "cuda_binding.h"
#include "encoder_binding.h"
#include "finetune_binding.h"
#include "head_binding.h"
#include "kernels_binding.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  edu::napi::RegisterKernels(env, exports);
  edu::napi::RegisterEncoder(env, exports);
  edu::napi::RegisterCuda(env, exports);  // native/cuda_binding.cpp (CUDA backend)
  edu::napi::RegisterFineTune(env, exports);  // native/finetune_binding.cpp (full fine-tuning)
  RegisterHead(env, exports);  // native/head*.cpp (classifier-head training), owned separately
  return exports;
}

NODE_API_MODULE(edu_train, Init)

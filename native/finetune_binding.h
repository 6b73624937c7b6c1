// N-API binding of full fine-tuning (kernels/include/edu_train_encoder.h): exports.FineTuner and
// exports.fineTuneKernels. The TypeScript contract is src/native/finetune-types.ts.
#pragma once
#include <napi.h>

namespace edu {
namespace napi {
/** Adds FineTuner and fineTuneKernels to exports. */
void RegisterFineTune(Napi::Env env, Napi::Object exports);
}  // namespace napi
}  // namespace edu

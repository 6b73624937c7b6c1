// N-API binding of the trainable head (kernels/include/head.h): exports.Head.
// The TypeScript contract is src/native/head-types.ts.
#pragma once

#include <napi.h>

void RegisterHead(Napi::Env env, Napi::Object exports);

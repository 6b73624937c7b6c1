// Argument conversion for the N-API layer: JS values -> C++ with errors that name the argument.
#pragma once

#include <napi.h>

#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "edu_encoder.h"
#include "edu_kernels.h"

namespace edu {
namespace napi {

/** Throws a JS TypeError / Error (as a Napi::Error C++ exception). */
[[noreturn]] void type_error(Napi::Env env, const std::string& msg);
[[noreturn]] void error(Napi::Env env, const std::string& msg);

/** A JS number that must be an integer in [min, max]. */
int to_int(Napi::Env env, const Napi::Value& v, const std::string& name, long long min, long long max);
double to_number(Napi::Env env, const Napi::Value& v, const std::string& name);
bool to_bool(Napi::Env env, const Napi::Value& v, const std::string& name);
std::string to_string(Napi::Env env, const Napi::Value& v, const std::string& name);

/** Throws a TypeError naming `name` when the typed array's ArrayBuffer has been detached (transferred). */
void check_attached(Napi::Env env, const Napi::TypedArray& a, const std::string& name);
Napi::Float32Array to_f32(Napi::Env env, const Napi::Value& v, const std::string& name);
Napi::Int32Array to_i32(Napi::Env env, const Napi::Value& v, const std::string& name);
/** Type name of a JS value for messages ("Float64Array", "number", "undefined", ...). */
std::string describe(const Napi::Value& v);

/**
 * The encoder config object of src/native/addon-types.ts (NativeEncoderConfig), shared by every binding
 * that builds an encoder; `ctx` prefixes messages ("config", "config.encoder"). head/numLabels may be
 * absent (an encoder without a head).
 */
EncoderConfig parse_encoder_config(Napi::Env env, const Napi::Value& v, const std::string& ctx);

/** A forward request (NativeForwardRequest) copied off the JS heap, so a worker never touches JS memory. */
struct OwnedRequest {
  std::vector<int32_t> ids, mask, types;
  bool hasTypes = false;
  ForwardRequest req;  // points into the vectors above (never null: empty arrays point at a static 0)
};
/** Parses and copies a forward request; shape/length consistency is checked later by the encoder. */
std::unique_ptr<OwnedRequest> parse_forward_request(Napi::Env env, const Napi::Value& v);

/** options.isa ('auto' when absent) resolved for this CPU; throws on an unknown/unsupported ISA. */
Isa isa_option(Napi::Env env, const Napi::Object* options);
/** options.threads (default: logical CPUs). */
int threads_option(Napi::Env env, const Napi::Object* options);
/** Optional options object at info[index] (undefined/null -> nullptr; anything else must be an object). */
bool options_at(const Napi::CallbackInfo& info, size_t index, Napi::Object& out);

/**
 * A promise already rejected with `reason`. Promise-returning methods create their Deferred only on
 * error paths: an unsettled napi deferred is never freed (it holds a persistent reference to its promise),
 * and their workers settle their own (LeakSanitizer found one leaked per successful call).
 */
inline Napi::Promise rejected_promise(Napi::Env env, const Napi::Value& reason) {
  auto deferred = Napi::Promise::Deferred::New(env);
  deferred.Reject(reason);
  return deferred.Promise();
}

/** Runs f() and turns any C++ exception into a JS Error (Napi::Error passes through). */
template <class F>
auto guard(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(env, "out of memory in the edu-train native addon");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  } catch (...) {
    throw Napi::Error::New(env, "unknown C++ exception in the edu-train native addon");
  }
}

}  // namespace napi
}  // namespace edu

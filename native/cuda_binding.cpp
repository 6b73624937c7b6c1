// CUDA part of the addon (contract: src/native/addon-types.ts, NativeCudaEncoder / CudaInfo):
//   * cudaInfo(): what the CUDA runtime sees; never throws for a missing driver or GPU.
//   * CudaEncoder: Napi::ObjectWrap over edu::cuda::CudaEncoder, forward() in an AsyncWorker, one at a
//     time per encoder (FIFO on the JS thread), like native/encoder_binding.cpp. Errors reject with a
//     JS Error; a CUDA out-of-memory error carries code 'EDU_CUDA_OOM'.
//   * cudaDebug: the host-side plan (packing, tiles, workspace sizing, bf16 rounding) for tests.
// Without EDU_HAVE_CUDA (no nvcc at build time) cudaInfo() reports compiled: false and
// new CudaEncoder() throws a clear Error; cudaDebug works either way.
#include "cuda_binding.h"

#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "convert.h"
#include "edu_cuda.h"

namespace edu {
namespace napi {
namespace {

Napi::Float32Array f32_to_js(Napi::Env env, const std::vector<float>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(float));
  return a;
}

Napi::Int32Array i32_to_js(Napi::Env env, const std::vector<int32_t>& v) {
  Napi::Int32Array a = Napi::Int32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(int32_t));
  return a;
}

[[maybe_unused]] cuda::Precision precision_option(Napi::Env env, const Napi::Object* opts) {
  if (opts == nullptr) return cuda::Precision::Bf16;
  const Napi::Value v = opts->Get("precision");
  if (v.IsUndefined() || v.IsNull()) return cuda::Precision::Bf16;
  const std::string s = to_string(env, v, "options.precision");
  try {
    return cuda::parse_precision(s);
  } catch (const std::exception& e) {
    error(env, std::string("options.") + e.what());
  }
}

// ---- cudaInfo()

Napi::Value CudaInfoJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
#ifdef EDU_HAVE_CUDA
  const cuda::CudaInfo ci = guard(env, [] { return cuda::cuda_info(); });
#else
  cuda::CudaInfo ci;
  ci.error = "this build of edu-train has no CUDA backend (nvcc was not found, or EDU_CUDA=OFF, when the addon was built)";
#endif
  o.Set("compiled", Napi::Boolean::New(env, ci.compiled));
  o.Set("runtimeVersion", Napi::Number::New(env, ci.runtimeVersion));
  o.Set("driverVersion", Napi::Number::New(env, ci.driverVersion));
  o.Set("deviceCount", Napi::Number::New(env, ci.deviceCount));
  if (!ci.error.empty()) o.Set("error", Napi::String::New(env, ci.error));
  Napi::Array devs = Napi::Array::New(env, ci.devices.size());
  for (size_t i = 0; i < ci.devices.size(); ++i) {
    const cuda::DeviceInfo& d = ci.devices[i];
    Napi::Object dj = Napi::Object::New(env);
    dj.Set("index", Napi::Number::New(env, d.index));
    dj.Set("name", Napi::String::New(env, d.name));
    dj.Set("computeCapability", Napi::String::New(env, std::to_string(d.major) + "." + std::to_string(d.minor)));
    dj.Set("multiProcessors", Napi::Number::New(env, d.multiProcessors));
    dj.Set("totalMemory", Napi::Number::New(env, static_cast<double>(d.totalBytes)));
    dj.Set("usable", Napi::Boolean::New(env, d.usable));
    if (!d.reason.empty()) dj.Set("reason", Napi::String::New(env, d.reason));
    devs.Set(static_cast<uint32_t>(i), dj);
  }
  o.Set("devices", devs);
  return o;
}

// ---- cudaDebug

Napi::Value PlanPacking(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2) type_error(env, "planPacking(config, request, tileQ?) needs 2 arguments");
  const EncoderConfig cfg = parse_encoder_config(env, info[0], "config");
  auto req = parse_forward_request(env, info[1]);
  const int tileQ = info.Length() > 2 ? to_int(env, info[2], "tileQ", 1, 1 << 20) : 64;
  const cuda::PackPlan p = guard(env, [&] { return cuda::plan_packing(cfg, req->req); });
  const std::vector<cuda::AttnTile> tiles = guard(env, [&] { return cuda::plan_attention_tiles(p, tileQ); });
  Napi::Object o = Napi::Object::New(env);
  o.Set("tokens", Napi::Number::New(env, p.tokens));
  o.Set("allPositions", Napi::Boolean::New(env, p.allPositions));
  o.Set("ids", i32_to_js(env, p.ids));
  o.Set("types", i32_to_js(env, p.types));
  o.Set("pos", i32_to_js(env, p.pos));
  o.Set("seqStart", i32_to_js(env, p.seqStart));
  o.Set("seqKeys", i32_to_js(env, p.seqKeys));
  o.Set("seqVisible", i32_to_js(env, p.seqVisible));
  std::vector<int32_t> uni(p.seqUniform.begin(), p.seqUniform.end());
  o.Set("seqUniform", i32_to_js(env, uni));
  o.Set("clsRow", i32_to_js(env, p.clsRow));
  o.Set("rowOf", i32_to_js(env, p.rowOf));
  std::vector<int32_t> flat;
  for (const cuda::AttnTile& t : tiles) {
    flat.push_back(t.q0);
    flat.push_back(t.qn);
    flat.push_back(t.k0);
    flat.push_back(t.kn & ~cuda::kUniformFlag);
    flat.push_back((t.kn & cuda::kUniformFlag) ? 1 : 0);
  }
  o.Set("tiles", i32_to_js(env, flat));  // [q0, qn, k0, kn, uniform] per tile
  return o;
}

Napi::Value WorkspaceBytesPerToken(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2) type_error(env, "workspaceBytesPerToken(config, precision) needs 2 arguments");
  const EncoderConfig cfg = parse_encoder_config(env, info[0], "config");
  const std::string p = to_string(env, info[1], "precision");
  return guard(env, [&] {
    const cuda::Precision pr = cuda::parse_precision(p);
    cuda::validate_cuda_config(cfg, pr);
    Napi::Object o = Napi::Object::New(env);
    o.Set("perToken", Napi::Number::New(env, static_cast<double>(cuda::workspace_bytes_per_token(cfg, pr))));
    o.Set("weights", Napi::Number::New(env, static_cast<double>(cuda::device_weight_bytes(cfg, pr))));
    return o;
  });
}

Napi::Value Bf16Round(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Float32Array x = to_f32(env, info.Length() > 0 ? info[0] : env.Undefined(), "x");
  Napi::Float32Array y = Napi::Float32Array::New(env, x.ElementLength());
  for (size_t i = 0; i < x.ElementLength(); ++i) y[i] = cuda::bf16_to_float(cuda::float_to_bf16(x[i]));
  return y;
}

// ---- CudaEncoder

#ifdef EDU_HAVE_CUDA
using Engine = cuda::CudaEncoder;
#else
struct Engine {};  // never constructed
#endif

class CudaForwardWorker;

struct CudaQueue {
  std::deque<CudaForwardWorker*> waiting;
  bool running = false;
  void submit(CudaForwardWorker* w);
  void finished();
};

class CudaForwardWorker : public Napi::AsyncWorker {
 public:
  CudaForwardWorker(Napi::Env env, std::shared_ptr<Engine> enc, std::unique_ptr<OwnedRequest> req,
                    std::shared_ptr<CudaQueue> queue)
      : Napi::AsyncWorker(env, "edu-train:CudaEncoder.forward"),
        deferred_(Napi::Promise::Deferred::New(env)),
        enc_(std::move(enc)),
        req_(std::move(req)),
        queue_(std::move(queue)) {}

  Napi::Promise promise() const { return deferred_.Promise(); }

  void Execute() override {
#ifdef EDU_HAVE_CUDA
    try {
      result_ = enc_->forward(req_->req);
    } catch (const cuda::CudaError& e) {
      oom_ = e.out_of_memory();
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      SetError("out of host memory in CudaEncoder.forward (batch " + std::to_string(req_->req.batch) + " x seqLen " +
               std::to_string(req_->req.seqLen) + ")");
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("unknown C++ exception in CudaEncoder.forward");
    }
#else
    SetError("this build of edu-train has no CUDA backend");
#endif
    enc_.reset();
    req_.reset();
  }

  void OnOK() override {
    Napi::Env env = Env();
    try {
      Napi::Object out = Napi::Object::New(env);
      if (result_.hasLastHiddenState) out.Set("lastHiddenState", f32_to_js(env, result_.lastHiddenState));
      if (result_.hasMeanPooled) out.Set("meanPooled", f32_to_js(env, result_.meanPooled));
      if (result_.hasCls) out.Set("cls", f32_to_js(env, result_.cls));
      if (result_.hasPooler) out.Set("poolerOutput", f32_to_js(env, result_.poolerOutput));
      if (result_.hasLogits) out.Set("logits", f32_to_js(env, result_.logits));
      deferred_.Resolve(out);
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const std::exception& e) {
      deferred_.Reject(Napi::Error::New(env, std::string("CudaEncoder.forward: ") + e.what()).Value());
    }
    queue_->finished();
  }

  void OnError(const Napi::Error& e) override {
    Napi::Object err = e.Value();
    if (oom_) err.Set("code", Napi::String::New(Env(), "EDU_CUDA_OOM"));
    deferred_.Reject(err);
    queue_->finished();
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<Engine> enc_;
  std::unique_ptr<OwnedRequest> req_;
  std::shared_ptr<CudaQueue> queue_;
  ForwardResult result_;
  bool oom_ = false;
};

void CudaQueue::submit(CudaForwardWorker* w) {
  if (running) {
    waiting.push_back(w);
    return;
  }
  running = true;
  w->Queue();
}

void CudaQueue::finished() {
  running = false;
  if (waiting.empty()) return;
  CudaForwardWorker* next = waiting.front();
  waiting.pop_front();
  running = true;
  next->Queue();
}

class CudaEncoderWrap : public Napi::ObjectWrap<CudaEncoderWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "CudaEncoder",
                       {InstanceMethod<&CudaEncoderWrap::Forward>("forward"),
                        InstanceMethod<&CudaEncoderWrap::Dispose>("dispose"),
                        InstanceMethod<&CudaEncoderWrap::MemInfo>("memInfo"),
                        InstanceAccessor<&CudaEncoderWrap::GetDevice>("device"),
                        InstanceAccessor<&CudaEncoderWrap::GetDeviceIndex>("deviceIndex"),
                        InstanceAccessor<&CudaEncoderWrap::GetPrecision>("precision"),
                        InstanceAccessor<&CudaEncoderWrap::GetKernels>("kernels"),
                        InstanceAccessor<&CudaEncoderWrap::GetBytesPerToken>("bytesPerToken"),
                        InstanceAccessor<&CudaEncoderWrap::GetWeightBytes>("weightBytes")});
  }

  explicit CudaEncoderWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CudaEncoderWrap>(info) {
    Napi::Env env = info.Env();
    if (!info.IsConstructCall()) type_error(env, "CudaEncoder must be called with new");
#ifndef EDU_HAVE_CUDA
    error(env, "this build of edu-train has no CUDA backend (nvcc was not found, or EDU_CUDA=OFF, when the addon was "
               "built); rebuild with the CUDA toolkit installed or use the CPU");
#else
    if (info.Length() < 2) type_error(env, "new CudaEncoder(config, weights, options?) needs at least 2 arguments");
    const EncoderConfig config = parse_encoder_config(env, info[0], "config");
    const Napi::Value wv = info[1];
    if (!wv.IsObject() || wv.IsArray() || wv.IsTypedArray())
      type_error(env, "weights must be an object of name -> Float32Array, got " + describe(wv));
    Napi::Object opts;
    const bool hasOpts = options_at(info, 2, opts);
    const cuda::Precision precision = precision_option(env, hasOpts ? &opts : nullptr);
    int deviceIndex = 0;
    if (hasOpts) {
      const Napi::Value d = opts.Get("deviceIndex");
      if (!d.IsUndefined() && !d.IsNull()) deviceIndex = to_int(env, d, "options.deviceIndex", 0, 1 << 16);
    }
    const Napi::Object wo = wv.As<Napi::Object>();
    const Napi::Array names = wo.GetPropertyNames();
    WeightMap weights;
    for (uint32_t i = 0; i < names.Length(); ++i) {
      const std::string name = names.Get(i).ToString().Utf8Value();
      const Napi::Value t = wo.Get(name);
      if (!t.IsTypedArray() || t.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        type_error(env, "weights['" + name + "'] must be a Float32Array, got " + describe(t));
      Napi::Float32Array a = t.As<Napi::Float32Array>();
      weights[name] = WeightView{a.Data(), a.ElementLength()};
    }
    try {
      enc_ = std::make_shared<Engine>(config, weights, deviceIndex, precision);
    } catch (const cuda::CudaError& e) {
      Napi::Error err = Napi::Error::New(env, e.what());
      if (e.out_of_memory()) err.Set("code", Napi::String::New(env, "EDU_CUDA_OOM"));
      throw err;
    } catch (const std::bad_alloc&) {
      throw Napi::Error::New(env, "out of host memory while loading the CUDA encoder");
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    device_ = enc_->device_name();
    deviceIndex_ = enc_->device_index();
    precision_ = cuda::precision_name(enc_->precision());
    kernels_ = enc_->kernels();
    bytesPerToken_ = static_cast<double>(enc_->bytes_per_token());
    weightBytes_ = static_cast<double>(enc_->weight_bytes());
#endif
  }

 private:
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::shared_ptr<Engine> enc = enc_;
    if (!enc) return rejected_promise(env, Napi::Error::New(env, "CudaEncoder has been disposed").Value());
    try {
      if (info.Length() < 1) type_error(env, "forward(request) needs a request object");
      auto req = guard(env, [&] { return parse_forward_request(env, info[0]); });
      auto* worker = new CudaForwardWorker(env, std::move(enc), std::move(req), queue_);
      Napi::Promise p = worker->promise();
      queue_->submit(worker);
      return p;
    } catch (const Napi::Error& e) {
      return rejected_promise(env, e.Value());
    }
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    enc_.reset();
    return info.Env().Undefined();
  }

  Napi::Value MemInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!enc_) error(env, "CudaEncoder has been disposed");
    Napi::Object o = Napi::Object::New(env);
#ifdef EDU_HAVE_CUDA
    size_t freeB = 0, totalB = 0;
    guard(env, [&] {
      enc_->mem_info(freeB, totalB);
      return 0;
    });
    o.Set("free", Napi::Number::New(env, static_cast<double>(freeB)));
    o.Set("total", Napi::Number::New(env, static_cast<double>(totalB)));
#endif
    return o;
  }

  Napi::Value GetDevice(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), device_); }
  Napi::Value GetDeviceIndex(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), deviceIndex_); }
  Napi::Value GetPrecision(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), precision_); }
  Napi::Value GetKernels(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), kernels_); }
  Napi::Value GetBytesPerToken(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), bytesPerToken_); }
  Napi::Value GetWeightBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), enc_ ? weightBytes_ : 0.0);
  }

  std::shared_ptr<Engine> enc_;
  std::shared_ptr<CudaQueue> queue_ = std::make_shared<CudaQueue>();
  std::string device_, precision_, kernels_;
  int deviceIndex_ = 0;
  double bytesPerToken_ = 0, weightBytes_ = 0;
};

}  // namespace

void RegisterCuda(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaInfo", Napi::Function::New(env, CudaInfoJs, "cudaInfo"));
  exports.Set("CudaEncoder", CudaEncoderWrap::Define(env));
  Napi::Object dbg = Napi::Object::New(env);
  dbg.Set("planPacking", Napi::Function::New(env, PlanPacking, "planPacking"));
  dbg.Set("workspaceBytesPerToken", Napi::Function::New(env, WorkspaceBytesPerToken, "workspaceBytesPerToken"));
  dbg.Set("bf16Round", Napi::Function::New(env, Bf16Round, "bf16Round"));
  exports.Set("cudaDebug", dbg);
}

}  // namespace napi
}  // namespace edu

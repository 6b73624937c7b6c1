// Encoder: Napi::ObjectWrap over edu::Encoder. forward() runs in an AsyncWorker (libuv pool), one
// at a time per encoder (a FIFO on the JS thread); each worker holds a shared_ptr to the encoder, so
// dispose() while calls are in flight or queued frees the weights only after they finish.
#include "encoder_binding.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "convert.h"
#include "edu_encoder.h"

namespace edu {
namespace napi {
namespace {

// Working memory of one forward pass, estimated from the request shape (activation arena, attention
// scratch, results and the request copies), so an absurd batch is refused up front instead of
// attempting (and, with memory overcommit, half-succeeding at) a huge allocation.
double forward_bytes(const EncoderConfig& c, const ForwardRequest& r, bool bf16) {
  const double B = r.batch, L = r.seqLen, T = B * L, H = c.hiddenSize;
  const double wide = std::max({3.0 * H, double(c.intermediateSize), double(c.embeddingSize)});
  double floats = T * (4.0 * H + wide) + B * c.numHeads * L * 32.0 + B * L;  // arena, score blocks, masks
  // bf16: the rounded copy of the widest GEMM input (at most 4 bytes per value, K padded to 32).
  if (bf16) floats += (T + 32.0) * (std::max({H, double(c.intermediateSize), double(c.embeddingSize)}) + 32.0);
  if (r.lastHiddenState) floats += 2.0 * T * H;  // result vector + its JS copy
  floats += 4.0 * B * H;                          // pooled outputs, logits
  return 4.0 * floats + 3.0 * 4.0 * T;            // + the copied ids / mask / types
}

// The limit: physical RAM, or EDU_TRAIN_MAX_FORWARD_BYTES when set lower (shared machines, tests).
double forward_byte_limit() {
  double limit = 0;
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) limit = double(pages) * double(page);
  if (const char* e = std::getenv("EDU_TRAIN_MAX_FORWARD_BYTES")) {
    char* end = nullptr;
    const double v = std::strtod(e, &end);
    if (end != e && v > 0 && (limit == 0 || v < limit)) limit = v;
  }
  return limit;
}

void check_forward_size(Napi::Env env, const EncoderConfig& c, const ForwardRequest& r, bool bf16) {
  // Inconsistent lengths are reported by the encoder's own validation (in the worker), which names them.
  if (r.inputIdsLength != static_cast<size_t>(r.batch) * static_cast<size_t>(r.seqLen)) return;
  const double need = forward_bytes(c, r, bf16), limit = forward_byte_limit();
  if (limit > 0 && need > limit) {
    char msg[400];
    std::snprintf(msg, sizeof msg,
                  "forward(request): batch %d x seqLen %d (hidden %d) needs about %.1f GiB of working memory, more "
                  "than the %.1f GiB available to it (RAM, or EDU_TRAIN_MAX_FORWARD_BYTES); split it into smaller batches",
                  r.batch, r.seqLen, c.hiddenSize, need / 1073741824.0, limit / 1073741824.0);
    error(env, msg);
  }
}

Napi::Float32Array to_js(Napi::Env env, const std::vector<float>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(float));
  return a;
}

class ForwardWorker;

// Per-encoder FIFO of forward() calls, touched only on the JS thread. One worker is queued on the
// libuv pool at a time, so N concurrent forward() calls do not park N libuv threads on a mutex.
struct ForwardQueue {
  std::deque<ForwardWorker*> waiting;
  bool running = false;
  void submit(ForwardWorker* w);
  void finished();
};

class ForwardWorker : public Napi::AsyncWorker {
 public:
  ForwardWorker(Napi::Env env, std::shared_ptr<Encoder> enc, std::unique_ptr<OwnedRequest> req,
                std::shared_ptr<ForwardQueue> queue)
      : Napi::AsyncWorker(env, "edu-train:Encoder.forward"),
        deferred_(Napi::Promise::Deferred::New(env)),
        enc_(std::move(enc)),
        req_(std::move(req)),
        queue_(std::move(queue)) {}

  Napi::Promise promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      result_ = enc_->forward(req_->req);
    } catch (const std::bad_alloc&) {
      SetError("out of memory in Encoder.forward (batch " + std::to_string(req_->req.batch) + " x seqLen " +
               std::to_string(req_->req.seqLen) + ")");
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("unknown C++ exception in Encoder.forward");
    }
    enc_.reset();  // release the weights as soon as possible (dispose may be pending)
    req_.reset();
  }

  void OnOK() override {
    Napi::Env env = Env();
    try {
      Napi::Object out = Napi::Object::New(env);
      if (result_.hasLastHiddenState) out.Set("lastHiddenState", to_js(env, result_.lastHiddenState));
      if (result_.hasMeanPooled) out.Set("meanPooled", to_js(env, result_.meanPooled));
      if (result_.hasCls) out.Set("cls", to_js(env, result_.cls));
      if (result_.hasPooler) out.Set("poolerOutput", to_js(env, result_.poolerOutput));
      if (result_.hasLogits) out.Set("logits", to_js(env, result_.logits));
      deferred_.Resolve(out);
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const std::exception& e) {  // e.g. bad_alloc while copying out: still settle, never abort
      deferred_.Reject(Napi::Error::New(env, std::string("Encoder.forward: ") + e.what()).Value());
    }
    queue_->finished();
  }

  void OnError(const Napi::Error& e) override {
    deferred_.Reject(e.Value());
    queue_->finished();
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<Encoder> enc_;
  std::unique_ptr<OwnedRequest> req_;
  std::shared_ptr<ForwardQueue> queue_;
  ForwardResult result_;
};

void ForwardQueue::submit(ForwardWorker* w) {
  if (running) {
    waiting.push_back(w);
    return;
  }
  running = true;
  w->Queue();
}

void ForwardQueue::finished() {
  running = false;
  if (waiting.empty()) return;
  ForwardWorker* next = waiting.front();
  waiting.pop_front();
  running = true;
  next->Queue();
}

class EncoderWrap : public Napi::ObjectWrap<EncoderWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Encoder",
                       {InstanceMethod<&EncoderWrap::Forward>("forward"),
                        InstanceMethod<&EncoderWrap::Dispose>("dispose"),
                        InstanceAccessor<&EncoderWrap::GetIsa>("isa"),
                        InstanceAccessor<&EncoderWrap::GetDtype>("dtype"),
                        InstanceAccessor<&EncoderWrap::GetThreads>("threads"),
                        InstanceAccessor<&EncoderWrap::GetWeightBytes>("weightBytes")});
  }

  explicit EncoderWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EncoderWrap>(info) {
    Napi::Env env = info.Env();
    if (!info.IsConstructCall()) type_error(env, "Encoder must be called with new");
    if (info.Length() < 2) type_error(env, "new Encoder(config, weights, options?) needs at least 2 arguments");
    const EncoderConfig config = parse_encoder_config(env, info[0], "config");
    const Napi::Value wv = info[1];
    if (!wv.IsObject() || wv.IsArray() || wv.IsTypedArray())
      type_error(env, "weights must be an object of name -> Float32Array, got " + describe(wv));
    Napi::Object opts;
    const bool hasOpts = options_at(info, 2, opts);
    // options.dtype: 'fp32' (default) | 'bf16'. It decides how options.isa / EDU_TRAIN_CPU_ISA is read:
    // fp32 paths avx512 | avx2 | scalar, bf16 paths amx | avx512 (AVX512_BF16) | avx2 | scalar.
    EncoderNumerics numerics;
    if (hasOpts && opts.Has("dtype") && !opts.Get("dtype").IsUndefined()) {
      const std::string d = to_string(env, opts.Get("dtype"), "options.dtype");
      numerics.dtype = guard(env, [&] { return parse_dtype(d); });
    }
    Isa isa;
    if (numerics.dtype == Dtype::Bf16) {
      std::string name = "auto";
      if (hasOpts && opts.Has("isa") && !opts.Get("isa").IsUndefined()) name = to_string(env, opts.Get("isa"), "options.isa");
      numerics.bf16Isa = guard(env, [&] { return cpu::resolve_bf16_isa(name); });
      isa = cpu::bf16_helper_isa(numerics.bf16Isa);
    } else {
      isa = isa_option(env, hasOpts ? &opts : nullptr);
    }
    const int threads = threads_option(env, hasOpts ? &opts : nullptr);

    const Napi::Object wo = wv.As<Napi::Object>();
    const Napi::Array names = wo.GetPropertyNames();
    WeightMap weights;
    // Keep the typed arrays referenced while we read them (they are on the stack via HandleScope).
    for (uint32_t i = 0; i < names.Length(); ++i) {
      const std::string name = names.Get(i).ToString().Utf8Value();
      const Napi::Value t = wo.Get(name);
      if (!t.IsTypedArray() || t.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        type_error(env, "weights['" + name + "'] must be a Float32Array, got " + describe(t));
      check_attached(env, t.As<Napi::TypedArray>(), "weights['" + name + "']");
      Napi::Float32Array a = t.As<Napi::Float32Array>();
      weights[name] = WeightView{a.Data(), a.ElementLength()};
    }
    enc_ = guard(env, [&] { return std::make_shared<Encoder>(config, weights, isa, threads, numerics); });
    path_ = enc_->gemm_path();
    dtype_ = numerics.dtype;
    threads_ = enc_->threads();
  }

 private:
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    // Everything rejects (never throws synchronously): forward() behaves like an async function.
    auto rejected = [&](const Napi::Value& reason) { return rejected_promise(env, reason); };
    std::shared_ptr<Encoder> enc = enc_;
    if (!enc) return rejected(Napi::Error::New(env, "Encoder has been disposed").Value());
    try {
      if (info.Length() < 1) type_error(env, "forward(request) needs a request object");
      auto req = guard(env, [&] { return parse_forward_request(env, info[0]); });
      check_forward_size(env, enc->config(), req->req, enc->dtype() == Dtype::Bf16);
      auto* worker = new ForwardWorker(env, std::move(enc), std::move(req), queue_);
      Napi::Promise p = worker->promise();
      queue_->submit(worker);
      return p;
    } catch (const Napi::Error& e) {
      return rejected(e.Value());
    }
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    enc_.reset();  // in-flight workers keep their own reference
    return info.Env().Undefined();
  }

  // The GEMM code path: avx512 | avx2 | scalar (fp32); amx | avx512 | avx2 | scalar (bf16).
  Napi::Value GetIsa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), path_); }
  Napi::Value GetDtype(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), dtype_name(dtype_)); }
  Napi::Value GetThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), threads_); }
  Napi::Value GetWeightBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), enc_ ? static_cast<double>(enc_->weight_bytes()) : 0.0);
  }

  std::shared_ptr<Encoder> enc_;
  std::shared_ptr<ForwardQueue> queue_ = std::make_shared<ForwardQueue>();
  std::string path_ = "scalar";
  Dtype dtype_ = Dtype::Fp32;
  int threads_ = 1;
};

}  // namespace

void RegisterEncoder(Napi::Env env, Napi::Object exports) { exports.Set("Encoder", EncoderWrap::Define(env)); }

}  // namespace napi
}  // namespace edu

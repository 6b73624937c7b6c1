// N-API glue for edu::head::Head: argument checks, typed-array views, async workers. No math here.
//
// Zero-copy contract: trainEpoch/predict read the caller's Float32Array/Int32Array memory directly on a
// worker thread and hold a reference to each array until the promise settles, so a 450k x 768 feature
// matrix is never copied. The caller must not write to (or transfer) those arrays while a call runs.
// One call at a time per Head: a call while trainEpoch/predict is running is an Error (await first).
#include "head_binding.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "convert.h"
#include "head.h"

namespace {

using edu::head::Batch;
using edu::head::Config;
using edu::head::Head;
using edu::head::Params;
using edu::head::State;

[[noreturn]] void Throw(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }

Napi::Object RequireObject(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsObject() || v.IsArray() || v.IsTypedArray()) Throw(env, what + " must be an object");
  return v.As<Napi::Object>();
}

double GetNumber(Napi::Object o, const char* key, const std::string& ctx, bool required, double def) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) {
    if (required) Throw(o.Env(), ctx + "." + key + " is required");
    return def;
  }
  if (!v.IsNumber()) Throw(o.Env(), ctx + "." + key + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) Throw(o.Env(), ctx + "." + key + " must be finite");
  return d;
}

int64_t GetInt(Napi::Object o, const char* key, const std::string& ctx, bool required, int64_t def, int64_t lo) {
  double d = GetNumber(o, key, ctx, required, double(def));
  if (d != std::floor(d) || d < double(lo) || d > 9007199254740991.0) {
    std::ostringstream os;
    os << ctx << "." << key << " must be an integer >= " << lo << " (got " << d << ")";
    Throw(o.Env(), os.str());
  }
  return int64_t(d);
}

bool GetBool(Napi::Object o, const char* key, const std::string& ctx, bool def) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return def;
  if (!v.IsBoolean()) Throw(o.Env(), ctx + "." + key + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

template <typename T, napi_typedarray_type kType>
Napi::TypedArrayOf<T> GetTyped(Napi::Env env, Napi::Value v, const std::string& what, const char* type_name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != kType)
    Throw(env, what + " must be a " + type_name);
  if (v.As<Napi::TypedArray>().ArrayBuffer().IsDetached())
    Throw(env, what + "'s ArrayBuffer is detached (transferred or structuredClone'd away); pass a live array");
  return v.As<Napi::TypedArrayOf<T>>();
}

Napi::Float32Array GetF32(Napi::Env env, Napi::Value v, const std::string& what) {
  return GetTyped<float, napi_float32_array>(env, v, what, "Float32Array");
}

// Copies a Float32Array or a plain number array (small parameters only).
std::vector<float> GetFloatVector(Napi::Env env, Napi::Value v, const std::string& what) {
  if (v.IsArray()) {
    Napi::Array a = v.As<Napi::Array>();
    std::vector<float> out(a.Length());
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value e = a.Get(i);
      if (!e.IsNumber()) Throw(env, what + "[" + std::to_string(i) + "] must be a number");
      out[i] = float(e.As<Napi::Number>().DoubleValue());
    }
    return out;
  }
  Napi::Float32Array f = GetF32(env, v, what);
  return std::vector<float>(f.Data(), f.Data() + f.ElementLength());
}

void CheckLength(Napi::Env env, size_t got, size_t want, const std::string& what) {
  if (got != want) {
    std::ostringstream os;
    os << what << " has " << got << " elements, expected " << want;
    Throw(env, os.str());
  }
}

Napi::Float32Array ToF32(Napi::Env env, const std::vector<float>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(float));
  return a;
}

Napi::Object ParamsToJs(Napi::Env env, const Params& p, bool hidden) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("weight", ToF32(env, p.weight));
  o.Set("bias", ToF32(env, p.bias));
  if (hidden) {
    o.Set("hiddenWeight", ToF32(env, p.hidden_weight));
    o.Set("hiddenBias", ToF32(env, p.hidden_bias));
  }
  return o;
}

Params ParamsFromJs(Napi::Env env, Napi::Value v, bool hidden, const std::string& ctx) {
  Napi::Object o = RequireObject(env, v, ctx);
  Params p;
  p.weight = GetFloatVector(env, o.Get("weight"), ctx + ".weight");
  p.bias = GetFloatVector(env, o.Get("bias"), ctx + ".bias");
  if (hidden) {
    if (o.Get("hiddenWeight").IsUndefined() || o.Get("hiddenBias").IsUndefined())
      Throw(env, ctx + ".hiddenWeight and " + ctx + ".hiddenBias are required when hidden is true");
    p.hidden_weight = GetFloatVector(env, o.Get("hiddenWeight"), ctx + ".hiddenWeight");
    p.hidden_bias = GetFloatVector(env, o.Get("hiddenBias"), ctx + ".hiddenBias");
  } else if (!o.Get("hiddenWeight").IsUndefined() || !o.Get("hiddenBias").IsUndefined()) {
    Throw(env, ctx + ".hiddenWeight/hiddenBias given but the head has hidden: false");
  }
  return p;
}

// Features + targets of one call, with references that keep the arrays alive on the worker thread.
struct DataRefs {
  Batch batch;
  Napi::Reference<Napi::Value> features_ref, targets_ref;
};

void ReadData(Napi::Env env, Napi::Object o, const Config& cfg, const std::string& ctx, bool need_targets,
              DataRefs& out) {
  Napi::Float32Array f = GetF32(env, o.Get("features"), ctx + ".features");
  const size_t h = size_t(cfg.in_features);
  if (f.ElementLength() % h != 0) {
    std::ostringstream os;
    os << ctx << ".features has " << f.ElementLength() << " elements, not a multiple of inFeatures = " << h;
    Throw(env, os.str());
  }
  out.batch.features = f.Data();
  out.batch.n_rows = int64_t(f.ElementLength() / h);
  out.features_ref = Napi::Persistent(Napi::Value(f));
  if (!need_targets) return;
  Napi::Value t = o.Get("targets");
  if (cfg.loss == edu::head::Loss::CrossEntropy) {
    auto a = GetTyped<int32_t, napi_int32_array>(env, t, ctx + ".targets (class ids for loss 'ce')", "Int32Array");
    CheckLength(env, a.ElementLength(), size_t(out.batch.n_rows), ctx + ".targets");
    out.batch.classes = a.Data();
  } else {
    auto a = GetF32(env, t, ctx + ".targets (scores for loss 'mse')");
    CheckLength(env, a.ElementLength(), size_t(out.batch.n_rows), ctx + ".targets");
    out.batch.values = a.Data();
  }
  out.targets_ref = Napi::Persistent(t);
}

class HeadWrap : public Napi::ObjectWrap<HeadWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Head",
                       {InstanceMethod<&HeadWrap::TrainEpoch>("trainEpoch"),
                        InstanceMethod<&HeadWrap::Step>("step"),
                        InstanceMethod<&HeadWrap::Predict>("predict"),
                        InstanceMethod<&HeadWrap::EvalLoss>("evalLoss"),
                        InstanceMethod<&HeadWrap::GetState>("getState"),
                        InstanceMethod<&HeadWrap::SetState>("setState"),
                        InstanceMethod<&HeadWrap::Dispose>("dispose"),
                        InstanceAccessor<&HeadWrap::InFeatures>("inFeatures"),
                        InstanceAccessor<&HeadWrap::NumOutputs>("numOutputs"),
                        InstanceAccessor<&HeadWrap::Hidden>("hidden"),
                        InstanceAccessor<&HeadWrap::ParamCount>("paramCount"),
                        InstanceAccessor<&HeadWrap::Isa>("isa"),
                        InstanceAccessor<&HeadWrap::Busy>("busy"),
                        InstanceAccessor<&HeadWrap::StepCount>("stepCount")});
  }

  explicit HeadWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<HeadWrap>(info) {
    Napi::Env env = info.Env();
    if (!info.IsConstructCall()) Throw(env, "Head must be called with new");
    Napi::Object o = RequireObject(env, info[0], "Head options");
    const std::string ctx = "Head options";
    Config c;
    c.in_features = GetInt(o, "inFeatures", ctx, true, 0, 1);
    c.hidden = GetBool(o, "hidden", ctx, false);
    c.num_outputs = GetInt(o, "numOutputs", ctx, true, 0, 1);
    Napi::Value loss = o.Get("loss");
    const std::string ls = loss.IsString() ? loss.As<Napi::String>().Utf8Value() : "";
    if (ls == "ce") c.loss = edu::head::Loss::CrossEntropy;
    else if (ls == "mse") c.loss = edu::head::Loss::Mse;
    else Throw(env, "Head options.loss must be 'ce' or 'mse'");
    c.dropout = GetNumber(o, "dropout", ctx, false, 0.0);
    c.seed = uint64_t(GetInt(o, "seed", ctx, false, 0, 0));
    if (!o.Get("classWeights").IsUndefined() && !o.Get("classWeights").IsNull())
      c.class_weights = GetFloatVector(env, o.Get("classWeights"), ctx + ".classWeights");
    Napi::Object opt = RequireObject(env, o.Get("optimizer"), ctx + ".optimizer");
    Napi::Value betas = opt.Get("betas");
    if (!betas.IsUndefined()) {
      std::vector<float> b = GetFloatVector(env, betas, ctx + ".optimizer.betas");
      if (b.size() != 2) Throw(env, ctx + ".optimizer.betas must be [beta1, beta2]");
      // Read as doubles again: the float copy above would round 0.999.
      Napi::Value b0 = betas.IsArray() ? betas.As<Napi::Array>().Get(0u) : Napi::Value();
      Napi::Value b1 = betas.IsArray() ? betas.As<Napi::Array>().Get(1u) : Napi::Value();
      c.beta1 = b0.IsNumber() ? b0.As<Napi::Number>().DoubleValue() : b[0];
      c.beta2 = b1.IsNumber() ? b1.As<Napi::Number>().DoubleValue() : b[1];
    }
    c.eps = GetNumber(opt, "eps", ctx + ".optimizer", false, 1e-8);
    c.weight_decay = GetNumber(opt, "weightDecay", ctx + ".optimizer", false, 0.0);
    c.clip_grad_norm = GetNumber(o, "clipGradNorm", ctx, false, 0.0);
    c.threads = int(GetInt(o, "threads", ctx, false, 0, 0));
    Params init = ParamsFromJs(env, o.Get("init"), c.hidden, ctx + ".init");
    // Shapes against the given arrays before the Head allocates anything from inFeatures / numOutputs (a
    // huge numOutputs would otherwise allocate its default class weights, and C * H could overflow int64).
    auto shape = [&](size_t got, double want, const std::string& name, const char* dims) {
      if (double(got) != want) {
        std::ostringstream os;
        os.precision(17);
        os << ctx << ".init." << name << " has " << got << " elements, expected " << want << " (" << dims << ")";
        Throw(env, os.str());
      }
    };
    shape(init.weight.size(), double(c.num_outputs) * double(c.in_features), "weight", "numOutputs x inFeatures");
    shape(init.bias.size(), double(c.num_outputs), "bias", "numOutputs");
    if (c.hidden) {
      shape(init.hidden_weight.size(), double(c.in_features) * double(c.in_features), "hiddenWeight", "inFeatures x inFeatures");
      shape(init.hidden_bias.size(), double(c.in_features), "hiddenBias", "inFeatures");
    }
    try {
      head_ = std::make_unique<Head>(c, init);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
  }

 private:
  Head& Ready(Napi::Env env, const char* method) {
    if (!head_) Throw(env, std::string("Head.") + method + ": the head was disposed");
    if (busy_)
      Throw(env, std::string("Head.") + method +
                     ": a trainEpoch/predict call is still running on this head; await it first");
    return *head_;
  }

  class Worker : public Napi::AsyncWorker {
   public:
    Worker(Napi::Env env, HeadWrap* self) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), self_(self) {
      self_ref_ = Napi::Persistent(self->Value());
      self_->busy_ = true;
    }
    Napi::Promise Promise() { return deferred_.Promise(); }
    // A worker dropped before Queue() (bad arguments): settle its promise, which nobody holds, so that
    // N-API frees the deferred (an unsettled one leaks; found by LeakSanitizer). Resolve, not reject: an
    // unobserved rejection would be an unhandled rejection.
    void Abandon(Napi::Env env) { deferred_.Resolve(env.Undefined()); }

   protected:
    void OnOK() override {
      self_->busy_ = false;
      deferred_.Resolve(Result(Env()));
    }
    void OnError(const Napi::Error& e) override {
      self_->busy_ = false;
      deferred_.Reject(e.Value());
    }
    virtual Napi::Value Result(Napi::Env env) = 0;
    Napi::Promise::Deferred deferred_;
    HeadWrap* self_;
    Napi::ObjectReference self_ref_;
  };

  class EpochWorker : public Worker {
   public:
    EpochWorker(Napi::Env env, HeadWrap* self) : Worker(env, self) {}
    DataRefs data;
    Napi::Reference<Napi::Value> order_ref, lrs_ref;
    const int32_t* order = nullptr;
    int64_t n_order = 0, batch_size = 0;
    const double* lrs = nullptr;
    int64_t n_lrs = 0;
    edu::head::EpochStats stats;
    void Execute() override {
      try {
        stats = self_->head_->train_epoch(data.batch, order, n_order, batch_size, lrs, n_lrs);
      } catch (const std::exception& e) {
        SetError(std::string("Head.trainEpoch: ") + e.what());
      }
    }
    Napi::Value Result(Napi::Env env) override {
      Napi::Object o = Napi::Object::New(env);
      o.Set("meanLoss", stats.mean_loss);
      o.Set("steps", double(stats.steps));
      o.Set("lastGradNorm", stats.last_grad_norm);
      return o;
    }
  };

  class PredictWorker : public Worker {
   public:
    PredictWorker(Napi::Env env, HeadWrap* self) : Worker(env, self) {}
    DataRefs data;
    Napi::Reference<Napi::Float32Array> out_ref;
    float* out = nullptr;
    void Execute() override {
      try {
        self_->head_->predict(data.batch.features, data.batch.n_rows, out);
      } catch (const std::exception& e) {
        SetError(std::string("Head.predict: ") + e.what());
      }
    }
    Napi::Value Result(Napi::Env) override { return out_ref.Value(); }
  };

  // Promise-returning methods report every error as a rejection, never as a synchronous throw.
  template <Napi::Value (HeadWrap::*Impl)(const Napi::CallbackInfo&)>
  Napi::Value AsPromise(const Napi::CallbackInfo& info) {
    try {
      return (this->*Impl)(info);
    } catch (const Napi::Error& e) {
      return edu::napi::rejected_promise(info.Env(), e.Value());
    }
  }
  Napi::Value TrainEpoch(const Napi::CallbackInfo& info) { return AsPromise<&HeadWrap::TrainEpochImpl>(info); }
  Napi::Value Predict(const Napi::CallbackInfo& info) { return AsPromise<&HeadWrap::PredictImpl>(info); }

  // trainEpoch({features, targets, order, batchSize, lrs}) -> Promise<{meanLoss, steps, lastGradNorm}>
  Napi::Value TrainEpochImpl(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Head& h = Ready(env, "trainEpoch");
    const std::string ctx = "trainEpoch request";
    Napi::Object o = RequireObject(env, info[0], ctx);
    auto* w = new EpochWorker(env, this);
    try {
      ReadData(env, o, h.config(), ctx, true, w->data);
      auto order = GetTyped<int32_t, napi_int32_array>(env, o.Get("order"), ctx + ".order", "Int32Array");
      w->order = order.Data();
      w->n_order = int64_t(order.ElementLength());
      w->order_ref = Napi::Persistent(Napi::Value(order));
      w->batch_size = GetInt(o, "batchSize", ctx, true, 0, 1);
      auto lrs = GetTyped<double, napi_float64_array>(env, o.Get("lrs"), ctx + ".lrs", "Float64Array");
      w->lrs = lrs.Data();
      w->n_lrs = int64_t(lrs.ElementLength());
      w->lrs_ref = Napi::Persistent(Napi::Value(lrs));
      if (w->n_order == 0) Throw(env, ctx + ".order is empty");
      const int64_t steps = (w->n_order + w->batch_size - 1) / w->batch_size;
      if (w->n_lrs != steps) {
        std::ostringstream os;
        os << ctx << ".lrs has " << w->n_lrs << " entries, expected ceil(order.length / batchSize) = " << steps;
        Throw(env, os.str());
      }
    } catch (...) {
      busy_ = false;
      w->Abandon(env);
      delete w;
      throw;
    }
    Napi::Promise p = w->Promise();
    w->Queue();
    return p;
  }

  // predict(features: Float32Array [n * inFeatures]) -> Promise<Float32Array [n * numOutputs]>
  Napi::Value PredictImpl(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Head& h = Ready(env, "predict");
    auto* w = new PredictWorker(env, this);
    try {
      Napi::Object o = Napi::Object::New(env);
      o.Set("features", info[0]);
      ReadData(env, o, h.config(), "predict", false, w->data);
      Napi::Float32Array out = Napi::Float32Array::New(env, size_t(w->data.batch.n_rows * h.config().num_outputs));
      w->out = out.Data();
      w->out_ref = Napi::Persistent(out);
    } catch (...) {
      busy_ = false;
      w->Abandon(env);
      delete w;
      throw;
    }
    Napi::Promise p = w->Promise();
    w->Queue();
    return p;
  }

  // step({features, targets, lr, indices?, returnGrads?}) -> {loss, gradNorm, grads?}; synchronous (small batches).
  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Head& h = Ready(env, "step");
    const std::string ctx = "step request";
    Napi::Object o = RequireObject(env, info[0], ctx);
    DataRefs d;
    ReadData(env, o, h.config(), ctx, true, d);
    const double lr = GetNumber(o, "lr", ctx, true, 0);
    const int32_t* idx = nullptr;
    int64_t b = d.batch.n_rows;
    Napi::Value iv = o.Get("indices");
    if (!iv.IsUndefined() && !iv.IsNull()) {
      auto ia = GetTyped<int32_t, napi_int32_array>(env, iv, ctx + ".indices", "Int32Array");
      idx = ia.Data();
      b = int64_t(ia.ElementLength());
    }
    const bool want = GetBool(o, "returnGrads", ctx, false);
    Params grads;
    edu::head::StepStats st;
    try {
      st = h.step(d.batch, idx, b, lr, want ? &grads : nullptr);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, std::string("Head.step: ") + e.what());
    }
    Napi::Object r = Napi::Object::New(env);
    r.Set("loss", st.loss);
    r.Set("gradNorm", st.grad_norm);
    if (want) r.Set("grads", ParamsToJs(env, grads, h.config().hidden));
    return r;
  }

  // evalLoss({features, targets}) -> number (dropout off, no update); synchronous.
  Napi::Value EvalLoss(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Head& h = Ready(env, "evalLoss");
    DataRefs d;
    ReadData(env, RequireObject(env, info[0], "evalLoss request"), h.config(), "evalLoss request", true, d);
    try {
      return Napi::Number::New(env, h.eval_loss(d.batch));
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, std::string("Head.evalLoss: ") + e.what());
    }
  }

  Napi::Value GetState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Head& h = Ready(env, "getState");
    State s = h.get_state();
    const bool hid = h.config().hidden;
    Napi::Object o = ParamsToJs(env, s.params, hid);
    o.Set("expAvg", ParamsToJs(env, s.exp_avg, hid));
    o.Set("expAvgSq", ParamsToJs(env, s.exp_avg_sq, hid));
    o.Set("step", double(s.step));
    return o;
  }

  Napi::Value SetState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Head& h = Ready(env, "setState");
    const bool hid = h.config().hidden;
    Napi::Object o = RequireObject(env, info[0], "setState(state)");
    State s;
    s.params = ParamsFromJs(env, o, hid, "state");
    s.exp_avg = ParamsFromJs(env, o.Get("expAvg"), hid, "state.expAvg");
    s.exp_avg_sq = ParamsFromJs(env, o.Get("expAvgSq"), hid, "state.expAvgSq");
    s.step = GetInt(o, "step", "state", true, 0, 0);
    try {
      h.set_state(s);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, std::string("Head.setState: ") + e.what());
    }
    return env.Undefined();
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (busy_) Throw(info.Env(), "Head.dispose: a trainEpoch/predict call is still running; await it first");
    head_.reset();
    return info.Env().Undefined();
  }

  Napi::Value InFeatures(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(Ready(info.Env(), "inFeatures").config().in_features));
  }
  Napi::Value NumOutputs(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(Ready(info.Env(), "numOutputs").config().num_outputs));
  }
  Napi::Value Hidden(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), Ready(info.Env(), "hidden").config().hidden);
  }
  Napi::Value ParamCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(Ready(info.Env(), "paramCount").param_count()));
  }
  Napi::Value Isa(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), edu::head::detail::best_kernels().name);
  }
  Napi::Value Busy(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), busy_); }
  Napi::Value StepCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(Ready(info.Env(), "stepCount").step_count()));
  }

  std::unique_ptr<Head> head_;
  bool busy_ = false;
};

}  // namespace

void RegisterHead(Napi::Env env, Napi::Object exports) { exports.Set("Head", HeadWrap::Init(env)); }

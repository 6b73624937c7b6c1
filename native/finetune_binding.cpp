// FineTuner: Napi::ObjectWrap over edu::train::FineTuneModel (full fine-tuning on the CPU), plus
// fineTuneKernels (synchronous LayerNorm / GELU / attention backward, for finite-difference tests).
// Contract: src/native/finetune-types.ts.
//
// Every FineTuner method that touches the model runs in an AsyncWorker, one at a time per FineTuner
// (a FIFO on the JS thread, like Encoder.forward), so training never blocks the event loop and calls
// never race. Inputs are copied off the JS heap before the worker starts. Workers hold a shared_ptr to
// the model, so dispose() while calls are queued frees it only after they settle.
#include "finetune_binding.h"

#include <cmath>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "convert.h"
#include "edu_train_encoder.h"

namespace edu {
namespace napi {
namespace {

using train::FineTuneModel;

// ---- argument parsing ---------------------------------------------------------------------------
Napi::Object object_arg(Napi::Env env, const Napi::Value& v, const std::string& name) {
  if (!v.IsObject() || v.IsArray() || v.IsTypedArray()) type_error(env, name + " must be an object, got " + describe(v));
  return v.As<Napi::Object>();
}

double opt_number(Napi::Env env, const Napi::Object& o, const char* key, const std::string& ctx, double def) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return def;
  const double d = to_number(env, v, ctx + "." + key);
  if (!std::isfinite(d)) error(env, ctx + "." + key + " must be finite");
  return d;
}

train::TrainConfig parse_train_config(Napi::Env env, const Napi::Value& v) {
  const Napi::Object o = object_arg(env, v, "config");
  train::TrainConfig c;
  c.encoder = parse_encoder_config(env, o.Get("encoder"), "config.encoder");
  const std::string head = to_string(env, o.Get("head"), "config.head");
  if (head == "none") c.head = train::TrainHead::None;
  else if (head == "linear") c.head = train::TrainHead::Linear;
  else if (head == "bert") c.head = train::TrainHead::Bert;
  else if (head == "roberta") c.head = train::TrainHead::Roberta;
  else if (head == "electra") c.head = train::TrainHead::Electra;
  else error(env, "config.head must be 'none', 'linear', 'bert', 'roberta' or 'electra', got '" + head + "'");
  const Napi::Value pooling = o.Get("pooling");
  if (!pooling.IsUndefined() && !pooling.IsNull()) {
    const std::string p = to_string(env, pooling, "config.pooling");
    if (p == "mean") c.pooling = train::Pooling::Mean;
    else if (p == "cls") c.pooling = train::Pooling::Cls;
    else error(env, "config.pooling must be 'mean' or 'cls', got '" + p + "'");
  }
  const Napi::Value n = o.Get("numOutputs");
  c.numOutputs = n.IsUndefined() ? 0 : to_int(env, n, "config.numOutputs", 0, 1 << 20);
  const std::string loss = to_string(env, o.Get("loss"), "config.loss");
  if (loss == "cross-entropy") c.loss = train::LossKind::CrossEntropy;
  else if (loss == "mse") c.loss = train::LossKind::Mse;
  else if (loss == "mnrl") c.loss = train::LossKind::Mnrl;
  else error(env, "config.loss must be 'cross-entropy', 'mse' or 'mnrl', got '" + loss + "'");
  const Napi::Value cw = o.Get("classWeights");
  if (!cw.IsUndefined() && !cw.IsNull()) {
    Napi::Float32Array a = to_f32(env, cw, "config.classWeights");
    c.classWeights.assign(a.Data(), a.Data() + a.ElementLength());
  }
  c.mnrlScale = static_cast<float>(opt_number(env, o, "mnrlScale", "config", 20.0));
  const Napi::Value ov = o.Get("optimizer");
  if (!ov.IsUndefined() && !ov.IsNull()) {
    const Napi::Object op = object_arg(env, ov, "config.optimizer");
    train::OptimizerConfig& oc = c.optimizer;
    oc.beta1 = opt_number(env, op, "beta1", "config.optimizer", oc.beta1);
    oc.beta2 = opt_number(env, op, "beta2", "config.optimizer", oc.beta2);
    oc.eps = opt_number(env, op, "eps", "config.optimizer", oc.eps);
    oc.weightDecay = opt_number(env, op, "weightDecay", "config.optimizer", oc.weightDecay);
    oc.maxGradNorm = opt_number(env, op, "maxGradNorm", "config.optimizer", oc.maxGradNorm);
    const Napi::Value d = op.Get("decayBiasAndNorm");
    if (!d.IsUndefined() && !d.IsNull()) oc.decayBiasAndNorm = to_bool(env, d, "config.optimizer.decayBiasAndNorm");
  }
  const Napi::Value dv = o.Get("dropout");
  if (!dv.IsUndefined() && !dv.IsNull()) {
    const Napi::Object d = object_arg(env, dv, "config.dropout");
    c.dropout.hidden = static_cast<float>(opt_number(env, d, "hidden", "config.dropout", 0.0));
    c.dropout.attention = static_cast<float>(opt_number(env, d, "attention", "config.dropout", 0.0));
    c.dropout.classifier = static_cast<float>(opt_number(env, d, "classifier", "config.dropout", -1.0));
    const double seed = opt_number(env, d, "seed", "config.dropout", 0.0);
    if (!(seed >= 0 && seed <= 9007199254740991.0 && seed == std::floor(seed)))
      error(env, "config.dropout.seed must be a non-negative integer");
    c.dropout.seed = static_cast<uint64_t>(seed);
  }
  guard(env, [&] { train::validate_train_config(c); });
  return c;
}

// A batch copied off the JS heap.
struct OwnedSeq {
  std::vector<int32_t> ids, mask, types;
  bool hasTypes = false;
  int batch = 0, seqLen = 0;
};

void parse_seq(Napi::Env env, const Napi::Object& o, const std::string& ctx, OwnedSeq& s) {
  auto copy = [&](const char* name, std::vector<int32_t>& dst) {
    Napi::Int32Array a = to_i32(env, o.Get(name), ctx + "." + name);
    dst.assign(a.Data(), a.Data() + a.ElementLength());
  };
  s.batch = to_int(env, o.Get("batch"), ctx + ".batch", 1, 1 << 24);
  s.seqLen = to_int(env, o.Get("seqLen"), ctx + ".seqLen", 1, 1 << 20);
  copy("inputIds", s.ids);
  copy("attentionMask", s.mask);
  const Napi::Value tt = o.Get("tokenTypeIds");
  if (!tt.IsUndefined() && !tt.IsNull()) {
    copy("tokenTypeIds", s.types);
    s.hasTypes = true;
  }
  const size_t n = static_cast<size_t>(s.batch) * s.seqLen;
  auto len = [&](const char* name, size_t got) {
    if (got != n)
      error(env, ctx + "." + name + " has length " + std::to_string(got) + ", expected batch * seqLen = " +
                     std::to_string(n));
  };
  len("inputIds", s.ids.size());
  len("attentionMask", s.mask.size());
  if (s.hasTypes) len("tokenTypeIds", s.types.size());
}

struct OwnedBatch {
  OwnedSeq a, p;
  bool hasPositive = false;
  std::vector<int32_t> labels;
  std::vector<float> targets;
  double normalizer = 0;
  train::TrainBatch view() const {
    train::TrainBatch b;
    b.inputIds = a.ids.data();
    b.attentionMask = a.mask.data();
    b.tokenTypeIds = a.hasTypes ? a.types.data() : nullptr;
    b.batch = a.batch;
    b.seqLen = a.seqLen;
    b.classLabels = labels.empty() ? nullptr : labels.data();
    b.targets = targets.empty() ? nullptr : targets.data();
    if (hasPositive) {
      b.posInputIds = p.ids.data();
      b.posAttentionMask = p.mask.data();
      b.posTokenTypeIds = p.hasTypes ? p.types.data() : nullptr;
      b.posBatch = p.batch;
      b.posSeqLen = p.seqLen;
    }
    b.normalizer = normalizer;
    return b;
  }
};

std::shared_ptr<OwnedBatch> parse_batch(Napi::Env env, const Napi::Value& v, const char* what) {
  const Napi::Object o = object_arg(env, v, std::string(what));
  auto b = std::make_shared<OwnedBatch>();
  parse_seq(env, o, what, b->a);
  const Napi::Value lv = o.Get("labels");
  if (!lv.IsUndefined() && !lv.IsNull()) {
    Napi::Int32Array a = to_i32(env, lv, std::string(what) + ".labels");
    b->labels.assign(a.Data(), a.Data() + a.ElementLength());
    if (static_cast<int>(b->labels.size()) != b->a.batch)
      error(env, std::string(what) + ".labels has length " + std::to_string(b->labels.size()) + ", expected batch = " +
                     std::to_string(b->a.batch));
  }
  const Napi::Value tv = o.Get("targets");
  if (!tv.IsUndefined() && !tv.IsNull()) {
    Napi::Float32Array a = to_f32(env, tv, std::string(what) + ".targets");
    b->targets.assign(a.Data(), a.Data() + a.ElementLength());
    if (static_cast<int>(b->targets.size()) != b->a.batch)
      error(env, std::string(what) + ".targets has length " + std::to_string(b->targets.size()) + ", expected batch = " +
                     std::to_string(b->a.batch));
  }
  const Napi::Value pv = o.Get("positive");
  if (!pv.IsUndefined() && !pv.IsNull()) {
    parse_seq(env, object_arg(env, pv, std::string(what) + ".positive"), std::string(what) + ".positive", b->p);
    b->hasPositive = true;
  }
  b->normalizer = opt_number(env, o, "normalizer", what, 0.0);
  return b;
}

Napi::Float32Array f32(Napi::Env env, const float* p, size_t n) {
  Napi::Float32Array a = Napi::Float32Array::New(env, n);
  if (n) std::memcpy(a.Data(), p, n * sizeof(float));
  return a;
}

// ---- queued async tasks -------------------------------------------------------------------------
class TaskWorker;

struct TaskQueue {
  std::deque<TaskWorker*> waiting;
  bool running = false;
  void submit(TaskWorker* w);
  void finished();
};

class TaskWorker : public Napi::AsyncWorker {
 public:
  using Exec = std::function<void()>;
  using Done = std::function<Napi::Value(Napi::Env)>;
  TaskWorker(Napi::Env env, const char* name, Exec exec, Done done, std::shared_ptr<TaskQueue> queue)
      : Napi::AsyncWorker(env, name),
        name_(name),
        deferred_(Napi::Promise::Deferred::New(env)),
        exec_(std::move(exec)),
        done_(std::move(done)),
        queue_(std::move(queue)) {}
  Napi::Promise promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      exec_();
    } catch (const std::bad_alloc&) {
      SetError(std::string("out of memory in ") + name_ + " (use smaller micro-batches)");
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError(std::string("unknown C++ exception in ") + name_);
    }
    exec_ = nullptr;
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(done_(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const std::exception& e) {
      deferred_.Reject(Napi::Error::New(env, std::string(name_) + ": " + e.what()).Value());
    }
    done_ = nullptr;
    queue_->finished();
  }
  void OnError(const Napi::Error& e) override {
    deferred_.Reject(e.Value());
    done_ = nullptr;
    queue_->finished();
  }

 private:
  const char* name_;
  Napi::Promise::Deferred deferred_;
  Exec exec_;
  Done done_;
  std::shared_ptr<TaskQueue> queue_;
};

void TaskQueue::submit(TaskWorker* w) {
  if (running) {
    waiting.push_back(w);
    return;
  }
  running = true;
  w->Queue();
}

void TaskQueue::finished() {
  running = false;
  if (waiting.empty()) return;
  TaskWorker* next = waiting.front();
  waiting.pop_front();
  running = true;
  next->Queue();
}

struct ParamCopy {
  std::vector<std::string> names;
  std::vector<std::vector<float>> data;
};

class FineTunerWrap : public Napi::ObjectWrap<FineTunerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FineTuner",
                       {InstanceMethod<&FineTunerWrap::Accumulate>("accumulate"),
                        InstanceMethod<&FineTunerWrap::ApplyStep>("applyStep"),
                        InstanceMethod<&FineTunerWrap::Step>("step"),
                        InstanceMethod<&FineTunerWrap::Predict>("predict"),
                        InstanceMethod<&FineTunerWrap::GetWeights>("getWeights"),
                        InstanceMethod<&FineTunerWrap::GetGradients>("getGradients"),
                        InstanceMethod<&FineTunerWrap::GradNorm>("gradNorm"),
                        InstanceMethod<&FineTunerWrap::ZeroGrad>("zeroGrad"),
                        InstanceMethod<&FineTunerWrap::ActivationBytes>("activationBytes"),
                        InstanceMethod<&FineTunerWrap::ForwardPooled>("forwardPooled"),
                        InstanceMethod<&FineTunerWrap::BackwardPooled>("backwardPooled"),
                        InstanceMethod<&FineTunerWrap::NextDropoutCall>("nextDropoutCall"),
                        InstanceMethod<&FineTunerWrap::Dispose>("dispose"),
                        InstanceAccessor<&FineTunerWrap::GetParams>("params"),
                        InstanceAccessor<&FineTunerWrap::GetStepCount>("stepCount"),
                        InstanceAccessor<&FineTunerWrap::GetTrainable>("trainableParameters"),
                        InstanceAccessor<&FineTunerWrap::GetIsa>("isa"),
                        InstanceAccessor<&FineTunerWrap::GetThreads>("threads")});
  }

  explicit FineTunerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FineTunerWrap>(info) {
    Napi::Env env = info.Env();
    if (!info.IsConstructCall()) type_error(env, "FineTuner must be called with new");
    if (info.Length() < 2) type_error(env, "new FineTuner(config, weights, options?) needs at least 2 arguments");
    const train::TrainConfig config = parse_train_config(env, info[0]);
    const Napi::Value wv = info[1];
    if (!wv.IsObject() || wv.IsArray() || wv.IsTypedArray())
      type_error(env, "weights must be an object of name -> Float32Array, got " + describe(wv));
    Napi::Object opts;
    const bool hasOpts = options_at(info, 2, opts);
    const Isa isa = isa_option(env, hasOpts ? &opts : nullptr);
    const int threads = threads_option(env, hasOpts ? &opts : nullptr);
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
    model_ = guard(env, [&] { return std::make_shared<FineTuneModel>(config, weights, isa, threads); });
    isa_ = isa;
    threads_ = model_->threads();
    trainable_ = static_cast<double>(model_->param_count());
  }

 private:
  // Runs exec on a worker (queued behind earlier calls) and resolves with done(env). Never throws.
  Napi::Value Queue(const Napi::CallbackInfo& info, const char* name,
                    const std::function<void(std::shared_ptr<FineTuneModel>&, TaskWorker::Exec&, TaskWorker::Done&)>& prepare) {
    Napi::Env env = info.Env();
    auto rejected = [&](const Napi::Value& reason) { return rejected_promise(env, reason); };
    std::shared_ptr<FineTuneModel> model = model_;
    if (!model) return rejected(Napi::Error::New(env, "FineTuner has been disposed").Value());
    try {
      TaskWorker::Exec exec;
      TaskWorker::Done done;
      guard(env, [&] { prepare(model, exec, done); });
      auto* w = new TaskWorker(env, name, std::move(exec), std::move(done), queue_);
      Napi::Promise p = w->promise();
      queue_->submit(w);
      return p;
    } catch (const Napi::Error& e) {
      return rejected(e.Value());
    }
  }

  static Napi::Object accumulate_js(Napi::Env env, const train::AccumulateResult& r) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("loss", r.loss);
    o.Set("outputs", f32(env, r.outputs.data(), r.outputs.size()));
    o.Set("rows", r.rows);
    o.Set("cols", r.cols);
    return o;
  }

  Napi::Value Accumulate(const Napi::CallbackInfo& info) {
    return Queue(info, "FineTuner.accumulate", [&](std::shared_ptr<FineTuneModel>& m, TaskWorker::Exec& exec, TaskWorker::Done& done) {
      if (info.Length() < 1) type_error(info.Env(), "accumulate(batch) needs a batch object");
      auto batch = parse_batch(info.Env(), info[0], "batch");
      auto res = std::make_shared<train::AccumulateResult>();
      exec = [m, batch, res] { *res = m->accumulate(batch->view()); };
      done = [res](Napi::Env env) -> Napi::Value { return accumulate_js(env, *res); };
    });
  }

  static double lr_arg(const Napi::CallbackInfo& info, size_t i, const char* call) {
    if (info.Length() <= i) type_error(info.Env(), std::string(call) + " needs the learning rate");
    const double lr = to_number(info.Env(), info[i], "lr");
    if (!(std::isfinite(lr) && lr >= 0)) error(info.Env(), "lr must be a finite number >= 0");
    return lr;
  }

  static void step_js(Napi::Object& o, const train::StepResult& s) {
    o.Set("gradNorm", s.gradNorm);
    o.Set("clipCoef", s.clipCoef);
    o.Set("step", static_cast<double>(s.step));
  }

  Napi::Value ApplyStep(const Napi::CallbackInfo& info) {
    return Queue(info, "FineTuner.applyStep", [&](std::shared_ptr<FineTuneModel>& m, TaskWorker::Exec& exec, TaskWorker::Done& done) {
      const double lr = lr_arg(info, 0, "applyStep(lr)");
      auto res = std::make_shared<train::StepResult>();
      exec = [m, lr, res] { *res = m->apply_step(lr); };
      done = [count = stepCount_, res](Napi::Env env) -> Napi::Value {
        *count = static_cast<double>(res->step);
        Napi::Object o = Napi::Object::New(env);
        step_js(o, *res);
        return o;
      };
    });
  }

  Napi::Value Step(const Napi::CallbackInfo& info) {
    return Queue(info, "FineTuner.step", [&](std::shared_ptr<FineTuneModel>& m, TaskWorker::Exec& exec, TaskWorker::Done& done) {
      if (info.Length() < 1) type_error(info.Env(), "step(batch, lr) needs a batch object");
      auto batch = parse_batch(info.Env(), info[0], "batch");
      const double lr = lr_arg(info, 1, "step(batch, lr)");
      auto acc = std::make_shared<train::AccumulateResult>();
      auto res = std::make_shared<train::StepResult>();
      exec = [m, batch, lr, acc, res] {
        *acc = m->accumulate(batch->view());
        *res = m->apply_step(lr);
      };
      done = [count = stepCount_, acc, res](Napi::Env env) -> Napi::Value {
        *count = static_cast<double>(res->step);
        Napi::Object o = accumulate_js(env, *acc);
        step_js(o, *res);
        return o;
      };
    });
  }

  Napi::Value Predict(const Napi::CallbackInfo& info) {
    return Queue(info, "FineTuner.predict", [&](std::shared_ptr<FineTuneModel>& m, TaskWorker::Exec& exec, TaskWorker::Done& done) {
      if (info.Length() < 1) type_error(info.Env(), "predict(request) needs a request object");
      auto batch = parse_batch(info.Env(), info[0], "request");
      bool pooled = false;
      const Napi::Value pv = info[0].As<Napi::Object>().Get("pooled");
      if (!pv.IsUndefined() && !pv.IsNull()) pooled = to_bool(info.Env(), pv, "request.pooled");
      auto res = std::make_shared<train::PredictResult>();
      exec = [m, batch, pooled, res] { *res = m->predict(batch->view(), pooled); };
      done = [res](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        if (!res->logits.empty()) o.Set("logits", f32(env, res->logits.data(), res->logits.size()));
        if (!res->pooled.empty()) o.Set("pooled", f32(env, res->pooled.data(), res->pooled.size()));
        return o;
      };
    });
  }

  // ---- GradCache --------------------------------------------------------------------------------
  static int pass_arg(Napi::Env env, const Napi::Object& o, const char* what) {
    const Napi::Value v = o.Get("pass");
    if (v.IsUndefined() || v.IsNull()) type_error(env, std::string(what) + ".pass is required (an integer in [0, 2^20))");
    return to_int(env, v, std::string(what) + ".pass", 0, (1 << 20) - 1);
  }

  Napi::Value ForwardPooled(const Napi::CallbackInfo& info) {
    return Queue(info, "FineTuner.forwardPooled", [&](std::shared_ptr<FineTuneModel>& m, TaskWorker::Exec& exec, TaskWorker::Done& done) {
      if (info.Length() < 1) type_error(info.Env(), "forwardPooled(request) needs a request object");
      auto batch = parse_batch(info.Env(), info[0], "request");
      const int pass = pass_arg(info.Env(), info[0].As<Napi::Object>(), "request");
      auto res = std::make_shared<std::vector<float>>();
      exec = [m, batch, pass, res] { *res = m->forward_pooled(batch->view(), pass); };
      done = [res](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("pooled", f32(env, res->data(), res->size()));
        return o;
      };
    });
  }

  Napi::Value BackwardPooled(const Napi::CallbackInfo& info) {
    return Queue(info, "FineTuner.backwardPooled", [&](std::shared_ptr<FineTuneModel>& m, TaskWorker::Exec& exec, TaskWorker::Done& done) {
      Napi::Env env = info.Env();
      if (info.Length() < 1) type_error(env, "backwardPooled(request) needs a request object");
      auto batch = parse_batch(env, info[0], "request");
      const Napi::Object o = info[0].As<Napi::Object>();
      const int pass = pass_arg(env, o, "request");
      Napi::Float32Array g = to_f32(env, o.Get("gradPooled"), "request.gradPooled");
      const size_t want = static_cast<size_t>(batch->a.batch) * m->config().encoder.hiddenSize;
      if (g.ElementLength() != want)
        error(env, "request.gradPooled has length " + std::to_string(g.ElementLength()) + ", expected batch * hiddenSize = " +
                       std::to_string(want));
      auto grad = std::make_shared<std::vector<float>>(g.Data(), g.Data() + g.ElementLength());
      for (size_t i = 0; i < grad->size(); ++i)
        if (!std::isfinite((*grad)[i])) error(env, "request.gradPooled[" + std::to_string(i) + "] is not finite");
      auto res = std::make_shared<std::vector<float>>();
      exec = [m, batch, pass, grad, res] { *res = m->backward_pooled(batch->view(), pass, grad->data(), grad->size()); };
      done = [res](Napi::Env env) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        out.Set("pooled", f32(env, res->data(), res->size()));
        return out;
      };
    });
  }

  Napi::Value NextDropoutCall(const Napi::CallbackInfo& info) {
    return Queue(info, "FineTuner.nextDropoutCall", [&](std::shared_ptr<FineTuneModel>& m, TaskWorker::Exec& exec, TaskWorker::Done& done) {
      exec = [m] { m->next_dropout_call(); };
      done = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
    });
  }

  Napi::Value CopyParams(const Napi::CallbackInfo& info, const char* name, bool grads) {
    return Queue(info, name, [&](std::shared_ptr<FineTuneModel>& m, TaskWorker::Exec& exec, TaskWorker::Done& done) {
      auto res = std::make_shared<ParamCopy>();
      exec = [m, res, grads] {
        std::lock_guard<std::mutex> lock(m->mutex());
        const auto& ps = m->params();
        res->names.reserve(ps.size());
        res->data.reserve(ps.size());
        for (size_t i = 0; i < ps.size(); ++i) {
          const float* p = grads ? m->grad_data(i) : m->param_data(i);
          res->names.push_back(ps[i].name);
          res->data.emplace_back(p, p + ps[i].size);
        }
      };
      done = [res](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        for (size_t i = 0; i < res->names.size(); ++i) o.Set(res->names[i], f32(env, res->data[i].data(), res->data[i].size()));
        return o;
      };
    });
  }

  Napi::Value GetWeights(const Napi::CallbackInfo& info) { return CopyParams(info, "FineTuner.getWeights", false); }
  Napi::Value GetGradients(const Napi::CallbackInfo& info) { return CopyParams(info, "FineTuner.getGradients", true); }

  Napi::Value GradNorm(const Napi::CallbackInfo& info) {
    return Queue(info, "FineTuner.gradNorm", [&](std::shared_ptr<FineTuneModel>& m, TaskWorker::Exec& exec, TaskWorker::Done& done) {
      auto res = std::make_shared<double>(0.0);
      exec = [m, res] { *res = m->grad_norm(); };
      done = [res](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *res); };
    });
  }

  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    return Queue(info, "FineTuner.zeroGrad", [&](std::shared_ptr<FineTuneModel>& m, TaskWorker::Exec& exec, TaskWorker::Done& done) {
      exec = [m] { m->zero_grad(); };
      done = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
    });
  }

  Napi::Value ActivationBytes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!model_) error(env, "FineTuner has been disposed");
    if (info.Length() < 2) type_error(env, "activationBytes(batch, seqLen) needs 2 arguments");
    const int b = to_int(env, info[0], "batch", 1, 1 << 24);
    const int l = to_int(env, info[1], "seqLen", 1, 1 << 20);
    return Napi::Number::New(env, static_cast<double>(model_->activation_bytes(b, l)));
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    model_.reset();
    return info.Env().Undefined();
  }

  Napi::Value GetParams(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!model_) return Napi::Array::New(env, 0);
    const auto& ps = model_->params();  // immutable after construction
    Napi::Array a = Napi::Array::New(env, ps.size());
    for (size_t i = 0; i < ps.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", ps[i].name);
      Napi::Array shape = Napi::Array::New(env, ps[i].cols > 0 ? 2 : 1);
      shape.Set(0u, ps[i].rows);
      if (ps[i].cols > 0) shape.Set(1u, ps[i].cols);
      o.Set("shape", shape);
      o.Set("trainable", ps[i].trainable);
      a.Set(static_cast<uint32_t>(i), o);
    }
    return a;
  }
  Napi::Value GetStepCount(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), *stepCount_); }
  Napi::Value GetTrainable(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), trainable_); }
  Napi::Value GetIsa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), isa_name(isa_)); }
  Napi::Value GetThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), threads_); }

  std::shared_ptr<FineTuneModel> model_;
  std::shared_ptr<TaskQueue> queue_ = std::make_shared<TaskQueue>();
  Isa isa_ = Isa::Scalar;
  int threads_ = 1;
  std::shared_ptr<double> stepCount_ = std::make_shared<double>(0.0);  // shared with workers (the wrap may be collected first)
  double trainable_ = 0;
};

// ---- synchronous kernels for tests --------------------------------------------------------------
Napi::Value KLayerNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 7) type_error(env, "layerNorm(x, gamma, beta, rows, cols, eps, dy) needs 7 arguments");
  Napi::Float32Array x = to_f32(env, info[0], "x"), g = to_f32(env, info[1], "gamma"), b = to_f32(env, info[2], "beta");
  const int rows = to_int(env, info[3], "rows", 1, 1 << 24), cols = to_int(env, info[4], "cols", 1, 1 << 20);
  const float eps = static_cast<float>(to_number(env, info[5], "eps"));
  Napi::Float32Array dy = to_f32(env, info[6], "dy");
  const size_t n = static_cast<size_t>(rows) * cols;
  if (x.ElementLength() != n || dy.ElementLength() != n || g.ElementLength() != static_cast<size_t>(cols) ||
      b.ElementLength() != static_cast<size_t>(cols))
    error(env, "layerNorm: sizes do not match rows x cols");
  std::vector<float> y(n), xhat(n), rstd(rows), dx(n), dg(cols, 0.f), db(cols, 0.f);
  train::kernels::layer_norm_fwd(x.Data(), g.Data(), b.Data(), y.data(), xhat.data(), rstd.data(), rows, cols, eps);
  train::kernels::layer_norm_bwd(dy.Data(), xhat.data(), rstd.data(), g.Data(), dx.data(), dg.data(), db.data(), rows, cols);
  Napi::Object o = Napi::Object::New(env);
  o.Set("y", f32(env, y.data(), n));
  o.Set("dx", f32(env, dx.data(), n));
  o.Set("dgamma", f32(env, dg.data(), cols));
  o.Set("dbeta", f32(env, db.data(), cols));
  return o;
}

Napi::Value KGelu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2) type_error(env, "gelu(u, dy) needs 2 arguments");
  Napi::Float32Array u = to_f32(env, info[0], "u"), dy = to_f32(env, info[1], "dy");
  if (u.ElementLength() != dy.ElementLength()) error(env, "gelu: u and dy differ in length");
  std::vector<float> du(u.ElementLength());
  train::kernels::gelu_bwd(u.Data(), dy.Data(), du.data(), du.size());
  Napi::Object o = Napi::Object::New(env);
  o.Set("du", f32(env, du.data(), du.size()));
  return o;
}

Napi::Value KAttention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 7) type_error(env, "attention(qkv, mask, batch, seqLen, heads, headDim, dout) needs 7 arguments");
  Napi::Float32Array qkv = to_f32(env, info[0], "qkv");
  Napi::Int32Array mask = to_i32(env, info[1], "mask");
  const int B = to_int(env, info[2], "batch", 1, 4096), L = to_int(env, info[3], "seqLen", 1, 4096);
  const int nh = to_int(env, info[4], "heads", 1, 256), D = to_int(env, info[5], "headDim", 1, 1024);
  Napi::Float32Array dout = to_f32(env, info[6], "dout");
  const size_t T = static_cast<size_t>(B) * L, H = static_cast<size_t>(nh) * D;
  if (qkv.ElementLength() != T * 3 * H || mask.ElementLength() != T || dout.ElementLength() != T * H)
    error(env, "attention: sizes do not match (qkv [B*L, 3*heads*headDim], mask [B*L], dout [B*L, heads*headDim])");
  for (size_t i = 0; i < T; ++i)
    if (mask.Data()[i] != 0 && mask.Data()[i] != 1) error(env, "attention: mask must be 0/1");
  Napi::Object opts;
  const bool hasOpts = options_at(info, 7, opts);
  const Isa isa = isa_option(env, hasOpts ? &opts : nullptr);
  std::vector<float> probs(static_cast<size_t>(B) * nh * L * L), out(T * H), dqkv(T * 3 * H);
  const cpu::Context ctx{isa, nullptr};
  guard(env, [&] {
    train::kernels::attention_fwd(ctx, qkv.Data(), mask.Data(), B, L, nh, D, probs.data(), out.data());
    train::kernels::attention_bwd(ctx, qkv.Data(), mask.Data(), B, L, nh, D, probs.data(), dout.Data(), dqkv.data());
  });
  Napi::Object o = Napi::Object::New(env);
  o.Set("out", f32(env, out.data(), out.size()));
  o.Set("dqkv", f32(env, dqkv.data(), dqkv.size()));
  return o;
}

}  // namespace

void RegisterFineTune(Napi::Env env, Napi::Object exports) {
  exports.Set("FineTuner", FineTunerWrap::Define(env));
  Napi::Object k = Napi::Object::New(env);
  k.Set("layerNorm", Napi::Function::New(env, KLayerNorm, "layerNorm"));
  k.Set("gelu", Napi::Function::New(env, KGelu, "gelu"));
  k.Set("attention", Napi::Function::New(env, KAttention, "attention"));
  exports.Set("fineTuneKernels", k);
}

}  // namespace napi
}  // namespace edu

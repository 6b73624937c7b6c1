// `kernels`: the individual CPU kernels, synchronous, for unit tests against an independent reference.
// `cpuInfo`: what the CPU supports and which path 'auto' picks.
#include "kernels_binding.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "convert.h"
#include "edu_bf16.h"
#include "edu_cpu.h"

namespace edu {
namespace napi {
namespace {

constexpr long long kMaxDim = 1LL << 30;

void check_len(Napi::Env env, const char* name, size_t got, size_t expected, const std::string& shape) {
  if (got != expected)
    error(env, std::string(name) + " has length " + std::to_string(got) + ", expected " + shape + " = " +
                   std::to_string(expected));
}

void check_mask(Napi::Env env, const char* name, const int32_t* m, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (m[i] != 0 && m[i] != 1)
      error(env, std::string(name) + "[" + std::to_string(i) + "] = " + std::to_string(m[i]) + ", expected 0 or 1");
}

// A pool for one call (threads > 1), or none.
std::unique_ptr<ThreadPool> make_pool(int threads) {
  if (threads <= 1) return nullptr;
  return std::make_unique<ThreadPool>(threads);
}

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6) type_error(env, "gemm(a, w, bias, m, n, k, options?) needs 6 arguments");
  Napi::Float32Array a = to_f32(env, info[0], "a");
  Napi::Float32Array w = to_f32(env, info[1], "w");
  const bool hasBias = !(info[2].IsNull() || info[2].IsUndefined());
  Napi::Float32Array bias;
  if (hasBias) bias = to_f32(env, info[2], "bias");
  const int m = to_int(env, info[3], "m", 1, kMaxDim);
  const int n = to_int(env, info[4], "n", 1, kMaxDim);
  const int k = to_int(env, info[5], "k", 1, kMaxDim);
  Napi::Object opts;
  const bool hasOpts = options_at(info, 6, opts);
  bool transA = false;
  if (hasOpts && opts.Has("transA") && !opts.Get("transA").IsUndefined())
    transA = to_bool(env, opts.Get("transA"), "options.transA");
  const Isa isa = isa_option(env, hasOpts ? &opts : nullptr);
  const int threads = threads_option(env, hasOpts ? &opts : nullptr);
  const std::string ashape = transA ? "k * m (transA)" : "m * k";
  check_len(env, "a", a.ElementLength(), static_cast<size_t>(m) * k, ashape);
  check_len(env, "w", w.ElementLength(), static_cast<size_t>(n) * k, "n * k");
  if (hasBias) check_len(env, "bias", bias.ElementLength(), static_cast<size_t>(n), "n");
  Napi::Float32Array c = Napi::Float32Array::New(env, static_cast<size_t>(m) * n);
  guard(env, [&] {
    cpu::PackedMatrix pw = cpu::pack_weight(isa, w.Data(), n, k);
    auto pool = make_pool(threads);
    cpu::Context ctx{isa, pool.get()};
    cpu::gemm(ctx, a.Data(), transA ? m : k, transA, pw, hasBias ? bias.Data() : nullptr, c.Data(), n, m);
  });
  return c;
}

// gemmBf16(a, w, bias, m, n, k, { isa, threads, epilogue }): the encoder's bf16 linear layer. w is
// rounded to bf16 and packed (pack_weight_bf16) for this call; options.isa names a bf16 path
// ('auto' | 'amx' | 'avx512' | 'avx2' | 'scalar'; unsupported ones are an Error saying why).
Napi::Value GemmBf16(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6) type_error(env, "gemmBf16(a, w, bias, m, n, k, options?) needs 6 arguments");
  Napi::Float32Array a = to_f32(env, info[0], "a");
  Napi::Float32Array w = to_f32(env, info[1], "w");
  const bool hasBias = !(info[2].IsNull() || info[2].IsUndefined());
  Napi::Float32Array bias;
  if (hasBias) bias = to_f32(env, info[2], "bias");
  const int m = to_int(env, info[3], "m", 1, kMaxDim);
  const int n = to_int(env, info[4], "n", 1, kMaxDim);
  const int k = to_int(env, info[5], "k", 1, kMaxDim);
  Napi::Object opts;
  const bool hasOpts = options_at(info, 6, opts);
  std::string isaName = "auto";
  if (hasOpts && opts.Has("isa") && !opts.Get("isa").IsUndefined()) isaName = to_string(env, opts.Get("isa"), "options.isa");
  Epilogue ep = Epilogue::None;
  if (hasOpts && opts.Has("epilogue") && !opts.Get("epilogue").IsUndefined()) {
    const std::string e = to_string(env, opts.Get("epilogue"), "options.epilogue");
    if (e == "gelu") ep = Epilogue::Gelu;
    else if (e == "tanh") ep = Epilogue::Tanh;
    else if (e != "none") error(env, "options.epilogue must be 'none', 'gelu' or 'tanh', got '" + e + "'");
  }
  const int threads = threads_option(env, hasOpts ? &opts : nullptr);
  const cpu::Bf16Isa isa = guard(env, [&] { return cpu::resolve_bf16_isa(isaName); });
  check_len(env, "a", a.ElementLength(), static_cast<size_t>(m) * k, "m * k");
  check_len(env, "w", w.ElementLength(), static_cast<size_t>(n) * k, "n * k");
  if (hasBias) check_len(env, "bias", bias.ElementLength(), static_cast<size_t>(n), "n");
  Napi::Float32Array c = Napi::Float32Array::New(env, static_cast<size_t>(m) * n);
  guard(env, [&] {
    cpu::PackedBf16 pw = cpu::pack_weight_bf16(w.Data(), n, k);
    auto pool = make_pool(threads);
    cpu::Bf16Context ctx{isa, pool.get(), nullptr};
    cpu::gemm_bf16(ctx, a.Data(), k, pw, hasBias ? bias.Data() : nullptr, c.Data(), n, m, ep);
  });
  return c;
}

// bf16Round(x): each value rounded to the nearest bf16 (ties to even), as float32: what the bf16 path
// does to weights and activations.
Napi::Value Bf16Round(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) type_error(env, "bf16Round(x) needs 1 argument");
  Napi::Float32Array x = to_f32(env, info[0], "x");
  Napi::Float32Array out = Napi::Float32Array::New(env, x.ElementLength());
  for (size_t i = 0; i < x.ElementLength(); ++i) out.Data()[i] = cpu::round_to_bf16(x.Data()[i]);
  return out;
}

Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6) type_error(env, "layerNorm(x, gamma, beta, rows, cols, eps, options?) needs 6 arguments");
  Napi::Float32Array x = to_f32(env, info[0], "x");
  Napi::Float32Array g = to_f32(env, info[1], "gamma");
  Napi::Float32Array b = to_f32(env, info[2], "beta");
  const int rows = to_int(env, info[3], "rows", 1, kMaxDim);
  const int cols = to_int(env, info[4], "cols", 1, kMaxDim);
  const double eps = to_number(env, info[5], "eps");
  if (!(eps >= 0.0)) error(env, "eps must be >= 0");
  Napi::Object opts;
  const bool hasOpts = options_at(info, 6, opts);
  const Isa isa = isa_option(env, hasOpts ? &opts : nullptr);
  check_len(env, "x", x.ElementLength(), static_cast<size_t>(rows) * cols, "rows * cols");
  check_len(env, "gamma", g.ElementLength(), static_cast<size_t>(cols), "cols");
  check_len(env, "beta", b.ElementLength(), static_cast<size_t>(cols), "cols");
  Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(rows) * cols);
  guard(env, [&] {
    cpu::Context ctx{isa, nullptr};
    cpu::layer_norm(ctx, x.Data(), nullptr, g.Data(), b.Data(), out.Data(), rows, cols, static_cast<float>(eps));
  });
  return out;
}

Napi::Value Gelu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) type_error(env, "gelu(x, options?) needs 1 argument");
  Napi::Float32Array x = to_f32(env, info[0], "x");
  Napi::Object opts;
  const bool hasOpts = options_at(info, 1, opts);
  const Isa isa = isa_option(env, hasOpts ? &opts : nullptr);
  Napi::Float32Array out = Napi::Float32Array::New(env, x.ElementLength());
  if (x.ElementLength() > 0) {
    cpu::Context ctx{isa, nullptr};
    guard(env, [&] { cpu::gelu(ctx, x.Data(), out.Data(), x.ElementLength()); });
  }
  return out;
}

Napi::Value MaskedSoftmax(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4) type_error(env, "maskedSoftmax(scores, keyMask, rows, cols, options?) needs 4 arguments");
  Napi::Float32Array s = to_f32(env, info[0], "scores");
  Napi::Int32Array m = to_i32(env, info[1], "keyMask");
  const int rows = to_int(env, info[2], "rows", 1, kMaxDim);
  const int cols = to_int(env, info[3], "cols", 1, kMaxDim);
  Napi::Object opts;
  const bool hasOpts = options_at(info, 4, opts);
  const Isa isa = isa_option(env, hasOpts ? &opts : nullptr);
  check_len(env, "scores", s.ElementLength(), static_cast<size_t>(rows) * cols, "rows * cols");
  check_len(env, "keyMask", m.ElementLength(), static_cast<size_t>(cols), "cols");
  check_mask(env, "keyMask", m.Data(), m.ElementLength());
  Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(rows) * cols);
  guard(env, [&] {
    cpu::Context ctx{isa, nullptr};
    cpu::masked_softmax(ctx, s.Data(), m.Data(), out.Data(), rows, cols);
  });
  return out;
}

Napi::Value Attention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 8)
    type_error(env, "attention(q, k, v, mask, batch, seqLen, heads, headDim, options?) needs 8 arguments");
  Napi::Float32Array q = to_f32(env, info[0], "q");
  Napi::Float32Array k = to_f32(env, info[1], "k");
  Napi::Float32Array v = to_f32(env, info[2], "v");
  Napi::Int32Array mask = to_i32(env, info[3], "mask");
  const int batch = to_int(env, info[4], "batch", 1, kMaxDim);
  const int seqLen = to_int(env, info[5], "seqLen", 1, kMaxDim);
  const int heads = to_int(env, info[6], "heads", 1, kMaxDim);
  const int headDim = to_int(env, info[7], "headDim", 1, kMaxDim);
  Napi::Object opts;
  const bool hasOpts = options_at(info, 8, opts);
  const Isa isa = isa_option(env, hasOpts ? &opts : nullptr);
  const int threads = threads_option(env, hasOpts ? &opts : nullptr);
  const size_t tokens = static_cast<size_t>(batch) * seqLen;
  const size_t width = static_cast<size_t>(heads) * headDim;
  const std::string shape = "batch * seqLen * heads * headDim";
  check_len(env, "q", q.ElementLength(), tokens * width, shape);
  check_len(env, "k", k.ElementLength(), tokens * width, shape);
  check_len(env, "v", v.ElementLength(), tokens * width, shape);
  check_len(env, "mask", mask.ElementLength(), tokens, "batch * seqLen");
  check_mask(env, "mask", mask.Data(), tokens);
  Napi::Float32Array out = Napi::Float32Array::New(env, tokens * width);
  guard(env, [&] {
    auto pool = make_pool(threads);
    cpu::Context ctx{isa, pool.get()};
    AttentionShape s{batch, seqLen, heads, headDim};
    const long ld = static_cast<long>(width);
    AttentionTensors t{q.Data(), k.Data(), v.Data(), ld, ld, ld, mask.Data(), out.Data(), ld};
    cpu::attention(ctx, s, t);
  });
  return out;
}

Napi::Value MeanPool(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5) type_error(env, "meanPool(h, mask, batch, seqLen, hidden) needs 5 arguments");
  Napi::Float32Array h = to_f32(env, info[0], "h");
  Napi::Int32Array mask = to_i32(env, info[1], "mask");
  const int batch = to_int(env, info[2], "batch", 1, kMaxDim);
  const int seqLen = to_int(env, info[3], "seqLen", 1, kMaxDim);
  const int hidden = to_int(env, info[4], "hidden", 1, kMaxDim);
  const size_t tokens = static_cast<size_t>(batch) * seqLen;
  check_len(env, "h", h.ElementLength(), tokens * hidden, "batch * seqLen * hidden");
  check_len(env, "mask", mask.ElementLength(), tokens, "batch * seqLen");
  check_mask(env, "mask", mask.Data(), tokens);
  Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(batch) * hidden);
  guard(env, [&] { cpu::mean_pool(h.Data(), mask.Data(), batch, seqLen, hidden, out.Data()); });
  return out;
}

Napi::Value CpuInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cpu::CpuFeatures& f = cpu::cpu_features();
  // EDU_TRAIN_CPU_ISA=amx names a bf16-only path: the fp32 answer is then the best fp32 path.
  const char* env_isa = std::getenv("EDU_TRAIN_CPU_ISA");
  const bool amxEnv = env_isa != nullptr && std::string(env_isa) == "amx";
  const Isa isa = amxEnv ? cpu::best_isa() : guard(env, [] { return cpu::resolve_isa("auto"); });
  const cpu::Bf16Isa bf16 = guard(env, [] { return cpu::resolve_bf16_isa("auto"); });
  Napi::Object o = Napi::Object::New(env);
  o.Set("isa", isa_name(isa));
  o.Set("bf16Isa", cpu::bf16_isa_name(bf16));
  Napi::Array bf16Isas = Napi::Array::New(env);
  uint32_t nb = 0;
  for (cpu::Bf16Isa i : {cpu::Bf16Isa::Amx, cpu::Bf16Isa::Avx512, cpu::Bf16Isa::Avx2, cpu::Bf16Isa::Scalar})
    if (cpu::bf16_isa_supported(i)) bf16Isas.Set(nb++, cpu::bf16_isa_name(i));
  o.Set("bf16Isas", bf16Isas);
  o.Set("amxTile", f.amxTile);
  o.Set("avx2", f.avx2);
  o.Set("fma", f.fma);
  o.Set("avx512f", f.avx512f);
  o.Set("avx512bf16", f.avx512bf16);
  o.Set("amxBf16", f.amxBf16);
  o.Set("logicalCpus", f.logicalCpus);
  return o;
}

template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value Guarded(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] { return F(info); });
}

}  // namespace

void RegisterKernels(Napi::Env env, Napi::Object exports) {
  Napi::Object k = Napi::Object::New(env);
  k.Set("gemm", Napi::Function::New<Guarded<Gemm>>(env, "gemm"));
  k.Set("layerNorm", Napi::Function::New<Guarded<LayerNorm>>(env, "layerNorm"));
  k.Set("gelu", Napi::Function::New<Guarded<Gelu>>(env, "gelu"));
  k.Set("maskedSoftmax", Napi::Function::New<Guarded<MaskedSoftmax>>(env, "maskedSoftmax"));
  k.Set("attention", Napi::Function::New<Guarded<Attention>>(env, "attention"));
  k.Set("meanPool", Napi::Function::New<Guarded<MeanPool>>(env, "meanPool"));
  k.Set("gemmBf16", Napi::Function::New<Guarded<GemmBf16>>(env, "gemmBf16"));
  k.Set("bf16Round", Napi::Function::New<Guarded<Bf16Round>>(env, "bf16Round"));
  exports.Set("kernels", k);
  exports.Set("cpuInfo", Napi::Function::New<Guarded<CpuInfo>>(env, "cpuInfo"));
}

}  // namespace napi
}  // namespace edu

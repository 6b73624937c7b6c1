// BERT-family encoder forward on the CPU kernels (post-LN blocks, exact GELU, masked attention).
//
// dtype bf16 (EncoderNumerics) changes the linear layers only: their weights are rounded to bf16 once,
// here, and each GEMM rounds its activations to bf16 and accumulates in fp32 (gemm_bf16, edu_bf16.h).
// Everything else stays fp32 on purpose: embeddings, every LayerNorm (statistics and output), the
// attention core (Q K^T scores, masked softmax and the P V context: kept fp32 by choice, they are about
// 3 % of the FLOPs at 128 tokens and the step most sensitive to rounding), GELU, the residual adds and
// the poolings. Outputs are fp32 in both modes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

#include "edu_encoder.h"

namespace edu {

namespace {

// EDU_TRAIN_PROFILE=1: per-forward wall time by stage on stderr (GEMM, attention, LayerNorm, other).
struct StageClock {
  enum Stage { Gemm = 0, Attention, LayerNorm, Other, Count };
  bool on = false;
  double seconds[Count] = {0, 0, 0, 0};
  double gemmFlops = 0;
  std::chrono::steady_clock::time_point t0;
  StageClock() {
    const char* e = std::getenv("EDU_TRAIN_PROFILE");
    on = e != nullptr && *e != '\0' && std::string(e) != "0";
  }
  void start() {
    if (on) t0 = std::chrono::steady_clock::now();
  }
  void stop(Stage s, double flops = 0) {
    if (!on) return;
    seconds[s] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    gemmFlops += flops;
  }
  void report(int batch, int seqLen) const {
    if (!on) return;
    const double total = seconds[0] + seconds[1] + seconds[2] + seconds[3];
    std::fprintf(stderr,
                 "[edu-train] forward %dx%d: %.3f s = gemm %.3f s (%.1f GFLOP/s) + attention %.3f s + layernorm %.3f s + "
                 "other %.3f s\n",
                 batch, seqLen, total, seconds[Gemm], seconds[Gemm] > 0 ? gemmFlops / seconds[Gemm] / 1e9 : 0.0,
                 seconds[Attention], seconds[LayerNorm], seconds[Other]);
  }
};

std::invalid_argument bad(const std::string& what) { return std::invalid_argument(what); }

const char* head_name(HeadKind h) {
  switch (h) {
    case HeadKind::None: return "none";
    case HeadKind::Bert: return "bert";
    case HeadKind::Roberta: return "roberta";
    case HeadKind::Electra: return "electra";
  }
  return "?";
}

// Looks a tensor up and checks its element count against the shape the config implies.
const float* take(const WeightMap& w, const std::string& name, size_t rows, size_t cols = 1) {
  auto it = w.find(name);
  if (it == w.end()) throw bad("missing weight '" + name + "'");
  const size_t expected = rows * cols;
  if (it->second.size != expected) {
    std::ostringstream os;
    os << "weight '" << name << "' has " << it->second.size << " elements, expected ";
    if (cols == 1)
      os << "[" << rows << "] = " << expected;
    else
      os << "[" << rows << ", " << cols << "] = " << expected;
    os << " (from the config)";
    throw bad(os.str());
  }
  if (it->second.data == nullptr && expected > 0) throw bad("weight '" + name + "' has no data");
  return it->second.data;
}

std::vector<float> copy_of(const WeightMap& w, const std::string& name, size_t rows, size_t cols = 1) {
  const float* p = take(w, name, rows, cols);
  return std::vector<float>(p, p + rows * cols);
}

}  // namespace

void validate_config(const EncoderConfig& c) {
  auto positive = [](const char* name, long v) {
    if (v <= 0) throw bad(std::string("config.") + name + " must be > 0, got " + std::to_string(v));
  };
  positive("vocabSize", c.vocabSize);
  positive("hiddenSize", c.hiddenSize);
  positive("embeddingSize", c.embeddingSize);
  positive("numLayers", c.numLayers);
  positive("numHeads", c.numHeads);
  positive("intermediateSize", c.intermediateSize);
  positive("maxPositions", c.maxPositions);
  positive("typeVocabSize", c.typeVocabSize);
  if (c.hiddenSize % c.numHeads != 0)
    throw bad("config.hiddenSize (" + std::to_string(c.hiddenSize) + ") must be a multiple of config.numHeads (" +
              std::to_string(c.numHeads) + ")");
  if (!(c.layerNormEps >= 0.0) || !std::isfinite(c.layerNormEps))
    throw bad("config.layerNormEps must be a finite number >= 0");
  if (c.padTokenId < 0) throw bad("config.padTokenId must be >= 0, got " + std::to_string(c.padTokenId));
  if (c.head == HeadKind::None) {
    if (c.numLabels != 0) throw bad("config.numLabels must be 0 when config.head is 'none', got " + std::to_string(c.numLabels));
  } else {
    if (c.numLabels <= 0)
      throw bad(std::string("config.numLabels must be > 0 for head '") + head_name(c.head) + "', got " +
                std::to_string(c.numLabels));
    if (c.head == HeadKind::Bert && !c.hasPooler)
      throw bad("config.head 'bert' classifies pooler_output, so config.hasPooler must be true");
  }
  const double h = c.hiddenSize, i = c.intermediateSize, v = c.vocabSize, e = c.embeddingSize;
  if (h * i > 2e9 || v * e > 2e9 || h * h * 3 > 2e9) throw bad("config sizes are too large");
}

Encoder::Encoder(const EncoderConfig& config, const WeightMap& w, Isa isa, int threads)
    : Encoder(config, w, isa, threads, EncoderNumerics{}) {}

Encoder::Encoder(const EncoderConfig& config, const WeightMap& w, Isa isa, int threads, const EncoderNumerics& numerics)
    : cfg_(config), isa_(isa), num_(numerics) {
  validate_config(cfg_);
  if (!cpu::isa_supported(isa)) throw std::runtime_error(std::string("ISA '") + isa_name(isa) + "' is not supported on this CPU");
  const bool bf16 = num_.dtype == Dtype::Bf16;
  if (bf16) {
    std::string why;
    if (!cpu::bf16_isa_supported(num_.bf16Isa, &why))
      throw std::runtime_error(std::string("bf16 code path '") + cpu::bf16_isa_name(num_.bf16Isa) +
                               "' is not supported on this CPU/OS (" + why + ")");
    if (cpu::bf16_helper_isa(num_.bf16Isa) != isa)
      throw std::invalid_argument(std::string("bf16 path '") + cpu::bf16_isa_name(num_.bf16Isa) + "' runs around fp32 path '" +
                                  isa_name(cpu::bf16_helper_isa(num_.bf16Isa)) + "', not '" + isa_name(isa) + "'");
  }
  // A linear layer's weight: rounded to bf16 and packed for the bf16 GEMM, or packed for the fp32 one.
  auto pack = [&](Linear& l, const float* data, size_t out, size_t in) {
    if (bf16) {
      l.wb = cpu::pack_weight_bf16(data, static_cast<int>(out), static_cast<int>(in));
      return l.wb.bytes();
    }
    l.w = cpu::pack_weight(isa_, data, static_cast<int>(out), static_cast<int>(in));
    return l.w.bytes();
  };
  const size_t H = cfg_.hiddenSize, E = cfg_.embeddingSize, I = cfg_.intermediateSize;
  size_t bytes = 0;

  // Check every tensor before copying anything big.
  auto linearCheck = [&](const std::string& prefix, size_t out, size_t in) {
    take(w, prefix + ".weight", out, in);
    take(w, prefix + ".bias", out);
  };
  take(w, "embeddings.word_embeddings.weight", cfg_.vocabSize, E);
  take(w, "embeddings.position_embeddings.weight", cfg_.maxPositions, E);
  take(w, "embeddings.token_type_embeddings.weight", cfg_.typeVocabSize, E);
  take(w, "embeddings.LayerNorm.weight", E);
  take(w, "embeddings.LayerNorm.bias", E);
  hasProject_ = E != H;
  if (hasProject_) linearCheck("embeddings_project", H, E);
  for (int l = 0; l < cfg_.numLayers; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    linearCheck(p + "attention.self.query", H, H);
    linearCheck(p + "attention.self.key", H, H);
    linearCheck(p + "attention.self.value", H, H);
    linearCheck(p + "attention.output.dense", H, H);
    take(w, p + "attention.output.LayerNorm.weight", H);
    take(w, p + "attention.output.LayerNorm.bias", H);
    linearCheck(p + "intermediate.dense", I, H);
    linearCheck(p + "output.dense", H, I);
    take(w, p + "output.LayerNorm.weight", H);
    take(w, p + "output.LayerNorm.bias", H);
  }
  if (cfg_.hasPooler) linearCheck("pooler.dense", H, H);
  if (cfg_.head == HeadKind::Bert) linearCheck("classifier", cfg_.numLabels, H);
  if (cfg_.head == HeadKind::Roberta || cfg_.head == HeadKind::Electra) {
    linearCheck("classifier.dense", H, H);
    linearCheck("classifier.out_proj", cfg_.numLabels, H);
  }

  auto vec = [&](const std::string& name, size_t rows, size_t cols = 1) {
    std::vector<float> v = copy_of(w, name, rows, cols);
    bytes += v.size() * sizeof(float);
    return v;
  };
  auto lin = [&](const std::string& prefix, size_t out, size_t in) {
    Linear l;
    const size_t packed = pack(l, take(w, prefix + ".weight", out, in), out, in);
    l.b = copy_of(w, prefix + ".bias", out);
    bytes += packed + l.b.size() * sizeof(float);
    return l;
  };

  wordEmb_ = vec("embeddings.word_embeddings.weight", cfg_.vocabSize, E);
  posEmb_ = vec("embeddings.position_embeddings.weight", cfg_.maxPositions, E);
  typeEmb_ = vec("embeddings.token_type_embeddings.weight", cfg_.typeVocabSize, E);
  embLnG_ = vec("embeddings.LayerNorm.weight", E);
  embLnB_ = vec("embeddings.LayerNorm.bias", E);
  if (hasProject_) project_ = lin("embeddings_project", H, E);

  layers_.resize(cfg_.numLayers);
  std::vector<float> qkvW(3 * H * H), qkvB(3 * H);
  for (int l = 0; l < cfg_.numLayers; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    Layer& L = layers_[l];
    const char* parts[3] = {"query", "key", "value"};
    for (int s = 0; s < 3; ++s) {
      const std::string n = p + "attention.self." + parts[s];
      std::memcpy(qkvW.data() + s * H * H, take(w, n + ".weight", H, H), sizeof(float) * H * H);
      std::memcpy(qkvB.data() + s * H, take(w, n + ".bias", H), sizeof(float) * H);
    }
    const size_t packed = pack(L.qkv, qkvW.data(), 3 * H, H);
    L.qkv.b = qkvB;
    bytes += packed + L.qkv.b.size() * sizeof(float);
    L.attnOut = lin(p + "attention.output.dense", H, H);
    L.ln1g = vec(p + "attention.output.LayerNorm.weight", H);
    L.ln1b = vec(p + "attention.output.LayerNorm.bias", H);
    L.inter = lin(p + "intermediate.dense", I, H);
    L.out = lin(p + "output.dense", H, I);
    L.ln2g = vec(p + "output.LayerNorm.weight", H);
    L.ln2b = vec(p + "output.LayerNorm.bias", H);
  }
  if (cfg_.hasPooler) pooler_ = lin("pooler.dense", H, H);
  if (cfg_.head == HeadKind::Bert) clsOut_ = lin("classifier", cfg_.numLabels, H);
  if (cfg_.head == HeadKind::Roberta || cfg_.head == HeadKind::Electra) {
    clsDense_ = lin("classifier.dense", H, H);
    clsOut_ = lin("classifier.out_proj", cfg_.numLabels, H);
  }
  weightBytes_ = bytes;
  if (threads <= 0) threads = logical_cpus();
  if (threads > 1024) throw bad("threads must be <= 1024, got " + std::to_string(threads));
  pool_ = std::make_unique<ThreadPool>(threads);
}

Encoder::~Encoder() = default;

void Encoder::validate_request(const ForwardRequest& r, std::vector<int32_t>& positions) const {
  if (r.batch <= 0) throw bad("batch must be > 0, got " + std::to_string(r.batch));
  if (r.seqLen <= 0) throw bad("seqLen must be > 0, got " + std::to_string(r.seqLen));
  const size_t n = static_cast<size_t>(r.batch) * r.seqLen;
  if (n > static_cast<size_t>(std::numeric_limits<int>::max()) / 4)
    throw bad("batch * seqLen is too large: " + std::to_string(n));
  auto len = [&](const char* name, size_t got) {
    if (got != n)
      throw bad(std::string(name) + " has length " + std::to_string(got) + ", expected batch * seqLen = " +
                std::to_string(r.batch) + " * " + std::to_string(r.seqLen) + " = " + std::to_string(n));
  };
  if (r.pooler && !cfg_.hasPooler)
    throw bad("outputs.pooler was requested but the model has no pooler (config.hasPooler is false)");
  if (r.logits && cfg_.head == HeadKind::None)
    throw bad("outputs.logits was requested but the model has no classification head (config.head is 'none')");
  if (r.inputIds == nullptr) throw bad("inputIds is required");
  if (r.attentionMask == nullptr) throw bad("attentionMask is required");
  len("inputIds", r.inputIdsLength);
  len("attentionMask", r.attentionMaskLength);
  if (r.tokenTypeIds != nullptr) len("tokenTypeIds", r.tokenTypeIdsLength);
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = r.inputIds[i];
    if (id < 0 || id >= cfg_.vocabSize)
      throw bad("inputIds[" + std::to_string(i) + "] = " + std::to_string(id) + " is out of range [0, vocabSize = " +
                std::to_string(cfg_.vocabSize) + ")");
    const int32_t m = r.attentionMask[i];
    if (m != 0 && m != 1)
      throw bad("attentionMask[" + std::to_string(i) + "] = " + std::to_string(m) + ", expected 0 or 1");
    if (r.tokenTypeIds != nullptr) {
      const int32_t t = r.tokenTypeIds[i];
      if (t < 0 || t >= cfg_.typeVocabSize)
        throw bad("tokenTypeIds[" + std::to_string(i) + "] = " + std::to_string(t) +
                  " is out of range [0, typeVocabSize = " + std::to_string(cfg_.typeVocabSize) + ")");
    }
  }
  positions.resize(n);
  cpu::position_ids(cfg_.positionStyle, r.inputIds, r.batch, r.seqLen, cfg_.padTokenId, positions.data());
  int32_t maxPos = 0;
  for (int32_t p : positions) maxPos = std::max(maxPos, p);
  if (maxPos >= cfg_.maxPositions)
    throw bad("sequence length " + std::to_string(r.seqLen) + " needs position ids up to " + std::to_string(maxPos) +
              " but the model has max_position_embeddings " + std::to_string(cfg_.maxPositions));
}

const char* Encoder::gemm_path() const {
  return num_.dtype == Dtype::Bf16 ? cpu::bf16_isa_name(num_.bf16Isa) : isa_name(isa_);
}

void Encoder::linear(const cpu::Context& ctx, const float* x, long ldx, const Linear& l, float* y, int rows,
                     Epilogue ep) const {
  if (num_.dtype == Dtype::Bf16) {
    // bf16 x bf16 products, fp32 accumulation; bias and the epilogue in fp32 (edu_bf16.h).
    cpu::Bf16Context bctx{num_.bf16Isa, ctx.pool, &bf16Ws_};
    cpu::gemm_bf16(bctx, x, ldx, l.wb, l.b.data(), y, l.wb.n, rows, ep);
    return;
  }
  cpu::gemm(ctx, x, ldx, false, l.w, l.b.data(), y, l.w.n, rows, ep);
}

ForwardResult Encoder::forward(const ForwardRequest& r) {
  std::vector<int32_t> pos;
  validate_request(r, pos);
  std::lock_guard<std::mutex> lock(mu_);

  const int B = r.batch, L = r.seqLen, H = cfg_.hiddenSize, E = cfg_.embeddingSize, I = cfg_.intermediateSize;
  const size_t T = static_cast<size_t>(B) * L;
  const float eps = static_cast<float>(cfg_.layerNormEps);
  cpu::Context ctx{isa_, pool_.get()};

  // Arena: x, x1, ctx, tmp [T, H] and one wide buffer [T, max(3H, I, E)] (QKV, then FFN).
  const size_t wide = std::max<size_t>({static_cast<size_t>(3) * H, static_cast<size_t>(I), static_cast<size_t>(E)});
  cpu::AlignedFloats arena(T * (4 * static_cast<size_t>(H) + wide));
  float* x = arena.data();
  float* x1 = x + T * H;
  float* att = x1 + T * H;
  float* tmp = att + T * H;
  float* big = tmp + T * H;

  StageClock clock;
  const double Td = static_cast<double>(T);
  // Embeddings (+ LayerNorm over E, + projection to H for ELECTRA).
  clock.start();
  EmbeddingTables tables{wordEmb_.data(), posEmb_.data(), typeEmb_.data(), E};
  float* emb = hasProject_ ? big : x;
  cpu::embeddings(ctx, tables, r.inputIds, r.tokenTypeIds, pos.data(), emb, static_cast<int>(T));
  cpu::layer_norm(ctx, emb, nullptr, embLnG_.data(), embLnB_.data(), emb, static_cast<int>(T), E, eps);
  clock.stop(StageClock::Other);
  if (hasProject_) {
    clock.start();
    linear(ctx, emb, E, project_, x, static_cast<int>(T), Epilogue::None);
    clock.stop(StageClock::Gemm, 2 * Td * H * E);
  }

  const int heads = cfg_.numHeads, headDim = H / heads;
  const long ld3 = 3 * static_cast<long>(H);
  for (const Layer& layer : layers_) {
    clock.start();
    linear(ctx, x, H, layer.qkv, big, static_cast<int>(T), Epilogue::None);  // [T, 3H]
    clock.stop(StageClock::Gemm, 2 * Td * H * 3 * H);
    clock.start();
    AttentionShape shape{B, L, heads, headDim};
    AttentionTensors at{big, big + H, big + 2 * H, ld3, ld3, ld3, r.attentionMask, att, H};
    cpu::attention(ctx, shape, at);
    clock.stop(StageClock::Attention);
    clock.start();
    linear(ctx, att, H, layer.attnOut, tmp, static_cast<int>(T), Epilogue::None);
    clock.stop(StageClock::Gemm, 2 * Td * H * H);
    clock.start();
    cpu::layer_norm(ctx, tmp, x, layer.ln1g.data(), layer.ln1b.data(), x1, static_cast<int>(T), H, eps);
    clock.stop(StageClock::LayerNorm);
    clock.start();
    linear(ctx, x1, H, layer.inter, big, static_cast<int>(T), Epilogue::Gelu);  // [T, I], GELU fused
    linear(ctx, big, I, layer.out, tmp, static_cast<int>(T), Epilogue::None);
    clock.stop(StageClock::Gemm, 4 * Td * H * I);
    clock.start();
    cpu::layer_norm(ctx, tmp, x1, layer.ln2g.data(), layer.ln2b.data(), x, static_cast<int>(T), H, eps);
    clock.stop(StageClock::LayerNorm);
  }
  clock.start();

  ForwardResult res;
  if (r.lastHiddenState) {
    res.lastHiddenState.assign(x, x + T * H);
    res.hasLastHiddenState = true;
  }
  if (r.meanPooled) {
    res.meanPooled.resize(static_cast<size_t>(B) * H);
    cpu::mean_pool(x, r.attentionMask, B, L, H, res.meanPooled.data());
    res.hasMeanPooled = true;
  }
  if (r.cls) {
    res.cls.resize(static_cast<size_t>(B) * H);
    cpu::cls_pool(x, B, L, H, res.cls.data());
    res.hasCls = true;
  }
  const long clsStride = static_cast<long>(L) * H;  // row b of the GEMM = h[b, 0, :]
  const bool needPooler = cfg_.hasPooler && (r.pooler || (r.logits && cfg_.head == HeadKind::Bert));
  std::vector<float> pooled;
  if (needPooler) {
    pooled.resize(static_cast<size_t>(B) * H);
    linear(ctx, x, clsStride, pooler_, pooled.data(), B, Epilogue::Tanh);
    if (r.pooler) {
      res.poolerOutput = pooled;
      res.hasPooler = true;
    }
  }
  if (r.logits && cfg_.head != HeadKind::None) {
    res.logits.resize(static_cast<size_t>(B) * cfg_.numLabels);
    if (cfg_.head == HeadKind::Bert) {
      linear(ctx, pooled.data(), H, clsOut_, res.logits.data(), B, Epilogue::None);
    } else {
      std::vector<float> d(static_cast<size_t>(B) * H);
      linear(ctx, x, clsStride, clsDense_, d.data(), B,
             cfg_.head == HeadKind::Roberta ? Epilogue::Tanh : Epilogue::Gelu);
      linear(ctx, d.data(), H, clsOut_, res.logits.data(), B, Epilogue::None);
    }
    res.hasLogits = true;
  }
  clock.stop(StageClock::Other);
  clock.report(B, L);
  return res;
}

}  // namespace edu

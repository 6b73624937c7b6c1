// Host-side logic of the CUDA backend: request validation, the packed variable-length layout,
// attention tiles, workspace sizing, bf16 rounding. Plain C++ (no CUDA headers): always built, so
// it is tested on machines without nvcc or a GPU (test/cuda-build.test.ts via addon.cudaDebug).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>

#include "edu_cuda.h"

namespace edu {
namespace cuda {

namespace {
std::invalid_argument bad(const std::string& what) { return std::invalid_argument(what); }
}  // namespace

const char* precision_name(Precision p) { return p == Precision::Bf16 ? "bf16" : "fp32"; }

Precision parse_precision(const std::string& s) {
  if (s == "fp32") return Precision::Fp32;
  if (s == "bf16") return Precision::Bf16;
  throw bad("precision must be 'fp32' or 'bf16', got '" + s + "'");
}

void validate_cuda_config(const EncoderConfig& c, Precision p) {
  validate_config(c);
  const int d = c.hiddenSize / c.numHeads;
  if (d > 128) throw bad("the CUDA backend supports head dims up to 128, got " + std::to_string(d));
  if (p == Precision::Bf16) {
    // cp.async moves 16-byte chunks: every GEMM K and row stride must be a multiple of 8 bf16.
    auto mult8 = [](const char* name, int v) {
      if (v % 8 != 0)
        throw bad(std::string("bf16 on CUDA needs config.") + name + " to be a multiple of 8, got " + std::to_string(v) +
                  " (use precision fp32)");
    };
    mult8("hiddenSize", c.hiddenSize);
    mult8("intermediateSize", c.intermediateSize);
    mult8("embeddingSize", c.embeddingSize);
    if (d % 8 != 0) throw bad("bf16 on CUDA needs a head dim that is a multiple of 8, got " + std::to_string(d));
  }
}

PackPlan plan_packing(const EncoderConfig& cfg, const ForwardRequest& r) {
  // --- the CPU encoder's checks, same order and messages (kernels/cpu/encoder.cpp validate_request)
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
  if (r.pooler && !cfg.hasPooler)
    throw bad("outputs.pooler was requested but the model has no pooler (config.hasPooler is false)");
  if (r.logits && cfg.head == HeadKind::None)
    throw bad("outputs.logits was requested but the model has no classification head (config.head is 'none')");
  if (r.inputIds == nullptr) throw bad("inputIds is required");
  if (r.attentionMask == nullptr) throw bad("attentionMask is required");
  len("inputIds", r.inputIdsLength);
  len("attentionMask", r.attentionMaskLength);
  if (r.tokenTypeIds != nullptr) len("tokenTypeIds", r.tokenTypeIdsLength);
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = r.inputIds[i];
    if (id < 0 || id >= cfg.vocabSize)
      throw bad("inputIds[" + std::to_string(i) + "] = " + std::to_string(id) + " is out of range [0, vocabSize = " +
                std::to_string(cfg.vocabSize) + ")");
    const int32_t m = r.attentionMask[i];
    if (m != 0 && m != 1)
      throw bad("attentionMask[" + std::to_string(i) + "] = " + std::to_string(m) + ", expected 0 or 1");
    if (r.tokenTypeIds != nullptr) {
      const int32_t t = r.tokenTypeIds[i];
      if (t < 0 || t >= cfg.typeVocabSize)
        throw bad("tokenTypeIds[" + std::to_string(i) + "] = " + std::to_string(t) +
                  " is out of range [0, typeVocabSize = " + std::to_string(cfg.typeVocabSize) + ")");
    }
  }
  std::vector<int32_t> positions(n);
  cpu::position_ids(cfg.positionStyle, r.inputIds, r.batch, r.seqLen, cfg.padTokenId, positions.data());
  int32_t maxPos = 0;
  for (int32_t p : positions) maxPos = std::max(maxPos, p);
  if (maxPos >= cfg.maxPositions)
    throw bad("sequence length " + std::to_string(r.seqLen) + " needs position ids up to " + std::to_string(maxPos) +
              " but the model has max_position_embeddings " + std::to_string(cfg.maxPositions));

  // --- packing
  const int B = r.batch, L = r.seqLen;
  const bool needCls = r.cls || r.pooler || r.logits;
  PackPlan p;
  p.batch = B;
  p.seqLen = L;
  p.seqStart.assign(B + 1, 0);
  p.seqKeys.assign(B, 0);
  p.seqVisible.assign(B, 0);
  p.seqUniform.assign(B, 0);
  p.clsRow.assign(B, -1);
  p.rowOf.assign(n, -1);
  p.ids.reserve(n);
  p.types.reserve(n);
  p.pos.reserve(n);
  bool all = true;
  auto push = [&](int b, int t) {
    const size_t i = static_cast<size_t>(b) * L + t;
    p.rowOf[i] = static_cast<int32_t>(p.ids.size());
    p.ids.push_back(r.inputIds[i]);
    p.types.push_back(r.tokenTypeIds ? r.tokenTypeIds[i] : 0);
    p.pos.push_back(positions[i]);
  };
  for (int b = 0; b < B; ++b) {
    const int32_t* m = r.attentionMask + static_cast<size_t>(b) * L;
    int visible = 0;
    for (int t = 0; t < L; ++t) visible += m[t];
    p.seqVisible[b] = visible;
    const bool uniform = visible == 0;  // HF: every score + finfo.min -> uniform over ALL keys
    p.seqUniform[b] = uniform ? 1 : 0;
    p.seqStart[b] = static_cast<int32_t>(p.ids.size());
    if (uniform) {
      for (int t = 0; t < L; ++t) push(b, t);
      p.seqKeys[b] = L;
    } else {
      for (int t = 0; t < L; ++t)
        if (m[t] != 0) push(b, t);
      p.seqKeys[b] = visible;
      for (int t = 0; t < L; ++t)
        if (m[t] == 0) {
          if (r.lastHiddenState || (t == 0 && needCls)) push(b, t);
          else all = false;
        }
    }
    p.clsRow[b] = p.rowOf[static_cast<size_t>(b) * L];
  }
  p.seqStart[B] = static_cast<int32_t>(p.ids.size());
  p.tokens = static_cast<int>(p.ids.size());
  p.allPositions = all;
  return p;
}

std::vector<AttnTile> plan_attention_tiles(const PackPlan& plan, int tileQ) {
  if (tileQ <= 0) throw bad("tileQ must be > 0");
  std::vector<AttnTile> tiles;
  for (int b = 0; b < plan.batch; ++b) {
    const int s = plan.seqStart[b], e = plan.seqStart[b + 1];
    const int32_t kn = plan.seqKeys[b] | (plan.seqUniform[b] ? kUniformFlag : 0);
    for (int q = s; q < e; q += tileQ) tiles.push_back(AttnTile{q, std::min(tileQ, e - q), s, kn});
  }
  // Longest key ranges first: the grid's tail is made of short tiles.
  std::stable_sort(tiles.begin(), tiles.end(), [](const AttnTile& a, const AttnTile& b) {
    return (a.kn & ~kUniformFlag) > (b.kn & ~kUniformFlag);
  });
  return tiles;
}

namespace {
size_t widest(const EncoderConfig& c) {
  return std::max<size_t>({3 * static_cast<size_t>(c.hiddenSize), static_cast<size_t>(c.intermediateSize),
                           static_cast<size_t>(c.embeddingSize)});
}
}  // namespace

size_t workspace_bytes_per_token(const EncoderConfig& c, Precision p) {
  const size_t H = c.hiddenSize, Hm = std::max<size_t>(H, c.embeddingSize), W = widest(c);
  const size_t meta = 4 * sizeof(int32_t);  // ids, types, pos, rowOf
  if (p == Precision::Fp32) return sizeof(float) * (4 * Hm + W) + meta;  // x, x1, att, tmp, wide
  // fp32 x, x1, tmp; bf16 xb, x1b, att, wide
  return sizeof(float) * 3 * Hm + 2 * (Hm + 2 * H + W) + meta;
}

size_t device_weight_bytes(const EncoderConfig& c, Precision p) {
  const size_t H = c.hiddenSize, E = c.embeddingSize, I = c.intermediateSize, N = c.numLabels;
  size_t gemmW = c.numLayers * (4 * H * H + 2 * H * I) + (E != H ? H * E : 0);
  size_t other = (static_cast<size_t>(c.vocabSize) + c.maxPositions + c.typeVocabSize) * E + 2 * E;
  other += c.numLayers * (3 * H + H + I + H + 4 * H) + (E != H ? H : 0);
  if (c.hasPooler) other += H * H + H;
  if (c.head == HeadKind::Bert) other += N * H + N;
  if (c.head == HeadKind::Roberta || c.head == HeadKind::Electra) other += H * H + H + N * H + N;
  return (p == Precision::Bf16 ? 2 : 4) * gemmW + 4 * other;
}

uint16_t float_to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  const uint32_t lsb = (u >> 16) & 1u;
  u += 0x7fffu + lsb;
  return static_cast<uint16_t>(u >> 16);
}

float bf16_to_float(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace cuda
}  // namespace edu

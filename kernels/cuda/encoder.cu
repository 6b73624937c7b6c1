// The BERT-family encoder on the CUDA kernels: the op sequence of kernels/cpu/encoder.cpp (post-LN
// blocks, exact GELU, masked attention, RoBERTa positions, ELECTRA projection, pooler, heads) over
// the packed variable-length layout of edu_cuda.h. Weights are uploaded once; activations live in an
// arena that grows to the largest token count seen (a failed growth is a "CUDA out of memory" error
// the caller can answer by halving the batch).
#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "cuda_check.h"
#include "kernels.cuh"

namespace edu {
namespace cuda {

using k::bf16;

CudaInfo cuda_info() {
  CudaInfo info;
  info.compiled = true;
  if (cudaRuntimeGetVersion(&info.runtimeVersion) != cudaSuccess) (void)cudaGetLastError();
  if (cudaDriverGetVersion(&info.driverVersion) != cudaSuccess) (void)cudaGetLastError();
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    info.error = std::string("cudaGetDeviceCount: ") + cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
    return info;
  }
  info.deviceCount = n;
  for (int i = 0; i < n; ++i) {
    DeviceInfo d;
    d.index = i;
    cudaDeviceProp p;
    const cudaError_t pe = cudaGetDeviceProperties(&p, i);
    if (pe != cudaSuccess) {
      (void)cudaGetLastError();
      d.reason = std::string("cudaGetDeviceProperties: ") + cudaGetErrorName(pe) + ": " + cudaGetErrorString(pe);
    } else {
      d.name = p.name;
      d.major = p.major;
      d.minor = p.minor;
      d.multiProcessors = p.multiProcessorCount;
      d.totalBytes = p.totalGlobalMem;
      d.usable = p.major >= 8;
      if (!d.usable)
        d.reason = "compute capability " + std::to_string(p.major) + "." + std::to_string(p.minor) +
                   " < 8.0: the edu-train kernels need sm_80 or newer";
    }
    info.devices.push_back(d);
  }
  return info;
}

namespace {

std::invalid_argument bad(const std::string& what) { return std::invalid_argument(what); }

/** cudaMalloc'd bytes that only grow. */
class DeviceBuffer {
 public:
  ~DeviceBuffer() { release(); }
  void release() {
    if (p_) cudaFree(p_);
    p_ = nullptr;
    bytes_ = 0;
  }
  void ensure(size_t bytes) {
    if (bytes <= bytes_) return;
    release();
    const size_t want = std::max<size_t>(bytes, 256);
    EDU_CUDA_CHECK(cudaMalloc(&p_, want));
    bytes_ = want;
  }
  char* data() const { return static_cast<char*>(p_); }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

size_t align256(size_t n) { return (n + 255) & ~static_cast<size_t>(255); }

const float* take(const WeightMap& w, const std::string& name, size_t rows, size_t cols = 1) {
  auto it = w.find(name);
  if (it == w.end()) throw bad("missing weight '" + name + "'");
  const size_t expected = rows * cols;
  if (it->second.size != expected) {
    std::ostringstream os;
    os << "weight '" << name << "' has " << it->second.size << " elements, expected ";
    if (cols == 1) os << "[" << rows << "] = " << expected;
    else os << "[" << rows << ", " << cols << "] = " << expected;
    os << " (from the config)";
    throw bad(os.str());
  }
  if (it->second.data == nullptr && expected > 0) throw bad("weight '" + name + "' has no data");
  return it->second.data;
}

/** Collects host tensors, then uploads them into one allocation (fp32, or bf16 rounded on the host). */
class WeightUploader {
 public:
  int add(const float* src, size_t n, bool asBf16) {
    items_.push_back(Item{src, {}, n, asBf16, 0});
    return static_cast<int>(items_.size()) - 1;
  }
  int add_owned(std::vector<float> v, bool asBf16) {
    const size_t n = v.size();
    items_.push_back(Item{nullptr, std::move(v), n, asBf16, 0});
    return static_cast<int>(items_.size()) - 1;
  }
  void commit(DeviceBuffer& dst, size_t& bytes) {
    size_t off = 0;
    for (Item& it : items_) {
      it.offset = off;
      off = align256(off + it.n * (it.bf16 ? 2 : 4));
    }
    dst.ensure(off);
    bytes = off;
    std::vector<uint16_t> staging;
    for (Item& it : items_) {
      const float* src = it.src ? it.src : it.owned.data();
      if (it.n == 0) continue;
      if (it.bf16) {
        staging.resize(it.n);
        for (size_t i = 0; i < it.n; ++i) staging[i] = float_to_bf16(src[i]);
        EDU_CUDA_CHECK(cudaMemcpy(dst.data() + it.offset, staging.data(), it.n * 2, cudaMemcpyHostToDevice));
      } else {
        EDU_CUDA_CHECK(cudaMemcpy(dst.data() + it.offset, src, it.n * 4, cudaMemcpyHostToDevice));
      }
      it.owned.clear();
      it.owned.shrink_to_fit();
    }
    base_ = dst.data();
  }
  float* f(int i) const { return i < 0 ? nullptr : reinterpret_cast<float*>(base_ + items_[i].offset); }
  bf16* h(int i) const { return i < 0 ? nullptr : reinterpret_cast<bf16*>(base_ + items_[i].offset); }

 private:
  struct Item {
    const float* src;
    std::vector<float> owned;
    size_t n;
    bool bf16;
    size_t offset;
  };
  std::vector<Item> items_;
  char* base_ = nullptr;
};

struct Lin {
  const float* w32 = nullptr;  // [out, in] fp32 (fp32 mode, and the head layers in both modes)
  const bf16* w16 = nullptr;   // [out, in] bf16 (bf16 mode)
  const float* b = nullptr;
  int out = 0, in = 0;
};

struct LayerW {
  Lin qkv, ao, inter, out;
  const float *ln1g, *ln1b, *ln2g, *ln2b;
};

}  // namespace

struct CudaEncoder::Impl {
  EncoderConfig cfg;
  Precision prec = Precision::Fp32;
  int device = 0;
  std::string deviceName;
  int sms = 0;
  cudaStream_t stream = nullptr;
  std::mutex mu;
  DeviceBuffer weights, acts, meta, head;
  size_t weightBytes = 0;
  bool hasProject = false;
  bool flash = false;

  const float *word = nullptr, *pos = nullptr, *type = nullptr, *embG = nullptr, *embB = nullptr;
  Lin project, pooler, clsDense, clsOut;
  std::vector<LayerW> layers;

  ~Impl() {
    if (cudaSetDevice(device) != cudaSuccess) (void)cudaGetLastError();
    weights.release();
    acts.release();
    meta.release();
    head.release();
    if (stream) cudaStreamDestroy(stream);
    (void)cudaGetLastError();
  }

  void set_device() const { EDU_CUDA_CHECK(cudaSetDevice(device)); }

  void linear(const Lin& l, const void* x, long ldx, float* y32, bf16* y16, long ldy, int rows, Epilogue ep) const {
    if (l.w16) {
      k::gemm_bf16(stream, static_cast<const bf16*>(x), ldx, l.w16, l.b, y32, y16, ldy, rows, l.out, l.in, ep);
    } else {
      k::gemm_f32(stream, static_cast<const float*>(x), ldx, l.w32, l.b, y32, ldy, rows, l.out, l.in, ep);
    }
  }
};

CudaEncoder::CudaEncoder(const EncoderConfig& config, const WeightMap& w, int deviceIndex, Precision precision)
    : impl_(new Impl) {
  std::unique_ptr<Impl> guard(impl_);
  Impl& m = *impl_;
  m.cfg = config;
  m.prec = precision;
  validate_cuda_config(m.cfg, precision);
  const EncoderConfig& c = m.cfg;
  const size_t H = c.hiddenSize, E = c.embeddingSize, I = c.intermediateSize, N = c.numLabels;

  // Every tensor is checked before anything is uploaded (same names and messages as the CPU encoder).
  auto linearCheck = [&](const std::string& prefix, size_t out, size_t in) {
    take(w, prefix + ".weight", out, in);
    take(w, prefix + ".bias", out);
  };
  take(w, "embeddings.word_embeddings.weight", c.vocabSize, E);
  take(w, "embeddings.position_embeddings.weight", c.maxPositions, E);
  take(w, "embeddings.token_type_embeddings.weight", c.typeVocabSize, E);
  take(w, "embeddings.LayerNorm.weight", E);
  take(w, "embeddings.LayerNorm.bias", E);
  m.hasProject = E != H;
  if (m.hasProject) linearCheck("embeddings_project", H, E);
  for (int l = 0; l < c.numLayers; ++l) {
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
  if (c.hasPooler) linearCheck("pooler.dense", H, H);
  if (c.head == HeadKind::Bert) linearCheck("classifier", N, H);
  if (c.head == HeadKind::Roberta || c.head == HeadKind::Electra) {
    linearCheck("classifier.dense", H, H);
    linearCheck("classifier.out_proj", N, H);
  }

  // Device selection: a missing driver / GPU is a CudaError naming cudaGetDeviceCount.
  int count = 0;
  EDU_CUDA_CHECK(cudaGetDeviceCount(&count));
  if (deviceIndex < 0 || deviceIndex >= count)
    throw bad("CUDA device index " + std::to_string(deviceIndex) + " is out of range: " + std::to_string(count) +
              " device(s) visible");
  cudaDeviceProp prop;
  EDU_CUDA_CHECK(cudaGetDeviceProperties(&prop, deviceIndex));
  if (prop.major < 8)
    throw std::runtime_error("cuda:" + std::to_string(deviceIndex) + " (" + prop.name + ") has compute capability " +
                             std::to_string(prop.major) + "." + std::to_string(prop.minor) +
                             "; the edu-train CUDA kernels need sm_80 or newer");
  m.device = deviceIndex;
  m.sms = prop.multiProcessorCount;
  m.deviceName = "cuda:" + std::to_string(deviceIndex) + " " + prop.name + " (sm_" + std::to_string(prop.major) +
                 std::to_string(prop.minor) + ", " + std::to_string(prop.multiProcessorCount) + " SMs)";
  m.set_device();
  EDU_CUDA_CHECK(cudaStreamCreateWithFlags(&m.stream, cudaStreamNonBlocking));

  // Upload.
  const bool b16 = precision == Precision::Bf16;
  WeightUploader up;
  struct LinIdx {
    int w = -1, b = -1;
    bool half = false;
    int out = 0, in = 0;
  };
  auto lin = [&](const std::string& prefix, size_t out, size_t in, bool half) {
    LinIdx l;
    l.w = up.add(take(w, prefix + ".weight", out, in), out * in, half);
    l.b = up.add(take(w, prefix + ".bias", out), out, false);
    l.half = half;
    l.out = static_cast<int>(out);
    l.in = static_cast<int>(in);
    return l;
  };
  auto vec = [&](const std::string& name, size_t rows, size_t cols = 1) {
    return up.add(take(w, name, rows, cols), rows * cols, false);
  };
  const int iWord = vec("embeddings.word_embeddings.weight", c.vocabSize, E);
  const int iPos = vec("embeddings.position_embeddings.weight", c.maxPositions, E);
  const int iType = vec("embeddings.token_type_embeddings.weight", c.typeVocabSize, E);
  const int iEmbG = vec("embeddings.LayerNorm.weight", E);
  const int iEmbB = vec("embeddings.LayerNorm.bias", E);
  LinIdx proj, pool, cdense, cout;
  if (m.hasProject) proj = lin("embeddings_project", H, E, b16);
  struct LayerIdx {
    LinIdx qkv, ao, inter, out;
    int ln1g, ln1b, ln2g, ln2b;
  };
  std::vector<LayerIdx> li(c.numLayers);
  for (int l = 0; l < c.numLayers; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    std::vector<float> qkvW(3 * H * H), qkvB(3 * H);
    const char* parts[3] = {"query", "key", "value"};
    for (int s = 0; s < 3; ++s) {
      const std::string n = p + "attention.self." + parts[s];
      std::memcpy(qkvW.data() + s * H * H, take(w, n + ".weight", H, H), sizeof(float) * H * H);
      std::memcpy(qkvB.data() + s * H, take(w, n + ".bias", H), sizeof(float) * H);
    }
    LayerIdx& L = li[l];
    L.qkv.w = up.add_owned(std::move(qkvW), b16);
    L.qkv.b = up.add_owned(std::move(qkvB), false);
    L.qkv.half = b16;
    L.qkv.out = static_cast<int>(3 * H);
    L.qkv.in = static_cast<int>(H);
    L.ao = lin(p + "attention.output.dense", H, H, b16);
    L.ln1g = vec(p + "attention.output.LayerNorm.weight", H);
    L.ln1b = vec(p + "attention.output.LayerNorm.bias", H);
    L.inter = lin(p + "intermediate.dense", I, H, b16);
    L.out = lin(p + "output.dense", H, I, b16);
    L.ln2g = vec(p + "output.LayerNorm.weight", H);
    L.ln2b = vec(p + "output.LayerNorm.bias", H);
  }
  // The pooler and the heads run on B rows only: fp32 SIMT in both precisions.
  if (c.hasPooler) pool = lin("pooler.dense", H, H, false);
  if (c.head == HeadKind::Bert) cout = lin("classifier", N, H, false);
  if (c.head == HeadKind::Roberta || c.head == HeadKind::Electra) {
    cdense = lin("classifier.dense", H, H, false);
    cout = lin("classifier.out_proj", N, H, false);
  }
  up.commit(m.weights, m.weightBytes);

  auto resolve = [&](const LinIdx& l) {
    Lin r;
    if (l.w < 0) return r;
    if (l.half) r.w16 = up.h(l.w);
    else r.w32 = up.f(l.w);
    r.b = up.f(l.b);
    r.out = l.out;
    r.in = l.in;
    return r;
  };
  m.word = up.f(iWord);
  m.pos = up.f(iPos);
  m.type = up.f(iType);
  m.embG = up.f(iEmbG);
  m.embB = up.f(iEmbB);
  m.project = resolve(proj);
  m.pooler = resolve(pool);
  m.clsDense = resolve(cdense);
  m.clsOut = resolve(cout);
  m.layers.resize(c.numLayers);
  for (int l = 0; l < c.numLayers; ++l) {
    m.layers[l].qkv = resolve(li[l].qkv);
    m.layers[l].ao = resolve(li[l].ao);
    m.layers[l].inter = resolve(li[l].inter);
    m.layers[l].out = resolve(li[l].out);
    m.layers[l].ln1g = up.f(li[l].ln1g);
    m.layers[l].ln1b = up.f(li[l].ln1b);
    m.layers[l].ln2g = up.f(li[l].ln2g);
    m.layers[l].ln2b = up.f(li[l].ln2b);
  }
  m.flash = b16 && k::flash_supports(c.hiddenSize / c.numHeads);
  EDU_CUDA_CHECK(cudaDeviceSynchronize());
  guard.release();
}

CudaEncoder::~CudaEncoder() { delete impl_; }

const EncoderConfig& CudaEncoder::config() const { return impl_->cfg; }
Precision CudaEncoder::precision() const { return impl_->prec; }
int CudaEncoder::device_index() const { return impl_->device; }
std::string CudaEncoder::device_name() const { return impl_->deviceName; }
size_t CudaEncoder::weight_bytes() const { return impl_->weightBytes; }
size_t CudaEncoder::bytes_per_token() const { return workspace_bytes_per_token(impl_->cfg, impl_->prec); }

std::string CudaEncoder::kernels() const {
  const Impl& m = *impl_;
  const int d = m.cfg.hiddenSize / m.cfg.numHeads;
  std::string s;
  if (m.prec == Precision::Bf16)
    s = "gemm=mma.sync.m16n8k16 bf16 (fp32 accumulate, 128x128x32, 4-stage cp.async)";
  else
    s = "gemm=simt fp32 (64x64x16)";
  s += m.flash ? " attention=flash mma.sync bf16 d" + std::to_string(d)
               : std::string(" attention=flash simt ") + (m.prec == Precision::Bf16 ? "bf16" : "fp32") + " d" +
                     std::to_string(d);
  s += " (packed varlen) layernorm=fp32 head=simt fp32";
  return s;
}

void CudaEncoder::mem_info(size_t& freeBytes, size_t& totalBytes) const {
  impl_->set_device();
  EDU_CUDA_CHECK(cudaMemGetInfo(&freeBytes, &totalBytes));
}

ForwardResult CudaEncoder::forward(const ForwardRequest& r) {
  Impl& m = *impl_;
  const EncoderConfig& c = m.cfg;
  const PackPlan plan = plan_packing(c, r);  // validates; throws std::invalid_argument
  std::lock_guard<std::mutex> lock(m.mu);
  m.set_device();
  cudaStream_t s = m.stream;
  const bool b16 = m.prec == Precision::Bf16;
  const int B = r.batch, L = r.seqLen, H = c.hiddenSize, E = c.embeddingSize, I = c.intermediateSize;
  const int N = c.numLabels, heads = c.numHeads, D = H / heads;
  const int T = plan.tokens;
  const int Hm = std::max(H, E);
  const int W = std::max({3 * H, I, E});
  const float eps = static_cast<float>(c.layerNormEps);
  const std::vector<AttnTile> tiles = plan_attention_tiles(plan, m.flash ? k::kFlashTileQ : k::kSimtTileQ);
  const int numTiles = static_cast<int>(tiles.size());

  // ---- metadata: one host staging buffer, one copy.
  std::vector<char> host;
  auto put = [&](const void* src, size_t bytes) {
    const size_t off = host.size();
    host.resize(align256(off + bytes));
    const char* from = static_cast<const char*>(src);
    std::copy(from, from + bytes, host.begin() + static_cast<std::ptrdiff_t>(off));
    return off;
  };
  const size_t oIds = put(plan.ids.data(), 4 * plan.ids.size());
  const size_t oTypes = put(plan.types.data(), 4 * plan.types.size());
  const size_t oPos = put(plan.pos.data(), 4 * plan.pos.size());
  const size_t oStart = put(plan.seqStart.data(), 4 * plan.seqStart.size());
  const size_t oVis = put(plan.seqVisible.data(), 4 * plan.seqVisible.size());
  const size_t oCls = put(plan.clsRow.data(), 4 * plan.clsRow.size());
  const size_t oRowOf = r.lastHiddenState ? put(plan.rowOf.data(), 4 * plan.rowOf.size()) : 0;
  const size_t oTiles = put(tiles.data(), sizeof(AttnTile) * tiles.size());
  m.meta.ensure(host.size());
  EDU_CUDA_CHECK(cudaMemcpyAsync(m.meta.data(), host.data(), host.size(), cudaMemcpyHostToDevice, s));
  auto mi = [&](size_t off) { return reinterpret_cast<const int32_t*>(m.meta.data() + off); };
  const AttnTile* dTiles = reinterpret_cast<const AttnTile*>(m.meta.data() + oTiles);

  // ---- activations
  size_t off = 0;
  auto carve = [&](size_t bytes) {
    const size_t o = off;
    off = align256(off + bytes);
    return o;
  };
  const size_t T_ = static_cast<size_t>(T);
  size_t ox, ox1, otmp, oatt = 0, owide = 0, oxb = 0, ox1b = 0, oatt16 = 0, owide16 = 0;
  ox = carve(4 * T_ * Hm);
  ox1 = carve(4 * T_ * Hm);
  otmp = carve(4 * T_ * Hm);
  if (b16) {
    oxb = carve(2 * T_ * Hm);
    ox1b = carve(2 * T_ * H);
    oatt16 = carve(2 * T_ * H);
    owide16 = carve(2 * T_ * W);
  } else {
    oatt = carve(4 * T_ * Hm);
    owide = carve(4 * T_ * W);
  }
  m.acts.ensure(off);
  char* a = m.acts.data();
  float* x = reinterpret_cast<float*>(a + ox);
  float* x1 = reinterpret_cast<float*>(a + ox1);
  float* tmp = reinterpret_cast<float*>(a + otmp);
  float* att = b16 ? nullptr : reinterpret_cast<float*>(a + oatt);
  float* wide = b16 ? nullptr : reinterpret_cast<float*>(a + owide);
  bf16* xb = b16 ? reinterpret_cast<bf16*>(a + oxb) : nullptr;
  bf16* x1b = b16 ? reinterpret_cast<bf16*>(a + ox1b) : nullptr;
  bf16* att16 = b16 ? reinterpret_cast<bf16*>(a + oatt16) : nullptr;
  bf16* wide16 = b16 ? reinterpret_cast<bf16*>(a + owide16) : nullptr;

  // ---- embeddings (+ LayerNorm over E, + projection to H for ELECTRA)
  float* emb = m.hasProject ? (b16 ? tmp : wide) : x;
  k::embeddings(s, m.word, m.type, m.pos, E, mi(oIds), mi(oTypes), mi(oPos), emb, T);
  if (!m.hasProject) {
    k::layer_norm(s, emb, nullptr, m.embG, m.embB, x, xb, T, E, eps);
  } else if (b16) {
    k::layer_norm(s, emb, nullptr, m.embG, m.embB, emb, wide16, T, E, eps);
    m.linear(m.project, wide16, E, x, xb, H, T, Epilogue::None);
  } else {
    k::layer_norm(s, emb, nullptr, m.embG, m.embB, emb, nullptr, T, E, eps);
    m.linear(m.project, emb, E, x, nullptr, H, T, Epilogue::None);
  }

  // ---- encoder layers
  const long ld3 = 3L * H;
  for (const LayerW& lw : m.layers) {
    if (b16) {
      m.linear(lw.qkv, xb, H, nullptr, wide16, ld3, T, Epilogue::None);
      if (m.flash)
        k::attention_flash_bf16(s, wide16, wide16 + H, wide16 + 2 * H, ld3, att16, H, dTiles, numTiles, heads, D);
      else
        k::attention_simt_bf16(s, wide16, wide16 + H, wide16 + 2 * H, ld3, att16, H, dTiles, numTiles, heads, D);
      m.linear(lw.ao, att16, H, tmp, nullptr, H, T, Epilogue::None);
      k::layer_norm(s, tmp, x, lw.ln1g, lw.ln1b, x1, x1b, T, H, eps);
      m.linear(lw.inter, x1b, H, nullptr, wide16, I, T, Epilogue::Gelu);
      m.linear(lw.out, wide16, I, tmp, nullptr, H, T, Epilogue::None);
      k::layer_norm(s, tmp, x1, lw.ln2g, lw.ln2b, x, xb, T, H, eps);
    } else {
      m.linear(lw.qkv, x, H, wide, nullptr, ld3, T, Epilogue::None);
      k::attention_f32(s, wide, wide + H, wide + 2 * H, ld3, att, H, dTiles, numTiles, heads, D);
      m.linear(lw.ao, att, H, tmp, nullptr, H, T, Epilogue::None);
      k::layer_norm(s, tmp, x, lw.ln1g, lw.ln1b, x1, nullptr, T, H, eps);
      m.linear(lw.inter, x1, H, wide, nullptr, I, T, Epilogue::Gelu);
      m.linear(lw.out, wide, I, tmp, nullptr, H, T, Epilogue::None);
      k::layer_norm(s, tmp, x1, lw.ln2g, lw.ln2b, x, nullptr, T, H, eps);
    }
  }

  // ---- outputs
  const size_t BH = static_cast<size_t>(B) * H;
  const bool needCls = r.cls || r.pooler || r.logits;
  const bool needPooler = c.hasPooler && (r.pooler || (r.logits && c.head == HeadKind::Bert));
  m.head.ensure(4 * (4 * BH + static_cast<size_t>(B) * std::max(N, 1)) + 4 * 256);
  float* hMean = reinterpret_cast<float*>(m.head.data());
  float* hCls = hMean + BH;
  float* hPool = hCls + BH;
  float* hDense = hPool + BH;
  float* hLogits = hDense + BH;

  ForwardResult res;
  if (r.lastHiddenState) {
    // Every (b, t) was computed (T == B * L): unpack into tmp, then one copy.
    k::gather_rows(s, x, H, mi(oRowOf), tmp, B * L, H);
    res.lastHiddenState.resize(static_cast<size_t>(B) * L * H);
    EDU_CUDA_CHECK(cudaMemcpyAsync(res.lastHiddenState.data(), tmp, 4 * res.lastHiddenState.size(),
                                   cudaMemcpyDeviceToHost, s));
    res.hasLastHiddenState = true;
  }
  if (r.meanPooled) {
    k::mean_pool(s, x, mi(oStart), mi(oVis), hMean, B, H);
    res.meanPooled.resize(BH);
    EDU_CUDA_CHECK(cudaMemcpyAsync(res.meanPooled.data(), hMean, 4 * BH, cudaMemcpyDeviceToHost, s));
    res.hasMeanPooled = true;
  }
  if (needCls) k::gather_rows(s, x, H, mi(oCls), hCls, B, H);
  if (r.cls) {
    res.cls.resize(BH);
    EDU_CUDA_CHECK(cudaMemcpyAsync(res.cls.data(), hCls, 4 * BH, cudaMemcpyDeviceToHost, s));
    res.hasCls = true;
  }
  if (needPooler) {
    m.linear(m.pooler, hCls, H, hPool, nullptr, H, B, Epilogue::Tanh);
    if (r.pooler) {
      res.poolerOutput.resize(BH);
      EDU_CUDA_CHECK(cudaMemcpyAsync(res.poolerOutput.data(), hPool, 4 * BH, cudaMemcpyDeviceToHost, s));
      res.hasPooler = true;
    }
  }
  if (r.logits && c.head != HeadKind::None) {
    if (c.head == HeadKind::Bert) {
      m.linear(m.clsOut, hPool, H, hLogits, nullptr, N, B, Epilogue::None);
    } else {
      m.linear(m.clsDense, hCls, H, hDense, nullptr, H, B,
               c.head == HeadKind::Roberta ? Epilogue::Tanh : Epilogue::Gelu);
      m.linear(m.clsOut, hDense, H, hLogits, nullptr, N, B, Epilogue::None);
    }
    res.logits.resize(static_cast<size_t>(B) * N);
    EDU_CUDA_CHECK(cudaMemcpyAsync(res.logits.data(), hLogits, 4 * res.logits.size(), cudaMemcpyDeviceToHost, s));
    res.hasLogits = true;
  }
  EDU_CUDA_CHECK(cudaStreamSynchronize(s));  // surfaces asynchronous kernel faults
  return res;
}

}  // namespace cuda
}  // namespace edu

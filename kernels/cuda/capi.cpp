// A small C ABI over edu::cuda::CudaEncoder, for scripts/gpu/*.py (ctypes): the golden suite and the
// benchmark against PyTorch run in one Python process on GPU machines that have no Node.js.
// Built only as the shared library edu_cuda_capi (EXCLUDE_FROM_ALL; scripts/gpu/run-gpu-checks.sh).
#include <cstring>
#include <exception>
#include <string>

#include "edu_cuda.h"

namespace {
thread_local std::string g_error;
int fail(const std::exception& e) {
  g_error = e.what();
  return -1;
}
}  // namespace

extern "C" {

/** Message of the last failure on this thread. */
const char* edu_cuda_last_error() { return g_error.c_str(); }

/**
 * ints: vocab, hidden, embedding, layers, heads, intermediate, maxPositions, typeVocab, padTokenId,
 * hasPooler, numLabels. positionStyle "absolute" | "roberta"; head "none" | "bert" | "roberta" |
 * "electra"; precision "fp32" | "bf16". Returns null on failure (see edu_cuda_last_error).
 */
void* edu_cuda_create(const int* ints, double eps, const char* positionStyle, const char* head, int nWeights,
                      const char* const* names, const float* const* data, const size_t* sizes, int device,
                      const char* precision) {
  try {
    edu::EncoderConfig c;
    c.vocabSize = ints[0];
    c.hiddenSize = ints[1];
    c.embeddingSize = ints[2];
    c.numLayers = ints[3];
    c.numHeads = ints[4];
    c.intermediateSize = ints[5];
    c.maxPositions = ints[6];
    c.typeVocabSize = ints[7];
    c.padTokenId = ints[8];
    c.hasPooler = ints[9] != 0;
    c.numLabels = ints[10];
    c.layerNormEps = eps;
    const std::string ps = positionStyle, hd = head;
    c.positionStyle = ps == "roberta" ? edu::PositionStyle::Roberta : edu::PositionStyle::Absolute;
    c.head = hd == "bert" ? edu::HeadKind::Bert
             : hd == "roberta" ? edu::HeadKind::Roberta
             : hd == "electra" ? edu::HeadKind::Electra
                               : edu::HeadKind::None;
    edu::WeightMap w;
    for (int i = 0; i < nWeights; ++i) w[names[i]] = edu::WeightView{data[i], sizes[i]};
    return new edu::cuda::CudaEncoder(c, w, device, edu::cuda::parse_precision(precision));
  } catch (const std::exception& e) {
    fail(e);
    return nullptr;
  }
}

void edu_cuda_destroy(void* h) { delete static_cast<edu::cuda::CudaEncoder*>(h); }

/** Copies the kernels description into buf (NUL-terminated, truncated to cap). */
void edu_cuda_describe(void* h, char* buf, size_t cap) {
  if (cap == 0) return;
  const auto* e = static_cast<edu::cuda::CudaEncoder*>(h);
  const std::string s = e->device_name() + " " + edu::cuda::precision_name(e->precision()) + ": " + e->kernels();
  std::strncpy(buf, s.c_str(), cap - 1);
  buf[cap - 1] = '\0';
}

/**
 * One forward. types may be null. Each output pointer may be null (= not requested); sizes:
 * lastHidden [B*L*H], mean/cls/pooler [B*H], logits [B*numLabels]. Returns 0, or -1 (see last error;
 * a CUDA out-of-memory message starts with "CUDA out of memory").
 */
int edu_cuda_forward(void* h, const int32_t* ids, const int32_t* mask, const int32_t* types, int batch, int seqLen,
                     float* lastHidden, float* mean, float* cls, float* pooler, float* logits) {
  try {
    auto* e = static_cast<edu::cuda::CudaEncoder*>(h);
    const size_t n = static_cast<size_t>(batch) * seqLen;
    edu::ForwardRequest r;
    r.inputIds = ids;
    r.inputIdsLength = n;
    r.attentionMask = mask;
    r.attentionMaskLength = n;
    r.tokenTypeIds = types;
    r.tokenTypeIdsLength = types ? n : 0;
    r.batch = batch;
    r.seqLen = seqLen;
    r.lastHiddenState = lastHidden != nullptr;
    r.meanPooled = mean != nullptr;
    r.cls = cls != nullptr;
    r.pooler = pooler != nullptr;
    r.logits = logits != nullptr;
    const edu::ForwardResult res = e->forward(r);
    auto out = [](float* dst, const std::vector<float>& v) {
      if (dst && !v.empty()) std::memcpy(dst, v.data(), v.size() * sizeof(float));
    };
    out(lastHidden, res.lastHiddenState);
    out(mean, res.meanPooled);
    out(cls, res.cls);
    out(pooler, res.poolerOutput);
    out(logits, res.logits);
    return 0;
  } catch (const std::exception& e) {
    return fail(e);
  }
}

/** cudaMemGetInfo of the encoder's device and its activation bytes per token. */
int edu_cuda_mem(void* h, size_t* freeBytes, size_t* totalBytes, size_t* bytesPerToken) {
  try {
    auto* e = static_cast<edu::cuda::CudaEncoder*>(h);
    e->mem_info(*freeBytes, *totalBytes);
    *bytesPerToken = e->bytes_per_token();
    return 0;
  } catch (const std::exception& e) {
    return fail(e);
  }
}

}  // extern "C"

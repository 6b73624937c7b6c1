#include "convert.h"

#include <cmath>

#include "edu_cpu.h"

namespace edu {
namespace napi {

void type_error(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }
void error(Napi::Env env, const std::string& msg) { throw Napi::Error::New(env, msg); }

std::string describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsBoolean()) return "boolean";
  if (v.IsNumber()) return "number";
  if (v.IsString()) return "string";
  if (v.IsTypedArray()) {
    switch (v.As<Napi::TypedArray>().TypedArrayType()) {
      case napi_int8_array: return "Int8Array";
      case napi_uint8_array: return "Uint8Array";
      case napi_uint8_clamped_array: return "Uint8ClampedArray";
      case napi_int16_array: return "Int16Array";
      case napi_uint16_array: return "Uint16Array";
      case napi_int32_array: return "Int32Array";
      case napi_uint32_array: return "Uint32Array";
      case napi_float32_array: return "Float32Array";
      case napi_float64_array: return "Float64Array";
      case napi_bigint64_array: return "BigInt64Array";
      case napi_biguint64_array: return "BigUint64Array";
      default: return "TypedArray";
    }
  }
  if (v.IsArray()) return "Array";
  if (v.IsFunction()) return "function";
  if (v.IsObject()) return "object";
  return "value";
}

int to_int(Napi::Env env, const Napi::Value& v, const std::string& name, long long min, long long max) {
  if (!v.IsNumber()) type_error(env, name + " must be an integer number, got " + describe(v));
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d) type_error(env, name + " must be an integer, got " + std::to_string(d));
  if (d < static_cast<double>(min) || d > static_cast<double>(max))
    error(env, name + " must be in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " +
                   std::to_string(static_cast<long long>(d)));
  return static_cast<int>(d);
}

double to_number(Napi::Env env, const Napi::Value& v, const std::string& name) {
  if (!v.IsNumber()) type_error(env, name + " must be a number, got " + describe(v));
  return v.As<Napi::Number>().DoubleValue();
}

bool to_bool(Napi::Env env, const Napi::Value& v, const std::string& name) {
  if (!v.IsBoolean()) type_error(env, name + " must be a boolean, got " + describe(v));
  return v.As<Napi::Boolean>().Value();
}

std::string to_string(Napi::Env env, const Napi::Value& v, const std::string& name) {
  if (!v.IsString()) type_error(env, name + " must be a string, got " + describe(v));
  return v.As<Napi::String>().Utf8Value();
}

void check_attached(Napi::Env env, const Napi::TypedArray& a, const std::string& name) {
  if (a.ArrayBuffer().IsDetached())
    type_error(env, name + "'s ArrayBuffer is detached (transferred or structuredClone'd away); pass a live array");
}

Napi::Float32Array to_f32(Napi::Env env, const Napi::Value& v, const std::string& name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    type_error(env, name + " must be a Float32Array, got " + describe(v));
  check_attached(env, v.As<Napi::TypedArray>(), name);
  return v.As<Napi::Float32Array>();
}

Napi::Int32Array to_i32(Napi::Env env, const Napi::Value& v, const std::string& name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    type_error(env, name + " must be an Int32Array, got " + describe(v));
  check_attached(env, v.As<Napi::TypedArray>(), name);
  return v.As<Napi::Int32Array>();
}

bool options_at(const Napi::CallbackInfo& info, size_t index, Napi::Object& out) {
  if (info.Length() <= index) return false;
  const Napi::Value v = info[index];
  if (v.IsUndefined() || v.IsNull()) return false;
  if (!v.IsObject() || v.IsArray() || v.IsTypedArray())
    type_error(info.Env(), "options must be an object, got " + describe(v));
  out = v.As<Napi::Object>();
  return true;
}

Isa isa_option(Napi::Env env, const Napi::Object* options) {
  std::string name = "auto";
  if (options != nullptr && options->Has("isa")) {
    const Napi::Value v = options->Get("isa");
    if (!v.IsUndefined()) name = to_string(env, v, "options.isa");
  }
  return guard(env, [&] { return cpu::resolve_isa(name); });
}

int threads_option(Napi::Env env, const Napi::Object* options) {
  if (options != nullptr && options->Has("threads")) {
    const Napi::Value v = options->Get("threads");
    if (!v.IsUndefined()) return to_int(env, v, "options.threads", 1, 1024);
  }
  return logical_cpus();
}

EncoderConfig parse_encoder_config(Napi::Env env, const Napi::Value& v, const std::string& ctx) {
  if (!v.IsObject() || v.IsArray()) type_error(env, ctx + " must be an object, got " + describe(v));
  const Napi::Object o = v.As<Napi::Object>();
  auto field = [&](const char* name) {
    const Napi::Value f = o.Get(name);
    if (f.IsUndefined()) type_error(env, ctx + "." + name + " is missing");
    return f;
  };
  auto i = [&](const char* name, long long min) { return to_int(env, field(name), ctx + "." + name, min, 2147483647LL); };
  EncoderConfig c;
  c.vocabSize = i("vocabSize", 1);
  c.hiddenSize = i("hiddenSize", 1);
  c.embeddingSize = i("embeddingSize", 1);
  c.numLayers = i("numLayers", 1);
  c.numHeads = i("numHeads", 1);
  c.intermediateSize = i("intermediateSize", 1);
  c.maxPositions = i("maxPositions", 1);
  c.typeVocabSize = i("typeVocabSize", 1);
  c.layerNormEps = to_number(env, field("layerNormEps"), ctx + ".layerNormEps");
  c.padTokenId = i("padTokenId", 0);
  const std::string ps = to_string(env, field("positionStyle"), ctx + ".positionStyle");
  if (ps == "absolute") c.positionStyle = PositionStyle::Absolute;
  else if (ps == "roberta") c.positionStyle = PositionStyle::Roberta;
  else error(env, ctx + ".positionStyle must be 'absolute' or 'roberta', got '" + ps + "'");
  c.hasPooler = to_bool(env, field("hasPooler"), ctx + ".hasPooler");
  const Napi::Value hv = o.Get("head");
  const std::string head = hv.IsUndefined() ? "none" : to_string(env, hv, ctx + ".head");
  if (head == "none") c.head = HeadKind::None;
  else if (head == "bert") c.head = HeadKind::Bert;
  else if (head == "roberta") c.head = HeadKind::Roberta;
  else if (head == "electra") c.head = HeadKind::Electra;
  else error(env, ctx + ".head must be 'none', 'bert', 'roberta' or 'electra', got '" + head + "'");
  c.numLabels = o.Get("numLabels").IsUndefined() ? 0 : i("numLabels", 0);
  return c;
}

std::unique_ptr<OwnedRequest> parse_forward_request(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject() || v.IsArray()) type_error(env, "forward(request): request must be an object, got " + describe(v));
  const Napi::Object o = v.As<Napi::Object>();
  auto own = std::make_unique<OwnedRequest>();
  auto copy = [&](const char* name, std::vector<int32_t>& dst) {
    Napi::Int32Array a = to_i32(env, o.Get(name), std::string("request.") + name);
    dst.assign(a.Data(), a.Data() + a.ElementLength());
  };
  copy("inputIds", own->ids);
  copy("attentionMask", own->mask);
  const Napi::Value tt = o.Get("tokenTypeIds");
  if (!tt.IsUndefined() && !tt.IsNull()) {
    copy("tokenTypeIds", own->types);
    own->hasTypes = true;
  }
  ForwardRequest& r = own->req;
  r.batch = to_int(env, o.Get("batch"), "request.batch", 1, 2147483647LL);
  r.seqLen = to_int(env, o.Get("seqLen"), "request.seqLen", 1, 2147483647LL);
  r.inputIds = own->ids.data();
  r.inputIdsLength = own->ids.size();
  r.attentionMask = own->mask.data();
  r.attentionMaskLength = own->mask.size();
  if (own->hasTypes) {
    r.tokenTypeIds = own->types.data();
    r.tokenTypeIdsLength = own->types.size();
  }
  // Empty typed arrays have a null Data(); keep pointers non-null so the length check reports.
  static const int32_t kEmpty = 0;
  if (r.inputIds == nullptr) r.inputIds = &kEmpty;
  if (r.attentionMask == nullptr) r.attentionMask = &kEmpty;
  if (own->hasTypes && r.tokenTypeIds == nullptr) r.tokenTypeIds = &kEmpty;

  const Napi::Value outs = o.Get("outputs");
  if (!outs.IsObject() || outs.IsArray()) type_error(env, "request.outputs must be an object, got " + describe(outs));
  const Napi::Object oo = outs.As<Napi::Object>();
  auto flag = [&](const char* name) {
    const Napi::Value f = oo.Get(name);
    if (f.IsUndefined() || f.IsNull()) return false;
    return to_bool(env, f, std::string("request.outputs.") + name);
  };
  r.lastHiddenState = flag("lastHiddenState");
  r.meanPooled = flag("meanPooled");
  r.cls = flag("cls");
  r.pooler = flag("pooler");
  r.logits = flag("logits");
  return own;
}

}  // namespace napi
}  // namespace edu

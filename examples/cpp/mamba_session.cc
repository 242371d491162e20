// Session creation (provider, custom-op library) and the greedy decoding loop.
#include "mamba_session.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "user_error.h"

namespace mamba_example {
namespace {

constexpr const char* kInputIds = "input_ids";
constexpr const char* kAttentionMask = "attention_mask";
constexpr const char* kLogits = "logits";
constexpr const char* kLastHiddenState = "last_hidden_state";
constexpr const char* kPastPrefix = "past.";
constexpr const char* kPresentPrefix = "present.";

size_t ElementBytes(ONNXTensorElementDataType type, const std::string& name) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT:
      return 4;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16:
      return 2;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE:
      return 8;
    default:
      throw UserError("graph input " + name + " has element type " + std::to_string(type) +
                      "; expected float32, float16 or bfloat16");
  }
}

void AppendCuda(Ort::SessionOptions& options, int device) {
  const auto available = Ort::GetAvailableProviders();
  if (std::find(available.begin(), available.end(), "CUDAExecutionProvider") == available.end()) {
    std::string names;
    for (const auto& name : available) names += (names.empty() ? "" : ", ") + name;
    throw UserError("--provider cuda: this ONNX Runtime library has no CUDAExecutionProvider (it has: " + names +
                    "); rebuild with -DONNXRUNTIME_ROOT pointing at an onnxruntime-gpu release");
  }
  const OrtApi& api = Ort::GetApi();
  OrtCUDAProviderOptionsV2* raw = nullptr;
  Ort::ThrowOnError(api.CreateCUDAProviderOptions(&raw));
  std::unique_ptr<OrtCUDAProviderOptionsV2, void (*)(OrtCUDAProviderOptionsV2*)> cuda_options(
      raw, api.ReleaseCUDAProviderOptions);
  const std::string device_text = std::to_string(device);
  const char* keys[] = {"device_id"};
  const char* values[] = {device_text.c_str()};
  Ort::ThrowOnError(api.UpdateCUDAProviderOptions(cuda_options.get(), keys, values, 1));
  try {
    options.AppendExecutionProvider_CUDA_V2(*cuda_options);
  } catch (const Ort::Exception& error) {
    throw UserError(std::string("--provider cuda: ONNX Runtime could not enable CUDA (") + error.what() +
                    "); check the CUDA and cuDNN libraries that this onnxruntime release needs");
  }
}

Ort::SessionOptions MakeOptions(const SessionConfig& config) {
  Ort::SessionOptions options;
  if (config.threads > 0) options.SetIntraOpNumThreads(config.threads);
  if (config.provider == "cuda") AppendCuda(options, config.cuda_device);
  if (!config.custom_ops_library.empty()) {
    try {
      options.RegisterCustomOpsLibrary(config.custom_ops_library.c_str());
    } catch (const Ort::Exception& error) {
      throw UserError("could not load the custom-op library " + config.custom_ops_library + " (" + error.what() +
                      "); rebuild it with `mamba-export build-ops`");
    }
  }
  return options;
}

float ToFloat(const void* data, size_t index, ONNXTensorElementDataType type) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT:
      return static_cast<const float*>(data)[index];
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16:
      return static_cast<const Ort::Float16_t*>(data)[index].ToFloat();
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16:
      return static_cast<const Ort::BFloat16_t*>(data)[index].ToFloat();
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE:
      return static_cast<float>(static_cast<const double*>(data)[index]);
    default:
      throw UserError("the head output has element type " + std::to_string(type) + "; expected a float type");
  }
}

// Index of the largest logit of the last position; the first one wins ties, as numpy's argmax.
int64_t ArgMaxOfLastPosition(const Ort::Value& logits) {
  const auto info = logits.GetTensorTypeAndShapeInfo();
  const auto shape = info.GetShape();  // (1, sequence or 1, vocab)
  if (shape.size() != 3 || shape[0] != 1) throw UserError("logits must have shape (1, positions, vocab)");
  const size_t vocab = static_cast<size_t>(shape[2]);
  const size_t offset = static_cast<size_t>(shape[1] - 1) * vocab;
  const void* data = logits.GetTensorRawData();
  const auto type = info.GetElementType();
  size_t best = 0;
  float best_value = ToFloat(data, offset, type);
  for (size_t v = 1; v < vocab; ++v) {
    const float value = ToFloat(data, offset + v, type);
    if (value > best_value) {
      best_value = value;
      best = v;
    }
  }
  return static_cast<int64_t>(best);
}

}  // namespace

MambaSession::MambaSession(const Ort::Env& env, const SessionConfig& config)
    : session_(env, config.model_path.c_str(), MakeOptions(config)) {
  DescribeGraph(config.head_output);
}

void MambaSession::DescribeGraph(const std::string& head_output) {
  Ort::AllocatorWithDefaultOptions allocator;
  std::vector<std::string> outputs;
  for (size_t i = 0; i < session_.GetOutputCount(); ++i) {
    outputs.push_back(session_.GetOutputNameAllocated(i, allocator).get());
  }
  const auto head = std::find(outputs.begin(), outputs.end(), head_output);
  if (head == outputs.end()) {
    throw UserError("export_info.json promises a '" + head_output + "' output, which the graph lacks; "
                    "re-export the folder");
  }
  head_output_ = head_output;
  if (head_output_ == kLogits) {
    const Ort::TypeInfo logits_type = session_.GetOutputTypeInfo(head - outputs.begin());
    const auto logits_shape = logits_type.GetTensorTypeAndShapeInfo().GetShape();
    vocab_size_ = logits_shape.empty() ? -1 : logits_shape.back();
  }
  input_names_ = {kInputIds};
  bool has_input_ids = false;
  for (size_t i = 0; i < session_.GetInputCount(); ++i) {
    const std::string name = session_.GetInputNameAllocated(i, allocator).get();
    if (name == kInputIds) {
      has_input_ids = true;
      continue;
    }
    if (name == kAttentionMask) {
      has_attention_mask_ = true;
      continue;
    }
    if (name.rfind(kPastPrefix, 0) != 0) continue;
    const std::string present = kPresentPrefix + name.substr(std::strlen(kPastPrefix));
    if (std::find(outputs.begin(), outputs.end(), present) == outputs.end()) {
      throw UserError("graph input " + name + " has no matching output " + present);
    }
    const Ort::TypeInfo type_info = session_.GetInputTypeInfo(i);  // owns what `info` points into
    const auto info = type_info.GetTensorTypeAndShapeInfo();
    std::vector<int64_t> shape = info.GetShape();
    for (size_t d = 1; d < shape.size(); ++d) {
      if (shape[d] < 0) throw UserError("graph input " + name + " has a dynamic dimension " + std::to_string(d));
    }
    if (shape.empty()) throw UserError("graph input " + name + " is a scalar; expected (batch, ...)");
    shape[0] = 1;
    slots_.push_back({name, present, shape, info.GetElementType()});
  }
  if (!has_input_ids) throw UserError("the graph has no 'input_ids' input; is it a mamba-export model?");
  if (slots_.empty()) throw UserError("the graph has no past.* state inputs; is it a mamba-export model?");
  if (has_attention_mask_) input_names_.push_back(kAttentionMask);
  output_names_ = {head_output_};
  for (const auto& slot : slots_) {
    input_names_.push_back(slot.past_name);
    output_names_.push_back(slot.present_name);
  }
}

std::vector<Ort::Value> MambaSession::ZeroStates() const {
  Ort::AllocatorWithDefaultOptions allocator;
  std::vector<Ort::Value> states;
  for (const auto& slot : slots_) {
    Ort::Value value = Ort::Value::CreateTensor(allocator, slot.shape.data(), slot.shape.size(), slot.type);
    const size_t count = value.GetTensorTypeAndShapeInfo().GetElementCount();
    std::memset(value.GetTensorMutableRawData(), 0, count * ElementBytes(slot.type, slot.past_name));
    states.push_back(std::move(value));
  }
  return states;
}

Ort::Value MambaSession::Run(const std::vector<int64_t>& ids, std::vector<Ort::Value>& states) {
  const auto memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  const std::vector<int64_t> shape = {1, static_cast<int64_t>(ids.size())};
  std::vector<int64_t> id_buffer = ids;
  std::vector<int64_t> mask(ids.size(), 1);
  std::vector<Ort::Value> feeds;
  feeds.push_back(Ort::Value::CreateTensor<int64_t>(memory, id_buffer.data(), id_buffer.size(), shape.data(), 2));
  if (has_attention_mask_) {
    feeds.push_back(Ort::Value::CreateTensor<int64_t>(memory, mask.data(), mask.size(), shape.data(), 2));
  }
  for (auto& state : states) feeds.push_back(std::move(state));

  std::vector<const char*> input_names;
  for (const auto& name : input_names_) input_names.push_back(name.c_str());
  std::vector<const char*> output_names;
  for (const auto& name : output_names_) output_names.push_back(name.c_str());

  auto outputs = session_.Run(Ort::RunOptions{nullptr}, input_names.data(), feeds.data(), feeds.size(),
                              output_names.data(), output_names.size());
  states.clear();
  for (size_t i = 1; i < outputs.size(); ++i) states.push_back(std::move(outputs[i]));
  return std::move(outputs[0]);
}

int64_t MambaSession::Step(const std::vector<int64_t>& ids, std::vector<Ort::Value>& states) {
  return ArgMaxOfLastPosition(Run(ids, states));
}

void MambaSession::RequireHead(const char* wanted, const std::string& use) const {
  if (head_output_ == wanted) return;
  if (head_output_ == kLastHiddenState) {
    throw UserError("this export is a base model (its graph outputs last_hidden_state, no logits): " + use +
                    " needs a causal-LM export; pass --features to print the prompt's last hidden state");
  }
  throw UserError("--features needs a base-model export (graph output last_hidden_state); this one outputs " +
                  head_output_ + " (export the model without its head, e.g. MambaModel)");
}

std::vector<float> MambaSession::LastHiddenState(const std::vector<int64_t>& prompt) {
  RequireHead(kLastHiddenState, "--features");
  std::vector<Ort::Value> states = ZeroStates();
  const Ort::Value hidden = Run(prompt, states);
  const auto info = hidden.GetTensorTypeAndShapeInfo();
  const auto shape = info.GetShape();  // (1, sequence, hidden)
  if (shape.size() != 3 || shape[0] != 1) throw UserError("last_hidden_state must have shape (1, sequence, hidden)");
  const size_t width = static_cast<size_t>(shape[2]);
  const size_t offset = static_cast<size_t>(shape[1] - 1) * width;
  std::vector<float> values(width);
  for (size_t i = 0; i < width; ++i) values[i] = ToFloat(hidden.GetTensorRawData(), offset + i, info.GetElementType());
  return values;
}

std::vector<int64_t> MambaSession::GenerateGreedy(const std::vector<int64_t>& prompt, int max_new_tokens,
                                                  std::optional<int64_t> eos_id) {
  RequireHead(kLogits, "greedy generation");
  for (const int64_t id : prompt) {
    if (vocab_size_ > 0 && id >= vocab_size_) {
      throw UserError("--ids: token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                      std::to_string(vocab_size_ - 1) + ")");
    }
  }
  std::vector<int64_t> generated;
  if (max_new_tokens <= 0) return generated;
  std::vector<Ort::Value> states = ZeroStates();
  int64_t next = Step(prompt, states);
  generated.push_back(next);
  while (static_cast<int>(generated.size()) < max_new_tokens && !(eos_id && next == *eos_id)) {
    next = Step({next}, states);
    generated.push_back(next);
  }
  return generated;
}

}  // namespace mamba_example

// One ONNX Runtime session over an exported model.onnx, and greedy decoding that
// carries the recurrent states from each call to the next.
//
// The state inputs are discovered from the session itself: every input named
// past.{i}.conv_state / past.{i}.ssm_state has a matching present.{i}.* output, and
// its shape is (batch, intermediate_size, conv_kernel - 1) or
// (batch, intermediate_size, state_size) with only the batch dimension dynamic.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mamba_example {

struct SessionConfig {
  std::string model_path;          // .../model.onnx
  std::string provider = "cpu";    // "cpu" or "cuda"
  int cuda_device = 0;
  std::string custom_ops_library;  // registered when not empty
  int threads = 0;
  std::string head_output = "logits";  // export_info.json's head_output: "logits" or "last_hidden_state"
};

class MambaSession {
 public:
  MambaSession(const Ort::Env& env, const SessionConfig& config);

  // Runs the prompt (one sequence, no padding) from zero states, then feeds back the
  // arg-max token one at a time. Returns only the new token ids; stops early after
  // eos_id when given.
  std::vector<int64_t> GenerateGreedy(const std::vector<int64_t>& prompt, int max_new_tokens,
                                      std::optional<int64_t> eos_id);

  // Runs the prompt from zero states on a base-model export and returns the last
  // position's hidden state (the sequence's feature vector) as floats.
  std::vector<float> LastHiddenState(const std::vector<int64_t>& prompt);

 private:
  struct StateSlot {
    std::string past_name;
    std::string present_name;
    std::vector<int64_t> shape;  // batch fixed to 1
    ONNXTensorElementDataType type;
  };

  void DescribeGraph(const std::string& head_output);
  void RequireHead(const char* wanted, const std::string& use) const;
  std::vector<Ort::Value> ZeroStates() const;
  // Runs one call; `states` are consumed and replaced by the presents. Returns the head output.
  Ort::Value Run(const std::vector<int64_t>& ids, std::vector<Ort::Value>& states);
  // Run, then the arg-max of the last position's logits.
  int64_t Step(const std::vector<int64_t>& ids, std::vector<Ort::Value>& states);

  Ort::Session session_;
  bool has_attention_mask_ = false;
  int64_t vocab_size_ = -1;  // -1 when the graph leaves it dynamic or has no logits
  std::string head_output_;
  std::vector<StateSlot> slots_;
  std::vector<std::string> input_names_;   // in feed order
  std::vector<std::string> output_names_;  // head output, then presents in slot order
};

}  // namespace mamba_example

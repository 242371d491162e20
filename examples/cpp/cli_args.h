// Command-line flags of mamba_generate, parsed without any third-party library.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mamba_example {

struct CliArgs {
  std::string model_dir;
  std::vector<int64_t> prompt_ids;
  int max_new_tokens = 20;
  std::string provider = "cpu";  // "cpu" or "cuda"
  int cuda_device = 0;
  std::string custom_ops_library;  // empty: look in the default places
  std::optional<int64_t> eos_id;
  int threads = 0;  // 0: ONNX Runtime's default
  bool features = false;  // print the prompt's last hidden state (base-model exports) instead of generating
  bool show_help = false;
};

// Throws UserError naming the bad flag, the expected and the actual value.
CliArgs ParseCliArgs(int argc, char** argv);

const char* UsageText();

}  // namespace mamba_example

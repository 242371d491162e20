// Parses the flags of mamba_generate; every error names the flag and what was expected.
#include "cli_args.h"

#include <cerrno>
#include <cstdlib>
#include <sstream>

#include "user_error.h"

namespace mamba_example {
namespace {

int64_t ParseInteger(const std::string& flag, const std::string& text) {
  if (text.empty()) throw UserError(flag + " expects an integer, got an empty value");
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end == nullptr || *end != '\0') {
    throw UserError(flag + " expects an integer, got '" + text + "'");
  }
  return static_cast<int64_t>(value);
}

std::vector<int64_t> ParseIdList(const std::string& text) {
  std::vector<int64_t> ids;
  std::string item;
  std::istringstream stream(text);
  while (std::getline(stream, item, ',')) {
    const int64_t id = ParseInteger("--ids", item);
    if (id < 0) throw UserError("--ids expects non-negative token ids, got " + item);
    ids.push_back(id);
  }
  if (ids.empty()) throw UserError("--ids expects at least one token id, like --ids 1,2,3");
  return ids;
}

}  // namespace

const char* UsageText() {
  return "usage: mamba_generate --model DIR --ids 1,2,3 [--max-new-tokens N] [--provider cpu|cuda]\n"
         "                      [--device-id N] [--custom-ops LIB] [--eos-id ID] [--threads N] [--features]\n"
         "Greedy generation from a mamba-export folder; prints the new token ids on one line.\n"
         "--features (for a base-model export, whose graph outputs last_hidden_state): print the\n"
         "last position's hidden state instead, one line of numbers.\n"
         "When the graph needs the custom-op library, it comes from --custom-ops, else\n"
         "$MAMBA_EXPORT_OPS_LIBRARY, else DIR/libmamba_export_ops.so.\n";
}

CliArgs ParseCliArgs(int argc, char** argv) {
  CliArgs args;
  bool have_ids = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      args.show_help = true;
      return args;
    }
    if (flag == "--features") {
      args.features = true;
      continue;
    }
    if (i + 1 >= argc) throw UserError(flag + " needs a value (see --help)");
    const std::string value = argv[++i];
    if (flag == "--model") {
      args.model_dir = value;
    } else if (flag == "--ids") {
      args.prompt_ids = ParseIdList(value);
      have_ids = true;
    } else if (flag == "--max-new-tokens") {
      const int64_t n = ParseInteger(flag, value);
      if (n < 0 || n > 1000000) throw UserError("--max-new-tokens expects 0..1000000, got " + value);
      args.max_new_tokens = static_cast<int>(n);
    } else if (flag == "--provider") {
      if (value != "cpu" && value != "cuda") throw UserError("--provider expects cpu or cuda, got '" + value + "'");
      args.provider = value;
    } else if (flag == "--device-id") {
      args.cuda_device = static_cast<int>(ParseInteger(flag, value));
    } else if (flag == "--custom-ops") {
      args.custom_ops_library = value;
    } else if (flag == "--eos-id") {
      args.eos_id = ParseInteger(flag, value);
    } else if (flag == "--threads") {
      args.threads = static_cast<int>(ParseInteger(flag, value));
    } else {
      throw UserError("unknown flag '" + flag + "' (see --help)");
    }
  }
  if (args.model_dir.empty()) throw UserError("--model DIR is required (an exported mamba-export folder)");
  if (!have_ids) throw UserError("--ids is required, like --ids 1,2,3 (token ids of the prompt)");
  return args;
}

}  // namespace mamba_example

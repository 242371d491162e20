// mamba_generate: greedy generation from a mamba-export folder with the ONNX Runtime
// C++ API, to show how an exported model embeds in a C++ program.
//
//   mamba_generate --model DIR --ids 1,2,3 --max-new-tokens 20 [--provider cuda]
//
// Prints the new token ids on one line, separated by spaces; with --features (a
// base-model export) the last position's hidden state instead. Exit status: 0 on
// success, 2 for a problem the caller can fix (message names it), 1 for an ONNX
// Runtime failure.
#include <onnxruntime_cxx_api.h>

#include <filesystem>
#include <iostream>
#include <string>

#include "cli_args.h"
#include "custom_ops_lookup.h"
#include "export_info.h"
#include "mamba_session.h"
#include "user_error.h"

namespace {

using mamba_example::UserError;

// Checks the folder and builds the session settings; `dtype` receives the export dtype.
mamba_example::SessionConfig ConfigFor(const mamba_example::CliArgs& args, std::string* dtype) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(args.model_dir)) {
    throw UserError("--model: folder " + args.model_dir + " does not exist (export one with `mamba-export export`)");
  }
  const fs::path model_path = fs::path(args.model_dir) / "model.onnx";
  if (!fs::is_regular_file(model_path)) {
    throw UserError(model_path.string() + " not found: " + args.model_dir +
                    " is not a complete mamba-export folder (export it again)");
  }
  const auto info = mamba_example::ReadExportInfo((fs::path(args.model_dir) / "export_info.json").string());
  *dtype = info.dtype;

  mamba_example::SessionConfig config;
  config.model_path = model_path.string();
  config.provider = args.provider;
  config.cuda_device = args.cuda_device;
  config.threads = args.threads;
  config.head_output = info.head_output;
  // A standard-ops graph needs no library, but a path the caller gives must still be valid.
  if (info.needs_custom_ops || !args.custom_ops_library.empty()) {
    config.custom_ops_library = mamba_example::FindCustomOpsLibrary(args.custom_ops_library, args.model_dir);
  }
  return config;
}

// ONNX Runtime's CPU provider lacks bfloat16 kernels for ops these graphs use; say so
// in the caller's terms instead of naming the first op it failed on.
mamba_example::MambaSession OpenSession(const Ort::Env& env, const mamba_example::SessionConfig& config,
                                        const std::string& dtype) {
  try {
    return mamba_example::MambaSession(env, config);
  } catch (const Ort::Exception& error) {
    if (dtype == "bf16" && config.provider == "cpu") {
      throw UserError(std::string("onnxruntime's CPU provider cannot run this bf16 export (") + error.what() +
                      "); use --provider cuda or export with --dtype fp16 or fp32");
    }
    throw;
  }
}

int Run(const mamba_example::CliArgs& args) {
  std::string dtype;
  const auto config = ConfigFor(args, &dtype);
  Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "mamba_generate");
  mamba_example::MambaSession session = OpenSession(env, config, dtype);
  if (args.features) {
    const auto hidden = session.LastHiddenState(args.prompt_ids);
    std::cout.precision(9);
    for (size_t i = 0; i < hidden.size(); ++i) std::cout << (i ? " " : "") << hidden[i];
    std::cout << std::endl;
    return 0;
  }
  const auto generated = session.GenerateGreedy(args.prompt_ids, args.max_new_tokens, args.eos_id);
  for (size_t i = 0; i < generated.size(); ++i) std::cout << (i ? " " : "") << generated[i];
  std::cout << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const auto args = mamba_example::ParseCliArgs(argc, argv);
    if (args.show_help) {
      std::cout << mamba_example::UsageText();
      return 0;
    }
    return Run(args);
  } catch (const UserError& error) {
    std::cerr << "error: " << error.what() << std::endl;
    return 2;
  } catch (const Ort::Exception& error) {
    std::cerr << "error: onnxruntime: " << error.what() << std::endl;
    return 1;
  }
}

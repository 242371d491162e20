// The few keys of an export folder's export_info.json that the runner needs.
// Everything else (input names, shapes, dtypes) comes from the ONNX Runtime session.
#pragma once

#include <string>

namespace mamba_example {

struct ExportInfo {
  bool needs_custom_ops = false;
  std::string backend;      // "custom" or "standard"
  std::string head_output;  // "logits" (a causal LM) or "last_hidden_state" (a base model)
  std::string dtype;        // "fp32", "fp16" or "bf16"
};

// Reads DIR/export_info.json; throws UserError when it is missing or lacks a key.
ExportInfo ReadExportInfo(const std::string& path);

}  // namespace mamba_example

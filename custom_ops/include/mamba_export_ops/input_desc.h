// What an op's binding knows about one input before reading its memory: shared by
// the validation of every op, which sees shapes and dtype names, never ONNX Runtime.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mamba_export_ops {

struct InputDesc {
  bool present = false;
  std::vector<int64_t> shape;
  std::string dtype;  // "float32", "float16", "bfloat16", "int64", ... (as numpy names them)
};

}  // namespace mamba_export_ops

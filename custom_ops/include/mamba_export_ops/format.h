// Message formatting shared by the validation and the ONNX Runtime binding.
// Shapes print like Python tuples ("(2, 768, 9)", "(5,)") so the C++ errors read
// exactly like the ones mamba_export/ops/selective_scan.py raises.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace mamba_export_ops {

template <typename... Parts>
std::string StrCat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

inline std::string FormatShape(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << '(';
  for (size_t i = 0; i < shape.size(); ++i) {
    out << (i ? ", " : "") << shape[i];
  }
  out << (shape.size() == 1 ? ",)" : ")");
  return out.str();
}

}  // namespace mamba_export_ops

// Reads one "name:dtype:d0,d1,..." item of a probe's case line into the matching input
// description: shared by the validation probes of every op (validate_probe.cc,
// residual_norm_probe.cc), which differ only in their inputs and what they print.
#pragma once

#include <sstream>
#include <string>

#include "mamba_export_ops/input_desc.h"

namespace mamba_export_ops {

// False when the item is malformed or names no input in names.
template <int N>
bool ParseProbeInput(const std::string& item, const char* const (&names)[N], InputDesc (&inputs)[N]) {
  const size_t first = item.find(':');
  const size_t second = item.find(':', first + 1);
  if (first == std::string::npos || second == std::string::npos) return false;
  const std::string name = item.substr(0, first);
  for (int i = 0; i < N; ++i) {
    if (name != names[i]) continue;
    InputDesc& desc = inputs[i];
    desc.present = true;
    desc.dtype = item.substr(first + 1, second - first - 1);
    std::istringstream dims(item.substr(second + 1));
    std::string dim;
    while (std::getline(dims, dim, ',')) desc.shape.push_back(std::stoll(dim));
    return true;
  }
  return false;
}

}  // namespace mamba_export_ops

// A problem the caller can fix (bad flag, missing file, unavailable provider).
// main() prints its message as one line and exits with status 2, while ONNX Runtime
// failures exit with status 1, so scripts can tell the two apart.
#pragma once

#include <stdexcept>
#include <string>

namespace mamba_example {

class UserError : public std::runtime_error {
 public:
  explicit UserError(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace mamba_example

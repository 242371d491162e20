// Runs ValidateResidualNormInputs on cases read from stdin, one per line, and prints one
// result line per case, so tests can compare the C++ messages with the Python contract's
// word for word (tests/custom_ops/test_residual_norm_validate_messages.py).
//
// Case line:   name:dtype:d0,d1,...;name:dtype:...     (absent inputs left out; a rank-0
//              input has nothing after its second colon)
// Result line: "OK rows hidden dtype_index" or the message.
#include <iostream>
#include <sstream>
#include <string>

#include "mamba_export_ops/residual_norm.h"
#include "residual_norm/validate.h"
#include "tests/probe_input.h"

int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    mamba_export_ops::NormInputs inputs;
    std::istringstream items(line);
    std::string item;
    bool parsed = true;
    while (std::getline(items, item, ';')) {
      parsed = parsed && (item.empty() || mamba_export_ops::ParseProbeInput(item, mamba_export_ops::kNormInputNames,
                                                                             inputs));
    }
    if (!parsed) {
      std::cout << "PARSE ERROR " << line << "\n";
      continue;
    }
    mamba_export_ops::ResidualNormParams params;
    const std::string error = mamba_export_ops::ValidateResidualNormInputs(inputs, &params);
    if (!error.empty()) {
      std::cout << error << "\n";
      continue;
    }
    std::cout << "OK " << params.rows << ' ' << params.hidden << ' ' << static_cast<int>(params.dtype) << "\n";
  }
  return 0;
}

// Prints LinearPathFor (mamba_export_ops/linear.h) for cases read from stdin, one per line, so
// tests/custom_ops/test_linear_contract_agrees.py can hold the header's rule to the contract's
// cuda_path over a grid of calls.
//
// Case line:   rows inner outer weight_bytes half_precision(0 or 1)
// Result line: 0 (matrix-vector kernel), 1 (tensor-core kernel) or 2 (cuBLAS)
#include <iostream>
#include <sstream>
#include <string>

#include "mamba_export_ops/linear.h"

int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream fields(line);
    long long rows = 0, inner = 0, outer = 0, weight_bytes = 0;
    int half = 0;
    if (!(fields >> rows >> inner >> outer >> weight_bytes >> half)) {
      std::cout << "bad line: " << line << "\n";
      continue;
    }
    std::cout << static_cast<int>(mamba_export_ops::LinearPathFor(rows, inner, outer, weight_bytes, half != 0)) << "\n";
  }
  return 0;
}

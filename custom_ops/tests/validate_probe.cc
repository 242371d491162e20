// Runs ValidateSelectiveScanInputs on cases read from stdin, one per line, and prints
// one result line per case, so tests can compare the C++ messages with the Python
// contract's word for word (tests/custom_ops/test_validate_messages.py).
//
// Case line:   name:dtype:d0,d1,...;name:dtype:...     (absent inputs left out; a
//              rank-0 input has nothing after its second colon); an item layout=K
//              sets the layout attribute (0 when absent); items b_offset=K,
//              c_offset=K, z_offset=K, delta_offset=K set the offset attributes (-1 when absent)
// Result line: "OK batch dim length state groups_b groups_c dtype_index rank" or the message.
#include <iostream>
#include <sstream>
#include <string>

#include "mamba_export_ops/contract.h"
#include "selective_scan/validate.h"
#include "tests/probe_input.h"

int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    mamba_export_ops::ScanInputs inputs;
    std::istringstream items(line);
    std::string item;
    bool parsed = true;
    int layout = 0;
    mamba_export_ops::ScanOffsets offsets;
    while (std::getline(items, item, ';')) {
      if (item.rfind("layout=", 0) == 0) {
        layout = std::stoi(item.substr(7));
        continue;
      }
      const struct {
        const char* prefix;
        int64_t* value;
      } offset_items[] = {{"b_offset=", &offsets.b},
                          {"c_offset=", &offsets.c},
                          {"z_offset=", &offsets.z},
                          {"delta_offset=", &offsets.delta}};
      bool is_offset = false;
      for (const auto& offset : offset_items) {
        const std::string prefix = offset.prefix;
        if (item.rfind(prefix, 0) == 0) {
          *offset.value = std::stoll(item.substr(prefix.size()));
          is_offset = true;
        }
      }
      if (is_offset) continue;
      parsed = parsed && (item.empty() || mamba_export_ops::ParseProbeInput(item,
                                                                             mamba_export_ops::kInputNames, inputs));
    }
    if (!parsed) {
      std::cout << "PARSE ERROR " << line << "\n";
      continue;
    }
    mamba_export_ops::SelectiveScanParams params;
    const std::string error = mamba_export_ops::ValidateSelectiveScanInputs(inputs, layout, offsets, &params);
    if (!error.empty()) {
      std::cout << error << "\n";
      continue;
    }
    std::cout << "OK " << params.batch << ' ' << params.dim << ' ' << params.length << ' ' << params.state
              << ' ' << params.groups_b << ' ' << params.groups_c << ' ' << static_cast<int>(params.dtype) << ' '
              << params.rank << "\n";
  }
  return 0;
}

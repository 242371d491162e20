// Where the runner finds libmamba_export_ops.so when a graph needs the SelectiveScan op.
#pragma once

#include <string>

namespace mamba_example {

// Returns, in this order: `explicit_path` (--custom-ops), $MAMBA_EXPORT_OPS_LIBRARY, or
// <model_dir>/libmamba_export_ops.so. A path given by flag or variable must exist.
// Throws UserError naming what is missing and how to fix it.
std::string FindCustomOpsLibrary(const std::string& explicit_path, const std::string& model_dir);

}  // namespace mamba_example

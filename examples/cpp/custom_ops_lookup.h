// Where the runner finds libmamba_export_ops.so when a graph needs the SelectiveScan op.
#pragma once

#include <string>

namespace mamba_example {

// Returns the first existing library among: `explicit_path` (when given it must exist),
// $MAMBA_EXPORT_OPS_LIBRARY, <model_dir>/libmamba_export_ops.so and the library built in
// this repository. Throws UserError listing every place it looked.
std::string FindCustomOpsLibrary(const std::string& explicit_path, const std::string& model_dir);

}  // namespace mamba_example

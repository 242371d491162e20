// Checks the inputs of one Linear call against the contract before any tensor memory is
// touched. Shared by the CPU and CUDA bindings; it sees only shapes and dtype names, never
// ONNX Runtime. The messages repeat the wording of check_inputs() in mamba_export/ops/linear.py.
#pragma once

#include <string>

#include "linear/params.h"
#include "mamba_export_ops/input_desc.h"
#include "mamba_export_ops/linear.h"

namespace mamba_export_ops {

using LinearInputs = InputDesc[kLinearNumInputs];

// Returns "" when the inputs are valid, and then sets the sizes and dtype of params (pointers
// are left alone). Otherwise returns the error message, which names the input, the expected and
// the actual value.
std::string ValidateLinearInputs(const LinearInputs& inputs, LinearParams* params);

}  // namespace mamba_export_ops

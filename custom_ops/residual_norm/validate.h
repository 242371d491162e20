// Checks the inputs of one ResidualRMSNorm call against the contract before any tensor
// memory is touched. Shared by the CPU and CUDA bindings; it sees only shapes and
// dtype names, never ONNX Runtime. The messages repeat the wording of check_inputs()
// in mamba_export/ops/residual_norm.py.
#pragma once

#include <string>

#include "mamba_export_ops/input_desc.h"
#include "mamba_export_ops/residual_norm.h"
#include "residual_norm/params.h"

namespace mamba_export_ops {

using NormInputs = InputDesc[kNormNumInputs];

// Returns "" when the inputs are valid, and then sets the sizes and dtype of params
// (pointers are left alone). Otherwise returns the error message, which names the
// input, the expected and the actual value.
std::string ValidateResidualNormInputs(const NormInputs& inputs, ResidualNormParams* params);

}  // namespace mamba_export_ops

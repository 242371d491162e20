// Checks the inputs of one CausalConv1d call against the contract before any tensor
// memory is touched. Shared by the CPU and CUDA bindings; it sees only shapes and
// dtype names, never ONNX Runtime. The messages repeat the wording of check_inputs()
// in mamba_export/ops/causal_conv.py.
#pragma once

#include <string>

#include "causal_conv/params.h"
#include "mamba_export_ops/causal_conv.h"
#include "mamba_export_ops/input_desc.h"

namespace mamba_export_ops {

using ConvInputs = InputDesc[kConvNumInputs];

// Returns "" when the inputs are valid for the x_offset attribute's value, and then sets
// the sizes, dtype, x_offset and x_step of params (pointers are left alone). Otherwise
// returns the error message, which names the input, the expected and the actual value.
std::string ValidateCausalConvInputs(const ConvInputs& inputs, int64_t x_offset, CausalConvParams* params);

}  // namespace mamba_export_ops

// Checks the input of one LastArgMax call against the contract before any tensor memory
// is touched. Shared by the CPU and CUDA bindings; it sees only the shape and dtype
// name, never ONNX Runtime. The messages repeat the wording of check_inputs() in
// mamba_export/ops/last_argmax.py.
#pragma once

#include <string>

#include "last_argmax/params.h"
#include "mamba_export_ops/input_desc.h"
#include "mamba_export_ops/last_argmax.h"

namespace mamba_export_ops {

using ArgMaxInputs = InputDesc[kArgMaxNumInputs];

// Returns "" when the input is valid, and then sets the sizes and dtype of params
// (pointers are left alone). Otherwise returns the error message, which names the
// input, the expected and the actual value.
std::string ValidateLastArgMaxInputs(const ArgMaxInputs& inputs, LastArgMaxParams* params);

}  // namespace mamba_export_ops

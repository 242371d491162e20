// Checks the inputs of one SelectiveScan call against the contract before any
// tensor memory is touched. Shared by the CPU and CUDA bindings; it sees only
// shapes and dtype names, never ONNX Runtime. The messages repeat the wording of
// check_inputs() in mamba_export/ops/selective_scan.py.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mamba_export_ops/contract.h"
#include "mamba_export_ops/input_desc.h"
#include "selective_scan/params.h"

namespace mamba_export_ops {

using ScanInputs = InputDesc[kNumInputs];

// Returns "" when the inputs are valid for the layout and offset attributes' values, and
// then sets the sizes, groups, layout, offsets, packed widths, strides and dtype of params
// (pointers are left alone). Otherwise returns the error message, which names the input
// (or the attribute), the expected and the actual value.
std::string ValidateSelectiveScanInputs(const ScanInputs& inputs, int layout, const ScanOffsets& offsets,
                                        SelectiveScanParams* params);

}  // namespace mamba_export_ops

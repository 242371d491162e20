// The LastArgMax operator contract, mirrored from mamba_export/ops/last_argmax.py.
// That Python module is the source of truth; tests/custom_ops/test_last_argmax_contract_agrees.py
// fails if this header drifts from it. The input order is the ABI: append, never reorder.
#pragma once

#include "mamba_export_ops/contract.h"  // kDomain, shared by every op of the library

namespace mamba_export_ops {

constexpr const char* kLastArgMaxOpType = "LastArgMax";
constexpr int kLastArgMaxVersion = 1;

enum LastArgMaxInput : int {
  kArgMaxInputLogits = 0,
  kArgMaxNumInputs = 1,
};
constexpr int kArgMaxNumRequiredInputs = 1;
constexpr const char* kArgMaxInputNames[kArgMaxNumInputs] = {"logits"};

enum LastArgMaxOutput : int {
  kArgMaxOutputTokens = 0,
  kArgMaxNumOutputs = 1,
};
constexpr const char* kArgMaxOutputNames[kArgMaxNumOutputs] = {"tokens"};

// No attributes.

}  // namespace mamba_export_ops

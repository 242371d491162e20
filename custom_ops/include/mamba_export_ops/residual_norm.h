// The ResidualRMSNorm operator contract, mirrored from mamba_export/ops/residual_norm.py.
// That Python module is the source of truth; tests/custom_ops/test_residual_norm_contract_agrees.py
// fails if this header drifts from it. The input order is the ABI: append, never reorder.
#pragma once

#include "mamba_export_ops/contract.h"  // kDomain, shared by every op of the library

namespace mamba_export_ops {

constexpr const char* kResidualNormOpType = "ResidualRMSNorm";
constexpr int kResidualNormVersion = 1;

enum ResidualNormInput : int {
  kNormInputX = 0,
  kNormInputWeight = 1,
  kNormInputResidual = 2,
  kNormNumInputs = 3,
};
constexpr int kNormNumRequiredInputs = 2;
constexpr const char* kNormInputNames[kNormNumInputs] = {"x", "weight", "residual"};

enum ResidualNormOutput : int {
  kNormOutputY = 0,
  kNormOutputResidualOut = 1,
  kNormNumOutputs = 2,
};
constexpr const char* kNormOutputNames[kNormNumOutputs] = {"y", "residual_out"};

constexpr const char* kAttrEpsilon = "epsilon";
constexpr float kDefaultEpsilon = 1e-6f;

}  // namespace mamba_export_ops

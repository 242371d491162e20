// The Linear operator contract, mirrored from mamba_export/ops/linear.py. That Python module
// is the source of truth; tests/custom_ops/test_linear_contract_agrees.py fails if this header
// drifts from it. The input order is the ABI: append, never reorder.
#pragma once

#include "mamba_export_ops/contract.h"  // kDomain, shared by every op of the library

namespace mamba_export_ops {

constexpr const char* kLinearOpType = "Linear";
constexpr int kLinearVersion = 1;

enum LinearInput : int {
  kLinearInputX = 0,
  kLinearInputWeight = 1,
  kLinearNumInputs = 2,
};
constexpr int kLinearNumRequiredInputs = 2;
constexpr const char* kLinearInputNames[kLinearNumInputs] = {"x", "weight"};

enum LinearOutput : int {
  kLinearOutputY = 0,
  kLinearNumOutputs = 1,
};
constexpr const char* kLinearOutputNames[kLinearNumOutputs] = {"y"};

// Rows of x the CUDA kernel computes with matrix-vector kernels of its own. Past one row, only
// weights of at most kLinearVectorMaxWeightBytes do.
constexpr int kLinearVectorRows = 4;
constexpr long long kLinearVectorMaxWeightBytes = 8LL * 1024 * 1024;

inline bool LinearUsesVectorKernel(long long rows, long long weight_bytes) {
  return rows >= 1 && rows <= kLinearVectorRows && (rows == 1 || weight_bytes <= kLinearVectorMaxWeightBytes);
}

// Calls the matrix-vector kernel leaves, of up to kLinearTileRows rows, in float16 or bfloat16 and
// with K a multiple of kLinearTileInnerMultiple, take the tensor-core kernel of our own (where x and
// the weight are 16-byte aligned, as ONNX Runtime allocates them); the rest go to cuBLAS.
constexpr int kLinearTileRows = 32;
constexpr int kLinearTileInnerMultiple = 8;

inline bool LinearUsesTileKernel(long long rows, long long inner, bool half_precision) {
  return half_precision && rows >= 1 && rows <= kLinearTileRows && inner % kLinearTileInnerMultiple == 0;
}

}  // namespace mamba_export_ops

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

// Which of the CUDA kernel's three paths takes a call, measured on the H200 (the contract,
// mamba_export/ops/linear.py, says why): the matrix-vector kernel, the tensor-core kernel (float16 and
// bfloat16, K a multiple of kLinearTileInnerMultiple, x and the weight 16-byte aligned, as ONNX Runtime
// allocates them; unaligned calls go to cuBLAS), or cuBLAS. Rows are the product of x's dimensions
// but the last; calls without rows never reach a kernel.
enum LinearPath : int { kLinearPathVector = 0, kLinearPathTile = 1, kLinearPathCublas = 2 };

constexpr int kLinearVectorRows = 4;
constexpr long long kLinearVectorWeightBytes = 16LL * 1024 * 1024;
constexpr long long kLinearTileSplitColumns = 512;
constexpr long long kLinearTileDeepInner = 4096;
constexpr long long kLinearSmallWeightBytes = 8LL * 1024 * 1024;
constexpr int kLinearTileRows = 32;
constexpr int kLinearTileWideRows = 16;
constexpr int kLinearTileInnerMultiple = 8;

// outer: N, the weight's rows; weight_bytes: N x K x the element's bytes.
inline LinearPath LinearPathFor(long long rows, long long inner, long long outer, long long weight_bytes,
                                bool half_precision) {
  const bool small = weight_bytes <= kLinearSmallWeightBytes;
  if (rows < 1) return kLinearPathCublas;
  if (half_precision && inner % kLinearTileInnerMultiple == 0) {
    const bool narrow_deep = outer <= kLinearTileSplitColumns && inner >= kLinearTileDeepInner;
    if (rows == 1 && weight_bytes <= kLinearVectorWeightBytes && !narrow_deep) return kLinearPathVector;
    if (rows <= kLinearTileWideRows || (rows <= kLinearTileRows && small)) return kLinearPathTile;
    return kLinearPathCublas;
  }
  return rows <= kLinearVectorRows && (rows == 1 || small) ? kLinearPathVector : kLinearPathCublas;
}

}  // namespace mamba_export_ops

// The CausalConv1d operator contract, mirrored from mamba_export/ops/causal_conv.py.
// That Python module is the source of truth; tests/custom_ops/test_contract_agrees.py
// fails if this header drifts from it. The input order is the ABI: append, never reorder.
#pragma once

#include "mamba_export_ops/contract.h"  // kDomain, shared by every op of the library

namespace mamba_export_ops {

constexpr const char* kCausalConvOpType = "CausalConv1d";
constexpr int kCausalConvVersion = 1;

enum CausalConvInput : int {
  kConvInputX = 0,
  kConvInputWeight = 1,
  kConvInputBias = 2,
  kConvInputConvState = 3,
  kConvInputMask = 4,
  kConvNumInputs = 5,
};
constexpr int kConvNumRequiredInputs = 2;
constexpr const char* kConvInputNames[kConvNumInputs] = {"x", "weight", "bias", "conv_state", "mask"};

enum CausalConvOutput : int {
  kConvOutputY = 0,
  kConvOutputNewConvState = 1,
  kConvNumOutputs = 2,
};
constexpr const char* kConvOutputNames[kConvNumOutputs] = {"y", "new_conv_state"};

constexpr const char* kAttrActivation = "activation";
// Packed input: x read as channels [x_offset, x_offset + C) of a wider (B, L, W) tensor;
// kWholeInput (contract.h) reads x as is.
constexpr const char* kAttrXOffset = "x_offset";
enum CausalConvActivation : int {
  kActivationNone = 0,
  kActivationSilu = 1,
};

}  // namespace mamba_export_ops

// The SelectiveScan operator contract, mirrored from mamba_export/ops/selective_scan.py.
// That Python module is the source of truth; tests/custom_ops/test_contract_agrees.py
// fails if this header drifts from it. The input order is the ABI: append, never reorder.
#pragma once

#include <cstdint>

namespace mamba_export_ops {

constexpr const char* kDomain = "mamba_export";
constexpr const char* kSelectiveScanOpType = "SelectiveScan";
constexpr int kSelectiveScanVersion = 1;
constexpr float kSoftplusThreshold = 20.0f;

enum SelectiveScanInput : int {
  kInputU = 0,
  kInputDelta = 1,
  kInputA = 2,
  kInputB = 3,
  kInputC = 4,
  kInputD = 5,
  kInputZ = 6,
  kInputDeltaBias = 7,
  kInputInitialState = 8,
  kInputDeltaWeight = 9,
  kNumInputs = 10,
};
constexpr int kNumRequiredInputs = 5;
constexpr const char* kInputNames[kNumInputs] = {
    "u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state", "delta_weight"};

enum SelectiveScanOutput : int {
  kOutputY = 0,
  kOutputLastState = 1,
  kNumOutputs = 2,
};
constexpr const char* kOutputNames[kNumOutputs] = {"y", "last_state"};

constexpr const char* kAttrDeltaSoftplus = "delta_softplus";
constexpr const char* kAttrLayout = "layout";
// Packed inputs (layout 1 only, ungrouped B and C): B, C or z read as channels
// [offset, offset + width) of a wider (B, L, W) tensor; kWholeInput reads the input as is.
constexpr const char* kAttrBOffset = "b_offset";
constexpr const char* kAttrCOffset = "c_offset";
constexpr const char* kAttrZOffset = "z_offset";
constexpr int64_t kWholeInput = -1;
// Projected delta (layout 1 only): with the input delta_weight (D, R) float32, delta is a
// (B, L, W) tensor whose channels [delta_offset, delta_offset + R) hold x_dt, and the scan's
// delta is sum_r delta_weight[d, r] * x_dt[b, l, r] in float32; kWholeInput without it.
constexpr const char* kAttrDeltaOffset = "delta_offset";

// Values of the layout attribute: how u, delta, z, y and B, C are stored.
enum SelectiveScanLayout : int {
  kLayoutChannelsFirst = 0,  // u (B, D, L); B, C (B, N, L) or (B, G, N, L)
  kLayoutChannelsLast = 1,   // u (B, L, D); B, C (B, L, N) or (B, L, G, N)
};

}  // namespace mamba_export_ops

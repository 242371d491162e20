// Sizes, strides and pointers of one SelectiveScan call. Kernels (cpu.cc, cuda.cu)
// compute on this struct alone and know nothing about ONNX Runtime; ort_kernel.cc
// fills it after checking every input against the contract.
#pragma once

#include <cstdint>

#include "mamba_export_ops/contract.h"

namespace mamba_export_ops {

// Element strides of a sequence tensor (u, delta, z, y): element (b, d, t) is at
// b * batch + d * dim + t * time.
struct SequenceStrides {
  int64_t batch = 0;
  int64_t dim = 0;
  int64_t time = 0;
};

// Element strides of B or C: element (b, g, n, t) is at
// b * batch + g * group + n * state + t * time (g = 0 when there are no groups).
struct ProjectionStrides {
  int64_t batch = 0;
  int64_t group = 0;
  int64_t state = 0;
  int64_t time = 0;
};

enum class ScanDType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

inline int64_t ScanDTypeBytes(ScanDType dtype) { return dtype == ScanDType::kFloat32 ? 4 : 2; }

// The offset attributes (contract.h): where B, C and z start in the tensor they are read
// from, in channels, or kWholeInput.
// delta: where x_dt starts in delta when delta_weight is given (the projected form).
struct ScanOffsets {
  int64_t b = kWholeInput;
  int64_t c = kWholeInput;
  int64_t z = kWholeInput;
  int64_t delta = kWholeInput;
};

// The row width W of the tensors B, C and z are read from (their last dimension), 0 for
// an input read whole or absent; set by the validation from the shapes.
struct PackedWidths {
  int64_t b = 0;
  int64_t c = 0;
  int64_t z = 0;
  int64_t delta = 0;  // W of delta in the projected form
};

struct SelectiveScanParams {
  int64_t batch = 0;     // B
  int64_t dim = 0;       // D, channels
  int64_t length = 0;    // L
  int64_t state = 0;     // N
  int64_t groups_b = 0;  // 0 when B is (B, N, L), else G of (B, G, N, L)
  int64_t groups_c = 0;
  int64_t rank = 0;      // R of delta_weight (D, R); 0 when delta is given plain
  bool delta_softplus = false;
  int layout = kLayoutChannelsFirst;
  ScanDType dtype = ScanDType::kFloat32;  // of u, delta, B, C, z and y

  ScanOffsets offsets;   // the attributes; the pointers below already point at the window
  PackedWidths packed;   // W of each input read at an offset

  // Where the layout puts each element (set with the sizes by SetLayoutStrides). z has
  // the strides of u unless it is read at an offset (then its steps are W apart).
  SequenceStrides seq;
  SequenceStrides z_seq;
  ProjectionStrides proj_b;
  ProjectionStrides proj_c;

  // All tensors are dense and row-major in the shapes of the contract for the layout:
  // channels first (layout 0) or channels last (layout 1, in brackets). An input read
  // at an offset points at element (0, 0, offset) of its (B, L, W) tensor, and its
  // strides say W.
  const void* u = nullptr;            // (B, D, L) [(B, L, D)]  T
  const void* delta = nullptr;        // (B, D, L) [(B, L, D)]  T
  const float* A = nullptr;           // (D, N)     float32
  const void* B = nullptr;            // (B, N, L) or (B, G, N, L) [(B, L, N) or (B, L, G, N)]  T
  const void* C = nullptr;            // (B, N, L) or (B, G, N, L) [(B, L, N) or (B, L, G, N)]  T
  const float* D = nullptr;           // (D,) float32, optional (nullptr)
  const void* z = nullptr;            // (B, D, L) [(B, L, D)] T, optional
  const float* delta_bias = nullptr;  // (D,) float32, optional
  const float* initial_state = nullptr;  // (B, D, N) float32, optional
  // The projected form (layout 1): delta then points at x_dt, element (b, l, r) at
  // b * L * W + l * W + r (W = packed.delta), and the scan's delta is delta_weight @ x_dt.
  const float* delta_weight = nullptr;   // (D, R) float32, optional
  // Set by a kernel, not by the validation: delta holds the plain delta as float32 values,
  // (B, D, L) [(B, L, D)] whatever T (a projection computed before the scan).
  bool delta_float32 = false;
  void* y = nullptr;                  // (B, D, L) [(B, L, D)]  T
  float* last_state = nullptr;        // (B, D, N)  float32
};

// The strides of B or C with `groups` (0 for the ungrouped form) in `layout`.
inline ProjectionStrides ProjectionStridesOf(int layout, int64_t groups, int64_t state, int64_t length) {
  const int64_t g = groups > 0 ? groups : 1;
  ProjectionStrides s;
  if (layout == kLayoutChannelsLast) {
    s.state = 1;
    s.group = state;
    s.time = g * state;
    s.batch = length * g * state;
  } else {
    s.time = 1;
    s.state = length;
    s.group = state * length;
    s.batch = g * state * length;
  }
  return s;
}

// The strides of an ungrouped B or C read at an offset of a (B, L, W) tensor.
inline ProjectionStrides PackedProjectionStrides(int64_t width, int64_t state, int64_t length) {
  return ProjectionStrides{length * width, state, 1, width};
}

// Fills seq, z_seq, proj_b and proj_c from the sizes, groups, layout and packed widths.
inline void SetLayoutStrides(SelectiveScanParams* p) {
  if (p->layout == kLayoutChannelsLast) {
    p->seq = SequenceStrides{p->length * p->dim, 1, p->dim};
  } else {
    p->seq = SequenceStrides{p->dim * p->length, p->length, 1};
  }
  p->z_seq = p->offsets.z == kWholeInput ? p->seq : SequenceStrides{p->length * p->packed.z, 1, p->packed.z};
  p->proj_b = p->offsets.b == kWholeInput ? ProjectionStridesOf(p->layout, p->groups_b, p->state, p->length)
                                          : PackedProjectionStrides(p->packed.b, p->state, p->length);
  p->proj_c = p->offsets.c == kWholeInput ? ProjectionStridesOf(p->layout, p->groups_c, p->state, p->length)
                                          : PackedProjectionStrides(p->packed.c, p->state, p->length);
}

// Where x_dt of step (b, l) starts in the projected form (delta already at delta_offset).
// Host and device: the CPU kernel and the CUDA kernels read x_dt alike.
#if defined(__CUDACC__)
__host__ __device__
#endif
inline int64_t ProjectedDeltaRowOffset(const SelectiveScanParams& p, int64_t b, int64_t l) {
  return (b * p.length + l) * p.packed.delta;
}

// `data` advanced to the window of an input read at `offset` channels (as is for kWholeInput).
inline const void* WindowStart(const void* data, int64_t offset, ScanDType dtype) {
  if (data == nullptr || offset == kWholeInput) return data;
  return static_cast<const char*>(data) + offset * ScanDTypeBytes(dtype);
}

// Where row (b * D + d) of a sequence tensor starts (its step 0).
inline int64_t SequenceRowOffset(const SelectiveScanParams& p, int64_t row) {
  return (row / p.dim) * p.seq.batch + (row % p.dim) * p.seq.dim;
}

// The same for z, whose strides are its own when it is read at an offset.
inline int64_t GateRowOffset(const SelectiveScanParams& p, int64_t row) {
  return (row / p.dim) * p.z_seq.batch + (row % p.dim) * p.z_seq.dim;
}

}  // namespace mamba_export_ops

// How the CPU scan lays out its work: blocks of channels that share their groups of B
// and C, and B and C copied once into time-major float32 panels (..., L, N) so that a
// step reads its N values contiguously (from either layout). Included by cpu.cc only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "common/half.h"
#include "selective_scan/params.h"

namespace mamba_export_ops {

// How the (batch, channel) rows are cut into blocks of at most `width` channels that
// never straddle a group of B or of C.
struct BlockLayout {
  int64_t width;
  int64_t segment;             // channels per run sharing both groups
  int64_t blocks_per_segment;
  int64_t blocks_per_batch;
  int64_t blocks;              // in total
};

inline BlockLayout MakeLayout(const SelectiveScanParams& p, int64_t width) {
  BlockLayout layout;
  layout.width = width;
  const int64_t per_group_b = p.groups_b ? p.dim / p.groups_b : p.dim;
  const int64_t per_group_c = p.groups_c ? p.dim / p.groups_c : p.dim;
  layout.segment = std::gcd(per_group_b, per_group_c);
  layout.blocks_per_segment = (layout.segment + width - 1) / width;
  layout.blocks_per_batch = (p.dim / layout.segment) * layout.blocks_per_segment;
  layout.blocks = p.batch * layout.blocks_per_batch;
  return layout;
}

// A block of channels of one batch entry that share their groups of B and C.
struct ChannelBlock {
  int64_t row0;          // first row (b * D + d0)
  int64_t count;         // channels in the block, <= the layout's width
  const float* b_panel;  // time-major (L, N) of B for this batch entry and group
  const float* c_panel;
};

// Block `index` of `layout`, its B and C rows found in panels of (batch, groups or 1, L, N).
inline ChannelBlock BlockAt(const SelectiveScanParams& p, const BlockLayout& layout, int64_t index,
                           const float* b_panel, const float* c_panel) {
  const int64_t b = index / layout.blocks_per_batch;
  const int64_t in_batch = index % layout.blocks_per_batch;
  const int64_t offset = (in_batch % layout.blocks_per_segment) * layout.width;
  const int64_t d0 = (in_batch / layout.blocks_per_segment) * layout.segment + offset;
  const int64_t plane_b = p.groups_b ? b * p.groups_b + d0 / (p.dim / p.groups_b) : b;
  const int64_t plane_c = p.groups_c ? b * p.groups_c + d0 / (p.dim / p.groups_c) : b;
  const int64_t plane = p.length * p.state;
  return ChannelBlock{b * p.dim + d0, std::min(layout.width, layout.segment - offset),
                      b_panel + plane_b * plane, c_panel + plane_c * plane};
}

// (planes, N, L) in the I/O dtype -> (planes, L, N) in float32.
template <typename Io>
void ToTimeMajor(const void* source, int64_t planes, int64_t state, int64_t length, float* out) {
  using S = typename Io::Storage;
  constexpr int64_t kTile = 64;
  const S* src = static_cast<const S*>(source);
  for (int64_t plane = 0; plane < planes; ++plane) {
    const S* in = src + plane * state * length;
    float* dst = out + plane * state * length;
    for (int64_t t0 = 0; t0 < length; t0 += kTile) {
      const int64_t t1 = std::min(length, t0 + kTile);
      for (int64_t n = 0; n < state; ++n) {
        for (int64_t t = t0; t < t1; ++t) dst[t * state + n] = Io::Load(in[n * length + t]);
      }
    }
  }
}

// Channels last: (batch, L, groups, N) in the I/O dtype, or an ungrouped window of a wider
// (batch, L, W) tensor, addressed by `strides` -> (batch, groups, L, N) in float32. Each
// step's N values are already contiguous; only the groups move out of the step.
template <typename Io>
void GroupsToPlanes(const void* source, const ProjectionStrides& strides, int64_t batch, int64_t groups,
                    int64_t state, int64_t length, float* out) {
  using S = typename Io::Storage;
  const S* src = static_cast<const S*>(source);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = 0; t < length; ++t) {
      const S* in = src + b * strides.batch + t * strides.time;
      for (int64_t g = 0; g < groups; ++g) {
        float* dst = out + ((b * groups + g) * length + t) * state;
        for (int64_t n = 0; n < state; ++n) dst[n] = Io::Load(in[g * strides.group + n * strides.state]);
      }
    }
  }
}

template <typename Io>
void ToPanel(const SelectiveScanParams& p, const void* source, const ProjectionStrides& strides, int64_t groups,
             float* out) {
  if (p.layout == kLayoutChannelsLast) {
    GroupsToPlanes<Io>(source, strides, p.batch, groups, p.state, p.length, out);
  } else {
    ToTimeMajor<Io>(source, p.batch * groups, p.state, p.length, out);
  }
}

// B or C (either layout, whole or read at an offset; `strides` are its proj_b or proj_c)
// as time-major float32 planes (batch, groups or 1, L, N).
inline std::vector<float> TimeMajorPanel(const SelectiveScanParams& p, const void* source,
                                         const ProjectionStrides& strides, int64_t groups) {
  const int64_t planes_per_batch = std::max<int64_t>(groups, 1);
  std::vector<float> panel(static_cast<size_t>(p.batch * planes_per_batch * p.state * p.length));
  switch (p.dtype) {
    case ScanDType::kFloat32:
      ToPanel<Float32Io>(p, source, strides, planes_per_batch, panel.data());
      break;
    case ScanDType::kFloat16:
      ToPanel<Float16Io>(p, source, strides, planes_per_batch, panel.data());
      break;
    case ScanDType::kBFloat16:
      ToPanel<BFloat16Io>(p, source, strides, planes_per_batch, panel.data());
      break;
  }
  return panel;
}

}  // namespace mamba_export_ops

// Whether the CUDA kernels that come in a 32-bit and a 64-bit instance of their index
// arithmetic (the decode scan, the causal conv) take the 32-bit one where every offset of
// the call fits a signed 32-bit integer (the default), or the 64-bit one always.
//
// Why two: a 64-bit product is three multiply-adds and a 64-bit division a call, and in a
// decode step's short kernels the index arithmetic was most of a thread's instructions
// (ncu: the batch-32 decode scan bound by the instructions it issues). The 64-bit instance
// serves tensors of 2^31 elements and more, which tests cannot allocate: this switch lets
// them run it on small ones and compare its bits with the 32-bit instance's.
//
// A process-wide switch: mamba_export_ops_set_wide_index (build_info.cc) sets it through
// ctypes; MAMBA_EXPORT_WIDE_INDEX=1 starts a process with the 64-bit instances. A CUDA graph
// keeps the kernels it captured: switch before a session captures. No CUDA types, so plain
// C++ can include it.
#pragma once

#include <cstdint>

namespace mamba_export_ops {

// Defined in common/index_width.cu (CUDA builds only).
bool GetWideIndex();
bool SetWideIndex(bool on);  // returns the previous setting

// Whether a call whose largest element offset is `last_offset` (and whose every other offset
// and product of indices is at most that) takes the 32-bit instance.
inline bool TakesNarrowIndex(int64_t last_offset) {
  return !GetWideIndex() && last_offset >= 0 && last_offset < INT32_MAX;
}

}  // namespace mamba_export_ops

// What this build of the library holds, asked before any session is built.
//
// A CUDA session needs the CUDA kernels: without them ONNX Runtime quietly runs our
// nodes on the CPU provider. The Python runtime loads the library with ctypes and
// calls this function, so it can refuse a CPU-only build for provider "cuda" with a
// message that says how to build the right one. Plain C, no ONNX Runtime types.

extern "C" __attribute__((visibility("default"))) int mamba_export_ops_has_cuda() {
#if defined(MAMBA_EXPORT_WITH_CUDA)
  return 1;
#else
  return 0;
#endif
}

#if defined(MAMBA_EXPORT_WITH_CUDA)
#include "common/dependent_launch.h"
#include "common/index_width.h"
#include "selective_scan/cuda_loads.h"
#endif

// Switches how the chunked CUDA scan loads channels-last tiles (selective_scan/cuda_loads.h):
// 0 strided, 1 staged through shared memory (the default). Returns the previous mode, or
// -1 for another value or a build without CUDA kernels. For timing the two in one process.
extern "C" __attribute__((visibility("default"))) int mamba_export_ops_set_scan_loads(int mode) {
#if defined(MAMBA_EXPORT_WITH_CUDA)
  using mamba_export_ops::ScanLoads;
  if (mode != static_cast<int>(ScanLoads::kStrided) && mode != static_cast<int>(ScanLoads::kStaged)) return -1;
  return static_cast<int>(mamba_export_ops::SetScanLoads(static_cast<ScanLoads>(mode)));
#else
  (void)mode;
  return -1;
#endif
}

// Switches dependent launches of our CUDA kernels (common/dependent_launch.h): 0 off, 1 on (the
// default, for calls of up to kDependentLaunchMaxRows rows). Returns the previous setting, or -1 for another value or a build without
// CUDA kernels. Graphs captured before keep their launches. For timing both in one process.
extern "C" __attribute__((visibility("default"))) int mamba_export_ops_set_dependent_launch(int on) {
#if defined(MAMBA_EXPORT_WITH_CUDA)
  if (on != 0 && on != 1) return -1;
  return mamba_export_ops::SetDependentLaunch(on == 1) ? 1 : 0;
#else
  (void)on;
  return -1;
#endif
}

// Switches the short-sequence CUDA scan (selective_scan/cuda_loads.h): 0 a group of lanes per
// (batch, channel) (the default), 1 one thread per (batch, channel) where the batch is large.
// Returns the previous mode, or -1 for another value or a build without CUDA kernels.
extern "C" __attribute__((visibility("default"))) int mamba_export_ops_set_decode_scan(int mode) {
#if defined(MAMBA_EXPORT_WITH_CUDA)
  using mamba_export_ops::DecodeScan;
  if (mode != static_cast<int>(DecodeScan::kLanes) && mode != static_cast<int>(DecodeScan::kChannel)) return -1;
  return static_cast<int>(mamba_export_ops::SetDecodeScan(static_cast<DecodeScan>(mode)));
#else
  (void)mode;
  return -1;
#endif
}

// Switches the CUDA kernels' index arithmetic (common/index_width.h): 0 32-bit where every offset
// of a call fits (the default), 1 64-bit always. Returns the previous setting, or -1 for another
// value or a build without CUDA kernels.
extern "C" __attribute__((visibility("default"))) int mamba_export_ops_set_wide_index(int on) {
#if defined(MAMBA_EXPORT_WITH_CUDA)
  if (on != 0 && on != 1) return -1;
  return mamba_export_ops::SetWideIndex(on == 1) ? 1 : 0;
#else
  (void)on;
  return -1;
#endif
}
